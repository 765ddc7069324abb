"""``spacevllm train --deepspeed zero2|zero3`` on this CPU (DeepSpeed's CPU accelerator, gloo): accumulation gives the
big-batch loss curve, ZeRO-3 saves full weights that load, and a stopped run resumes onto the straight run's
losses; the DeepSpeed runs match the plain run step for step. Plus the same under ``accelerate launch`` with 2
processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (pip install --no-build-isolation deepspeed)")

from spacevllm.cli import main  # noqa: E402
from spacevllm.engine.train import read_log  # noqa: E402

TINY = {"num_frames": 4, "image_size": 32, "patch_size": 16, "hidden": 32, "layers": 1}
MIXTURE = {"stvg": 2, "vtg": 1, "rec": 1}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from spacevllm.data.world import generate_world

    return generate_world(tmp_path_factory.mktemp("world"), n=6, seed=4242)


def config(tmp_path, world, name, steps=4, tasks=None, **optim):
    cfg = {
        "seed": 0,
        "out_dir": str(tmp_path / name),
        "precision": "no",
        "log_every": 1,
        "save_every": 2,
        "model": {"tiny": TINY},
        "data": {"train": [str(world)], "task_weights": tasks or MIXTURE},
        "optim": {"lr": 3e-3, "warmup_ratio": 0.1, "max_steps": steps, "batch_size": 2, "grad_accum": 2}
        | {"parts": {"vision_tower": {"lr": 1e-3}}}  # two AdamW groups, as the recipe has
        | optim,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def train(cfg, *args):
    assert main(["train", "--config", cfg, "--no-progress", *args]) == 0


def weights(folder):
    from spacevllm.modeling.inference import load_model

    model, _ = load_model(folder, device="cpu")
    return model.state_dict()


def assert_same_curve(a, b, rel=1e-5):
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        for key in ("loss", "loss_time", "loss_space", "grad_norm", "lr"):
            assert ra[key] == pytest.approx(rb[key], rel=rel, abs=1e-7), (ra["step"], key)


@pytest.fixture(scope="module")
def plain(world, tmp_path_factory):
    """The plain run (no DeepSpeed) every DeepSpeed run must reproduce."""
    tmp = tmp_path_factory.mktemp("plain")
    train(config(tmp, world, "plain"))
    return tmp / "plain"


@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_stopped_and_resumed_deepspeed_run_is_the_plain_run(world, plain, tmp_path, stage, capsys):
    cfg = config(tmp_path, world, "ds")
    train(cfg, "--deepspeed", stage, "--stop-after", "2")
    out = capsys.readouterr().out
    assert f"DeepSpeed ZeRO-{stage[-1]}" in out and "global batch 4 = 1 processes x 2 micro-batch x 2" in out
    assert not (tmp_path / "ds" / "final").exists()
    assert main(["train", "--config", cfg, "--no-progress", "--resume"]) == 2  # ZeRO shards: not a plain resume
    assert f"written by a {stage} run of 1 processes, resumed as plain" in capsys.readouterr().err
    train(cfg, "--deepspeed", stage, "--resume")
    assert_same_curve(read_log(tmp_path / "ds" / "log.jsonl"), read_log(plain / "log.jsonl"))
    # full weights (ZeRO-3 gathers them) in final/ and in the last checkpoint, equal to the plain run's
    final, reference = weights(tmp_path / "ds" / "final"), weights(plain / "final")
    checkpoint = weights(tmp_path / "ds" / "checkpoints" / "step-00000004" / "model")
    assert final.keys() == reference.keys()
    for name, tensor in reference.items():
        assert final[name].shape == tensor.shape and final[name].numel() > 0, name
        torch.testing.assert_close(final[name], tensor, rtol=1e-4, atol=1e-5, msg=name)
        assert torch.equal(checkpoint[name], final[name]), name


@pytest.mark.parametrize("backend", ["plain", "zero2", "zero3"])
def test_accumulation_gives_the_big_batch_curve(world, tmp_path, backend):
    """(micro-batch 2, accumulation 2) = (4, 1): same samples per step, max_steps optimizer steps, same losses and
    gradient norms. REC only: its loss is a mean over boxes (one per sample), so micro-batch means average exactly
    to the big batch's mean."""
    big = config(tmp_path, world, "big", steps=3, tasks={"rec": 1}, batch_size=4, grad_accum=1)
    train(big)
    small = config(tmp_path, world, "small", steps=3, tasks={"rec": 1}, batch_size=2, grad_accum=2)
    train(small, *([] if backend == "plain" else ["--deepspeed", backend]))
    a, b = read_log(tmp_path / "big" / "log.jsonl"), read_log(tmp_path / "small" / "log.jsonl")
    assert [r["step"] for r in b] == [1, 2, 3]
    assert len({r["loss"] for r in a}) == 3  # the model moves: equal curves are not three copies of one number
    assert_same_curve(a, b, rel=1e-5)


def test_bad_deepspeed_flag_is_one_line_error(world, tmp_path, capsys, monkeypatch):
    cfg = config(tmp_path, world, "bad")
    assert main(["train", "--config", cfg, "--deepspeed", "zero4", "--no-progress"]) == 2
    assert "zero4" in capsys.readouterr().err
    ds = tmp_path / "ds.json"
    ds.write_text('{"zero_optimization": {"stage": 2}, "gradient_accumulation_steps": 8}')
    assert main(["train", "--config", cfg, "--deepspeed", str(ds), "--no-progress"]) == 2
    assert "gradient_accumulation_steps is 8 but the train config's optim.grad_accum is 2" in capsys.readouterr().err
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")  # accelerate launch --use_deepspeed, no config file
    assert main(["train", "--config", cfg, "--no-progress"]) == 2
    assert "pass --deepspeed zero2|zero3|JSON" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_zero3_run(world, tmp_path):
    """The documented multi-GPU launch at tiny scale: ``accelerate launch --multi_gpu --num_processes 2 -m
    spacevllm.cli train --config ... --deepspeed zero3`` (on this CPU: torchrun workers, gloo, DeepSpeed's CPU
    accelerator)."""
    cfg = config(tmp_path, world, "run", steps=3)
    raw = yaml.safe_load(Path(cfg).read_text()) | {"threads": 1}
    Path(cfg).write_text(yaml.safe_dump(raw))
    accelerate = Path(sys.executable).with_name("accelerate")
    # docs/training-at-scale.md's 8-GPU line with 2 processes, a tiny config, a free port (two test runs on one
    # machine must not collide on the default 29500) and no progress bar
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", str(_free_port()),
           "-m", "spacevllm.cli", "train", "--config", cfg, "--deepspeed", "zero3", "--no-progress"]  # fmt: skip
    env = os.environ | {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "global batch 8 = 2 processes x 2 micro-batch x 2 accumulation (DeepSpeed ZeRO-3)" in proc.stdout
    assert proc.stdout.count("model saved to") == 2  # both ranks finish
    assert [r["step"] for r in read_log(tmp_path / "run" / "log.jsonl")] == [1, 2, 3]
    final, checkpoint = (
        weights(tmp_path / "run" / "final"),
        weights(tmp_path / "run" / "checkpoints" / "step-00000003" / "model"),
    )
    init = weights(tmp_path / "run" / "init")
    assert all(final[n].shape == t.shape and torch.equal(checkpoint[n], final[n]) for n, t in init.items())
    assert not torch.equal(final["lm_head.weight"], init["lm_head.weight"])  # trained, gathered from both ranks
