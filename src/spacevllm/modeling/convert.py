"""LLaVA-OneVision / LLaVA-Video checkpoint -> SpaceVLLM checkpoint.

Adds the N_v + 1 query tokens ``<r_0>..<r_Nv>`` to the tokenizer, grows the input and output embeddings (new rows
start at the mean of the existing rows, so the LLM's behaviour on old tokens is untouched), copies every weight of
the source under the same names, initializes the space head (eq. 4) and saves model, tokenizer and processor
files. The output folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from spacevllm.errors import SpaceVLLMError
from spacevllm.io_utils import atomic_dir
from spacevllm.modeling.configuration import SpaceVLLMConfig, query_token


def _source_parts(src: Path):
    from transformers import AutoTokenizer, LlavaOnevisionForConditionalGeneration

    if not (src / "config.json").is_file():
        raise SpaceVLLMError(f"{src}: not a checkpoint folder (no config.json)")
    model_type = json.loads((src / "config.json").read_text(encoding="utf-8")).get("model_type")
    if model_type != "llava_onevision":
        raise SpaceVLLMError(f"{src}/config.json: model_type is {model_type!r}, expected 'llava_onevision'")
    try:
        model = LlavaOnevisionForConditionalGeneration.from_pretrained(src, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(src)
    except (OSError, ValueError) as err:
        raise SpaceVLLMError(f"{src}: cannot load the source checkpoint ({str(err).splitlines()[0]})") from None
    return model, tokenizer


def _pixel_stats(src: Path) -> tuple[list, list]:
    """(image_mean, image_std) from the source's preprocessor config, SigLIP's 0.5 / 0.5 when absent."""
    path = src / "preprocessor_config.json"
    meta = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return meta.get("image_mean", [0.5] * 3), meta.get("image_std", [0.5] * 3)


def convert_llava_onevision(src, out, num_frames: int = 64, query_mode: str = "interleaved", **config_overrides):
    """Convert the LlavaOnevisionForConditionalGeneration folder ``src`` into a SpaceVLLM folder ``out``."""
    from spacevllm.modeling.modeling_spacevllm import SpaceVLLMForConditionalGeneration
    from spacevllm.modeling.processing import SpaceVLLMProcessor

    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise SpaceVLLMError(f"{src}: source checkpoint folder not found")
    source, tokenizer = _source_parts(src)
    old_rows = source.get_input_embeddings().weight.shape[0]
    tokenizer.add_special_tokens({"additional_special_tokens": [query_token(i) for i in range(num_frames + 1)]})
    ids = tokenizer.convert_tokens_to_ids([query_token(i) for i in range(num_frames + 1)])
    raw = source.config.to_dict()
    for key in ("model_type", "architectures", "transformers_version"):
        raw.pop(key, None)
    config = SpaceVLLMConfig(
        **raw, num_frames=num_frames, query_mode=query_mode, query_token_ids=ids, **config_overrides
    )
    model = SpaceVLLMForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
    if unexpected or any(not k.startswith("space_decoder.") for k in missing):
        raise SpaceVLLMError(
            f"{src}: weights do not match the architecture (missing {missing}, unexpected {unexpected})"
        )
    _grow_embeddings(model, max(len(tokenizer), old_rows), old_rows)
    mean, std = _pixel_stats(src)
    processor = SpaceVLLMProcessor(
        tokenizer,
        num_frames,
        config.vision_config.image_size,
        config.tokens_per_frame,
        query_mode,
        config.motion_input,
        mean,
        std,
    )
    _save_atomically(model, processor, out)
    return out


def _grow_embeddings(model, rows: int, old_rows: int) -> None:
    """Resize input/output embeddings to ``rows``; new rows = mean of the old ones."""
    model.resize_token_embeddings(rows, mean_resizing=False)
    with torch.no_grad():
        for emb in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
            emb[old_rows:] = emb[:old_rows].mean(0, keepdim=True)


def _save_atomically(model, processor, out: Path) -> None:
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)


def refine_patch_grid(src, out, factor: int = 2, pool_stride: int | None = None):
    """SpaceVLLM folder ``src`` -> ``out`` with ``factor`` x finer patches (patch_size / factor, grid x factor).

    Progressive resizing (FixRes-style) for the CPU-scale world model: its 16 px patches (a 4x4 grid on 64 px
    frames) hold little sub-patch position (benchmarks/RESULTS.md), while the objects are ~7x12 px. The finer model
    starts from the coarse one's weights: the patch embedding's kernel is summed over ``factor`` x ``factor`` blocks,
    so each fine patch gets exactly the coarse model's embedding of that patch upsampled ``factor`` x (nearest);
    the position embeddings are resized on their grid (bicubic, as SigLIP's ``interpolate_pos_encoding``). Every
    other weight is per token and is copied. ``pool_stride`` (default: the source's) sets the pooling after the
    vision tower: with 1 the LLM sees ``factor``^2 x the tokens per frame and the box anchor (the reference point of
    the space head) moves on the finer grid; with 2 (LLaVA-OneVision's 2x2 pooling) a factor-2 model keeps the LLM's
    sequence, and the pooled token of each coarse cell averages four fine patches, each with its own position.
    """
    from spacevllm.modeling.inference import load_model
    from spacevllm.modeling.modeling_spacevllm import SpaceVLLMForConditionalGeneration

    coarse, processor = load_model(Path(src), device="cpu", dtype="float32")  # checks the folder, one-line errors
    vision = coarse.config.vision_config
    if factor < 2 or vision.patch_size % factor:
        raise SpaceVLLMError(f"--factor {factor}: must be >= 2 and divide the patch size {vision.patch_size}")
    raw = coarse.config.to_dict()
    raw["vision_config"]["patch_size"] = vision.patch_size // factor
    if pool_stride is not None:
        raw["pool_stride"] = pool_stride
    config = SpaceVLLMConfig.from_dict(raw)  # validated like any config (pool_stride 1, 2 or 4)
    fine = SpaceVLLMForConditionalGeneration(config)
    state = coarse.state_dict()
    prefix = "model.vision_tower.embeddings."
    state[prefix + "patch_embedding.weight"] = block_sum(state[prefix + "patch_embedding.weight"], factor)
    state[prefix + "position_embedding.weight"] = resize_grid(
        state[prefix + "position_embedding.weight"], vision.image_size // config.vision_config.patch_size
    )
    fine.load_state_dict(state)
    processor.tokens_per_frame = config.tokens_per_frame
    _save_atomically(fine, processor, Path(out))
    return Path(out)


def block_sum(kernel: torch.Tensor, factor: int) -> torch.Tensor:
    """(D, C, p, p) conv kernel -> (D, C, p/f, p/f): each output tap is the sum of an f x f block of taps."""
    d, c, p, _ = kernel.shape
    return kernel.reshape(d, c, p // factor, factor, p // factor, factor).sum(dim=(3, 5))


def resize_grid(table: torch.Tensor, side: int) -> torch.Tensor:
    """(G*G, D) row-major grid embeddings -> (side*side, D), bicubic on the grid."""
    g = math.isqrt(table.shape[0])
    grid = table.T.reshape(1, -1, g, g)
    grid = torch.nn.functional.interpolate(grid, size=(side, side), mode="bicubic", align_corners=False)
    return grid.reshape(table.shape[1], side * side).T.contiguous()
