"""HC-STVG v1 / v2 raw annotation JSON -> Uni-STG records (:mod:`spacevllm.data.records`).

The raw file is one JSON object ``{"<video file name>": {...}}``; each value has

=============  ==========================================================================
``bbox``       list of ``[x, y, w, h]`` pixel boxes, one per frame of the tube
``st_frame``   frame index of ``bbox[0]`` (kept *as is*: TubeDETR's numbering, see below)
``img_num``    number of frames of the (about 20 s) clip
``st_time``    tube start, seconds
``ed_time``    tube end, seconds
``caption``    the sentence (v1); v2 calls it ``English``
``width``      frame width (v1); v2 stores ``img_size = [height, width]`` instead
``height``     frame height (v1)
=============  ==========================================================================

Each record gets ``boxes = {str(st_frame + i): xyxy(bbox[i])}``, pixel ``xyxy`` (``x2 = x + w``, no +1),
so box frame numbers are the annotation's own (TubeDETR uses ``st_frame`` unchanged; the CG-STVG protocol
shifts it by -1 at evaluation time, :mod:`spacevllm.metrics.stvg`). ``start`` / ``end`` are ``st_time`` /
``ed_time`` (closed seconds). The files do not store a frame rate; HC-STVG clips are about 20 s long, and the
record says ``fps = img_num / 20`` and ``duration = 20`` (TubeDETR's assumption, ``HCSTVG_DURATION``); probe the
real video if you need its exact rate.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from spacevllm.box_ops import box_xywh_to_xyxy
from spacevllm.data.records import Record
from spacevllm.errors import InputFileError
from spacevllm.io_utils import load_json

HCSTVG_DURATION = 20.0  # seconds; TubeDETR: video_fps = img_num / 20


def read_hcstvg(path: str | Path, video_dir: str | None = None) -> list[Record]:
    """Records of a raw HC-STVG v1 or v2 file, in file order; one STVG record per video key.

    ``video_dir`` (optional) is prefixed to the key to form ``record.video`` (default: the key itself,
    i.e. a path relative to the records file once written). Raises :class:`InputFileError` naming the file,
    the video key and the field on malformed input.
    """
    data = load_json(path)
    if not isinstance(data, dict):
        raise InputFileError(path, "expected a JSON object {video: annotation}")
    return [hcstvg_record(key, ann, path, video_dir) for key, ann in data.items()]


def hcstvg_record(key: str, ann, path, video_dir: str | None = None) -> Record:
    """One raw HC-STVG entry (v1 or v2 keys) -> a Uni-STG STVG :class:`Record` (see the module docstring)."""
    if not isinstance(ann, dict):
        raise InputFileError(path, "annotation must be a JSON object", record=key)
    version = "v2" if "English" in ann or "img_size" in ann else "v1"
    width, height = _size(ann, key, path)
    st_frame = _int(ann, "st_frame", key, path, minimum=0)
    img_num = _int(ann, "img_num", key, path, minimum=1)
    start, end = _num(ann, "st_time", key, path), _num(ann, "ed_time", key, path)
    if end < start:
        raise InputFileError(path, f"ed_time {end} < st_time {start}", record=key, field="ed_time")
    caption = _field(ann, "English" if version == "v2" and "caption" not in ann else "caption", key, path)
    if not isinstance(caption, str) or not caption.strip():
        raise InputFileError(path, "must be a non-empty string", record=key, field="caption")
    boxes = {str(st_frame + i): box for i, box in enumerate(_boxes(ann, key, path))}
    return Record(
        id=key,
        task="stvg",
        query=caption.strip(),
        video=str(Path(video_dir) / key) if video_dir else key,
        duration=HCSTVG_DURATION,
        fps=img_num / HCSTVG_DURATION,
        width=width,
        height=height,
        start=start,
        end=end,
        boxes=boxes,
        source=f"hcstvg-{version}",
        meta={"st_frame": st_frame, "img_num": img_num, "version": version},
    )


def _field(ann: dict, name: str, key, path):
    if name not in ann:
        raise InputFileError(path, "missing required field", record=key, field=name)
    return ann[name]


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _num(ann, name, key, path) -> float:
    v = _field(ann, name, key, path)
    if not _is_num(v) or v < 0:
        raise InputFileError(path, f"must be a number >= 0, got {v!r}", record=key, field=name)
    return float(v)


def _int(ann, name, key, path, minimum: int) -> int:
    v = _field(ann, name, key, path)
    if not _is_num(v) or v != int(v) or v < minimum:
        raise InputFileError(path, f"must be an integer >= {minimum}, got {v!r}", record=key, field=name)
    return int(v)


def _size(ann: dict, key, path) -> tuple[int, int]:
    """(width, height): v1 ``width`` / ``height``, v2 ``img_size = [height, width]``."""
    if "width" in ann or "img_size" not in ann:
        return _int(ann, "width", key, path, 1), _int(ann, "height", key, path, 1)
    size = ann["img_size"]
    ok = isinstance(size, list) and len(size) == 2 and all(_is_num(v) and v == int(v) and v > 0 for v in size)
    if not ok:
        raise InputFileError(
            path, f"must be [height, width] positive integers, got {size!r}", record=key, field="img_size"
        )
    return int(size[1]), int(size[0])


def _boxes(ann: dict, key, path) -> list[list[float]]:
    """``bbox`` (list of [x, y, w, h]) -> list of pixel [x1, y1, x2, y2]."""
    bbox = _field(ann, "bbox", key, path)
    if not isinstance(bbox, list) or not bbox:
        raise InputFileError(path, "must be a non-empty list of [x, y, w, h]", record=key, field="bbox")
    for i, b in enumerate(bbox):
        if not (isinstance(b, list) and len(b) == 4 and all(_is_num(v) for v in b)) or b[2] < 0 or b[3] < 0:
            raise InputFileError(path, f"must be [x, y, w >= 0, h >= 0], got {b!r}", record=key, field=f"bbox[{i}]")
    return box_xywh_to_xyxy(np.asarray(bbox, dtype=np.float64)).tolist()
