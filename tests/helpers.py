"""Helpers shared by several test modules (pytest puts this folder on sys.path: ``from helpers import ...``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

from spacevllm.cli import main

REPO = Path(__file__).resolve().parents[1]
# 75 frames at 25 fps, 256x144 (source and licence: tests/data/README.md)
REAL_CLIP = Path(__file__).resolve().parent / "data" / "bigbuckbunny_256x144.mp4"


def fails_with_one_line(argv, capsys, *needles) -> str:
    """Run the CLI in-process; assert exit code 2, exactly one line on stderr, no traceback, every needle in it."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def load_benchmark(name: str):
    """``benchmarks/<name>.py`` as a module, registered in ``sys.modules`` under ``name`` (its dataclasses and
    pickling need that)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def tiny_video_model(tmp_path, frames: int = 4, **overrides):
    """(model, processor) of a tiny random SpaceVLLM on 32 px frames with 8 px patches; ``overrides`` go to
    :func:`spacevllm.modeling.tiny.build_tiny_checkpoint` (lambda_pointer, lambda_cell, ...)."""
    from spacevllm.modeling import SpaceVLLMForConditionalGeneration, SpaceVLLMProcessor
    from spacevllm.modeling.tiny import build_tiny_checkpoint

    ckpt = build_tiny_checkpoint(tmp_path / "ckpt", num_frames=frames, image_size=32, patch_size=8, **overrides)
    return SpaceVLLMForConditionalGeneration.from_pretrained(ckpt), SpaceVLLMProcessor.from_pretrained(ckpt)


def tiny_video_batch(processor, frames: int = 4) -> dict:
    """Two random videos of ``frames`` frames with STVG answers; target boxes all (0.5, 0.5, 0.5, 0.5) cxcywh, frames
    1 and 2 inside the range (``box_mask`` = ``time_mask``)."""
    videos = [np.random.default_rng(i).integers(0, 255, (frames, 32, 32, 3), dtype=np.uint8) for i in range(2)]
    out = processor(
        videos=videos, times=[np.arange(frames) * 0.2] * 2, durations=[frames * 0.2] * 2,
        queries=["the red square", "a circle"], answers=["from 0.2 to 0.4 seconds"] * 2, padding_side="right",
    )  # fmt: skip
    out["target_boxes"] = torch.full((2, frames, 4), 0.5)
    inside = [False, True, True] + [False] * (frames - 3)
    out["box_mask"] = out["time_mask"] = torch.tensor([inside] * 2)
    return out
