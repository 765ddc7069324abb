"""Atomic, resumable training checkpoints.

A checkpoint is a folder ``OUT/checkpoints/step-XXXXXXXX/`` holding

- ``model/``        the model and processor (``save_pretrained``: safetensors, config, tokenizer files),
- ``training.pt``   optimizer, scheduler, the sampler position (samples consumed), and RNG states
                    (python, numpy, torch CPU, CUDA when present) of the saving process,
- ``state.json``    step, samples consumed, last logged losses (human-readable).

It is written into a temporary sibling folder and renamed into place (``os.replace`` is atomic on one
file system), so a ``kill -9`` at any moment leaves either the previous checkpoints or the new one,
never a half-written folder. :func:`latest_checkpoint` ignores temporary folders.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from spacevllm.io_utils import atomic_dir

PREFIX = "step-"


def checkpoint_dir(out_dir: str | os.PathLike, step: int) -> Path:
    """``OUT/checkpoints/step-XXXXXXXX`` for optimizer step ``step``."""
    return Path(out_dir) / "checkpoints" / f"{PREFIX}{step:08d}"


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The complete checkpoint with the highest step under ``OUT/checkpoints``, or None."""
    root = Path(out_dir) / "checkpoints"
    if not root.is_dir():
        return None
    done = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / "state.json").is_file()]
    return max(done, key=lambda p: int(p.name[len(PREFIX) :]), default=None)


def rng_state() -> dict:
    """RNG states of python, numpy, torch (and CUDA when available)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = {
        "name": name,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }  # plain types: loadable with weights_only
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(out_dir, step: int, *, model, processor, optimizer, scheduler, samples_seen: int, extra=None):
    """Write the checkpoint of ``step`` atomically (temp folder + rename); return its path.

    ``model`` must be the unwrapped model (``accelerator.unwrap_model``); ``extra`` is merged into state.json.
    """
    final = checkpoint_dir(out_dir, step)
    with atomic_dir(final) as tmp:
        model.save_pretrained(tmp / "model", safe_serialization=True)
        if processor is not None:
            processor.save_pretrained(tmp / "model")
        training = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state()}
        torch.save(training | {"samples_seen": samples_seen, "step": step}, tmp / "training.pt")
        state = {"step": step, "samples_seen": samples_seen, **(extra or {})}
        (tmp / "state.json").write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    return final


def load_training_state(ckpt: str | os.PathLike) -> dict:
    """The ``training.pt`` dict of a checkpoint: optimizer, scheduler, rng, samples_seen, step."""
    return torch.load(Path(ckpt) / "training.pt", map_location="cpu", weights_only=True)


def prune_checkpoints(out_dir, keep: int) -> None:
    """Delete all but the ``keep`` newest complete checkpoints (and stale temporary folders)."""
    root = Path(out_dir) / "checkpoints"
    if not root.is_dir() or keep < 1:
        return
    done = sorted(p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / "state.json").is_file())
    for p in done[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
    for p in root.glob(f".{PREFIX}*.tmp"):
        shutil.rmtree(p, ignore_errors=True)
