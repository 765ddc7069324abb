"""SpaceVLLM model (sections 3.1.1-3.1.5) on transformers' LLaVA-OneVision.

The vision tower (SigLIP), projector and 2x2 pooling (``get_video_features``), the placeholder contract
(``<video>`` placeholders replaced by features with ``masked_scatter`` after a count check) and the Qwen2 LLM are
transformers' own, inherited from :class:`LlavaOnevisionForConditionalGeneration`. SpaceVLLM adds:

* the query tokens ``<r_i>`` (ordinary added vocabulary rows, learned like any embedding; eq. 1),
* the query-guided space decoder on the last-layer hidden states (eq. 3-4, :mod:`.space_decoder`),
* the joint loss (eq. 5-6, :mod:`spacevllm.losses`),
* optionally (``config.lambda_pointer > 0``, CPU scale) a temporal pointer on the query states
  (:mod:`.temporal_pointer`).

Weights keep LLaVA-OneVision's names, so a converted LLaVA-Video checkpoint loads with only the space head new.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import LlavaOnevisionForConditionalGeneration
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.llava_onevision.modeling_llava_onevision import (
    LlavaOnevisionModel,
    LlavaOnevisionPreTrainedModel,
)
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults
from transformers.utils.output_capturing import select_hidden_states

from spacevllm.losses import answer_targets, spacevllm_loss
from spacevllm.modeling.configuration import SpaceVLLMConfig
from spacevllm.modeling.space_decoder import QueryGuidedSpaceDecoder
from spacevllm.modeling.temporal_pointer import TemporalPointer, next_positions


@dataclass
class SpaceVLLMOutput(ModelOutput):
    """loss (scalar), loss_dict (named terms), logits (see below), pred_boxes (B, N_q, 4) normalized cxcywh or None,
    time_logits (B, N_v, 2) pointer start/end logits (+ inside: (B, N_v, 3)) or None, last_hidden_state (B, L, D),
    cache (KV cache), patch_features (B, N_v, P*P, D) this pass's unpooled patch features with ``fine_anchor``
    (else None), the ``patches`` argument of a later ``decode_boxes`` on this pass's ``last_hidden_state``.

    ``logits`` depend on the call: without labels (B, L, V), or (B, k, V) at the last k positions with
    ``logits_to_keep=k`` (``generate`` passes 1); with labels or target boxes (training) (N, V) at the N positions
    whose next token is labelled, in row-major (sample, position) order (:func:`spacevllm.losses.answer_targets`;
    N = 0 without labels), because training never builds (B, L, V) logits (64 frames: ~13k positions x 152k)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    cache: object | None = None
    last_hidden_state: torch.Tensor | None = None
    pred_boxes: torch.Tensor | None = None
    loss_dict: dict | None = None
    time_logits: torch.Tensor | None = None
    patch_features: torch.Tensor | None = None

    @property
    def past_key_values(self):
        return self.cache


@dataclass
class SpaceVLLMVideoOutput(BaseModelOutputWithPooling):
    """:meth:`SpaceVLLMModel.get_video_features`: transformers' fields (``pooler_output`` (B, N_v * T + E, D) the
    features written into the video placeholders) plus ``patch_features`` (B, N_v, P*P, D), the frames' projected
    patch features before pooling, with ``config.fine_anchor`` (else None)."""

    patch_features: torch.Tensor | None = None


def select_feature_layer(hidden_states, layer, strategy) -> torch.Tensor:
    """The vision tower's features the projector reads, as transformers' LLaVA-OneVision selects them: layer
    ``layer`` of ``hidden_states`` (a list of layers: concatenated on the feature axis), without the first token
    for strategy "default". (frames, P*P [+1], D_v) per layer -> (frames, P*P, D_v * layers)."""
    if isinstance(layer, int):
        features = hidden_states[layer]
    else:
        features = torch.cat([hidden_states[i] for i in layer], dim=-1)
    return features[:, 1:] if strategy == "default" else features


