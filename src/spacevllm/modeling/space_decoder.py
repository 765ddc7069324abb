"""Query-Guided Space Decoder (section 3.1.3, eq. 3-4).

Dual cross attention, with no parameters, on the LLM's last-layer hidden states:

    V'_eh_i = Attention(Q'_v_i, K_t, V_t)          frame i's visual tokens attend to the caption tokens
    S_i     = Attention(Q'_s_i, V'_eh_i, V'_eh_i)   query i attends to frame i's text-enhanced visual tokens
    b_i     = MLP(S_i) -> (cx, cy, w, h)            the space head (eq. 4), sigmoid -> normalized [0, 1]

Attention(Q, K, V) = softmax(Q K^T / sqrt(D)) V. Which tokens are which comes from the token layout:
frame i's visual tokens are the i-th run of S video placeholders (the trailing newline placeholder that
LLaVA-OneVision appends after the last frame is not a frame token), query i is the i-th query token present in the
sequence, and the caption tokens are ``caption_mask``, which the processor builds from the tokenizer's offset
mapping of the caption's character span inside the prompt.

CPU-scale deviation ``fine_anchor`` (:class:`FineAnchor`): the box anchor is refined on frame i's patch features
*before* pooling, inside the pooled cells that the second attention picked. It is meant for pooled cells about as
large as the objects (the world model: 16 pooled tokens per 64 px frame, 16 px cells, for shapes of ~10 px), where
a pooled token cannot say where inside its cell the object sits. The paper's 7B model has 13x13 pooled tokens per
frame and no such step.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Parameter-free scaled dot-product attention. q (..., Nq, D), k/v (..., Nk, D) -> (out, weights)."""
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ v, weights


def patch_centres(grid: int, device=None) -> torch.Tensor:
    """(grid*grid, 2) normalized (x, y) centres of the pooled patch grid, row-major like the pooled tokens."""
    c = (torch.arange(grid, device=device, dtype=torch.float32) + 0.5) / grid
    y, x = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1)], dim=-1)


class SpaceHead(nn.Module):
    """Eq. 4: MLP(S_i) -> 4 numbers (logits of cx, cy, w, h). (N, D) -> (N, 4)."""

    def __init__(self, hidden: int, layers: int = 3):
        super().__init__()
        dims = [hidden] * layers + [4]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else torch.relu(layer(x))
        return x


def cell_of_patch(side: int, stride: int, grid: int, device=None) -> torch.Tensor:
    """(side*side,) index of the pooled cell (row-major on the ``grid`` x ``grid`` pooled grid) of each patch."""
    r = torch.clamp(torch.arange(side, device=device) // stride, max=grid - 1)
    return (r[:, None] * grid + r[None, :]).reshape(-1)


class FineAnchor(nn.Module):
    """Refine the anchor on the unpooled patches: (N, D) states, (N, S) coarse weights, (N, P*P, D) patches ->
    ((N, 2) normalized (x, y) anchor, (N, D) state for the space head).

        w_fine = softmax(log w_coarse[cell(p)] + (W_q s) . (W_k f_p) / sqrt(D))    over the P*P patches p of frame i
        anchor = sum_p w_fine[p] * centre(p),     state = s + W_v sum_p w_fine[p] f_p

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

    def forward(self, s: torch.Tensor, coarse: torch.Tensor, patches: torch.Tensor) -> tuple[torch.Tensor, ...]:
        side = math.isqrt(patches.shape[1])
        prior = coarse.clamp_min(1e-12).log()[:, cell_of_patch(side, self.stride, self.grid, s.device)]
        match = (self.key(patches) @ self.query(s)[:, :, None])[..., 0] / math.sqrt(s.shape[-1])
        weights = torch.softmax(prior + match, dim=-1)
        anchor = weights @ patch_centres(side, s.device).to(weights.dtype)
        return anchor, s + self.value((weights[:, None, :] @ patches)[:, 0])


class QueryGuidedSpaceDecoder(nn.Module):
    """Dual cross attention (no parameters) + space head. See the module docstring for eq. 3-4."""

    def __init__(self, config):
        super().__init__()
        self.dual_cross_attention = config.dual_cross_attention
        self.residual = config.decoder_residual
        self.box_anchor = config.box_anchor
        self.grid = config.pooled_grid
        hidden = config.text_config.hidden_size
        self.space_head = SpaceHead(hidden, config.space_head_layers)
        self.fine_anchor = FineAnchor(hidden, self.grid, config.pool_stride) if config.fine_anchor else None

    def forward(self, visual, queries, caption, patches=None) -> torch.Tensor:
        """visual (N, S, D) per-frame visual states, queries (N, D), caption (T, D), patches (N, P*P, D) the frames'
        unpooled projected patch features (used by ``fine_anchor``) -> boxes (N, 4) normalized cxcywh."""
        q = queries[:, None, :]
        if not self.dual_cross_attention:
            return self.space_head(queries).sigmoid()
        enhanced = visual
        if caption.shape[0] > 0:
            text_attn, _ = attention(visual, caption[None], caption[None])
            enhanced = visual + text_attn if self.residual else text_attn
        s, weights = attention(q, enhanced, enhanced)
        s, weights = s[:, 0], weights[:, 0]
        if not self.box_anchor:
            return self.space_head(s).sigmoid()
        if self.fine_anchor is not None:  # the config only allows it with box_anchor
            if patches is None:
                raise ValueError("fine_anchor needs the frames' unpooled patch features")
            anchor, s = self.fine_anchor(s, weights, patches)
        else:
            anchor = weights @ patch_centres(self.grid, s.device).to(weights.dtype)
        raw = self.space_head(s)
        centre = (torch.logit(anchor.clamp(1e-4, 1 - 1e-4)) + raw[:, :2]).sigmoid()
        return torch.cat([centre, raw[:, 2:].sigmoid()], dim=-1)
