"""LLaVA-NeXT's own ``llava_qwen`` checkpoint format -> the parts of a SpaceVLLM conversion.

lmms-lab/LLaVA-Video-7B-Qwen2 (and LLaVA-OneVision's original releases) are saved by LLaVA-NeXT's
``LlavaQwenForCausalLM`` (llava/model/language_model/llava_qwen.py): ``config.json`` is a Qwen2 config with
``model_type: "llava_qwen"`` plus ``mm_*`` fields, and the weights keep LLaVA-NeXT's module names:

    model.embed_tokens / model.layers.N / model.norm       Qwen2 (LlavaQwenModel is a Qwen2Model)
    lm_head                                                 absent when tied (0.5B)
    model.vision_tower.vision_tower.vision_model.*          SigLIP (multimodal_encoder/siglip_encoder.py)
    model.mm_projector.0 / .2                               the "mlp2x_gelu" projector (Linear, GELU, Linear)
    model.image_newline                                     only with "unpad" in mm_patch_merge_type

This module gives the key map onto SpaceVLLM's (= transformers' LLaVA-OneVision) names, the config map and the
video token layout the checkpoint was trained with (:func:`video_layout`; docs/checkpoints.md says why).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from spacevllm.errors import SpaceVLLMError
from spacevllm.modeling.configuration import NEWLINE_POSITIONS

KEY_MAP = {
    r"^model\.vision_tower\.vision_tower\.vision_model\.": "model.vision_tower.",
    r"^model\.mm_projector\.0\.": "model.multi_modal_projector.linear_1.",
    r"^model\.mm_projector\.2\.": "model.multi_modal_projector.linear_2.",
    r"^model\.image_newline": "model.image_newline",
    r"^model\.embed_tokens\.": "model.language_model.embed_tokens.",
    r"^model\.layers\.": "model.language_model.layers.",
    r"^model\.norm\.": "model.language_model.norm.",
}
VISION = "model.vision_tower.vision_tower.vision_model."
# LLaVA-NeXT builds the SigLIP tower from a fixed SigLipVisionConfig() (so400m: 16 heads, tanh GELU, eps 1e-6) and
# deletes its last layer; the head count is not visible in the weights, the other sizes are read from them.
SIGLIP_FIXED = dict(num_attention_heads=16, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6, vision_use_head=False)
QWEN2_FIELDS = (
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "hidden_act", "max_position_embeddings", "initializer_range", "rms_norm_eps", "rope_theta", "use_sliding_window",
    "sliding_window", "max_window_layers", "attention_dropout", "tie_word_embeddings", "bos_token_id", "eos_token_id",
)  # fmt: skip
POOL_MODES = ("bilinear", "average", "max")


def is_llava_next(raw: dict) -> bool:
    """Whether a config.json dict is LLaVA-NeXT's Qwen2 format."""
    return raw.get("model_type") == "llava_qwen" or "LlavaQwenForCausalLM" in (raw.get("architectures") or [])


def weight_shapes(src: Path) -> dict[str, list[int]]:
    """{name: shape} of every tensor in the folder's safetensors files, read from their headers only."""
    from safetensors import safe_open

    files = sorted(src.glob("*.safetensors"))
    index = src / "model.safetensors.index.json"
    if index.is_file():
        listed = sorted(set(read_json(index).get("weight_map", {}).values()))
        files = [src / name for name in listed]
        if absent := [p.name for p in files if not p.is_file()]:
            raise SpaceVLLMError(f"{index}: shard {absent[0]} not found")
    if not files:
        raise SpaceVLLMError(f"{src}: no *.safetensors weights")
    shapes = {}
    for path in files:
        try:
            with safe_open(path, framework="pt") as f:
                shapes |= {k: f.get_slice(k).get_shape() for k in f.keys()}
        except Exception as err:  # safetensors raises its own error types
            raise SpaceVLLMError(f"{path}: not a readable safetensors file ({err})") from None
    return shapes


