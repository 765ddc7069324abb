"""Query-Guided Space Decoder (section 3.1.3, eq. 3-4), on the LLM's last-layer hidden states.

:func:`query_guided_space_decoder` is the paper's decoder, written as the paper writes it:

    V'_eh_i = Attention(Q'_v_i, K_t, V_t)          frame i's visual tokens attend to the caption tokens
    S_i     = Attention(Q'_s_i, V'_eh_i, V'_eh_i)   query i attends to frame i's text-enhanced visual tokens
    b_i     = MLP(S_i) -> (cx, cy, w, h)            the space head (eq. 4), sigmoid -> normalized [0, 1]

Attention(Q, K, V) = softmax(Q K^T / sqrt(D)) V, with no parameters. Which tokens are which comes from the token
layout (``SpaceVLLMForConditionalGeneration.decode_boxes``): frame i's visual tokens are the i-th run of video
placeholders (newline placeholders left out), query i is the i-th query token in the sequence, and the caption
tokens are ``caption_mask``, which the processor builds from the caption's character span inside the prompt.

:class:`QueryGuidedSpaceDecoder` runs that function for the paper's setting and composes, for the other
settings the config asks for, these named pieces in eq. 3-4's order:

* ``dual_cross_attention: False`` (Table 7 "w/o dual cross attention"): :func:`query_only_box`, b_i = MLP(Q'_s_i).
* ``decoder_residual`` (CPU scale): :func:`residual_text_enhancement`, V'_eh_i = Q'_v_i + Attention(Q'_v_i, K_t, V_t).
* ``box_anchor`` (CPU scale): the box centre is read relative to :func:`attended_centre`, the centre of frame i's
  pooled cells weighted by the second attention (DETR reference-point style), by :func:`anchored_box`.
* ``fine_anchor`` (CPU scale, with ``box_anchor``): :class:`FineAnchor` refines that anchor, and S_i, on frame
  i's patch features *before* pooling, inside the pooled cells the second attention picked. It is meant for
  pooled cells about as large as the objects (the world model: 16 pooled tokens per 64 px frame, 16 px cells,
  shapes of ~10 px), where a pooled token cannot say where inside its cell the object sits.

docs/training.md ("CPU-scale switches") says why a small model trained from scratch uses them.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def attention_weights(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(D)): q (..., Nq, D), k (..., Nk, D) -> (..., Nq, Nk)."""
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Parameter-free scaled dot-product attention: q (..., Nq, D), k/v (..., Nk, D) -> (..., Nq, D)."""
    return attention_weights(q, k) @ v


class SpaceHead(nn.Module):
    """Eq. 4's MLP: S_i -> 4 numbers (logits of cx, cy, w, h). (N, D) -> (N, 4)."""

    def __init__(self, hidden: int, layers: int = 3):
        super().__init__()
        dims = [hidden] * layers + [4]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else torch.relu(layer(x))
        return x


# --- the paper ------------------------------------------------------------------------------------------------


def query_guided_space_decoder(Q_v, Q_s, K_t, V_t, MLP: SpaceHead) -> torch.Tensor:
    """Eq. 3-4 for the N frames of a video at once -> b (N, 4) normalized cxcywh.

    Q_v (N, S, D): last-layer states of frame i's visual tokens; Q_s (N, 1, D): of frame i's query ``<r_i>``;
    K_t, V_t (1, T, D): of the caption tokens (one caption for every frame); MLP: the space head."""
    V_eh = attention(Q_v, K_t, V_t)  # (N, S, D) text-enhanced visual tokens of frame i
    S = attention(Q_s, V_eh, V_eh)  # (N, 1, D) spatial information of frame i related to the caption
    return MLP(S[:, 0]).sigmoid()


# --- pieces the config adds or swaps in -----------------------------------------------------------------------


def query_only_box(Q_s: torch.Tensor, MLP: SpaceHead) -> torch.Tensor:
    """Table 7 "w/o dual cross attention": the space head reads the query state alone. (N, D) -> (N, 4) cxcywh."""
    return MLP(Q_s).sigmoid()


def residual_text_enhancement(Q_v, K_t, V_t) -> torch.Tensor:
    """``decoder_residual``: V'_eh_i = Q'_v_i + Attention(Q'_v_i, K_t, V_t). Shapes as eq. 3 -> (N, S, D)."""
    return Q_v + attention(Q_v, K_t, V_t)


def patch_centres(grid: int, device=None) -> torch.Tensor:
    """(grid*grid, 2) normalized (x, y) centres of a grid x grid patch grid, row-major like the pooled tokens."""
    c = (torch.arange(grid, device=device, dtype=torch.float32) + 0.5) / grid
    y, x = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1)], dim=-1)


def attended_centre(A: torch.Tensor, grid: int) -> torch.Tensor:
    """``box_anchor``: A (N, S) second-attention weights over frame i's S = grid*grid pooled cells -> (N, 2) the
    weighted normalized (x, y) centre of those cells."""
    return A @ patch_centres(grid, A.device).to(A.dtype)


