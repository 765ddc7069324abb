"""``spacevllm demo [--out DIR]``: ground a query on the bundled sample video with the embedded default model.

Prints the tube and writes ``DIR/tube.json`` (the ``ground --json`` object), ``DIR/annotated.mp4`` (the box drawn
on each frame, in display orientation, the predicted time range marked on a bar under the frame) and
``DIR/timeline.png`` (frames with their boxes over the time axis). DIR defaults to ``./demo_out``.

Every input is checked before the model loads (``--out``, ``--threads``, the query, the checkpoint folder, the
video and its length); the three files are written into a temporary folder and moved into DIR together, so a
failed run leaves no partial output.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from spacevllm.errors import SpaceVLLMError

OUTPUTS = ("tube.json", "annotated.mp4", "timeline.png")
MAX_DECODED_BYTES = 2 * 1024**3  # every frame is decoded for the annotated video; refuse what would not fit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_out", help="output folder (default ./demo_out)")
    parser.add_argument("--checkpoint", help="model folder (default: the embedded default model)")
    parser.add_argument("--video", help="video to ground in (default: the bundled sample video)")
    parser.add_argument("--query", help="caption to ground (default: the sample video's query)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads, at least 1 (default 2)")


def run(args) -> int:
    import torch

    from spacevllm import assets
    from spacevllm.commands.ground import check_query, check_threads
    from spacevllm.io_utils import check_output

    out = check_output(args.out, "folder")  # a bad --out fails before the model is loaded
    check_threads(args.threads)
    t0 = time.perf_counter()
    if args.video and not args.query:
        raise SpaceVLLMError("--query is required with --video")
    query = check_query(args.query or assets.sample_info()["query"])
    checkpoint = Path(args.checkpoint) if args.checkpoint else assets.default_checkpoint_path()
    video = Path(args.video) if args.video else assets.sample_video_path()
    _check_video(video, _model_frames(checkpoint))  # the checkpoint first: its num_frames says what is too short
    torch.set_num_threads(args.threads)
    tube = _ground(checkpoint, video, query)
    _write_outputs(out, video, query, tube)
    print(f"query: {query}")
    print(tube)
    print(f"wrote {', '.join(str(out / name) for name in OUTPUTS)} ({time.perf_counter() - t0:.1f} s)")
    return 0


def _model_frames(checkpoint: Path) -> int:
    from spacevllm.modeling.inference import check_checkpoint

    return int(check_checkpoint(checkpoint).get("num_frames") or 0)


def _check_video(video: Path, frames: int) -> None:
    """An image, a video shorter than the model's frames, or one too large to decode whole fails here."""
    from spacevllm.commands.ground import check_video_length, is_image
    from spacevllm.video import probe_video

    if is_image(video):
        raise SpaceVLLMError(f"{video}: is an image; the demo needs a video (`spacevllm ground` takes an image)")
    info = probe_video(video)
    check_video_length(info, frames, default=False)
    size = info.num_frames * info.width * info.height * 3
    if size > MAX_DECODED_BYTES:
        raise SpaceVLLMError(
            f"{video}: too long for the demo's annotated video ({info.num_frames} frames of {info.width}x"
            f"{info.height}, {size / 1024**3:.1f} GiB decoded); use `spacevllm ground`"
        )


def _ground(checkpoint: Path, video: Path, query: str):
    import torch

    from spacevllm.modeling.inference import ground, load_model

    model, processor = load_model(checkpoint)
    with torch.no_grad():
        return ground(model, processor, str(video), query)


def _write_outputs(out: Path, video: Path, query: str, tube) -> None:
    """All three files into a temporary folder beside ``out``, then moved into ``out`` (created if needed)."""
    from spacevllm.demo import write_annotated_video, write_timeline
    from spacevllm.io_utils import write_json_atomic
    from spacevllm.video import sample_frames

    counted = sample_frames(video, 1).info.num_frames  # as decoding counts them (a header can be wrong)
    sample = sample_frames(video, counted)
    info, frames, times = sample.info, sample.frames, sample.times
    parent = _existing_ancestor(out)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", suffix=".tmp", dir=parent) as tmp:
        tmp = Path(tmp)
        write_json_atomic(tmp / "tube.json", tube.to_json(time_digits=4, box_digits=2))
        write_annotated_video(tmp / "annotated.mp4", frames, info.fps, tube, info.duration, times=times)
        write_timeline(tmp / "timeline.png", frames, info.fps, tube, info.duration, query, times=times)
        out.mkdir(parents=True, exist_ok=True)
        for name in OUTPUTS:
            os.replace(tmp / name, out / name)


def _existing_ancestor(path: Path) -> Path:
    """The nearest existing folder at or above ``path``'s parent (same file system, so renames stay atomic)."""
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    return parent
