"""LLaVA-OneVision / LLaVA-Video checkpoint -> SpaceVLLM checkpoint.

Two source formats, told apart by config.json (docs/checkpoints.md): transformers' ``llava_onevision`` folder and
LLaVA-NeXT's own ``llava_qwen`` folder (LLaVA-Video-7B-Qwen2 is released so; :mod:`.convert_llava_next` maps its
names, config and video token layout).

Adds the N_v + 1 query tokens ``<r_0>..<r_Nv>`` (and, for LLaVA-NeXT, ``<image>`` / ``<video>``) to the tokenizer.
Their input and output embedding rows start at the mean of the rows of the source tokenizer's own tokens (rows
0..len(source tokenizer)-1; Qwen2's spare rows beyond them are never read), so the LLM's behaviour on old tokens
is untouched; the embeddings grow only when the new ids do not fit in the spare rows. Then the space head (eq. 4)
is initialised and model, tokenizer and processor files are saved.

Memory: transformers loads the source weights straight into the SpaceVLLM class (``from_pretrained`` with a key
map), in the source's own dtype, memory-mapped from its safetensors; nothing is initialised twice (only the new
parts: the space head, and ``image_newline`` for a LLaVA-NeXT layout that never uses it). The output is written in
that dtype. Peak RSS is about 1.25x the source's size on disk at 0.5B (benchmarks/RESULTS.md). The output folder
is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from spacevllm.errors import SpaceVLLMError
from spacevllm.io_utils import atomic_dir
from spacevllm.modeling import convert_llava_next as llava_next
from spacevllm.modeling.configuration import SpaceVLLMConfig, query_token

SOURCE_FORMATS = ("auto", "llava_onevision", "llava_qwen")
# transformers saves LlavaOnevisionForConditionalGeneration under its legacy names (its "llava_next" conversion
# mapping, reversed); the SpaceVLLM class has no registered mapping, so it reads them through this one.
LLAVA_ONEVISION_KEYS = {
    r"^language_model\.lm_head\.": "lm_head.",
    r"^language_model\.model\.": "model.language_model.",
    r"^vision_tower\.": "model.vision_tower.",
    r"^multi_modal_projector\.": "model.multi_modal_projector.",
    r"^image_newline": "model.image_newline",
}
NEW_PARTS = ("space_decoder.", "temporal_pointer.")


def detect_format(src: Path, raw: dict, requested: str = "auto") -> str:
    """The format ("llava_onevision" or "llava_qwen") of the checkpoint config ``raw``; ``requested`` wins."""
    if requested not in SOURCE_FORMATS:
        raise SpaceVLLMError(f"--source-format {requested}: must be one of {SOURCE_FORMATS}")
    if requested != "auto":
        return requested
    if raw.get("model_type") == "llava_onevision":
        return "llava_onevision"
    if llava_next.is_llava_next(raw):
        return "llava_qwen"
    raise SpaceVLLMError(
        f"{src}/config.json: model_type is {raw.get('model_type')!r}, expected 'llava_onevision' (transformers) "
        "or 'llava_qwen' (LLaVA-NeXT)"
    )


def _load_tokenizer(src: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(src)
    except (OSError, ValueError, TypeError) as err:
        raise SpaceVLLMError(f"{src}: cannot load the tokenizer ({str(err).splitlines()[0]})") from None


def _pixel_stats(src: Path) -> tuple[list, list]:
    """(image_mean, image_std) from the source's preprocessor config, SigLIP's 0.5 / 0.5 when absent."""
    path = src / "preprocessor_config.json"
    meta = llava_next.read_json(path) if path.is_file() else {}
    return meta.get("image_mean", [0.5] * 3), meta.get("image_std", [0.5] * 3)


def _onevision_kwargs(raw: dict) -> tuple[dict, dict, tuple]:
    """(SpaceVLLMConfig kwargs, key map, prefixes allowed to be missing) for a transformers llava_onevision config."""
    kwargs = {k: v for k, v in raw.items() if k not in ("model_type", "architectures", "transformers_version")}
    return kwargs, LLAVA_ONEVISION_KEYS, NEW_PARTS


def _llava_next_kwargs(src: Path, raw: dict, tokenizer) -> tuple[dict, dict, tuple]:
    """The same for a LLaVA-NeXT llava_qwen folder; adds ``<image>`` / ``<video>`` to ``tokenizer`` (LLaVA-NeXT
    marks images with a -200 id instead, so its tokenizer has no placeholder tokens)."""
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>", "<video>"]})
    image, video = tokenizer.convert_tokens_to_ids(["<image>", "<video>"])
    kwargs = llava_next.config_kwargs(src, raw, llava_next.weight_shapes(src), image, video)
    unused_newline = ("model.image_newline",) if kwargs["newline_position"] == "no_token" else ()
    return kwargs, llava_next.KEY_MAP, NEW_PARTS + unused_newline


def convert_checkpoint(
    src, out, num_frames: int = 64, query_mode: str = "interleaved", source_format: str = "auto", **overrides
):
    """Convert the LLaVA-OneVision / LLaVA-Video folder ``src`` (either format) into a SpaceVLLM folder ``out``.
    ``overrides`` go to :class:`SpaceVLLMConfig`."""
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise SpaceVLLMError(f"{src}: source checkpoint folder not found")
    if not (src / "config.json").is_file():
        raise SpaceVLLMError(f"{src}: not a checkpoint folder (no config.json)")
    raw = llava_next.read_json(src / "config.json")
    fmt = detect_format(src, raw, source_format)
    tokenizer = _load_tokenizer(src)
    n_source = len(tokenizer)  # the rows the source was trained with, before any token is added
    if fmt == "llava_qwen":
        kwargs, key_map, may_miss = _llava_next_kwargs(src, raw, tokenizer)
    else:
        kwargs, key_map, may_miss = _onevision_kwargs(raw)
    config = _spacevllm_config(src, kwargs | overrides, tokenizer, num_frames, query_mode)
    model = _load_weights(src, config, key_map, may_miss)
    set_new_token_rows(model, n_source, len(tokenizer))
    _save_atomically(model, _processor(src, tokenizer, config), out)
    return out


def _spacevllm_config(src: Path, kwargs: dict, tokenizer, num_frames: int, query_mode: str) -> SpaceVLLMConfig:
    """Adds the query tokens ``<r_0>..<r_{N_v}>`` to ``tokenizer`` and builds the config with their ids."""
    queries = [query_token(i) for i in range(num_frames + 1)]
    tokenizer.add_special_tokens({"additional_special_tokens": queries})
    ids = tokenizer.convert_tokens_to_ids(queries)
    try:
        return SpaceVLLMConfig(**kwargs, num_frames=num_frames, query_mode=query_mode, query_token_ids=ids)
    except (TypeError, ValueError) as err:
        raise SpaceVLLMError(f"{src}/config.json: no SpaceVLLM config from it ({str(err).splitlines()[0]})") from None


def _processor(src: Path, tokenizer, config: SpaceVLLMConfig):
    from spacevllm.modeling.processing import SpaceVLLMProcessor

    mean, std = _pixel_stats(src)
    return SpaceVLLMProcessor(
        tokenizer,
        config.num_frames,
        config.vision_config.image_size,
        config.tokens_per_frame,
        config.query_mode,
        config.motion_input,
        mean,
        std,
        newline_position=config.newline_position,
    )


def convert_llava_onevision(src, out, num_frames: int = 64, query_mode: str = "interleaved", **config_overrides):
    """Convert the LlavaOnevisionForConditionalGeneration folder ``src`` into a SpaceVLLM folder ``out``."""
    return convert_checkpoint(src, out, num_frames, query_mode, "llava_onevision", **config_overrides)


def _load_weights(src: Path, config: SpaceVLLMConfig, key_map: dict, may_miss: tuple):
    """SpaceVLLM model with the source's weights (renamed by ``key_map``) in their own dtype; only parameters under
    ``may_miss`` may be absent from the source (they get transformers' initialisation), nothing may be left over."""
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.utils import logging as hf_logging

    from spacevllm.modeling.modeling_spacevllm import SpaceVLLMForConditionalGeneration

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the expected "MISSING space_decoder.*" report is not news
    try:
        model, info = SpaceVLLMForConditionalGeneration.from_pretrained(
            src, config=config, dtype="auto", key_mapping=key_map, output_loading_info=True
        )
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise SpaceVLLMError(f"{src}: cannot load the source weights ({str(err).strip().splitlines()[0]})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = sorted(k for k in info["missing_keys"] if not k.startswith(may_miss))
    unexpected = sorted(info["unexpected_keys"])
    if missing or unexpected or info["mismatched_keys"]:
        raise SpaceVLLMError(
            f"{src}: weights do not match the architecture (missing {missing[:3]}, unexpected {unexpected[:3]}, "
            f"mismatched {sorted(info['mismatched_keys'])[:3]})"
        )
    # save_pretrained would write the source's names back (it reverts the mapping used to load); keep SpaceVLLM's
    model._weight_conversions = get_model_conversion_mapping(model)
    return model


def set_new_token_rows(model, n_source: int, n_tokens: int) -> None:
    """Rows ``n_source..n_tokens-1`` of the input and output embeddings = the mean of rows ``0..n_source-1`` (the
    source tokenizer's tokens). The embeddings grow to ``n_tokens`` rows only when they have fewer."""
    if model.get_input_embeddings().weight.shape[0] < n_tokens:
        model.resize_token_embeddings(n_tokens, mean_resizing=False)
    weights = {id(e.weight): e.weight for e in (model.get_input_embeddings(), model.get_output_embeddings())}
    with torch.no_grad():
        for weight in weights.values():  # one matrix when tied
            weight[n_source:n_tokens] = row_mean(weight, n_source).to(weight.dtype)


def row_mean(weight: torch.Tensor, n: int, chunk: int = 8192) -> torch.Tensor:
    """(D,) float64 mean of ``weight[:n]`` (rows, D), summed in chunks (no float copy of the whole matrix)."""
    total = torch.zeros(weight.shape[1], dtype=torch.float64)
    for start in range(0, n, chunk):
        total += weight[start : min(start + chunk, n)].sum(0, dtype=torch.float64)
    return total / n


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
