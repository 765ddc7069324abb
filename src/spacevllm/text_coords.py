"""Text-coordinate baseline (Table 7 row 1, "w/o queries and decoder"; ``config.query_mode == "none"``).

Without queries and space decoder the LLM answers the time range *and every box as text*, in the style of
Qwen2-VL / Qwen2.5-VL grounding. The answer format (training target and what :func:`parse_answer` reads):

    from 2.5 to 7.0 seconds. 2.63s: [120, 305, 452, 600]; 2.94s: [131, 300, 460, 611]; ...

* the time range is :func:`spacevllm.time_ops.format_time_range` (closed seconds, one decimal);
* then one entry per sampled frame inside the range, in time order: the frame's time with two decimals and an
  ``s`` (exactly as the time instruction lists the sampled frames, so the model can copy it), a colon, and the
  box as normalized ``[x1, y1, x2, y2]`` scaled to integers in ``[0, 1000]`` (:data:`COORD_SCALE`; Qwen2-VL's
  convention). Integers are chosen over two-decimal fractions because they are both finer (1/1000 of the
  frame) and shorter (no ``0.`` prefix: 3 digits instead of 4 characters per coordinate).

:func:`parse_answer` is lenient: it reads the range from the text before the first box entry, accepts
brackets or parentheses, a missing closing bracket, ``s``/``sec``/``seconds`` units, signed, decimal and
exponent numbers, and swapped corners; entries it cannot read are skipped, so a garbled answer yields whatever is
still readable. :func:`find_box` is the package's one reader of a box written as text (REC prediction files use
it too, through :mod:`spacevllm.metrics.predictions`).
"""

from __future__ import annotations

import re

import numpy as np

from spacevllm.time_ops import format_time_range, parse_time_range

COORD_SCALE = 1000  # a normalized coordinate c is written as round(c * COORD_SCALE)
ENTRY_SEPARATOR = "; "

# One box syntax for every reader of boxes written as text (this module, and REC prediction files through
# spacevllm.metrics.predictions): "[" or "(", four comma-separated numbers (sign, decimals and exponents allowed),
# an optional closing "]" or ")".
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_BOX = rf"[\[(]\s*(?P<x1>{_NUM})\s*,\s*(?P<y1>{_NUM})\s*,\s*(?P<x2>{_NUM})\s*,\s*(?P<y2>{_NUM})\s*[\])]?"
_BOX_RE = re.compile(_BOX)
_ENTRY_RE = re.compile(rf"(?<![\w.])(?P<t>\d+(?:\.\d*)?)\s*(?:s|secs?|seconds?)?\s*:?\s*{_BOX}", re.IGNORECASE)


def format_box(box_norm_xyxy) -> str:
    """Normalized xyxy (4,) -> ``"[x1, y1, x2, y2]"`` in integer units of 1/COORD_SCALE, clipped to [0, 1]."""
    values = np.rint(np.clip(np.asarray(box_norm_xyxy, np.float64), 0.0, 1.0) * COORD_SCALE).astype(int)
    return "[" + ", ".join(str(v) for v in values) + "]"


def format_answer(start: float, end: float, times, boxes_norm_xyxy) -> str:
    """The training target of the text-coordinate baseline.

    ``start``/``end``: closed range in seconds; ``times`` (K,) seconds of the sampled frames inside it that
    have a box, ascending; ``boxes_norm_xyxy`` (K, 4) normalized xyxy. With K = 0 only the range is written.
    """
    times = np.asarray(times, np.float64).reshape(-1)
    boxes = np.asarray(boxes_norm_xyxy, np.float64).reshape(-1, 4)
    if len(times) != len(boxes):
        raise ValueError(f"{len(times)} times but {len(boxes)} boxes")
    head = format_time_range(start, end)
    if not len(times):
        return head
    return head + ". " + ENTRY_SEPARATOR.join(f"{t:.2f}s: {format_box(b)}" for t, b in zip(times, boxes))


def parse_answer(text: str) -> tuple[float | None, float | None, dict[float, tuple[float, float, float, float]]]:
    """``(start, end, {time: box})`` read from a text-coordinate answer; never raises.

    ``start``/``end``: closed seconds, or None when the text before the first box entry holds no range.
    Boxes are normalized xyxy floats in ``[0, 1]`` with ``x1 <= x2``, ``y1 <= y2``; times are seconds as
    written. A time written twice keeps its first box.
    """
    if not isinstance(text, str):
        return None, None, {}
    entries = list(_ENTRY_RE.finditer(text))
    head = text[: entries[0].start()] if entries else text
    span = parse_time_range(head)
    boxes: dict[float, tuple[float, float, float, float]] = {}
    for m in entries:
        t = float(m["t"])
        if t not in boxes:
            boxes[t] = _entry_box(m)
    start, end = span if span is not None else (None, None)
    return start, end, boxes


def _entry_box(m: re.Match) -> tuple[float, float, float, float]:
    return _unit_box(*(m[k] for k in ("x1", "y1", "x2", "y2")))


def _unit_box(*values: str | float) -> tuple[float, float, float, float]:
    """Four written coordinates (units of 1/COORD_SCALE) -> normalized xyxy, clipped to [0, 1], corners ordered."""
    x1, y1, x2, y2 = (min(max(float(v) / COORD_SCALE, 0.0), 1.0) for v in values)
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def find_box(text: str) -> tuple[float, float, float, float] | None:
    """The first box written ``[x1, y1, x2, y2]`` or ``(x1, y1, x2, y2)`` in ``text``, as written (no scaling),
    with its corners ordered (``x1 <= x2``, ``y1 <= y2``); None when ``text`` holds no four-number box."""
    m = _BOX_RE.search(text) if isinstance(text, str) else None
    if m is None:
        return None
    x1, y1, x2, y2 = (float(m[k]) for k in ("x1", "y1", "x2", "y2"))
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    """The first ``[x1, y1, x2, y2]`` box (units of 1/COORD_SCALE) in ``text`` as normalized xyxy, or None.

    The REC answer of the text-coordinate baseline is :func:`format_box` of the normalized box.
    """
    box = find_box(text)
    return None if box is None else _unit_box(*box)


def match_sampled_frames(boxes: dict[float, tuple], times) -> dict[int, tuple]:
    """Assign parsed ``{time: box}`` entries to sampled frames: ``{sampled index: normalized xyxy box}``.

    ``times`` (N,) ascending seconds of the sampled frames. An entry goes to the nearest sampled frame when it
    lies within half the spacing to that frame's neighbours (so ``2.6s`` still finds the frame at 2.63 s);
    entries far from every frame are dropped, and the first entry assigned to a frame wins.
    """
    times = np.asarray(times, np.float64).reshape(-1)
    if not len(times) or not boxes:
        return {}
    tolerance = _half_spacing(times)
    out: dict[int, tuple] = {}
    for t, box in boxes.items():
        j = int(np.argmin(np.abs(times - t)))
        if abs(times[j] - t) <= tolerance[j] and j not in out:
            out[j] = box
    return out


def _half_spacing(times: np.ndarray) -> np.ndarray:
    """(N,) half of the smaller gap to a neighbouring sampled frame (0.5 s for a single frame), >= 0.01 s."""
    if len(times) == 1:
        return np.array([0.5])
    gaps = np.diff(times)
    left = np.concatenate([[gaps[0]], gaps])
    right = np.concatenate([gaps, [gaps[-1]]])
    return np.maximum(np.minimum(left, right) / 2, 0.01)
