"""``spacevllm train`` under ``accelerate launch`` with 2 CPU processes (gloo), in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spacevllm.engine.train import read_log


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_run(tmp_path):
    from spacevllm.data.world import generate_world

    world = generate_world(tmp_path / "world", n=4, seed=777)
    cfg = {
        "seed": 0,
        "out_dir": str(tmp_path / "run"),
        "precision": "no",
        "threads": 1,
        "log_every": 1,
        "save_every": 2,
        "model": {"tiny": {"num_frames": 4, "image_size": 32, "patch_size": 16, "hidden": 32, "layers": 1}},
        "data": {"train": [str(world)], "task_weights": {"stvg": 1, "vtg": 1}},
        "optim": {"lr": 1e-3, "max_steps": 3, "batch_size": 2, "grad_accum": 1},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    accelerate = Path(sys.executable).with_name("accelerate")
    # On a machine without GPUs, --multi_gpu makes accelerate start torchrun workers that use CPU + gloo. A free
    # port instead of torchrun's fixed 29500, so that two test runs on one machine do not collide.
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--main_process_port", str(_free_port()),
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "spacevllm.cli",
           "train", "--config", str(tmp_path / "c.yaml"), "--no-progress"]  # fmt: skip
    env = os.environ | {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_log(tmp_path / "run" / "log.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert (tmp_path / "run" / "final" / "config.json").is_file()
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step-00000002", "step-00000003"]
    assert proc.stdout.count("model saved to") == 2  # both ranks finish


def test_kill_9_then_resume_matches_straight_run(tmp_path):
    import signal
    import time

    from spacevllm.cli import main
    from spacevllm.data.world import generate_world

    world = generate_world(tmp_path / "world", n=4, seed=778)

    def config(name):
        cfg = {
            "seed": 0,
            "out_dir": str(tmp_path / name),
            "precision": "no",
            "threads": 1,
            "log_every": 1,
            "save_every": 2,
            "keep_checkpoints": 1,
            "model": {"tiny": {"num_frames": 4, "image_size": 32, "patch_size": 16, "hidden": 32, "layers": 1}},
            "data": {"train": [str(world)]},
            "optim": {"lr": 1e-3, "max_steps": 10, "batch_size": 2},
        }
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
        return str(tmp_path / f"{name}.yaml")

    cmd = [sys.executable, "-m", "spacevllm.cli", "train", "--config", config("killed"), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    ckpts = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 120
    while not (ckpts.is_dir() and any((p / "state.json").exists() for p in ckpts.iterdir())):
        assert proc.poll() is None and time.time() < deadline, "training ended before its first checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "final").exists()
    assert main(["train", "--config", config("killed"), "--no-progress", "--resume"]) == 0
    assert main(["train", "--config", config("straight"), "--no-progress"]) == 0
    a, b = read_log(tmp_path / "straight" / "log.jsonl"), read_log(tmp_path / "killed" / "log.jsonl")
    assert [r["step"] for r in b] == list(range(1, 11))
    assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=1e-6)