def config_kwargs(src: Path, raw: dict, shapes: dict, image_token: int, video_token: int) -> dict:
    """Keyword arguments of a :class:`SpaceVLLMConfig` (without the query fields) for the ``llava_qwen`` config
    ``raw`` of ``src`` whose tensors have ``shapes``; ``image_token`` / ``video_token``: the placeholder ids."""
    where = f"{src / 'config.json'}"
    if raw.get("mm_projector_type", "linear") != "mlp2x_gelu":
        raise SpaceVLLMError(f"{where}: mm_projector_type {raw.get('mm_projector_type')!r} (only 'mlp2x_gelu')")
    if "siglip" not in str(raw.get("mm_vision_tower", "")):
        raise SpaceVLLMError(f"{where}: mm_vision_tower {raw.get('mm_vision_tower')!r} is not a SigLIP tower")
    vision = vision_config(src, shapes)
    if raw.get("mm_hidden_size", vision["hidden_size"]) != vision["hidden_size"]:
        raise SpaceVLLMError(f"{where}: mm_hidden_size {raw['mm_hidden_size']} != the SigLIP weights' width")
    text = {k: raw[k] for k in QWEN2_FIELDS if k in raw}
    text |= {"model_type": "qwen2", "vocab_size": _shape(src, shapes, "model.embed_tokens.weight")[0]}
    tied = bool(raw.get("tie_word_embeddings", False))
    out = dict(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token,
        video_token_index=video_token,
        vision_feature_layer=-1,  # the output of the tower's last kept layer, before post_layernorm
        vision_feature_select_strategy="full",  # SigLIP has no CLS token: all patches
        projector_hidden_act="gelu",
        multimodal_projector_bias=True,
        tie_word_embeddings=tied,
        image_grid_pinpoints=[[vision["image_size"]] * 2],  # SpaceVLLM feeds images as one-frame videos
        **video_layout(raw, where),
    )
    dtype = raw.get("torch_dtype", raw.get("dtype"))
    return out | ({"dtype": dtype} if dtype else {})


def vision_config(src: Path, shapes: dict) -> dict:
    """SigLIP config dict: sizes from the weights, the rest from LLaVA-NeXT's fixed SigLipVisionConfig."""
    width, channels, patch, _ = _shape(src, shapes, VISION + "embeddings.patch_embedding.weight")
    positions = _shape(src, shapes, VISION + "embeddings.position_embedding.weight")[0]
    layers = {int(m.group(1)) for k in shapes if (m := re.match(re.escape(VISION) + r"encoder\.layers\.(\d+)\.", k))}
    if width % SIGLIP_FIXED["num_attention_heads"]:
        raise SpaceVLLMError(f"{src}: SigLIP width {width} is not divisible by its 16 heads")
    return dict(
        model_type="siglip_vision_model",
        hidden_size=width,
        intermediate_size=_shape(src, shapes, VISION + "encoder.layers.0.mlp.fc1.weight")[0],
        num_hidden_layers=len(layers),
        image_size=math.isqrt(positions) * patch,
        patch_size=patch,
        num_channels=channels,
        **SIGLIP_FIXED,
    )


def video_layout(raw: dict, where: str) -> dict:
    """SpaceVLLMConfig layout fields reproducing LLaVA-NeXT's video path (llava_arch.py,
    ``prepare_inputs_labels_for_multimodal``) for config ``raw``: each frame is pooled by ``get_2dPool`` with its
    default stride 2 in ``mm_spatial_pool_mode`` (``mm_spatial_pool_stride`` is read only by ``encode_multimodals``,
    which that function does not call), then newlines go where ``mm_newline_position`` says when
    ``mm_patch_merge_type`` is "spatial*" ("one_token" adds its one only with "unpad"); "flat" adds none."""
    if raw.get("add_faster_video"):
        raise SpaceVLLMError(f"{where}: add_faster_video is true; its slow/fast frame layout is not supported")
    mode = raw.get("mm_spatial_pool_mode", "bilinear")  # llava/train/train.py's default
    if mode not in POOL_MODES:
        raise SpaceVLLMError(f"{where}: mm_spatial_pool_mode {mode!r} is not one of {POOL_MODES}")
    merge = str(raw.get("mm_patch_merge_type", "flat"))
    position = raw.get("mm_newline_position", "one_token")  # llava_arch.py's getattr default
    if position not in NEWLINE_POSITIONS:
        raise SpaceVLLMError(f"{where}: mm_newline_position {position!r} is not one of {NEWLINE_POSITIONS}")
    if not merge.startswith("spatial") or (position == "one_token" and "unpad" not in merge):
        position = "no_token"
    return dict(pool_stride=2, frame_pool_mode=mode, newline_position=position)


def read_json(path: Path) -> dict:
    """A JSON object file (config.json, an index) as a dict, or a one-line error naming the file."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SpaceVLLMError(f"{path}: not a valid JSON file ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise SpaceVLLMError(f"{path}: not a valid JSON file (not a JSON object)")
    return raw


def _shape(src: Path, shapes: dict, key: str) -> list[int]:
    if key not in shapes:
        raise SpaceVLLMError(f"{src}: weight {key} not found (not a LLaVA-NeXT llava_qwen checkpoint?)")
    return shapes[key]