def stack_padded(rows: list[torch.Tensor], value: float) -> torch.Tensor:
    """Per-sample (N_b, K) rows -> (B, max N_b, K), shorter rows padded at the end with ``value``."""
    n = max(r.shape[0] for r in rows)
    return torch.stack([torch.nn.functional.pad(r, (0, 0, 0, n - r.shape[0]), value=value) for r in rows])


class SpaceVLLMModel(LlavaOnevisionModel):
    """LLaVA-OneVision's backbone with the frame layout read from the config: pooling (``pool_stride``,
    ``frame_pool_mode``) and newline placement (``newline_position``). The defaults are transformers' own layout
    (2x2 bilinear, one newline per video); docs/checkpoints.md gives the layout of each source checkpoint.

    Its ``forward`` is transformers' own; it returns what :meth:`get_video_features` gave as ``video_outputs``, so
    the frames' unpooled patch features (``fine_anchor``) leave it as ``out.video_outputs.patch_features``."""

    config_class = SpaceVLLMConfig

    @merge_with_config_defaults
    @can_return_tuple
    @select_hidden_states("vision_feature_layer")
    def get_video_features(
        self, pixel_values_videos, vision_feature_layer=None, vision_feature_select_strategy=None, **kwargs
    ) -> SpaceVLLMVideoOutput:
        """(B, N_v, C, H, W) -> ``pooler_output`` (B, N_v * T + E, D): each frame's T = ``frame_placeholders``
        features (:meth:`apply_pooling`), then E = ``video_newlines`` newline features; ``patch_features``
        (B, N_v, P*P, D) the projected patch features before pooling with ``config.fine_anchor``, else None.

        Vision tower, feature layer and projector as transformers' ``LlavaOnevisionModel.get_video_features``
        (same decorators, so the same config defaults and captured layers); the pooling and newlines follow the
        config's layout, and the unpooled features are returned instead of dropped."""
        batch, frames = pixel_values_videos.shape[:2]
        vision = self.vision_tower(pixel_values_videos.flatten(0, 1), return_dict=True, **kwargs)
        patches = self.multi_modal_projector(
            select_feature_layer(vision.hidden_states, vision_feature_layer, vision_feature_select_strategy)
        )
        pooled = self.apply_pooling(patches)
        pooled = pooled.reshape(batch, frames * pooled.shape[1], -1)
        if self.config.video_newlines:
            newline = self.image_newline[None, None, :].repeat(batch, 1, 1).to(pooled.device)
            pooled = torch.cat((pooled, newline), dim=1)
        return SpaceVLLMVideoOutput(
            last_hidden_state=vision.last_hidden_state,
            pooler_output=pooled,
            hidden_states=vision.hidden_states,
            attentions=vision.attentions,
            patch_features=patches.reshape(batch, frames, *patches.shape[1:]) if self.config.fine_anchor else None,
        )

    def apply_pooling(self, image_features: torch.Tensor) -> torch.Tensor:
        """(frames, P*P, D) row-major patch features -> (frames, T, D): the S pooled patch features of each frame
        (row-major), with the layout's newline features inside the frame (after each row for "grid", after the
        frame for "frame"; T = S otherwise)."""
        pooled = self._pool_frames(image_features)
        position = self.config.newline_position
        if position not in ("grid", "frame"):
            return pooled
        frames, tokens, dim = pooled.shape
        rows = math.isqrt(tokens) if position == "grid" else 1
        newline = self.image_newline.to(pooled.dtype).expand(frames, rows, 1, dim)
        return torch.cat([pooled.reshape(frames, rows, tokens // rows, dim), newline], dim=2).flatten(1, 2)

    def _pool_frames(self, image_features: torch.Tensor) -> torch.Tensor:
        """(frames, P*P, D) -> (frames, S, D). Stride 1 keeps the patches; mode None: 2 is the upstream bilinear
        pooling, 4 averages each 4x4 block (a grid side that 4 does not divide keeps a partial block); "bilinear"
        resizes to ceil(P / stride); "average" / "max" pool stride x stride blocks (floor), as LLaVA-NeXT."""
        stride, mode = self.config.pool_stride, self.config.frame_pool_mode
        if stride == 1:
            return image_features
        if stride == 2 and mode in (None, "bilinear"):
            return super().apply_pooling(image_features)
        frames, patches, dim = image_features.shape
        side = math.isqrt(patches)
        grid = image_features.transpose(1, 2).reshape(frames, dim, side, side)
        if mode == "bilinear":
            grid = nn.functional.interpolate(grid, size=[math.ceil(side / stride)] * 2, mode="bilinear")
        elif mode == "max":
            grid = nn.functional.max_pool2d(grid, stride)
        else:
            grid = nn.functional.avg_pool2d(grid, stride, ceil_mode=mode is None)
        return grid.flatten(2).transpose(1, 2)

    def frame_patch_states(self, states: torch.Tensor) -> torch.Tensor:
        """(n, D) states at one sample's video placeholders, in order -> (frames, S, D): each frame's S patch
        states (row-major), the layout's newline positions left out; frames = (n - E) // T (see
        :meth:`get_video_features`)."""
        per_frame, patches = self.config.frame_placeholders, self.config.tokens_per_frame
        frames = (states.shape[0] - self.config.video_newlines) // per_frame
        states = states[: frames * per_frame].reshape(frames, per_frame, -1)
        if self.config.newline_position == "grid":
            side = self.config.pooled_grid
            return states.reshape(frames, side, side + 1, -1)[:, :, :side].reshape(frames, patches, -1)
        return states[:, :patches]


class SpaceVLLMForConditionalGeneration(LlavaOnevisionForConditionalGeneration):
    """LLaVA-OneVision + spatio-temporal aware queries + query-guided space decoder."""

    config_class = SpaceVLLMConfig

    def __init__(self, config: SpaceVLLMConfig):
        LlavaOnevisionPreTrainedModel.__init__(self, config)  # the parent's body, with SpaceVLLMModel as backbone
        self.model = SpaceVLLMModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.space_decoder = QueryGuidedSpaceDecoder(config)
        hidden = config.text_config.hidden_size
        pointer = config.lambda_pointer > 0
        self.temporal_pointer = TemporalPointer(hidden, inside=config.lambda_inside > 0) if pointer else None
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        pixel_values_videos=None,
        caption_mask=None,
        labels=None,
        target_boxes=None,
        box_mask=None,
        time_mask=None,
        position_ids=None,
        cache=None,
        use_cache=None,
        logits_to_keep: int = 0,
        **kwargs,
    ) -> SpaceVLLMOutput:
        """Shapes: input_ids (B, L); pixel_values_videos (B, N_v, C, H, W) (an image is a 1-frame video);
        caption_mask (B, L) bool; labels (B, L) with -100 outside the answer; target_boxes (B, N_q, 4) normalized
        cxcywh; box_mask (B, N_q) bool; time_mask (B, N_v) bool, sampled frames inside the GT range (pointer loss).
        Boxes (and pointer logits) are decoded only when caption_mask is given (training, prefill). ``lm_head`` runs
        only where logits are used (:meth:`lean_logits`): in training at the answer positions, else at the last
        ``logits_to_keep`` positions (0 = all)."""
        kwargs.pop("pixel_values", None)  # LLaVA-OneVision's anyres image inputs: an image comes as a 1-frame video
        kwargs.pop("image_sizes", None)
        kwargs.pop("return_dict", None)  # the output is always a SpaceVLLMOutput
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            pixel_values_videos=pixel_values_videos,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            **kwargs,
        )
        hidden = out.last_hidden_state
        patches = None if out.video_outputs is None else out.video_outputs.patch_features
        if labels is None and target_boxes is not None:  # a loss without answer text: loss_time is a 0
            labels = torch.full(hidden.shape[:2], -100, dtype=torch.long, device=hidden.device)
        logits, targets = self.lean_logits(hidden, labels, logits_to_keep)
        pred_boxes = time_logits = cells = None
        if caption_mask is not None and self.config.query_mode != "none" and input_ids is not None:
            decoded = self.decode_boxes(hidden, input_ids, caption_mask, patches, self.config.lambda_cell > 0)
            pred_boxes, cells = decoded if self.config.lambda_cell > 0 else (decoded, None)
            if self.temporal_pointer is not None and pixel_values_videos is not None:
                time_logits = self.point_time(hidden, input_ids)
        loss = loss_dict = None
        if labels is not None or target_boxes is not None:
            loss, loss_dict = spacevllm_loss(
                self.config, logits, targets, pred_boxes, target_boxes, box_mask, time_logits, time_mask, cells
            )
        cache = getattr(out, "cache", None)
        return SpaceVLLMOutput(loss, logits, cache, hidden, pred_boxes, loss_dict, time_logits, patches)

    def lean_logits(self, hidden, labels=None, logits_to_keep: int = 0):
        """``lm_head`` only where logits are needed: hidden (B, L, D) -> (logits, targets).

        With labels (B, L): logits (N, V) at the positions that predict an answer token and their targets (N,)
        (:func:`spacevllm.losses.answer_targets`). Without: logits (B, L, V), or (B, k, V) for the last
        ``logits_to_keep`` = k positions, and targets None."""
        if labels is not None:
            positions, targets = answer_targets(labels.to(hidden.device))
            return self.lm_head(hidden[positions]), targets
        keep = slice(-logits_to_keep, None) if logits_to_keep else slice(None)
        return self.lm_head(hidden[:, keep]), None

    def decode_boxes(self, last_hidden_state, input_ids, caption_mask, patches=None, return_cells=False):
        """Eq. 3-4 on every query of every sample: (B, L, D), (B, L), (B, L) -> (B, N_q, 4) normalized cxcywh;
        with ``return_cells`` also eq. 3's second-attention weights (B, N_q, S) over each frame's pooled cells
        (None without the dual cross attention).

        Query j pairs with the j-th frame of visual tokens (for an image: its one frame and ``<r_{N_v}>``).
        ``patches`` (B, N_v, P*P, D): the unpooled patch features, for ``config.fine_anchor``.
        """
        rows = [
            self._decode_one(h, ids, cap.bool(), None if patches is None else patches[b], return_cells)
            for b, (h, ids, cap) in enumerate(zip(last_hidden_state, input_ids, caption_mask))
        ]
        boxes = stack_padded([r[0] for r in rows], 0.0)
        if not return_cells:
            return boxes
        return boxes, None if rows[0][1] is None else stack_padded([r[1] for r in rows], 0.0)

    def _init_weights(self, module):
        """transformers' initialization, except layers marked ``zero_init`` (:class:`.space_decoder.FineAnchor`)."""
        super()._init_weights(module)
        if getattr(module, "zero_init", False):
            init.zeros_(module.weight)

    def _decode_one(self, hidden, ids, caption_mask, patches=None, return_cells=False):
        visual = self.model.frame_patch_states(hidden[ids == self.config.video_token_id])  # (frames, S, D)
        frames = visual.shape[0]
        queries = hidden[torch.isin(ids, self._query_ids(ids.device))]
        if queries.shape[0] != frames:
            raise ValueError(f"{queries.shape[0]} query tokens for {frames} frames of visual tokens")
        patches = None if patches is None else patches[:frames]
        out = self.space_decoder(visual, queries, hidden[caption_mask[: hidden.shape[0]]], patches, return_cells)
        return out if return_cells else (out, None)

    def point_time(self, last_hidden_state, input_ids) -> torch.Tensor:
        """Temporal pointer on the video queries: (B, L, D), (B, L) -> (B, N_v, 2) start/end logits (-inf pads);
        (B, N_v, 3) with the inside logit as third column when ``config.lambda_inside > 0``.

        Only the first ``num_frames`` query ids are video queries; an image's ``<r_{N_v}>`` is never pointed at.
        Frame i's end logit is read from the state one query later (see :mod:`.temporal_pointer`)."""
        video_ids = self._query_ids(input_ids.device)[: self.config.num_frames]
        rows = []
        for h, ids in zip(last_hidden_state, input_ids):
            pos = torch.isin(ids, video_ids).nonzero()[:, 0]
            rows.append(self.temporal_pointer(h[pos], h[next_positions(pos).clamp_max(h.shape[0] - 1)]))
        return stack_padded(rows, float("-inf"))

    def _query_ids(self, device) -> torch.Tensor:
        return torch.tensor(self.config.query_token_ids or [], dtype=torch.long, device=device)
