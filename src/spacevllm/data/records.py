"""The Uni-STG record (DESIGN section 3): one JSON line per sample.

Every reader converts into it; every consumer (training, evaluation, synthesis) reads only it.

Fields
------
id        str, unique within a file
task      "stvg" | "vtg" | "rec" | "qa" | "caption" | "chat"
video     path or null (path relative to the records file's folder, or absolute)
image     path or null
duration  seconds (float) or null (images)
fps       frames per second of the *source* video, or null
width, height   source pixels (int) or null
query     the text the model is asked (caption, expression or question); non-empty
answer    the target text, or null (derived from start/end for grounding tasks)
start, end     seconds, closed interval [start, end], or null
boxes     {"<source frame index>": [x1, y1, x2, y2]} in pixels, or null. For an image (REC) the key is "0".
source    where the sample comes from ("hcstvg-v1", "vidstg", "charades-sta", "refcoco", "world", ...)
meta      free dict (sentence type, original ids, ...)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from spacevllm.errors import InputFileError
from spacevllm.io_utils import write_jsonl_atomic

TASKS = ("stvg", "vtg", "rec", "qa", "caption", "chat")


@dataclass
class Record:
    """One Uni-STG sample. See the module docstring for units and conventions."""

    id: str
    task: str
    query: str
    video: str | None = None
    image: str | None = None
    duration: float | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    answer: str | None = None
    start: float | None = None
    end: float | None = None
    boxes: dict[str, list[float]] | None = None
    source: str = "unknown"
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def frame_boxes(self) -> dict[int, list[float]]:
        """``boxes`` with integer frame keys, sorted by frame."""
        return {int(k): v for k, v in sorted((self.boxes or {}).items(), key=lambda kv: int(kv[0]))}


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check(d: dict, path, rec, name: str, ok: bool, msg: str) -> None:
    if not ok:
        raise InputFileError(path, msg, record=rec, field=name)


def validate_record(d, path="<records>", index: int | None = None) -> Record:
    """Check one record dict against the schema and return a :class:`Record`.

    Raises :class:`InputFileError` naming ``path``, the record (its id, else its index) and the field.
    """
    rec = index
    if not isinstance(d, dict):
        raise InputFileError(path, "a record must be a JSON object", record=rec)
    rec = d.get("id", index) if isinstance(d.get("id"), str) else index
    for name in ("id", "task", "query"):
        _check(d, path, rec, name, name in d, "missing required field")
    _check(d, path, rec, "id", isinstance(d["id"], str) and d["id"] != "", "must be a non-empty string")
    _check(d, path, rec, "task", d["task"] in TASKS, f"must be one of {TASKS}, got {d['task']!r}")
    _check(
        d, path, rec, "query", isinstance(d["query"], str) and d["query"].strip() != "", "must be a non-empty string"
    )
    unknown = set(d) - set(Record.__dataclass_fields__)
    _check(d, path, rec, sorted(unknown)[0] if unknown else None, not unknown, "unknown field")
    for name in ("duration", "fps", "start", "end"):
        v = d.get(name)
        _check(d, path, rec, name, v is None or (_is_num(v) and v >= 0), "must be a number >= 0 or null")
    for name in ("width", "height"):
        v = d.get(name)
        _check(d, path, rec, name, v is None or (_is_num(v) and v > 0), "must be a positive number or null")
    for name in ("video", "image", "answer"):
        v = d.get(name)
        _check(d, path, rec, name, v is None or isinstance(v, str), "must be a string or null")
    if d.get("start") is not None and d.get("end") is not None:
        _check(d, path, rec, "end", d["end"] >= d["start"], f"end {d['end']} < start {d['start']}")
    if d["task"] in ("stvg", "vtg"):
        _check(d, path, rec, "video", bool(d.get("video")), f"required for task {d['task']!r}")
    if d["task"] == "rec":
        _check(d, path, rec, "image", bool(d.get("image")) or bool(d.get("video")), "required for task 'rec'")
    _validate_boxes(d.get("boxes"), path, rec)
    meta = d.get("meta", {})
    _check(d, path, rec, "meta", isinstance(meta, dict), "must be an object")
    return Record(**{k: d[k] for k in d if k != "meta"}, meta=meta or {})


def _validate_boxes(boxes, path, rec) -> None:
    if boxes is None:
        return
    _check({}, path, rec, "boxes", isinstance(boxes, dict), "must be an object {frame: [x1, y1, x2, y2]}")
    for k, b in boxes.items():
        _check(
            {},
            path,
            rec,
            f"boxes[{k!r}]",
            str(k).lstrip("-").isdigit() and int(k) >= 0,
            "frame key must be a non-negative integer",
        )
        ok = isinstance(b, (list, tuple)) and len(b) == 4 and all(_is_num(v) for v in b)
        _check({}, path, rec, f"boxes[{k!r}]", ok, "must be 4 numbers [x1, y1, x2, y2]")
        _check({}, path, rec, f"boxes[{k!r}]", b[2] >= b[0] and b[3] >= b[1], "needs x2 >= x1 and y2 >= y1")


def read_text_lines(path: str | Path) -> list[str]:
    """The file's lines (without line ends); one-line errors for a missing or non-UTF-8 file."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "is a folder, not a records file" if path.is_dir() else "no such file")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise InputFileError(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None


def iter_json_lines(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(0-based line index, object)`` for each non-blank line of a JSON Lines file; one-line errors."""
    for i, line in enumerate(read_text_lines(path)):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputFileError(path, f"line {i + 1} is not valid JSON ({e.msg})", record=i) from None
        if not isinstance(d, dict):
            raise InputFileError(path, f"line {i + 1} must be a JSON object", record=i)
        yield i, d


def iter_records(path: str | Path) -> Iterator[Record]:
    """Read and validate a Uni-STG JSON Lines file, one :class:`Record` per non-empty line."""
    for i, d in iter_json_lines(path):
        yield validate_record(d, path, i)


def read_records(path: str | Path) -> list[Record]:
    """All records of a JSON Lines file (validated); ids must be unique."""
    out, seen = [], set()
    for r in iter_records(path):
        if r.id in seen:
            raise InputFileError(path, "duplicate id", record=r.id, field="id")
        seen.add(r.id)
        out.append(r)
    return out


def write_records(path: str | Path, records) -> None:
    """Write records (``Record`` or dicts) as JSON Lines, atomically."""
    write_jsonl_atomic(path, (r.to_dict() if isinstance(r, Record) else r for r in records))


def resolve_media(record: Record, records_path: str | Path, attr: str = "video") -> Path | None:
    """Absolute path of ``record.video`` (or ``.image``); relative paths are relative to the records file."""
    p = getattr(record, attr)
    if p is None:
        return None
    p = Path(p)
    return p if p.is_absolute() else Path(records_path).resolve().parent / p
