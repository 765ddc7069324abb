"""TACoS (Regneri et al., 2013; the VTG split of Gao et al., 2017) annotation JSON -> Uni-STG VTG records.

The common files (``train.json`` / ``val.json`` / ``test.json`` as 2D-TAN and its successors ship them) map a
video file name to its sentences::

    {"s13-d21.avi": {"num_frames": 6234, "fps": 29.4, "timestamps": [[86, 518], [540, 974]],
                     "sentences": ["The person takes out a cutting board.", "..."]}, ...}

``timestamps`` are source frame indices (``unit="frames"``, the 2D-TAN files) or seconds (``unit="seconds"``),
one ``[start, end]`` pair per sentence. As 2D-TAN reads them: ``duration = num_frames / fps``, ``start = max(s /
fps, 0)``, ``end = min(e / fps, duration)``, and pairs with ``s >= e`` are skipped (there are a few in the
official lists; ``skip_empty=False`` keeps them as zero-length ranges instead). A file without ``fps`` needs the
``fps`` argument (TACoS videos are 29.4 fps).

Each sentence becomes one record with

* ``id``: ``"{video}#{k}"``, ``k`` the sentence's 0-based index within its video (stable even when a pair
  before it is skipped);
* ``task = "vtg"``, ``query`` = the sentence, ``start`` / ``end`` seconds (closed), ``duration``, ``fps``;
* ``video`` = ``{videos_dir}/{video}{video_ext}`` (the key as written, usually ``.avi``; ``video_ext=""``);
* ``source = "tacos"``, ``meta = {"vid": key, "sentence": k, "timestamp": the pair as written}``.

A malformed entry raises :class:`InputFileError` naming the file, the record (video and sentence) and the field
(``num_frames``, ``fps``, ``timestamps``, ``sentences``).
"""

from __future__ import annotations

import math
from pathlib import Path

from spacevllm.data.readers import video_path
from spacevllm.data.records import Record
from spacevllm.errors import InputFileError
from spacevllm.io_utils import load_json

SOURCE = "tacos"
TACOS_FPS = 29.4
UNITS = ("frames", "seconds")


def read_tacos(
    path: str | Path,
    videos_dir: str | Path | None = None,
    fps: float | None = None,
    unit: str = "frames",
    video_ext: str = "",
    skip_empty: bool = True,
) -> list[Record]:
    """All records of a TACoS JSON file, videos in file order (see the module docstring)."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    data = load_json(path)
    if not isinstance(data, dict):
        raise InputFileError(path, 'expected a JSON object {"video": {"num_frames", "timestamps", "sentences"}}')
    records = []
    for vid, entry in data.items():
        records.extend(video_records(vid, entry, path, videos_dir, fps, unit, video_ext, skip_empty))
    return records


def video_records(
    vid: str, entry, path, videos_dir=None, fps=None, unit="frames", video_ext="", skip_empty=True
) -> list[Record]:
    """The records of one video entry ``{"num_frames", "fps", "timestamps", "sentences"}``."""
    if not isinstance(entry, dict):
        raise InputFileError(path, "a video entry must be a JSON object", record=vid)
    rate = _positive(entry.get("fps", fps), path, vid, "fps")
    duration = _positive(entry.get("num_frames"), path, vid, "num_frames") / rate
    stamps, sentences = entry.get("timestamps"), entry.get("sentences")
    if not isinstance(stamps, list):
        raise InputFileError(path, "must be a list of [start, end] pairs", record=vid, field="timestamps")
    if not isinstance(sentences, list) or len(sentences) != len(stamps):
        got = len(sentences) if isinstance(sentences, list) else repr(sentences)
        msg = f"must be a list of {len(stamps)} sentences (one per timestamp), got {got}"
        raise InputFileError(path, msg, record=vid, field="sentences")
    scale = 1.0 / rate if unit == "frames" else 1.0
    video = video_path(vid, videos_dir, video_ext)
    records = []
    for k, (pair, sentence) in enumerate(zip(stamps, sentences)):
        rec = f"{vid}#{k}"
        s, e = _pair(pair, path, rec)
        if s >= e and skip_empty:
            continue
        if not isinstance(sentence, str) or not sentence.strip():
            raise InputFileError(path, f"must be a non-empty string, got {sentence!r}", record=rec, field="sentences")
        start, end = max(s * scale, 0.0), min(e * scale, duration)
        records.append(
            Record(
                id=rec,
                task="vtg",
                query=sentence.strip(),
                video=video,
                duration=duration,
                fps=rate,
                start=min(start, end),
                end=end,
                source=SOURCE,
                meta={"vid": vid, "sentence": k, "timestamp": [s, e]},
            )
        )
    return records


def _pair(pair, path, rec) -> tuple[float, float]:
    ok = isinstance(pair, list) and len(pair) == 2 and all(_is_num(v) and v >= 0 for v in pair)
    if not ok:
        raise InputFileError(
            path, f"must be [start, end] with numbers >= 0, got {pair!r}", record=rec, field="timestamps"
        )
    return pair[0], pair[1]


def _positive(value, path, rec, field: str) -> float:
    if not (_is_num(value) and value > 0):
        hint = " (pass the fps, e.g. 29.4 for TACoS)" if field == "fps" and value is None else ""
        raise InputFileError(path, f"must be a positive number, got {value!r}{hint}", record=rec, field=field)
    return float(value)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
