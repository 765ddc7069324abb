"""The unit of work of the Uni-STG pipeline (paper section 3.2.1) and the stage interface.

A :class:`Sample` is one captioned time range of one video on its way to becoming an STVG record. Serialized, it
is the *detections* line that ``spacevllm unistg filter`` reads::

    {"id": str, "video": path, "fps": source fps, "caption": str, "object": str, "start": s, "end": s,
     "detections": {"<source frame index>": [{"box": [x1, y1, x2, y2], "score": s}, ...]}}

plus optional ``objects`` (the Analyzer's list, subject first), ``duration``, ``width``, ``height``, ``source``
and ``meta``. Boxes are absolute-pixel xyxy; ``start`` / ``end`` are seconds of a closed interval; source frame
``f`` is at ``f / fps`` seconds.

Every stage implements ``process(sample) -> Sample | Drop``; a :class:`Drop` names a stable ``reason`` (what the
report counts) and a free ``detail``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from spacevllm.data.records import Record, validate_record
from spacevllm.errors import InputFileError
from spacevllm.time_ops import format_time_range

# Paper section 3.2.1 hyper-parameters (one place).
BOX_THRESHOLD = 0.3  # Annotator: Grounding-DINO boxes below this score are dropped
MIN_DURATION = 2.0  # Refiner: refined ranges shorter than this (seconds) are dropped
MAX_DURATION = 120.0  # Refiner: ... or longer than this
MAX_BOXES = 3  # Filter: a frame with more boxes than this is a complex scene
MIN_AREA_RATIO = 0.5  # Filter: area(box_t) / area(box_prev) must lie in [MIN_AREA_RATIO, MAX_AREA_RATIO]
MAX_AREA_RATIO = 2.0

# Float tolerance for "exactly on the boundary" (frames: 0.3 * 10 = 2.9999999999999996; seconds; area ratios).
EPS = 1e-6
SOURCE = "unistg"


@dataclass(frozen=True)
class Detection:
    """One detector box: ``box`` absolute-pixel ``[x1, y1, x2, y2]``, ``score`` in [0, 1]."""

    box: tuple[float, float, float, float]
    score: float

    @property
    def area(self) -> float:
        """``(x2 - x1) * (y2 - y1)`` in square pixels (no +1)."""
        return max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0)

    def to_json(self) -> dict:
        return {"box": [float(v) for v in self.box], "score": float(self.score)}


@dataclass(frozen=True)
class Drop:
    """A stage removed the sample: ``reason`` is a short stable category, ``detail`` says where and why."""

    reason: str
    detail: str = ""


@dataclass
class Sample:
    """One caption + time range of one video (see the module docstring for units).

    ``detections`` {source frame: [Detection]} is set by the Annotator (None before); ``boxes`` {source frame:
    xyxy} by the Filter (None before).
    """

    id: str
    video: str
    caption: str
    start: float
    end: float
    fps: float | None = None
    object: str | None = None
    objects: list[str] = field(default_factory=list)
    detections: dict[int, list[Detection]] | None = None
    boxes: dict[int, list[float]] | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    source: str | None = None
    meta: dict = field(default_factory=dict)

    def replace(self, **changes) -> Sample:
        return replace(self, **changes)

    def frames_in_range(self) -> list[int]:
        """Sorted detection frames ``f`` with ``start * fps <= f <= end * fps`` (inclusive, 1e-6 tolerance)."""
        lo, hi = self.start * self.fps - EPS, self.end * self.fps + EPS
        return sorted(f for f in (self.detections or {}) if lo <= f <= hi)

    def to_json(self) -> dict:
        """The detections-line dict (``detections`` keys as strings, frames in numeric order)."""
        d = {"id": self.id, "video": self.video, "fps": self.fps, "caption": self.caption, "object": self.object}
        d.update(start=self.start, end=self.end, objects=list(self.objects))
        if self.detections is not None:
            d["detections"] = {str(f): [x.to_json() for x in self.detections[f]] for f in sorted(self.detections)}
        for name in ("duration", "width", "height", "source"):
            if getattr(self, name) is not None:
                d[name] = getattr(self, name)
        d["meta"] = self.meta
        return d


class Stage(Protocol):
    """One pipeline step. ``name`` labels it in reports."""

    name: str

    def process(self, sample: Sample) -> Sample | Drop: ...


def to_record(sample: Sample) -> Record:
    """A filtered sample -> a Uni-STG STVG :class:`Record` (``query`` = caption, boxes of the kept frames)."""
    meta = {**sample.meta, "object": sample.object, "objects": list(sample.objects), "origin": sample.source}
    d = {
        "id": sample.id,
        "task": "stvg",
        "query": sample.caption,
        "video": sample.video,
        "duration": sample.duration,
        "fps": sample.fps,
        "width": sample.width,
        "height": sample.height,
        "answer": format_time_range(sample.start, sample.end),
        "start": sample.start,
        "end": sample.end,
        "boxes": {str(f): [float(v) for v in sample.boxes[f]] for f in sorted(sample.boxes or {})},
        "source": SOURCE,
        "meta": meta,
    }
    return validate_record(d, "<unistg output>")


# --- reading detection lines ---------------------------------------------------------------------------------


def read_samples(path: str | Path) -> Iterator[Sample]:
    """Parse a detections JSON Lines file (blank lines skipped); malformed lines raise :class:`InputFileError`
    naming the file, the line (and id) and the field."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "is a folder, not a detections file" if path.is_dir() else "no such file")
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if line.strip():
                yield sample_from_json(_json_line(line, path, i), path, i)


