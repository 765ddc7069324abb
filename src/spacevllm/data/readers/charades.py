"""Charades-STA annotation txt -> Uni-STG VTG records (:mod:`spacevllm.data.records`).

The official lists (``charades_sta_train.txt`` / ``charades_sta_test.txt``, as 2D-TAN ships them) hold one
query per line::

    3MSZA 24.3 30.4##person turn a light on.

that is ``<video id> <start seconds> <end seconds>##<sentence>``. Each line becomes one record with

* ``id``: the 0-based line index as a string (``"0"`` for the first line): the key predictions use
  (``spacevllm evaluate vtg``). Blank lines make no record but keep their index, so ``id`` is always the
  physical line number minus one;
* ``task = "vtg"``, ``query`` = the sentence, ``start`` / ``end`` = the two times (closed seconds, as given,
  not clipped to the video);
* ``video`` = ``{videos_dir}/{id}{video_ext}`` (default ``{id}.mp4``, a path relative to the records file);
* ``duration`` from an optional ``{video id: seconds}`` mapping (:func:`load_durations` reads one from JSON or
  from the Charades ``Charades_v1_*.csv``, whose ``length`` column is the duration), else null;
* ``source = "charades-sta"``, ``meta = {"vid": video id, "line": 1-based line number}``.

A malformed line raises :class:`InputFileError` naming the file, the record (id and line) and the field
(``vid``, ``start``, ``end`` or ``sentence``).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path

from spacevllm.data.readers import video_path
from spacevllm.data.records import Record
from spacevllm.data.records import read_text_lines as read_lines
from spacevllm.errors import InputFileError

SOURCE = "charades-sta"
SEPARATOR = "##"


def read_charades_sta(
    path: str | Path,
    videos_dir: str | Path | None = None,
    durations: Mapping[str, float] | None = None,
    video_ext: str = ".mp4",
) -> list[Record]:
    """All records of a Charades-STA txt file, in file order (see the module docstring)."""
    records = []
    for i, line in enumerate(read_lines(path)):
        if line.strip():
            records.append(charades_record(line, i, path, videos_dir, durations, video_ext))
    return records


def charades_record(line: str, index: int, path, videos_dir=None, durations=None, video_ext=".mp4") -> Record:
    """One ``VID start end##sentence`` line (0-based ``index``) -> a VTG :class:`Record`."""
    rec = f"{index} (line {index + 1})"
    vid, start, end, sentence = parse_line(line, path, rec)
    duration = _duration(durations, vid, path, rec)
    return Record(
        id=str(index),
        task="vtg",
        query=sentence,
        video=video_path(vid, videos_dir, video_ext),
        duration=duration,
        start=start,
        end=end,
        source=SOURCE,
        meta={"vid": vid, "line": index + 1},
    )


def parse_line(line: str, path, rec) -> tuple[str, float, float, str]:
    """``"3MSZA 24.3 30.4##person turn a light on."`` -> ``("3MSZA", 24.3, 30.4, "person turn a light on.")``."""
    if SEPARATOR not in line:
        raise InputFileError(
            path, f"missing {SEPARATOR!r} before the sentence in {line!r}", record=rec, field="sentence"
        )
    head, sentence = line.split(SEPARATOR, 1)
    parts = head.split()
    if len(parts) != 3:
        field = ("vid", "start", "end")[min(len(parts), 2)] if len(parts) < 3 else "end"
        msg = f"expected 'VID start end' before {SEPARATOR!r}, got {head.strip()!r}"
        raise InputFileError(path, msg, record=rec, field=field)
    vid, start, end = parts[0], _time(parts[1], path, rec, "start"), _time(parts[2], path, rec, "end")
    if end < start:
        raise InputFileError(path, f"end {end} < start {start}", record=rec, field="end")
    if not sentence.strip():
        raise InputFileError(path, "empty sentence", record=rec, field="sentence")
    return vid, start, end, sentence.strip()


def _time(token: str, path, rec, field: str) -> float:
    try:
        value = float(token)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise InputFileError(path, f"must be a number of seconds >= 0, got {token!r}", record=rec, field=field)
    return value


def _duration(durations, vid: str, path, rec) -> float | None:
    if durations is None:
        return None
    if vid not in durations:
        raise InputFileError(path, f"video {vid!r} has no duration in the durations mapping", record=rec, field="vid")
    return float(durations[vid])


def load_durations(path: str | Path) -> dict[str, float]:
    """``{video id: seconds}`` from a JSON object or a Charades CSV (columns ``id`` and ``length``)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "is a folder, not an annotation file" if path.is_dir() else "no such file")
    if path.suffix.lower() == ".csv":
        return _csv_durations(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputFileError(path, f"not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise InputFileError(path, "expected a JSON object {video id: seconds}")
    return {str(k): _seconds(v, path, k, "duration") for k, v in data.items()}


def _csv_durations(path: Path) -> dict[str, float]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = {"id", "length"} - set(reader.fieldnames or [])
        if missing:
            raise InputFileError(path, "CSV needs the columns 'id' and 'length'", field=sorted(missing)[0])
        return {row["id"]: _seconds(row["length"], path, f"row {i + 1}", "length") for i, row in enumerate(reader)}


def _seconds(value, path, record, field: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds <= 0:
        raise InputFileError(path, f"must be a positive number of seconds, got {value!r}", record=record, field=field)
    return seconds
