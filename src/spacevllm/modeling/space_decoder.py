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


class QueryGuidedSpaceDecoder(nn.Module):
    """Dual cross attention (no parameters) + space head. See the module docstring for eq. 3-4."""

    def __init__(self, config):
        super().__init__()
        self.dual_cross_attention = config.dual_cross_attention
        self.residual = config.decoder_residual
        self.box_anchor = config.box_anchor
        self.grid = config.pooled_grid
        self.space_head = SpaceHead(config.text_config.hidden_size, config.space_head_layers)

    def forward(self, visual: torch.Tensor, queries: torch.Tensor, caption: torch.Tensor) -> torch.Tensor:
        """visual (N, S, D) per-frame visual states, queries (N, D), caption (T, D) -> boxes (N, 4) norm cxcywh."""
        q = queries[:, None, :]
        if not self.dual_cross_attention:
            return self.space_head(queries).sigmoid()
        enhanced = visual
        if caption.shape[0] > 0:
            text_attn, _ = attention(visual, caption[None], caption[None])
            enhanced = visual + text_attn if self.residual else text_attn
        s, weights = attention(q, enhanced, enhanced)
        raw = self.space_head(s[:, 0])
        if not self.box_anchor:
            return raw.sigmoid()
        anchor = weights[:, 0] @ patch_centres(self.grid, raw.device).to(weights.dtype)
        centre = (torch.logit(anchor.clamp(1e-4, 1 - 1e-4)) + raw[:, :2]).sigmoid()
        return torch.cat([centre, raw[:, 2:].sigmoid()], dim=-1)
