"""``spacevllm ground``: the printed tube, the ``--json`` schema, and every error path (exit 2, one line)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from spacevllm.cli import main
from spacevllm.modeling.tiny import build_tiny_checkpoint
from spacevllm.video import write_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    frames = np.random.default_rng(0).integers(0, 255, (10, 24, 40, 3), dtype=np.uint8)
    return write_video(tmp_path_factory.mktemp("video") / "v.mp4", frames, 5.0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), num_frames=4, image_size=32, patch_size=16)


def _fails(argv, capsys, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("spacevllm ground: error: ")
    for needle in needles:
        assert needle in err, err
    return err


def test_empty_query(video, tmp_path, capsys):
    _fails(["ground", "--checkpoint", str(tmp_path), "--video", str(video), "--query", "  "], capsys, "--query")


def test_missing_and_corrupt_video(tmp_path, capsys):
    _fails(
        ["ground", "--checkpoint", str(tmp_path), "--video", str(tmp_path / "no.mp4"), "--query", "a"], capsys, "no.mp4"
    )
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x01 definitely not a video" * 10)
    _fails(["ground", "--checkpoint", str(tmp_path), "--video", str(bad), "--query", "a"], capsys, "bad.mp4")


def test_bad_frames_value(video, tmp_path, capsys):
    _fails(["ground", "--checkpoint", str(tmp_path), "--video", str(video), "--query", "a", "--frames", "0"], capsys)


def test_missing_checkpoint_folder_and_config(video, tmp_path, capsys):
    base = ["ground", "--video", str(video), "--query", "a", "--checkpoint"]
    _fails(base + [str(tmp_path / "nope")], capsys, "nope", "not found")
    _fails(base + [str(tmp_path)], capsys, "no config.json")


def test_corrupt_config_and_wrong_model_type(video, tmp_path, capsys):
    base = ["ground", "--video", str(video), "--query", "a", "--checkpoint", str(tmp_path)]
    (tmp_path / "config.json").write_text("{not json")
    _fails(base, capsys, "config.json", "not a valid config")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava_onevision"}))
    _fails(base, capsys, "spacevllm convert")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "spacevllm"}))
    _fails(base, capsys, "no weights")


def test_default_model_missing_is_one_line(video, capsys, monkeypatch, tmp_path):
    from spacevllm import assets

    monkeypatch.setattr(assets, "ASSETS", tmp_path)  # a package without the bundled model
    _fails(["ground", "--video", str(video), "--query", "a"], capsys, "--checkpoint")


# --- with a tiny random checkpoint -------------------------------------------------------------------------------


def test_corrupt_weights(checkpoint, video, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    _fails(["ground", "--checkpoint", str(broken), "--video", str(video), "--query", "a"], capsys, "cannot load")


def test_video_too_short_for_the_frames(checkpoint, video, capsys):
    args = ["ground", "--checkpoint", str(checkpoint), "--video", str(video), "--query", "a", "--frames", "50"]
    _fails(args, capsys, "v.mp4")


def test_json_schema(checkpoint, video, capsys):
    args = ["ground", "--checkpoint", str(checkpoint), "--video", str(video), "--query", "the red square", "--json"]
    assert main(args + ["--device", "cpu", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    obj = json.loads(out)
    assert set(obj) == {"start", "end", "text", "boxes"} and isinstance(obj["text"], str)
    assert (obj["start"] is None) == (obj["end"] is None)
    for row in obj["boxes"]:
        assert set(row) == {"frame", "time", "box"} and len(row["box"]) == 4
        assert obj["start"] - 1e-6 <= row["time"] <= obj["end"] + 1e-6


def test_prints_the_tube(checkpoint, video, capsys):
    assert main(["ground", "--checkpoint", str(checkpoint), "--video", str(video), "--query", "a"]) == 0
    out = capsys.readouterr().out
    assert "time range" in out or "no time range" in out
