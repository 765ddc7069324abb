"""Tiny random checkpoints, saved by transformers itself, for tests and for the from-scratch CPU model.

The tokenizer is built offline with the ``tokenizers`` library: byte-level BPE over a small corpus, digits split
one by one (as Qwen2 does), the Qwen2 chat tokens, ``<video>`` / ``<image>`` and (for SpaceVLLM) the query tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, PreTrainedTokenizerFast

from spacevllm.modeling.configuration import SpaceVLLMConfig, query_token
from spacevllm.modeling.modeling_spacevllm import SpaceVLLMForConditionalGeneration
from spacevllm.modeling.processing import SpaceVLLMProcessor

CHAT_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<video>", "<image>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
BASE_CORPUS = (
    "from to seconds the a an of in on at is which what who where when object shape that moves appears "
    "disappears find locate answer with time range video image frames lasts uniformly sampled located please "
    "following questions related this you are helpful assistant person man woman"
).split()


def build_tokenizer(words=None, vocab_size: int = 600) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on ``words`` + a base corpus; digits are single tokens; chat/video tokens special."""
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(  # show_progress: its bar writes blank lines to stdout (Rust) off a terminal
        vocab_size=vocab_size,
        special_tokens=CHAT_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = list(BASE_CORPUS) + list(words or []) + ["0123456789 . , : ; [ ] ( ) ? \" ' -"]
    tok.train_from_iterator([" ".join(corpus)] * 2, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_llava_config(
    tokenizer,
    image_size=32,
    patch_size=8,
    hidden=64,
    layers=2,
    heads=4,
    channels=3,
    vision_layers=None,
    initializer_range=0.02,
) -> dict:
    """Keyword arguments of a tiny LLaVA-OneVision config (SigLIP + Qwen2) matching ``tokenizer``.
    ``vision_layers`` (default ``layers``) is the SigLIP depth, ``layers`` the Qwen2 depth. ``initializer_range``
    is the std of the normal init of the LLM, projector and space head linears (transformers' default 0.02 suits
    wide models; a from-scratch model of width ``hidden`` may want ~1/sqrt(hidden))."""
    vision = dict(
        model_type="siglip_vision_model",
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers if vision_layers is None else vision_layers,
        num_attention_heads=heads,
        image_size=image_size,
        patch_size=patch_size,
        num_channels=channels,
        vision_use_head=False,
    )
    text = dict(
        model_type="qwen2",
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        initializer_range=initializer_range,
    )
    return dict(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        image_grid_pinpoints=[[image_size, image_size]],
    )


def build_tiny_checkpoint(
    out_dir,
    *,
    num_frames=4,
    image_size=32,
    patch_size=8,
    hidden=64,
    layers=2,
    heads=4,
    vision_layers=None,
    initializer_range=0.02,
    vocab_words=None,
    spacevllm=True,
    seed=0,
    **overrides,
) -> Path:
    """Save a tiny random checkpoint in ``out_dir``: SpaceVLLM (default) or plain LLaVA-OneVision (source for
    ``spacevllm convert``). ``overrides`` go to :class:`SpaceVLLMConfig` (query_mode, motion_input, pool_stride,
    ...), except ``text_first``, which goes to the processor. ``vision_layers`` (default ``layers``) sets the SigLIP
    depth apart from the LLM's."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(vocab_words)
    channels = 6 if overrides.get("motion_input") else 3
    text_first = overrides.pop("text_first", False)  # a processor setting, not a model one
    torch.manual_seed(seed)
    if not spacevllm:
        cfg = LlavaOnevisionConfig(**tiny_llava_config(tokenizer, image_size, patch_size, hidden, layers, heads))
        LlavaOnevisionForConditionalGeneration(cfg).save_pretrained(out)
        tokenizer.save_pretrained(out)
        meta = {"image_mean": [0.5] * 3, "image_std": [0.5] * 3, "size": {"height": image_size, "width": image_size}}
        (out / "preprocessor_config.json").write_text(json.dumps(meta), encoding="utf-8")
        return out
    tokenizer.add_special_tokens({"additional_special_tokens": [query_token(i) for i in range(num_frames + 1)]})
    ids = tokenizer.convert_tokens_to_ids([query_token(i) for i in range(num_frames + 1)])
    kw = tiny_llava_config(
        tokenizer, image_size, patch_size, hidden, layers, heads, channels, vision_layers, initializer_range
    )
    cfg = SpaceVLLMConfig(**kw, num_frames=num_frames, query_token_ids=ids, **overrides)
    SpaceVLLMForConditionalGeneration(cfg).save_pretrained(out)
    SpaceVLLMProcessor(
        tokenizer,
        num_frames,
        image_size,
        cfg.tokens_per_frame,
        cfg.query_mode,
        cfg.motion_input,
        text_first=text_first,
        newline_position=cfg.newline_position,
    ).save_pretrained(out)
    return out