def _json_line(line: str, path, i: int):
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise InputFileError(path, f"not valid JSON ({e.msg})", record=f"line {i + 1}") from None


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class _Checker:
    """Raises :class:`InputFileError` naming the file, the line/id and the field."""

    def __init__(self, path, index: int, d):
        self.path, self.where = path, f"line {index + 1}"
        if isinstance(d, dict) and isinstance(d.get("id"), str):
            self.where += f" (id {d['id']!r})"

    def __call__(self, ok: bool, name: str, msg: str) -> None:
        if not ok:
            raise InputFileError(self.path, msg, record=self.where, field=name)


def sample_from_json(d, path="<detections>", index: int = 0) -> Sample:
    """Validate one detections-line dict (see the module docstring) and build a :class:`Sample`."""
    check = _Checker(path, index, d)
    check(isinstance(d, dict), None, "a line must be a JSON object")
    for name in ("id", "video", "fps", "caption", "object", "start", "end", "detections"):
        check(name in d, name, "missing required field")
    for name in ("id", "video", "caption", "object"):
        check(isinstance(d[name], str) and d[name].strip() != "", name, "must be a non-empty string")
    check(_is_num(d["fps"]) and d["fps"] > 0, "fps", f"must be a positive number, got {d['fps']!r}")
    for name in ("start", "end"):
        check(_is_num(d[name]) and d[name] >= 0, name, f"must be a number of seconds >= 0, got {d[name]!r}")
    check(d["end"] >= d["start"], "end", f"end {d['end']} < start {d['start']}")
    objects = d.get("objects", [d["object"]])
    check(isinstance(objects, list) and all(isinstance(o, str) for o in objects), "objects", "must be strings")
    meta = d.get("meta", {})
    check(isinstance(meta, dict), "meta", "must be an object")
    extra = {k: d.get(k) for k in ("duration", "width", "height", "source")}
    for name in ("duration", "width", "height"):
        check(extra[name] is None or (_is_num(extra[name]) and extra[name] >= 0), name, "must be a number or null")
    check(extra["source"] is None or isinstance(extra["source"], str), "source", "must be a string or null")
    detections = _detections(d["detections"], check)
    return Sample(d["id"], d["video"], d["caption"], float(d["start"]), float(d["end"]), float(d["fps"]),
                  d["object"], objects, detections, meta=meta, **extra)  # fmt: skip


def _detections(raw, check) -> dict[int, list[Detection]]:
    check(isinstance(raw, dict), "detections", "must be an object {frame index: [{box, score}]}")
    out: dict[int, list[Detection]] = {}
    for key, dets in raw.items():
        name = f"detections[{key!r}]"
        check(key.isdigit(), name, "frame key must be a non-negative integer")
        check(isinstance(dets, list), name, "must be a list of {box, score}")
        out[int(key)] = [_detection(x, check, f"{name}[{j}]") for j, x in enumerate(dets)]
    return out


def _detection(x, check, name: str) -> Detection:
    check(isinstance(x, dict) and "box" in x and "score" in x, name, "must be an object with 'box' and 'score'")
    b, s = x["box"], x["score"]
    ok = isinstance(b, list) and len(b) == 4 and all(_is_num(v) for v in b)
    check(ok, f"{name}.box", f"must be 4 numbers [x1, y1, x2, y2], got {b!r}")
    check(b[2] >= b[0] and b[3] >= b[1], f"{name}.box", f"needs x2 >= x1 and y2 >= y1, got {b!r}")
    check(_is_num(s) and 0 <= s <= 1, f"{name}.score", f"must be a number in [0, 1], got {s!r}")
    return Detection(tuple(float(v) for v in b), float(s))
