"""Tiny random open-set detectors saved by transformers itself: the Annotator's real detector path without a download.

:func:`build_tiny_grounding_dino` writes a ``GroundingDinoForObjectDetection`` (Swin backbone with 1-block stages,
1-layer BERT text encoder, 2 encoder / decoder layers, ``num_queries`` queries; about 160K parameters) with a
``GroundingDinoProcessor`` (a ``BertTokenizerFast`` over a written WordPiece vocabulary + the image processor at
``image_size`` px). :func:`build_tiny_owl` writes an OWL-ViT (``"owlvit"``) or OWLv2 (``"owlv2"``) detector with a
``CLIPTokenizer`` over a written BPE vocabulary / merges. Weights are random, so scores are arbitrary: these
checkpoints test mechanics (loading through the Auto classes, pre/post-processing, box coordinates), not quality.

Both return the checkpoint folder, loadable by :class:`~spacevllm.data.unistg.annotator.ZeroShotDetector`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers
from transformers import (
    BertConfig,
    BertTokenizerFast,
    GroundingDinoConfig,
    GroundingDinoForObjectDetection,
    GroundingDinoProcessor,
    SwinConfig,
)

DEFAULT_WORDS = (
    "person",
    "man",
    "woman",
    "dog",
    "cat",
    "ball",
    "cup",
    "box",
    "circle",
    "square",
    "triangle",
    "red",
    "green",
    "blue",
    "yellow",
    "a",
    "the",
    "photo",
    "of",
    "small",
    "big",
    "object",
)
BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def build_tiny_grounding_dino(
    path: str | Path, words=DEFAULT_WORDS, image_size: int = 128, num_queries: int = 10, seed: int = 0
) -> Path:
    """Save a random tiny Grounding-DINO + processor in ``path``; returns ``path``.

    The vocabulary is ``words`` (lower-cased, whole-word WordPiece tokens), ``"."`` and BERT's special tokens; any
    other word tokenizes to ``[UNK]``. Images are resized to a shorter edge of ``image_size`` px (longer edge at most
    twice that).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = _unique([*BERT_SPECIALS, ".", *(w.lower() for w in words)])
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(str(path / "vocab.txt"), do_lower_case=True)
    (path / "vocab.txt").unlink()  # the fast tokenizer saves its own tokenizer.json
    backbone = SwinConfig(
        image_size=image_size,
        patch_size=4,
        embed_dim=8,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 1, 1],
        window_size=4,
        out_features=["stage2", "stage3", "stage4"],
    )
    text = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    # d_model: a multiple of 32 (GroupNorm(32)); decoder_layers >= 2 (the shared box heads are tied across layers)
    config = GroundingDinoConfig(
        backbone_config=backbone,
        text_config=text,
        num_queries=num_queries,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_feature_levels=4,
        encoder_n_points=2,
        decoder_n_points=2,
        max_text_len=32,
        use_timm_backbone=False,
        use_pretrained_backbone=False,
    )
    torch.manual_seed(seed)
    GroundingDinoForObjectDetection(config).save_pretrained(path)
    size = {"shortest_edge": image_size, "longest_edge": 2 * image_size}  # the extra level must stay > 1x1
    GroundingDinoProcessor(
        image_processor=_image_processor("GroundingDino", size=size), tokenizer=tokenizer
    ).save_pretrained(path)
    return path


def build_tiny_owl(
    path: str | Path, version: str = "owlvit", words=DEFAULT_WORDS, image_size: int = 32, seed: int = 0
) -> Path:
    """Save a random tiny OWL-ViT (``version="owlvit"``) or OWLv2 (``"owlv2"``) detector + processor in ``path``.

    The CLIP BPE vocabulary spells every one of ``words`` as one token (merges built letter by letter). Id 0 is
    ``"!"`` (CLIP's padding), never the start token: OWL masks out a text query whose first id is 0.
    OWLv2's image processor needs scipy or torchvision at run time (not to build the checkpoint).
    """
    if version not in ("owlvit", "owlv2"):
        raise ValueError(f"version must be 'owlvit' or 'owlv2', got {version!r}")
    prefix = {"owlvit": "OwlViT", "owlv2": "Owlv2"}[version]
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab, merges = _clip_bpe(_unique(w.lower() for w in words))
    (path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (path / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    tokenizer = transformers.CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt"), pad_token="!")
    text = dict(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=16,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    vision = dict(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=8,
    )
    config = getattr(transformers, f"{prefix}Config")(text_config=text, vision_config=vision, projection_dim=16)
    torch.manual_seed(seed)
    getattr(transformers, f"{prefix}ForObjectDetection")(config).save_pretrained(path)
    square = {"height": image_size, "width": image_size}
    extra = {"crop_size": square} if version == "owlvit" else {}
    image_processor = _image_processor(prefix, size=square, **extra)
    getattr(transformers, f"{prefix}Processor")(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(
        path
    )
    for name in ("vocab.json", "merges.txt"):
        if (path / name).is_file() and (path / "tokenizer.json").is_file():
            (path / name).unlink()
    return path


def _image_processor(prefix: str, **kwargs):
    """The PIL image processor when transformers has one (no torchvision needed), else the default class."""
    cls = getattr(transformers, f"{prefix}ImageProcessorPil", None) or getattr(transformers, f"{prefix}ImageProcessor")
    return cls(**kwargs)


def _clip_bpe(words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP-style BPE vocabulary ``{token: id}`` and merges that spell each word as one ``word</w>`` token."""
    vocab: dict[str, int] = {"!": 0, "<|startoftext|>": 1, "<|endoftext|>": 2}
    merges: list[tuple[str, str]] = []
    for c in sorted(set("".join(words))):
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    for w in words:
        parts = [*w[:-1], w[-1] + "</w>"]
        while len(parts) > 1:
            pair = (parts[0], parts[1])
            if pair not in merges:
                merges.append(pair)
            parts = [pair[0] + pair[1], *parts[2:]]
            vocab.setdefault(parts[0], len(vocab))
    return vocab, merges


def _unique(items) -> list[str]:
    return list(dict.fromkeys(items))
