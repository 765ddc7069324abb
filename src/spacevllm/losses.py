"""Training objectives (section 3.1.4, eq. 5-6), DETR-style: a dict of named terms and a weight dict.

    L_space = lambda_L1 * L1(B_hat, B) + lambda_giou * L_giou(B_hat, B)      (eq. 5, frames in [t_s, t_e] only)
    L       = lambda_time * L_time + lambda_space * L_space                   (eq. 6)
            + lambda_pointer * L_pointer    (CPU-scale auxiliary, 0 in the paper; :mod:`.modeling.temporal_pointer`)
            + lambda_cell * L_cell          (CPU-scale auxiliary, 0 in the paper; :func:`cell_loss`)
            + lambda_inside * L_inside      (CPU-scale auxiliary, 0 in the paper; :func:`inside_loss`)

Boxes are normalized cxcywh (B, N_q, 4); ``box_mask`` (B, N_q) marks the frames inside the ground-truth range that
have a box, so only those enter L_space. L_time is the autoregressive cross-entropy on the answer text, from
logits at the positions that predict an answer token only (:func:`answer_targets`), never over the whole sequence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spacevllm.box_ops import box_cxcywh_to_xyxy, elementwise_generalized_box_iou


def loss_weights(config) -> dict[str, float]:
    """The paper's lambdas (section 4.1: 1, 1, 3, 1) read from the config."""
    return {
        "lambda_time": config.lambda_time,
        "lambda_space": config.lambda_space,
        "lambda_l1": config.lambda_l1,
        "lambda_giou": config.lambda_giou,
        "lambda_pointer": getattr(config, "lambda_pointer", 0.0),
        "lambda_cell": getattr(config, "lambda_cell", 0.0),
        "lambda_inside": getattr(config, "lambda_inside", 0.0),
    }


def answer_targets(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where L_time reads logits: labels (B, L), -100 outside the answer -> positions (B, L) bool, targets (N,).

    Position p is selected when ``labels[:, p + 1] != -100`` (the state at p predicts token p + 1; the last
    position never is); ``targets`` are those next tokens in row-major (sample, position) order. The model applies
    ``lm_head`` to ``hidden[positions]`` only, so no (B, L, V) logits are built in training.
    """
    following = F.pad(labels[:, 1:], (0, 1), value=-100)
    positions = following != -100
    return positions, following[positions]


def time_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L_time: next-token CE averaged over the answer tokens. logits (N, V) at the :func:`answer_targets`
    positions, targets (N,). Computed in float32 (only the (N, V) selection is cast); N = 0 gives a 0 that still
    backprops. Equals the CE of full (B, L, V) logits shifted by one with -100 ignored."""
    logits = logits.float()
    if targets.numel() == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits, targets.to(logits.device))


