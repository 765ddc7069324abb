"""The result of spatio-temporal grounding: a time range and one box per sampled frame inside it (paper 3.1.5).

Conventions (DESIGN section 2): ``start`` / ``end`` are seconds of a **closed** range ``[start, end]``;
``frames`` are indices of frames of the **source** video (not of the sampled frames); ``times`` their times in
seconds (``frame / fps``, or the frame's own timestamp on a variable-frame-rate video), every one inside
``[start, end]``; ``boxes`` absolute-pixel ``[x1, y1, x2, y2]`` in the source video's displayed resolution.
A tube whose answer held no time range has ``start = end = None`` and no boxes (an image's REC result, from
``spacevllm ground``, has no range and one box, frame 0 at time 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Tube:
    """A grounded tube. ``text`` is the raw generated answer; ``frames`` (K,), ``times`` (K,), ``boxes`` (K, 4)."""

    start: float | None
    end: float | None
    text: str
    frames: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.start = None if self.start is None else float(self.start)
        self.end = None if self.end is None else float(self.end)
        if (self.start is None) != (self.end is None):
            raise ValueError("start and end must both be set or both be None")
        self.frames = [int(f) for f in np.asarray(self.frames, np.int64).reshape(-1)]
        self.times = [float(t) for t in np.asarray(self.times, np.float64).reshape(-1)]
        self.boxes = [[float(v) for v in b] for b in np.asarray(self.boxes, np.float64).reshape(-1, 4)]
        if not len(self.frames) == len(self.times) == len(self.boxes):
            raise ValueError(
                f"frames, times and boxes differ in length: {len(self.frames)}, {len(self.times)}, {len(self.boxes)}"
            )

    def to_json(self, time_digits: int | None = None, box_digits: int | None = None) -> dict:
        """``{"start": s | None, "end": s | None, "text": str, "boxes": [{"frame": int, "time": s, "box": xyxy}]}``.

        ``time_digits`` / ``box_digits``: decimals to round times / box coordinates to (None: full precision),
        for printing (``1.3013`` rather than ``1.3013000000000001``)."""
        t, b = _rounder(time_digits), _rounder(box_digits)
        rows = zip(self.frames, self.times, self.boxes)
        boxes = [{"frame": f, "time": t(s), "box": [b(v) for v in box]} for f, s, box in rows]
        return {"start": t(self.start), "end": t(self.end), "text": self.text, "boxes": boxes}

    @classmethod
    def from_json(cls, obj: dict) -> Tube:
        """Inverse of :meth:`to_json`."""
        rows = obj.get("boxes") or []
        return cls(
            obj.get("start"),
            obj.get("end"),
            obj.get("text", ""),
            [r["frame"] for r in rows],
            [r["time"] for r in rows],
            [r["box"] for r in rows],
        )

    def __str__(self) -> str:
        if self.start is None:
            return f"no time range in the answer {self.text!r}"
        head = f"time range: {self.start:.2f} - {self.end:.2f} s, {len(self.frames)} boxes  (answer: {self.text!r})"
        rows = [
            f"  frame {f:>5}  t={t:7.2f}s  box=[{b[0]:7.1f}, {b[1]:7.1f}, {b[2]:7.1f}, {b[3]:7.1f}]"
            for f, t, b in zip(self.frames, self.times, self.boxes)
        ]
        return "\n".join([head, *rows])


def _rounder(digits: int | None):
    """``x -> round(x, digits)`` (None passes through; ``digits`` None keeps full precision)."""
    return lambda x: x if x is None or digits is None else round(x, digits)
