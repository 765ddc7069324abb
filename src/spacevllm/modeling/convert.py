"""LLaVA-OneVision / LLaVA-Video checkpoint -> SpaceVLLM checkpoint.

Adds the N_v + 1 query tokens ``<r_0>..<r_Nv>`` to the tokenizer, grows the input and output embeddings (new rows
start at the mean of the existing rows, so the LLM's behaviour on old tokens is untouched), copies every weight of
the source under the same names, initializes the space head (eq. 4) and saves model, tokenizer and processor
files. The output folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
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
