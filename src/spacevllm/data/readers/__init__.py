"""Readers of the public benchmarks into Uni-STG records (:mod:`spacevllm.data.records`)."""

from pathlib import Path


def video_path(vid: str, videos_dir=None, video_ext: str = "") -> str:
    """A record's ``video`` field: ``{videos_dir}/{vid}{video_ext}``, or ``{vid}{video_ext}`` without a folder."""
    name = f"{vid}{video_ext}"
    return str(Path(videos_dir) / name) if videos_dir else name
