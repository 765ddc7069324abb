"""Atomic, resumable training checkpoints.

A checkpoint is a folder ``OUT/checkpoints/step-XXXXXXXX/`` holding

- ``model/``        the full model and processor (``save_pretrained``: safetensors, config, tokenizer files); under
                    ZeRO-3 the weights are gathered first (``accelerator.get_state_dict``), so it loads with
                    ``spacevllm.modeling.inference.load_model`` whatever the backend,
- ``state/``        accelerate's ``save_state``: optimizer, the LR scheduler, and every process's RNG states
                    (python, numpy, torch, CUDA); under DeepSpeed its own checkpoint of the engine (ZeRO shards of
                    each rank). Plain runs keep no second copy of the weights there (``model/`` holds them).
- ``state.json``    step, samples consumed, seconds of training up to the step (``train_s``), last logged losses
                    (human-readable).

Every process writes its part of ``state/`` into a staging folder; the main process then builds the checkpoint in
a temporary sibling folder and renames it into place (``os.replace`` is atomic on one file system), so a
``kill -9`` at any moment leaves either the previous checkpoints or the new one, never a half-written folder.
:func:`latest_checkpoint` ignores temporary folders. Checkpoints of older versions (``training.pt`` instead of
``state/``) still resume plain runs (:func:`load_training_state`).
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


def latest_checkpoint(out_dir: str | os.PathLike, run: str | None = None) -> Path | None:
    """The complete checkpoint with the highest step under ``OUT/checkpoints``, or None. With ``run`` (a run hash),
    only checkpoints of that run (or of an older version that recorded none) count."""
    return max(complete_checkpoints(out_dir, run), key=lambda p: int(p.name[len(PREFIX) :]), default=None)


def complete_checkpoints(out_dir: str | os.PathLike, run: str | None = None, strict: bool = False) -> list[Path]:
    """Complete checkpoints under ``OUT/checkpoints`` sorted by step; with ``run`` only those whose state.json
    names that run (``strict``: not those that name none either)."""
    root = Path(out_dir) / "checkpoints"
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / "state.json").is_file()]
    if run is not None:
        done = [p for p in done if _run_of(p) == run or (not strict and _run_of(p) is None)]
    return sorted(done, key=lambda p: int(p.name[len(PREFIX) :]))


def _run_of(ckpt: Path) -> str | None:
    try:
        return json.loads((ckpt / "state.json").read_text(encoding="utf-8")).get("run")
    except (OSError, ValueError, AttributeError):
        return None


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


def save_run_checkpoint(acc, out_dir, step: int, *, model, processor, samples_seen: int, extra=None) -> Path:
    """Write the checkpoint of ``step`` (collective: every process calls it); return its path.

    ``model`` is the prepared model; ``extra`` is merged into state.json.
    """
    final = checkpoint_dir(out_dir, step)
    staging = final.parent / f".{final.name}.state.tmp"
    state_dict = _full_state_dict(acc, model)
    if acc.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    acc.wait_for_everyone()
    acc.save_state(str(staging))
    acc.wait_for_everyone()
    if acc.is_main_process:
        with atomic_dir(final) as tmp:
            os.replace(staging, tmp / "state")
            _save_pretrained(acc, model, state_dict, processor, tmp / "model")
            state = {"step": step, "samples_seen": samples_seen, **(extra or {})}
            (tmp / "state.json").write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    acc.wait_for_everyone()
    return final


def save_model(acc, model, processor, folder) -> None:
    """Save the full model (gathered under ZeRO-3) and the processor into ``folder`` atomically (collective)."""
    state_dict = _full_state_dict(acc, model)
    if acc.is_main_process:
        with atomic_dir(folder) as tmp:
            _save_pretrained(acc, model, state_dict, processor, tmp)
    acc.wait_for_everyone()


def _full_state_dict(acc, model) -> dict | None:
    """The whole model's state dict on the main process (None elsewhere). Under ZeRO-3 every process takes part in
    gathering the shards (``accelerator.get_state_dict`` is collective there); otherwise only the main one copies."""
    plugin = acc.state.deepspeed_plugin
    if (plugin is not None and plugin.zero_stage == 3) or acc.is_main_process:
        return acc.get_state_dict(model)
    return None


def _save_pretrained(acc, model, state_dict, processor, folder: Path) -> None:
    acc.unwrap_model(model).save_pretrained(folder, state_dict=state_dict, safe_serialization=True)
    if processor is not None:
        processor.save_pretrained(folder)


def register_state(acc, scheduler) -> None:
    """Make accelerate's ``save_state`` / ``load_state`` cover the (unprepared) scheduler, and, outside DeepSpeed,
    skip the model weights (``model/`` holds them; the model is built from there on resume)."""
    acc.register_for_checkpointing(scheduler)
    if acc.state.deepspeed_plugin is None:
        acc.register_save_state_pre_hook(lambda models, weights, output_dir: weights.clear())
        acc.register_load_state_pre_hook(lambda models, input_dir: models.clear())


def has_accelerate_state(ckpt: str | os.PathLike) -> bool:
    """Whether a checkpoint holds accelerate's state (``state/``) rather than an older ``training.pt``."""
    return (Path(ckpt) / "state").is_dir()


def load_state(acc, ckpt: str | os.PathLike) -> None:
    """Restore optimizer, scheduler, RNG states (and under DeepSpeed the engine) from ``ckpt/state``."""
    acc.load_state(str(Path(ckpt) / "state"))


def read_state(ckpt: str | os.PathLike) -> dict:
    """A checkpoint's ``state.json``: step, samples_seen, train_s (absent in older checkpoints), losses, ..."""
    return json.loads((Path(ckpt) / "state.json").read_text(encoding="utf-8"))


def read_step(ckpt: str | os.PathLike) -> int:
    """The optimizer step a checkpoint was written at (its ``state.json``)."""
    return int(read_state(ckpt)["step"])


def save_checkpoint(out_dir, step: int, *, model, processor, optimizer, scheduler, samples_seen: int, extra=None):
    """Write the checkpoint of ``step`` in the single-process format of older versions (``training.pt`` instead of
    ``state/``; resume still reads it): atomically (temp folder + rename); return its path. Training writes
    :func:`save_run_checkpoint`.

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


def prune_checkpoints(out_dir, keep: int, run: str | None = None) -> None:
    """Delete all but the ``keep`` newest complete checkpoints (and stale temporary folders). With ``run`` (a run
    hash) only that run's checkpoints are counted and deleted: another run's are never touched."""
    root = Path(out_dir) / "checkpoints"
    if not root.is_dir() or keep < 1:
        return
    done = complete_checkpoints(out_dir, run, strict=run is not None)
    for p in done[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
    for p in root.glob(f".{PREFIX}*.tmp"):  # atomic_dir's temporary folders and save_checkpoint's staging
        shutil.rmtree(p, ignore_errors=True)
