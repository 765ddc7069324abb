"""Video temporal grounding (VTG) metrics: R@1 at IoU thresholds and mean IoU (Charades-STA, paper Table 5).

Times are seconds; an interval ``(start, end)`` is **closed**, ``[start, end]``. One prediction per query
(top-1), so "R1@m" is the share of queries whose predicted interval has temporal IoU ``>= m`` with the ground
truth (as 2D-TAN / Moment-DETR compute it; a 1e-9 tolerance keeps a nominal IoU of exactly ``m`` from failing
on float error). ``mIoU`` is the mean IoU. A query without a readable prediction (``None``) counts as a miss:
IoU 0, kept in the denominator ``n``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

THRESHOLDS = (0.3, 0.5, 0.7)  # R1@m, IoU >= m
KEYS = tuple(f"R1@{m}" for m in THRESHOLDS) + ("mIoU", "n")
IOU_TOLERANCE = 1e-9  # IoU within this of a threshold counts as reaching it


def temporal_iou(a, b, half_open: bool = False):
    """IoU of time intervals, (..., 2) x (..., 2) -> (...), in [0, 1]: the package's one temporal IoU.

    ``intersection = max(0, min(ends) - max(starts))`` over ``union = max(ends) - min(starts)`` (which equals
    ``|a| + |b| - intersection`` whenever the two overlap; disjoint pairs have IoU 0 either way). A reversed pair
    is swapped; NaN in either interval gives IoU 0. Scalars in (a single pair each) give a float.

    Closed intervals ``[start, end]`` (default; seconds in VTG): two identical zero-length intervals are the same
    point and have IoU 1. ``half_open=True``: ``[start, end)`` (frames in STVG: ``[s, e)`` holds ``e - s``
    frames; a closed frame range ``[a, b]`` is ``[a, b + 1)``): a zero-length interval is empty, IoU 0.
    """
    a = np.sort(np.asarray(a, dtype=np.float64), axis=-1)
    b = np.sort(np.asarray(b, dtype=np.float64), axis=-1)
    inter = np.maximum(np.minimum(a[..., 1], b[..., 1]) - np.maximum(a[..., 0], b[..., 0]), 0.0)
    union = np.maximum(a[..., 1], b[..., 1]) - np.minimum(a[..., 0], b[..., 0])
    iou = np.divide(inter, union, out=np.zeros_like(union), where=union > 0)
    if not half_open:
        iou = np.where((union == 0) & np.all(a == b, axis=-1), 1.0, iou)
    return float(iou) if iou.ndim == 0 else iou


def vtg_ious(preds: Sequence[tuple[float, float] | None], gts: Sequence[tuple[float, float]]) -> np.ndarray:
    """Per-query IoU (N,) of top-1 predictions against ground truths; ``None`` predictions score 0."""
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} ground truths")
    gt = np.asarray(gts, dtype=np.float64).reshape(-1, 2)
    pred = np.full((len(preds), 2), np.nan)
    present = np.array([p is not None for p in preds], dtype=bool)
    if present.any():
        pred[present] = np.asarray([p for p in preds if p is not None], dtype=np.float64).reshape(-1, 2)
    return np.where(np.isnan(pred).any(axis=1), 0.0, temporal_iou(pred, gt))


def vtg_metrics(preds: Sequence[tuple[float, float] | None], gts: Sequence[tuple[float, float]]) -> dict:
    """``{"R1@0.3", "R1@0.5", "R1@0.7", "mIoU"}`` as fractions in [0, 1], plus ``"n"`` = ``len(gts)``.

    ``preds[i]`` is the predicted closed interval (seconds) for ``gts[i]``, or None when the answer could
    not be parsed (a miss that stays in the denominator). Raises ValueError on empty input.
    """
    ious = vtg_ious(preds, gts)
    if ious.size == 0:
        raise ValueError("no queries to score")
    out = {f"R1@{m}": float(np.mean(ious >= m - IOU_TOLERANCE)) for m in THRESHOLDS}
    return {**out, "mIoU": float(ious.mean()), "n": int(ious.size)}