def anchored_box(raw: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """``box_anchor``: the space head's (N, 4) logits read relative to an (N, 2) normalized (x, y) anchor:
    (cx, cy) = sigmoid(logit(anchor) + raw_xy), (w, h) = sigmoid(raw_wh) -> (N, 4) normalized cxcywh."""
    centre = (torch.logit(anchor.clamp(1e-4, 1 - 1e-4)) + raw[:, :2]).sigmoid()
    return torch.cat([centre, raw[:, 2:].sigmoid()], dim=-1)


def cell_of_patch(side: int, stride: int, grid: int, device=None) -> torch.Tensor:
    """(side*side,) index of the pooled cell (row-major on the ``grid`` x ``grid`` pooled grid) of each patch."""
    r = torch.clamp(torch.arange(side, device=device) // stride, max=grid - 1)
    return (r[:, None] * grid + r[None, :]).reshape(-1)


class FineAnchor(nn.Module):
    """``fine_anchor``: refine the anchor on the unpooled patches. S (N, D), A (N, S) second-attention weights,
    patches (N, P*P, D) -> ((N, 2) normalized (x, y) anchor, (N, D) refined S for the space head).

        w_fine = softmax(log A[cell(p)] + (W_q S) . (W_k f_p) / sqrt(D))    over the P*P patches p of frame i
        anchor = sum_p w_fine[p] * centre(p),     S' = S + W_v sum_p w_fine[p] f_p

    ``W_q`` and ``W_v`` start at zero, so that a model continued with ``fine_anchor`` on starts exactly where it
    was: w_fine spreads each cell's weight evenly over its patches, whose mean centre is the cell's centre.
    """

    def __init__(self, hidden: int, grid: int, stride: int):
        super().__init__()
        self.grid, self.stride = grid, stride
        self.query = nn.Linear(hidden, hidden, bias=False)
        self.key = nn.Linear(hidden, hidden, bias=False)
        self.value = nn.Linear(hidden, hidden, bias=False)
        self.query.zero_init = self.value.zero_init = True  # read by SpaceVLLMForConditionalGeneration._init_weights

    def forward(self, S: torch.Tensor, A: torch.Tensor, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        side = math.isqrt(patches.shape[1])
        prior = A.clamp_min(1e-12).log()[:, cell_of_patch(side, self.stride, self.grid, S.device)]
        match = (self.key(patches) @ self.query(S)[:, :, None])[..., 0] / math.sqrt(S.shape[-1])
        weights = torch.softmax(prior + match, dim=-1)
        anchor = weights @ patch_centres(side, S.device).to(weights.dtype)
        return anchor, S + self.value((weights[:, None, :] @ patches)[:, 0])


# --- the module -----------------------------------------------------------------------------------------------


class QueryGuidedSpaceDecoder(nn.Module):
    """Eq. 3-4 with the pieces the config chooses (see the module docstring); the space head (and ``FineAnchor``)
    are its only parameters."""

    def __init__(self, config):
        super().__init__()
        hidden = config.text_config.hidden_size
        self.space_head = SpaceHead(hidden, config.space_head_layers)
        self.fine_anchor = FineAnchor(hidden, config.pooled_grid, config.pool_stride) if config.fine_anchor else None
        self.dual_cross_attention = config.dual_cross_attention
        self.decoder_residual = config.decoder_residual
        self.box_anchor = config.box_anchor
        self.grid = config.pooled_grid

    def forward(self, visual, queries, caption, patches=None, return_cells=False):
        """visual (N, S, D) frame i's visual states, queries (N, D) query i's state, caption (T, D) the caption's
        states, patches (N, P*P, D) the frames' unpooled patch features (``fine_anchor`` only) -> boxes (N, 4)
        normalized cxcywh; with ``return_cells`` also eq. 3's second-attention weights A (N, S) over frame i's
        pooled cells (None without the dual cross attention), what the spatial pointer's loss reads."""
        boxes, A = self._boxes_and_cells(visual, queries, caption, patches, return_cells)
        return (boxes, A) if return_cells else boxes

    def _boxes_and_cells(self, visual, queries, caption, patches, need_cells):
        if not self.dual_cross_attention:  # Table 7's ablation
            return query_only_box(queries, self.space_head), None
        if caption.shape[0] == 0:
            raise ValueError("eq. 3 needs the caption's tokens, and caption_mask marks none (an empty query?)")
        Q_v, Q_s, K_t = visual, queries[:, None], caption[None]
        if not (self.decoder_residual or self.box_anchor or need_cells):  # the paper
            return query_guided_space_decoder(Q_v, Q_s, K_t, K_t, self.space_head), None
        # eq. 3 with the second attention's weights kept (the same computation as the paper's function when both
        # CPU-scale pieces are off), the first attention plain or residual
        V_eh = residual_text_enhancement(Q_v, K_t, K_t) if self.decoder_residual else attention(Q_v, K_t, K_t)
        A = attention_weights(Q_s, V_eh)  # (N, 1, S)
        return self.box(S=(A @ V_eh)[:, 0], A=A[:, 0], patches=patches), A[:, 0]

    def box(self, S: torch.Tensor, A: torch.Tensor, patches=None) -> torch.Tensor:
        """Eq. 4 after the config's anchor: S (N, D), A (N, S) the second attention's weights -> (N, 4) cxcywh."""
        if not self.box_anchor:
            return self.space_head(S).sigmoid()
        if self.fine_anchor is None:
            return anchored_box(self.space_head(S), attended_centre(A, self.grid))
        if patches is None:
            raise ValueError("fine_anchor needs the frames' unpooled patch features")
        anchor, S = self.fine_anchor(S, A, patches)
        return anchored_box(self.space_head(S), anchor)
