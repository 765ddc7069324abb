"""Pure box functions (DETR's ``util/box_ops.py`` layout).

Conventions (DESIGN section 2):
  * inside the model and losses: normalized ``cxcywh`` in [0, 1];
  * at the edges (files, metrics, drawing): absolute-pixel ``xyxy``;
  * sources that store ``xywh`` pixels (HC-STVG, COCO) are converted once, in their reader.

Every function works on torch tensors and numpy arrays of shape ``(..., 4)`` and returns the same
array type. IoU in pixels has no "+1" (TubeDETR's convention).
"""

from __future__ import annotations

import numpy as np
import torch


def _stack(parts, like):
    if isinstance(like, torch.Tensor):
        return torch.stack(parts, dim=-1)
    return np.stack(parts, axis=-1)


def _unbind(b):
    return b.unbind(-1) if isinstance(b, torch.Tensor) else tuple(np.moveaxis(np.asarray(b), -1, 0))


def box_cxcywh_to_xyxy(b):
    """(..., 4) cx, cy, w, h -> (..., 4) x1, y1, x2, y2 (same units)."""
    cx, cy, w, h = _unbind(b)
    return _stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], b)


def box_xyxy_to_cxcywh(b):
    """(..., 4) x1, y1, x2, y2 -> (..., 4) cx, cy, w, h (same units)."""
    x1, y1, x2, y2 = _unbind(b)
    return _stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], b)


def box_xywh_to_xyxy(b):
    """(..., 4) x, y, w, h (top-left corner + size) -> (..., 4) x1, y1, x2, y2."""
    x, y, w, h = _unbind(b)
    return _stack([x, y, x + w, y + h], b)


def box_xyxy_to_xywh(b):
    """(..., 4) x1, y1, x2, y2 -> (..., 4) x, y, w, h (top-left corner + size)."""
    x1, y1, x2, y2 = _unbind(b)
    return _stack([x1, y1, x2 - x1, y2 - y1], b)


def normalize_xyxy(b, width: float, height: float):
    """Pixel xyxy -> normalized xyxy (divide x by ``width``, y by ``height``)."""
    x1, y1, x2, y2 = _unbind(b)
    return _stack([x1 / width, y1 / height, x2 / width, y2 / height], b)


def denormalize_xyxy(b, width: float, height: float):
    """Normalized xyxy -> pixel xyxy."""
    x1, y1, x2, y2 = _unbind(b)
    return _stack([x1 * width, y1 * height, x2 * width, y2 * height], b)


def pixel_xyxy_to_norm_cxcywh(b, width: float, height: float):
    """Edge -> model: pixel xyxy -> normalized cxcywh."""
    return box_xyxy_to_cxcywh(normalize_xyxy(b, width, height))


def norm_cxcywh_to_pixel_xyxy(b, width: float, height: float):
    """Model -> edge: normalized cxcywh -> pixel xyxy, clamped to the frame."""
    return clamp_xyxy(denormalize_xyxy(box_cxcywh_to_xyxy(b), width, height), width, height)


def clamp_xyxy(b, width: float, height: float):
    """Clamp xyxy boxes to the frame ``[0, width] x [0, height]``; keeps x1 <= x2, y1 <= y2."""
    x1, y1, x2, y2 = _unbind(b)
    if isinstance(b, torch.Tensor):
        cx = lambda v: v.clamp(0, width)  # noqa: E731
        cy = lambda v: v.clamp(0, height)  # noqa: E731
        lo_x, lo_y = torch.minimum(cx(x1), cx(x2)), torch.minimum(cy(y1), cy(y2))
        hi_x, hi_y = torch.maximum(cx(x1), cx(x2)), torch.maximum(cy(y1), cy(y2))
    else:
        x1, x2 = np.clip(x1, 0, width), np.clip(x2, 0, width)
        y1, y2 = np.clip(y1, 0, height), np.clip(y2, 0, height)
        lo_x, lo_y, hi_x, hi_y = np.minimum(x1, x2), np.minimum(y1, y2), np.maximum(x1, x2), np.maximum(y1, y2)
    return _stack([lo_x, lo_y, hi_x, hi_y], b)


def box_area(b):
    """(..., 4) xyxy -> (...) area; degenerate boxes have area 0."""
    x1, y1, x2, y2 = _unbind(b)
    if isinstance(b, torch.Tensor):
        return (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    return np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)


def _inter_union(a, b):
    ax1, ay1, ax2, ay2 = _unbind(a)
    bx1, by1, bx2, by2 = _unbind(b)
    if isinstance(a, torch.Tensor):
        iw = (torch.minimum(ax2, bx2) - torch.maximum(ax1, bx1)).clamp(min=0)
        ih = (torch.minimum(ay2, by2) - torch.maximum(ay1, by1)).clamp(min=0)
    else:
        iw = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0, None)
        ih = np.clip(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0, None)
    inter = iw * ih
    return inter, box_area(a) + box_area(b) - inter


def elementwise_box_iou(a, b):
    """IoU of matching pairs: (..., 4) xyxy x (..., 4) xyxy -> (...). Empty union -> 0."""
    inter, union = _inter_union(a, b)
    if isinstance(a, torch.Tensor):
        safe = torch.where(union > 0, union, torch.ones_like(union))
        return torch.where(union > 0, inter / safe, torch.zeros_like(union))
    union = np.asarray(union, dtype=np.float64)
    return np.divide(inter, union, out=np.zeros_like(union), where=union > 0)


def box_iou(a, b):
    """Pairwise IoU: (N, 4) xyxy x (M, 4) xyxy -> (N, M)."""
    return elementwise_box_iou(a[:, None, :], b[None, :, :])


def elementwise_generalized_box_iou(a, b):
    """GIoU of matching pairs (Rezatofighi et al. 2019): (..., 4) xyxy x (..., 4) xyxy -> (...)."""
    inter, union = _inter_union(a, b)
    ax1, ay1, ax2, ay2 = _unbind(a)
    bx1, by1, bx2, by2 = _unbind(b)
    if isinstance(a, torch.Tensor):
        hull = (torch.maximum(ax2, bx2) - torch.minimum(ax1, bx1)).clamp(min=0) * (
            torch.maximum(ay2, by2) - torch.minimum(ay1, by1)
        ).clamp(min=0)
        iou = inter / union.clamp(min=1e-7)
        return iou - (hull - union) / hull.clamp(min=1e-7)
    hull = np.clip(np.maximum(ax2, bx2) - np.minimum(ax1, bx1), 0, None) * np.clip(
        np.maximum(ay2, by2) - np.minimum(ay1, by1), 0, None
    )
    iou = inter / np.maximum(union, 1e-7)
    return iou - (hull - union) / np.maximum(hull, 1e-7)


def generalized_box_iou(a, b):
    """Pairwise GIoU: (N, 4) xyxy x (M, 4) xyxy -> (N, M)."""
    return elementwise_generalized_box_iou(a[:, None, :], b[None, :, :])
