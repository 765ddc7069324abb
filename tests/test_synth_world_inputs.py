"""``spacevllm synth-world`` and the worlds training configs generate: sizes refused up front with a memory
estimate, a failed run's world.json never blocks the corrected command, killed runs' temporary files removed by the
next successful run, and a train config's ``data.world`` checked against the world already on disk."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import fails_with_one_line

from spacevllm.cli import main
from spacevllm.engine.train import check_world, load_config


@pytest.mark.parametrize("flag, value, gb", [("--frames", "100000", "32.0 GB"), ("--size", "100000", "12,517")])
def test_too_large_is_refused_up_front_with_the_memory_it_needs(flag, value, gb, tmp_path, capsys, monkeypatch):
    import spacevllm.io_utils as io_utils

    monkeypatch.setattr(io_utils, "available_memory", lambda: 8 * 2**30)
    out = tmp_path / "w"
    argv = ["synth-world", "--out", str(out), "--n", "1", "--seed", "0", flag, value, "--no-progress"]
    fails_with_one_line(argv, capsys, "needs about", gb, "8.0 GB available", "--frames", "--size")
    assert not out.exists()


def test_a_failed_runs_manifest_does_not_block_and_stale_temporaries_go(tmp_path, capsys):
    out = tmp_path / "w"
    (out / "videos").mkdir(parents=True)
    (out / "world.json").write_text(json.dumps({"format": 1, "frames": 100000, "fps": 5.0, "size": 64}))
    stale = out / "videos" / ".s0-000000.mp4.k1ll3d.tmp"
    stale.write_bytes(b"half a video")
    assert main(["synth-world", "--out", str(out), "--n", "1", "--seed", "0", "--no-progress", "--json"]) == 0
    assert not stale.exists()
    world = json.loads((out / "world.json").read_text())
    assert world["frames"] == 16 and world["records"] == {"n": 1, "seed": 0, "tasks": ["stvg", "vtg", "rec", "qa"]}
    # a world with media is still protected against other options
    fails_with_one_line(
        ["synth-world", "--out", str(out), "--n", "1", "--seed", "0", "--frames", "8"], capsys, "other options"
    )


def test_train_refuses_a_world_on_disk_that_is_not_data_world(tmp_path, capsys):
    world = tmp_path / "world"
    assert main(["synth-world", "--out", str(world), "--n", "1", "--seed", "0", "--no-progress", "--json"]) == 0
    cfg = yaml.safe_load(open("src/spacevllm/configs/train/tiny_ci.yaml"))
    cfg["data"] |= {"train": [str(world / "records.jsonl")], "world": {"n": 1, "seed": 12345}}
    cfg["out_dir"] = str(tmp_path / "run")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    capsys.readouterr()
    fails_with_one_line(
        ["train", "--config", str(path), "--no-progress"], capsys, "data.world", "seed 0, not 12345", "world.json"
    )
    assert not (tmp_path / "run").exists()
    cfg["data"]["world"] = {"n": 1, "seed": 0}
    path.write_text(yaml.safe_dump(cfg))
    check_world(load_config(path))  # the same world: accepted


def test_data_world_keys_are_checked(tmp_path, capsys):
    cfg = yaml.safe_load(open("src/spacevllm/configs/train/tiny_ci.yaml"))
    cfg["data"]["world"] = {"n": 8, "sed": 1}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    fails_with_one_line(["train", "--config", str(path)], capsys, "c.yaml", "data.world has unknown key 'sed'")
