"""DiDeMo (Hendricks et al., ICCV 2017) annotation JSON -> Uni-STG VTG records (:mod:`spacevllm.data.records`).

The official files (``train_data.json`` / ``val_data.json`` / ``test_data.json`` of LisaAnne/LocalizingMoments)
hold a JSON list of moments::

    {"annotation_id": 4002, "video": "94584@N00_5543826345_5c4ab8ad0e.avi", "description": "a girl jumps",
     "times": [[2, 2], [2, 3], [2, 2], [2, 2]], "num_segments": 6, "download_link": "...", ...}

Each video is cut into 5-second segments (at most 6, so 30 s); ``times`` holds one ``[first, last]`` pair of
segment indices per annotator (usually 4), the last segment *inclusive*: ``[s, e]`` covers seconds
``[5 * s, 5 * (e + 1)]``.

Consensus. VTG training needs one range per sentence. The default ``consensus="mode"`` takes the pair most
annotators gave (DiDeMo's own evaluation scores a prediction against the annotators' pairs, and the most frequent
one is what the standard "rank" baselines predict); a tie goes to the tied pair closest to all annotators (least
total ``|s - s'| + |e - e'|``), then the earliest. ``consensus="median"`` takes the lower median of the starts and
of the ends separately (a range no annotator may have drawn, but robust to one outlier).

Each moment becomes one record with

* ``id``: ``str(annotation_id)`` (the 0-based list index when the file has none);
* ``task = "vtg"``, ``query`` = ``description``, ``start`` / ``end`` = the consensus range in seconds (closed);
  ``end`` is clipped to the video's duration when ``durations`` knows it (a short video's last segment is short);
* ``video`` = ``{videos_dir}/{video}{video_ext}`` (``video`` as written, usually with its extension;
  default ``video_ext=""``);
* ``duration`` from the optional ``{video: seconds}`` mapping (keys as in the file's ``video``; the extension
  may be left out), else null;
* ``source = "didemo"``, ``meta = {"vid", "annotation_id", "times": the annotators' pairs, "index"}``.

A malformed moment raises :class:`InputFileError` naming the file, the record (annotation id or index) and the
field (``video``, ``description``, ``times``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from spacevllm.data.readers import video_path
from spacevllm.data.records import Record
from spacevllm.errors import InputFileError
from spacevllm.io_utils import load_json

SOURCE = "didemo"
SEGMENT = 5.0  # seconds per DiDeMo segment
NUM_SEGMENTS = 6  # segment indices 0..5
CONSENSUS = ("mode", "median")


def read_didemo(
    path: str | Path,
    videos_dir: str | Path | None = None,
    durations: Mapping[str, float] | None = None,
    video_ext: str = "",
    consensus: str = "mode",
) -> list[Record]:
    """All records of a DiDeMo JSON file, in file order (see the module docstring)."""
    if consensus not in CONSENSUS:
        raise ValueError(f"consensus must be one of {CONSENSUS}, got {consensus!r}")
    data = load_json(path)
    if not isinstance(data, list):
        raise InputFileError(path, "expected a JSON list of moments")
    return [didemo_record(m, i, path, videos_dir, durations, video_ext, consensus) for i, m in enumerate(data)]


def didemo_record(moment, index: int, path, videos_dir=None, durations=None, video_ext="", consensus="mode") -> Record:
    """One DiDeMo moment (list ``index``) -> a VTG :class:`Record`."""
    if not isinstance(moment, dict):
        raise InputFileError(path, "a moment must be a JSON object", record=index)
    ann = moment.get("annotation_id", index)
    rec = f"{ann} (index {index})"
    vid = _text(moment, "video", path, rec)
    description = _text(moment, "description", path, rec)
    pairs = parse_times(moment.get("times"), path, rec)
    first, last = consensus_pair(pairs, consensus)
    duration = _duration(durations, vid, path, rec)
    start, end = first * SEGMENT, (last + 1) * SEGMENT
    if duration is not None:
        start, end = min(start, duration), min(end, duration)
    return Record(
        id=str(ann),
        task="vtg",
        query=description,
        video=video_path(vid, videos_dir, video_ext),
        duration=duration,
        start=start,
        end=end,
        source=SOURCE,
        meta={"vid": vid, "annotation_id": ann, "times": [list(p) for p in pairs], "index": index},
    )


def parse_times(times, path, rec) -> list[tuple[int, int]]:
    """``[[s, e], ...]`` segment-index pairs, each ``0 <= s <= e <= 5`` (integers; 2.0 is accepted)."""
    if not isinstance(times, list) or not times:
        raise InputFileError(
            path, f"must be a non-empty list of [first, last] segment pairs, got {times!r}", record=rec, field="times"
        )
    pairs = []
    for pair in times:
        ok = isinstance(pair, list) and len(pair) == 2 and all(_is_index(v) for v in pair)
        if not ok or not 0 <= pair[0] <= pair[1] < NUM_SEGMENTS:
            msg = f"each pair must be [first, last] segment indices with 0 <= first <= last <= 5, got {pair!r}"
            raise InputFileError(path, msg, record=rec, field="times")
        pairs.append((int(pair[0]), int(pair[1])))
    return pairs


def consensus_pair(pairs: list[tuple[int, int]], consensus: str = "mode") -> tuple[int, int]:
    """One ``(first, last)`` segment pair from the annotators' pairs (see the module docstring)."""
    if consensus == "median":
        starts, ends = sorted(p[0] for p in pairs), sorted(p[1] for p in pairs)
        mid = (len(pairs) - 1) // 2  # lower median
        return starts[mid], max(ends[mid], starts[mid])
    counts = Counter(pairs)
    top = max(counts.values())
    tied = [p for p in counts if counts[p] == top]
    return min(tied, key=lambda p: (sum(abs(p[0] - q[0]) + abs(p[1] - q[1]) for q in pairs), p))


def _is_index(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v == int(v)


def _text(moment: dict, field: str, path, rec) -> str:
    value = moment.get(field)
    if not isinstance(value, str) or not value.strip():
        raise InputFileError(path, f"must be a non-empty string, got {value!r}", record=rec, field=field)
    return value.strip()


def _duration(durations, vid: str, path, rec) -> float | None:
    if durations is None:
        return None
    for key in (vid, Path(vid).stem):
        if key in durations:
            return float(durations[key])
    raise InputFileError(path, f"video {vid!r} has no duration in the durations mapping", record=rec, field="video")