def space_losses(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """L1 and GIoU terms of eq. 5 averaged over the masked boxes. pred, target (B, N, 4) cxcywh; mask (B, N)."""
    mask = mask.bool()
    if not mask.any():
        zero = pred.sum() * 0.0
        return {"loss_l1": zero, "loss_giou": zero}
    p, t = pred[mask].float(), target[mask].float().to(pred.device)
    l1 = F.l1_loss(p, t, reduction="none").sum(-1).mean()
    giou = 1.0 - elementwise_generalized_box_iou(box_cxcywh_to_xyxy(p), box_cxcywh_to_xyxy(t))
    return {"loss_l1": l1, "loss_giou": giou.mean()}


def pointer_targets(time_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, N) bool frames inside the GT range -> first index (B,), last index (B,), rows with a range (B,) bool."""
    mask = time_mask.bool()
    n = mask.shape[1]
    idx = torch.arange(n, device=mask.device).expand_as(mask)
    first = torch.where(mask, idx, n).min(dim=1).values
    last = torch.where(mask, idx, -1).max(dim=1).values
    return first.clamp_max(n - 1), last.clamp_min(0), mask.any(dim=1)


def pointer_loss(time_logits: torch.Tensor, time_mask: torch.Tensor) -> torch.Tensor:
    """L_pointer: time_logits (B, N, 2) (padding rows -inf), time_mask (B, N) bool -> scalar (0 without ranges)."""
    n = min(time_logits.shape[1], time_mask.shape[1])
    logits, mask = time_logits[:, :n].float(), time_mask[:, :n].to(time_logits.device)
    first, last, valid = pointer_targets(mask)
    if not valid.any():
        return logits.nan_to_num(0.0, 0.0, 0.0).sum() * 0.0
    start = F.cross_entropy(logits[valid, :, 0], first[valid])
    end = F.cross_entropy(logits[valid, :, 1], last[valid])
    return (start + end) / 2


def inside_loss(inside_logits: torch.Tensor, time_mask: torch.Tensor) -> torch.Tensor:
    """L_inside: binary cross-entropy of each sampled frame's inside logit against "frame inside the GT range",
    averaged over the frames of the samples that have a range. inside_logits (B, N) (padding frames -inf),
    time_mask (B, N) bool -> scalar (0 without ranges)."""
    n = min(inside_logits.shape[1], time_mask.shape[1])
    logits, mask = inside_logits[:, :n].float(), time_mask[:, :n].to(inside_logits.device).bool()
    use = mask.any(dim=1, keepdim=True) & torch.isfinite(logits)
    if not use.any():
        return logits.nan_to_num(0.0, 0.0, 0.0).sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[use], mask[use].float())


def target_cells(target_boxes: torch.Tensor, grid: int) -> torch.Tensor:
    """(..., 4) normalized cxcywh -> (...,) row-major index of the grid x grid cell holding the box centre."""
    col = (target_boxes[..., 0] * grid).long().clamp(0, grid - 1)
    row = (target_boxes[..., 1] * grid).long().clamp(0, grid - 1)
    return row * grid + col


def cell_loss(cells: torch.Tensor, target_boxes: torch.Tensor, box_mask: torch.Tensor, grid: int) -> torch.Tensor:
    """L_cell (CPU scale, the spatial pointer): -log of eq. 3's second-attention weight on the pooled cell holding
    the GT box centre, averaged over the masked boxes. cells (B, N, S) weights, target_boxes (B, N, 4) cxcywh,
    box_mask (B, N) -> scalar."""
    n = min(cells.shape[1], target_boxes.shape[1])
    mask = box_mask[:, :n].bool().to(cells.device)
    if not mask.any():
        return cells.sum() * 0.0
    w = cells[:, :n][mask].float()
    t = target_cells(target_boxes[:, :n][mask].to(cells.device), grid)
    return -w.gather(1, t[:, None]).clamp_min(1e-8).log().mean()


def spacevllm_loss(
    config,
    logits,
    targets=None,
    pred_boxes=None,
    target_boxes=None,
    box_mask=None,
    time_logits=None,
    time_mask=None,
    cells=None,
):
    """Total loss (eq. 6) and the dict of named terms: loss_time, loss_l1, loss_giou, loss_space (+ loss_pointer
    when the config has a pointer). ``logits`` (N, V) and ``targets`` (N,) as in :func:`time_loss`; without
    ``targets`` (no answer text) ``logits`` may have any shape and loss_time is a 0 on them."""
    w = loss_weights(config)
    terms = {"loss_time": time_loss(logits, targets) if targets is not None else logits.sum() * 0.0}
    if pred_boxes is not None and target_boxes is not None and box_mask is not None:
        n = min(pred_boxes.shape[1], target_boxes.shape[1])
        terms.update(space_losses(pred_boxes[:, :n], target_boxes[:, :n], box_mask[:, :n]))
    else:
        terms.update({"loss_l1": terms["loss_time"] * 0.0, "loss_giou": terms["loss_time"] * 0.0})
    terms["loss_space"] = w["lambda_l1"] * terms["loss_l1"] + w["lambda_giou"] * terms["loss_giou"]
    total = w["lambda_time"] * terms["loss_time"] + w["lambda_space"] * terms["loss_space"]
    if w["lambda_pointer"] > 0:
        use = time_logits is not None and time_mask is not None
        terms["loss_pointer"] = pointer_loss(time_logits, time_mask) if use else terms["loss_time"] * 0.0
        total = total + w["lambda_pointer"] * terms["loss_pointer"]
    if w["lambda_inside"] > 0:
        use = time_logits is not None and time_mask is not None and time_logits.shape[-1] > 2
        terms["loss_inside"] = inside_loss(time_logits[..., 2], time_mask) if use else terms["loss_time"] * 0.0
        total = total + w["lambda_inside"] * terms["loss_inside"]
    if w["lambda_cell"] > 0:
        use = cells is not None and target_boxes is not None and box_mask is not None
        terms["loss_cell"] = (
            cell_loss(cells, target_boxes, box_mask, config.pooled_grid) if use else terms["loss_time"] * 0.0
        )
        total = total + w["lambda_cell"] * terms["loss_cell"]
    return total, terms
