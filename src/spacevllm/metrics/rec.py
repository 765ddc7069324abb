"""Referring expression comprehension (REC) metric: Acc@0.5 (RefCOCO / RefCOCO+ / RefCOCOg, paper Table 6).

One predicted box per expression, absolute-pixel ``xyxy``. Acc@0.5 is the share of expressions whose
predicted box has IoU ``>= 0.5`` with the ground-truth box (IoU without the +1 pixel; a 1e-9 tolerance keeps a
nominal IoU of exactly 0.5 from failing on float error). A missing prediction (``None`` or a row with NaN)
counts as a miss and stays in the denominator ``n``.
"""

from __future__ import annotations

import numpy as np

from spacevllm.box_ops import elementwise_box_iou

ACC_THRESHOLD = 0.5
KEYS = ("Acc@0.5", "n")
IOU_TOLERANCE = 1e-9


def as_box_array(boxes) -> np.ndarray:
    """A sequence of ``[x1, y1, x2, y2]`` or None (or an (N, 4) array) -> float64 (N, 4), NaN rows for None."""
    if isinstance(boxes, np.ndarray):
        return boxes.astype(np.float64).reshape(-1, 4)
    out = np.full((len(boxes), 4), np.nan)
    for i, b in enumerate(boxes):
        if b is not None:
            out[i] = np.asarray(b, dtype=np.float64).reshape(4)
    return out


def rec_ious(pred_xyxy, gt_xyxy) -> np.ndarray:
    """IoU (N,) of predicted (N, 4) and ground-truth (N, 4) pixel xyxy boxes; missing predictions score 0."""
    pred, gt = as_box_array(pred_xyxy), as_box_array(gt_xyxy)
    if len(pred) != len(gt):
        raise ValueError(f"{len(pred)} predicted boxes for {len(gt)} ground-truth boxes")
    iou = elementwise_box_iou(np.nan_to_num(pred), gt)
    return np.where(np.isnan(pred).any(axis=1), 0.0, iou)


def rec_accuracy(pred_xyxy, gt_xyxy) -> dict:
    """``{"Acc@0.5": fraction in [0, 1], "n": N}`` for (N, 4) predicted and (N, 4) ground-truth pixel xyxy boxes.

    ``pred_xyxy`` may be an (N, 4) array (NaN rows = missing) or a list whose entries are boxes or None.
    Raises ValueError on empty input or mismatched lengths.
    """
    ious = rec_ious(pred_xyxy, gt_xyxy)
    if ious.size == 0:
        raise ValueError("no expressions to score")
    return {"Acc@0.5": float(np.mean(ious >= ACC_THRESHOLD - IOU_TOLERANCE)), "n": int(ious.size)}
