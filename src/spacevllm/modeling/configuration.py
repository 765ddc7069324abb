"""SpaceVLLM configuration: a LLaVA-OneVision config plus the paper's queries, decoder and loss weights."""

from __future__ import annotations

import math

from huggingface_hub.dataclasses import strict
from transformers import LlavaOnevisionConfig

QUERY_MODES = ("interleaved", "appended", "none")
TIME_SOURCES = ("text", "pointer")
FRAME_POOL_MODES = (None, "bilinear", "average", "max")
NEWLINE_POSITIONS = ("one_token", "grid", "frame", "no_token")


def query_token(i: int) -> str:
    """The i-th spatio-temporal aware query token ``<r_i>`` (section 3.1.2)."""
    return f"<r_{i}>"


@strict
class SpaceVLLMConfig(LlavaOnevisionConfig):
    """LLaVA-OneVision (SigLIP + 2-layer MLP projector + Qwen2) extended with SpaceVLLM's parts.

    num_frames            N_v, sampled frames and video queries (paper: 64; Table 9 ablates 32/64/96).
    query_mode            "interleaved" (eq. 2, frame i's tokens then ``<r_i>``), "appended" (Table 7 "w/o
                          interleaved design": all queries after all frames) or "none" (Table 7 "w/o queries and
                          decoder": the time range and every box are generated as text).
    dual_cross_attention  eq. 3 on/off (Table 7 "w/o dual cross attention": the head reads the query directly).
    query_token_ids       ids of ``<r_0>..<r_{N_v}>`` (N_v + 1 tokens; the last one is the image query).
    lambda_time, lambda_space, lambda_l1, lambda_giou
                          eq. 5-6 loss weights; section 4.1 sets 1, 1, 3, 1.
    space_head_layers     depth of the eq. 4 MLP.
    pool_stride           spatial pooling of each frame's patch grid before the LLM: 2 is LLaVA-OneVision's 2x2
                          bilinear pooling (the paper's setting, 729 -> 196 tokens at 384/14); 1 keeps every patch;
                          4 (CPU scale) averages 4x4 patches, so that 4 px patches of a 64 px frame give the LLM the
                          same 16 tokens per frame as 16 px patches.
    frame_pool_mode       how that pooling is done (LLaVA-NeXT's ``mm_spatial_pool_mode``): None (default) keeps the
                          stride's own: bilinear for 2 (transformers' ``apply_pooling``), 4x4 averages keeping partial
                          blocks for 4; "bilinear" resizes the grid to ceil(side / stride); "average" / "max" are
                          ``avg_pool2d`` / ``max_pool2d`` with kernel = stride (floor: 27 -> 13 at stride 2), as
                          LLaVA-NeXT's ``get_2dPool``.
    newline_position      where the learned ``image_newline`` feature goes in a video (LLaVA-NeXT's
                          ``mm_newline_position``): "one_token" (default; transformers' LLaVA-OneVision: one after the
                          last frame), "grid" (one after every row of every frame), "frame" (one after every frame),
                          "no_token" (none). docs/checkpoints.md says which checkpoint was trained with which.

    CPU-scale deviations from the paper (all off for real checkpoints; on for the small world model trained from
    scratch; docs/training.md, "CPU-scale switches"), each a named piece of the code it changes:
    motion_input          each frame is fed with its difference to the previous frame (vision tower with 6 channels;
                          :func:`~.processing.motion_frames`).
    decoder_residual      eq. 3's first attention adds its input back, V'_eh = Q'_v + Attn(Q'_v, K_t, V_t)
                          (:func:`~.space_decoder.residual_text_enhancement`).
    box_anchor            the box centre is predicted relative to where the second attention points (the
                          attention-weighted centre of frame i's pooled patches), DETR reference-point style
                          (:func:`~.space_decoder.attended_centre`, :func:`~.space_decoder.anchored_box`).
    fine_anchor           (with box_anchor) the anchor is refined on frame i's patches before pooling, inside the
                          pooled cells the attention picked (:class:`~.space_decoder.FineAnchor`); for pooled cells
                          larger than the objects (4 px patches averaged 4x4 on 64 px frames). The backbone then
                          returns the unpooled patch features with the pooled ones (``get_video_features``).
    lambda_pointer        weight of the temporal pointer's loss (:mod:`.temporal_pointer`); 0 builds no pointer.
    lambda_cell           weight of the spatial pointer's loss (:func:`spacevllm.losses.cell_loss`): CE of eq. 3's
                          second attention over frame i's pooled cells at the cell holding the GT box centre; 0 =
                          the paper.
    lambda_inside         (with the pointer) weight of its per-frame inside-the-range term (:func:`spacevllm.losses.
                          inside_loss`); 0 builds no inside logit.
    time_source           "text" (the paper: the generated answer) or "pointer": where inference reads the range.
    The processor's ``text_first`` (:func:`~.processing.user_turn`) is the one prompt-side switch.
    """

    model_type = "spacevllm"
    num_frames: int = 64
    query_mode: str = "interleaved"
    dual_cross_attention: bool = True
    query_token_ids: list | None = None
    lambda_time: float = 1.0
    lambda_space: float = 1.0
    lambda_l1: float = 3.0
    lambda_giou: float = 1.0
    space_head_layers: int = 3
    pool_stride: int = 2
    frame_pool_mode: str | None = None
    newline_position: str = "one_token"
    motion_input: bool = False
    decoder_residual: bool = False
    box_anchor: bool = False
    fine_anchor: bool = False
    lambda_pointer: float = 0.0
    lambda_cell: float = 0.0
    lambda_inside: float = 0.0
    time_source: str = "text"

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.pool_stride not in (1, 2, 4):
            raise ValueError(f"pool_stride must be 1, 2 or 4, got {self.pool_stride!r}")
        if self.frame_pool_mode not in FRAME_POOL_MODES:
            raise ValueError(f"frame_pool_mode must be one of {FRAME_POOL_MODES}, got {self.frame_pool_mode!r}")
        if self.newline_position not in NEWLINE_POSITIONS:
            raise ValueError(f"newline_position must be one of {NEWLINE_POSITIONS}, got {self.newline_position!r}")
        if self.query_mode not in QUERY_MODES:
            raise ValueError(f"query_mode must be one of {QUERY_MODES}, got {self.query_mode!r}")
        if self.time_source not in TIME_SOURCES:
            raise ValueError(f"time_source must be one of {TIME_SOURCES}, got {self.time_source!r}")
        if self.lambda_pointer < 0 or (self.lambda_pointer > 0 and self.query_mode == "none"):
            raise ValueError("lambda_pointer must be >= 0, and 0 without queries (query_mode 'none')")
        if self.fine_anchor and not (self.box_anchor and self.dual_cross_attention and self.query_mode != "none"):
            raise ValueError("fine_anchor refines the box anchor: it needs box_anchor, dual_cross_attention, queries")
        second_attention = self.dual_cross_attention and self.query_mode != "none"
        if self.lambda_cell < 0 or (self.lambda_cell > 0 and not second_attention):
            raise ValueError("lambda_cell must be >= 0, and 0 without the dual cross attention's second attention")
        if self.lambda_inside < 0 or (self.lambda_inside > 0 and self.lambda_pointer <= 0):
            raise ValueError("lambda_inside must be >= 0, and 0 without the temporal pointer (lambda_pointer > 0)")
        if self.time_source == "pointer" and self.lambda_pointer <= 0:
            raise ValueError("time_source 'pointer' needs a trained pointer (lambda_pointer > 0)")

    @property
    def pooled_grid(self) -> int:
        """Side of the pooled patch grid: ceil(side / pool_stride) (LLaVA-OneVision: 27 -> 14), floor for the
        "average" / "max" pool modes (27 -> 13); side = image_size / patch_size."""
        side = self.vision_config.image_size // self.vision_config.patch_size
        if self.frame_pool_mode in ("average", "max"):
            return side // self.pool_stride
        return math.ceil(side / self.pool_stride)

    @property
    def tokens_per_frame(self) -> int:
        """S in eq. 1: visual (patch) tokens per frame after pooling (196 for SigLIP-384/14), newlines not counted."""
        return self.pooled_grid**2

    @property
    def frame_placeholders(self) -> int:
        """Placeholder tokens per frame in the LLM sequence: S, plus one newline per row ("grid") or per frame."""
        return frame_placeholders(self.tokens_per_frame, self.newline_position)

    @property
    def video_newlines(self) -> int:
        """Newline features after a video's last frame: 1 for "one_token", else 0."""
        return int(self.newline_position == "one_token")


def frame_placeholders(tokens_per_frame: int, newline_position: str) -> int:
    """Placeholders per frame for S = ``tokens_per_frame`` patch tokens (a square grid) in a layout."""
    extra = {"grid": math.isqrt(tokens_per_frame), "frame": 1}.get(newline_position, 0)
    return tokens_per_frame + extra
