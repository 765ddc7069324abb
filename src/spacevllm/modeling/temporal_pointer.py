"""Temporal pointing on the spatio-temporal aware queries (a CPU-scale auxiliary, not in the paper).

The paper learns *when* only through the generated answer text (L_time, eq. 6). The pointer gives a small model
trained from scratch a direct signal instead: it points at the per-frame query states.

    p_start = softmax_i(w_s . Q'_i),   p_end = softmax_i(w_e . Q'_{i+1})   i over the N_v video queries
    L_pointer = (CE(p_start, f_s) + CE(p_end, f_e)) / 2                    f_s, f_e: first/last sampled frame in GT

The end of frame i is read one query later: with a causal LLM, ``<r_i>`` sees frames 0..i only, so it can tell
that the object starts acting at frame i (it did not at i - 1) but not that it stops after frame i; ``<r_{i+1}>``
sees both. For the last frame, "one query later" is the token right after ``<r_{N_v-1}>`` (LLaVA-OneVision's
trailing newline feature in the interleaved layout), which has seen the whole video.

With ``config.lambda_inside > 0`` a third logit per query, ``w_i . Q'_i``, says whether frame i lies inside the GT
range (``L_inside``: binary cross-entropy over every sampled frame, :func:`spacevllm.losses.inside_loss`): sixteen
labels per sample where start and end give two, a denser signal for learning *when* the object acts. It only
trains; the range is still read from the start and end logits.

L_pointer lives with the other objectives in :mod:`spacevllm.losses`. It supervises the query states themselves
with the temporal target, and they are also what eq. 3's second attention reads to find the object.
``config.lambda_pointer`` weights it (0 = the paper, no pointer built); ``config.time_source = "pointer"`` makes
inference read the range from it instead of the generated text.
"""

from __future__ import annotations

import torch
from torch import nn


class TemporalPointer(nn.Module):
    """Start logits from the query states, end logits from the states one query later: (N, D), (N, D) -> (N, 2);
    with ``inside`` a third column, the per-frame inside-the-range logit from the query states -> (N, 3)."""

    def __init__(self, hidden: int, inside: bool = False):
        super().__init__()
        self.proj = nn.Linear(hidden, 2)
        self.inside = nn.Linear(hidden, 1) if inside else None

    def forward(self, queries: torch.Tensor, next_states: torch.Tensor) -> torch.Tensor:
        w, b = self.proj.weight, self.proj.bias
        columns = [queries @ w[0] + b[0], next_states @ w[1] + b[1]]
        if self.inside is not None:
            columns.append(self.inside(queries)[:, 0])
        return torch.stack(columns, dim=-1)


def next_positions(query_positions: torch.Tensor) -> torch.Tensor:
    """(N,) sequence positions of the video queries -> (N,) positions one query later (the last: the next token)."""
    return torch.cat([query_positions[1:], query_positions[-1:] + 1])


def best_span(time_logits: torch.Tensor) -> tuple[int, int]:
    """Most likely (first, last) frame with first <= last: argmax of start_logit[i] + end_logit[j]. (N, 2) -> ints."""
    s, e = time_logits[:, 0].float(), time_logits[:, 1].float()
    score = s[:, None] + e[None, :]
    score = score.masked_fill(torch.ones_like(score, dtype=torch.bool).tril(-1), float("-inf"))
    flat = int(score.argmax())
    return flat // score.shape[1], flat % score.shape[1]
