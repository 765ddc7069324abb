"""Prediction files -> values the metrics take: one parser per benchmark format, shared by every command.

All three formats are one JSON object ``{"<key>": value}`` (``spacevllm evaluate --help`` shows them):

* STVG: value ``{"sted": [start, end_exclusive], "boxes": {"<frame>": [x1, y1, x2, y2]}}``
  (:func:`load_predictions` -> :class:`~spacevllm.metrics.stvg.TubePrediction`);
* VTG: value ``[start_s, end_s]``, a ranked list of such pairs (the first is scored), the model's free-text
  answer, or null (:func:`parse_interval` -> closed seconds);
* REC: value ``[x1, y1, x2, y2]``, free text containing a box, or null (:func:`parse_rec_box` -> pixel xyxy).

VTG and REC keys are a record's id or its 0-based line index in the annotations (:func:`align_predictions`);
a record without a key, an unreadable answer or null is a miss (``None``) that stays in the denominator.
Malformed values raise :class:`InputFileError` naming the file, the key and the field.

One rule for order, in all three formats: numbers in a prediction file must be ordered (``start <= end``,
``x1 <= x2``, ``y1 <= y2``); an inverted interval, ``sted`` or box is such an error, never swapped or scored 0.
Free-text answers are read like the model's own output (:func:`spacevllm.time_ops.parse_time_range`,
:func:`spacevllm.text_coords.find_box`). :func:`units_warning`: boxes that cannot be in the ``--pred-units`` given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from spacevllm.errors import InputFileError
from spacevllm.io_utils import load_json
from spacevllm.metrics.stvg import TubePrediction
from spacevllm.text_coords import find_box
from spacevllm.time_ops import parse_time_range

MISSING = object()  # a record with no key in PRED
PRED_UNITS = {"pixel": None, "normalized": 1.0, "1000": 1000.0}  # name -> value of a full image side


# --- VTG / REC: {key: value} aligned with the annotation records ------------------------------------------


def load_prediction_map(path) -> dict:
    """PRED.json -> its top-level object ``{key: value}``; one-line errors naming the file."""
    data = load_json(path)
    if not isinstance(data, dict):
        raise InputFileError(path, f"expected a JSON object {{key: prediction}}, got {type(data).__name__}")
    return data


def align_predictions(
    pred: dict, entries: Sequence[tuple[int, str]], pred_path, ann_path, ignore: frozenset = frozenset()
) -> list[tuple]:
    """``[(PRED key, value)]`` aligned with ``entries`` = [(0-based line index, record id)].

    A record without a key gets ``(None, MISSING)``. A key is matched first against record ids, then against
    line indexes; keys in ``ignore`` (records of ANN that are not scored, e.g. other splits) are skipped. A key
    matching nothing, or two keys naming the same record, raises :class:`InputFileError` naming the predictions
    file and the key.
    """
    by_id = {rid: pos for pos, (_, rid) in enumerate(entries)}
    by_index = {str(index): pos for pos, (index, _) in enumerate(entries)}
    aligned, owner = [(None, MISSING)] * len(entries), {}
    for key, value in pred.items():
        pos = by_id.get(key, by_index.get(key))
        if pos is None and key in ignore:
            continue
        if pos is None:
            msg = f"no record in {ann_path} has this id or 0-based line index"
            raise InputFileError(pred_path, msg, record=key, field="key")
        if pos in owner:
            msg = f"names the same record as key {owner[pos]!r} (its id and its line index)"
            raise InputFileError(pred_path, msg, record=key, field="key")
        owner[pos], aligned[pos] = key, (key, value)
    return aligned


def miss_report(aligned: list[tuple], parsed: list, what: str) -> str:
    """One line counting the misses among aligned values and their parses (None = miss): records without a
    prediction, and answers that gave nothing (``what``, e.g. "unreadable"); "" when there are none."""
    absent = sum(v is MISSING for _, v in aligned)
    unread = sum(p is None for p in parsed) - absent
    if not (absent or unread):
        return ""
    return f"spacevllm evaluate: scored as misses: {absent} without a prediction, {unread} {what}"


def parse_interval(value, key: str, path, parse: Callable = parse_time_range) -> tuple[float, float] | None:
    """One VTG value -> closed ``(start, end)`` seconds, or None for a miss (absent, null, unreadable text).

    Text goes through ``parse`` (default :func:`spacevllm.time_ops.parse_time_range`); a numeric pair must have
    start <= end (the module's rule on order).
    """
    if value is MISSING or value is None:
        return None
    if isinstance(value, str):
        return parse(value)
    if isinstance(value, list) and value and isinstance(value[0], list):
        value = value[0]  # ranked candidates [[s, e], ...]: R@1 scores the first
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_time(v) for v in value)
    if not ok:
        msg = f"must be [start_s, end_s] (numbers >= 0), the answer text, or null; got {json.dumps(value)[:80]}"
        raise InputFileError(path, msg, record=key, field="prediction")
    start, end = float(value[0]), float(value[1])
    if start > end:
        raise InputFileError(path, f"needs start <= end, got {value!r}", record=key, field="prediction")
    return start, end


def _is_time(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def parse_rec_box(value, key, path, units: str = "pixel", width=None, height=None) -> list[float] | None:
    """One REC value (under ``key``) -> pixel ``[x1, y1, x2, y2]``, or None for a miss (absent, null, no box).

    A numeric list must have x2 >= x1 and y2 >= y1; text is read with :func:`spacevllm.text_coords.find_box`
    (the first box, corners sorted). ``units`` other than "pixel" scale by the image ``width`` / ``height``
    (see :data:`PRED_UNITS`).
    """
    if value is MISSING or value is None:
        return None
    if isinstance(value, str):
        box = find_box(value)
        if box is None:
            return None
        box = list(box)
    else:
        box = _numeric_box(value, key, path)
    scale = PRED_UNITS[units]
    if scale is None:
        return box
    sx, sy = width / scale, height / scale
    return [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy]


def units_warning(values: Sequence, units: str, path) -> str | None:
    """A warning when numeric boxes among ``values`` (prediction values) exceed the full side that ``units`` reads
    coordinates against (e.g. pixel-sized values under ``normalized``: they would all score 0), else None."""
    side = PRED_UNITS[units]
    if side is None:
        return None
    boxes = [v for v in values if isinstance(v, (list, tuple)) and len(v) == 4 and all(_is_number(x) for x in v)]
    over = sum(max(map(float, b)) > side * 1.01 for b in boxes)
    if not over:
        return None
    return (
        f"spacevllm evaluate: warning: {over} of {len(boxes)} numeric boxes in {path} have coordinates above {side:g}, "
        f"the full side under --pred-units {units}: are they in pixels (--pred-units pixel)?"
    )


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _numeric_box(value, key: str, path) -> list[float]:
    ok = isinstance(value, (list, tuple)) and len(value) == 4
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if not ok:
        msg = f"must be [x1, y1, x2, y2] (4 numbers), the answer text, or null; got {json.dumps(value)[:80]}"
        raise InputFileError(path, msg, record=key, field="prediction")
    if value[2] < value[0] or value[3] < value[1]:
        raise InputFileError(path, f"needs x2 >= x1 and y2 >= y1, got {value!r}", record=key, field="prediction")
    return [float(v) for v in value]


# --- STVG: {key: {"sted", "boxes"}} -----------------------------------------------------------------------------------


def parse_predictions(obj, path: str | Path = "<predictions>") -> dict[str, TubePrediction]:
    """Validate an STVG predictions object (:mod:`spacevllm.metrics.stvg` docstring) -> ``{key: TubePrediction}``.

    Raises :class:`InputFileError` naming ``path``, the key and the field on any malformed entry.
    """
    if not isinstance(obj, dict):
        raise InputFileError(path, 'expected a JSON object {key: {"sted": [s, e], "boxes": {...}}}')
    return {str(k): _parse_one(v, path, str(k)) for k, v in obj.items()}


def _parse_one(v, path, key: str) -> TubePrediction:
    if not isinstance(v, dict):
        raise InputFileError(path, "must be an object with 'sted' and 'boxes'", record=key)
    for name in ("sted", "boxes"):
        if name not in v:
            raise InputFileError(path, "missing required field", record=key, field=name)
    sted = v["sted"]
    if not (isinstance(sted, list) and len(sted) == 2 and all(_is_int(x) for x in sted)) or sted[1] < sted[0]:
        raise InputFileError(
            path,
            f"must be [start_frame, end_frame_exclusive] integers, start <= end; got {sted!r}",
            record=key,
            field="sted",
        )
    frames, boxes = _parse_boxes(v["boxes"], path, key)
    return TubePrediction((int(sted[0]), int(sted[1])), frames, boxes)


def _is_int(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x == int(x)


def _parse_boxes(boxes, path, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``{"<frame>": [x1, y1, x2, y2]}`` -> (frames int64 (K,) sorted, boxes float64 (K, 4)); every box checked."""
    if not isinstance(boxes, dict):
        raise InputFileError(path, 'must be an object {"<frame>": [x1, y1, x2, y2]}', record=key, field="boxes")
    try:
        ok = all(map(str.isdigit, boxes)) and all(map(str.isascii, boxes))
    except TypeError:
        ok = False
    if not ok:
        k = next(k for k in boxes if not (isinstance(k, str) and k.isascii() and k.isdigit()))
        raise InputFileError(path, "frame key must be a non-negative integer", record=key, field=f"boxes[{k!r}]")
    arr = _box_values(list(boxes.values()))
    if arr is None:
        k = next(k for k, b in boxes.items() if not _is_box(b))
        raise InputFileError(
            path, f"must be 4 finite numbers [x1, y1, x2, y2], got {boxes[k]!r}", record=key, field=f"boxes[{k!r}]"
        )
    inverted = (arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1])
    if inverted.any():
        k = list(boxes)[int(np.argmax(inverted))]
        raise InputFileError(path, f"needs x2 >= x1 and y2 >= y1, got {boxes[k]!r}", record=key, field=f"boxes[{k!r}]")
    frames = np.fromiter(map(int, boxes), np.int64, len(boxes))
    if len(frames) > 1 and not (frames[1:] > frames[:-1]).all():
        order = np.argsort(frames, kind="stable")
        frames, arr = frames[order], arr[order]
    return frames, arr


def _box_values(values: list) -> np.ndarray | None:
    """(K, 4) float64 of K numeric boxes, or None when any is not 4 finite numbers (fast path, numpy)."""
    try:
        arr = np.array(values)
    except (TypeError, ValueError):
        return None
    if not values:
        return np.zeros((0, 4))
    if arr.ndim != 2 or arr.shape[1] != 4 or arr.dtype.kind not in "iuf" or not np.isfinite(arr).all():
        return None
    return arr.astype(np.float64, copy=False)


def _is_box(b) -> bool:
    return (
        isinstance(b, list)
        and len(b) == 4
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in b)
    )


def load_predictions(path: str | Path) -> dict[str, TubePrediction]:
    """Read and validate an STVG predictions JSON file (:mod:`spacevllm.metrics.stvg` docstring)."""
    return parse_predictions(load_json(path), path)
