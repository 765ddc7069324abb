"""``spacevllm ground``: the printed tube, the ``--json`` schema, and every error path (exit 2, one line)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import av
import numpy as np
import pytest
from helpers import REAL_CLIP

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


def test_video_too_short_for_the_frames(checkpoint, tmp_path, capsys):
    short = write_video(tmp_path / "short.mp4", np.zeros((3, 24, 40, 3), np.uint8), 5.0)
    args = ["ground", "--checkpoint", str(checkpoint), "--video", str(short), "--query", "a"]
    _fails(args + ["--frames", "4"], capsys, "short.mp4", "it has 3 frames, fewer than the 4")
    _fails(args, capsys, "short.mp4", "pass --frames 3 or fewer")  # the model's 4 by default
    one = write_video(tmp_path / "one.mp4", np.zeros((1, 24, 40, 3), np.uint8), 5.0)
    _fails(["ground", "--checkpoint", str(checkpoint), "--video", str(one), "--query", "a"], capsys, "it has 1 frame,")


@pytest.mark.parametrize("frames", ["5", "6", "0", "-1"])
def test_frames_outside_the_model_range_fail_before_loading(checkpoint, video, capsys, monkeypatch, frames):
    """The tiny model has 4 video queries: 1..4 are valid; the check comes before the model loads."""
    import spacevllm.modeling.inference as inference

    monkeypatch.setattr(inference, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    args = ["ground", "--checkpoint", str(checkpoint), "--video", str(video), "--query", "a", "--frames", frames]
    _fails(args, capsys, f"--frames must be 1 to 4 (this model's num_frames), got {frames}")


@pytest.mark.parametrize("frames", [1, 4])
def test_every_accepted_frames_value_works(checkpoint, video, capsys, frames):
    args = ["ground", "--checkpoint", str(checkpoint), "--video", str(video), "--query", "a", "--json"]
    assert main(args + ["--frames", str(frames)]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert len(obj["boxes"]) <= frames


@pytest.mark.parametrize("threads", ["0", "-1"])
def test_bad_threads(checkpoint, video, capsys, threads):
    args = ["ground", "--checkpoint", str(checkpoint), "--video", str(video), "--query", "a", "--threads", threads]
    _fails(args, capsys, "--threads must be at least 1")


def test_checkpoint_that_is_a_file_or_video_that_is_a_folder(checkpoint, video, tmp_path, capsys):
    _fails(["ground", "--checkpoint", str(video), "--video", str(video), "--query", "a"], capsys, "is a file")
    args = ["ground", "--checkpoint", str(checkpoint), "--video", str(tmp_path), "--query", "a"]
    _fails(args, capsys, "is a folder, not a video file")


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


# --- images: referring expression comprehension ------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_image_runs_rec(checkpoint, tmp_path, capsys, suffix):
    from PIL import Image

    path = tmp_path / f"still.{suffix}"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 50, 3), dtype=np.uint8)).save(path)
    args = ["ground", "--checkpoint", str(checkpoint), "--video", str(path), "--query", "the red square"]
    assert main(args + ["--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["start"] is None and obj["end"] is None and len(obj["boxes"]) == 1
    x1, y1, x2, y2 = obj["boxes"][0]["box"]
    assert 0 <= x1 <= x2 <= 50 and 0 <= y1 <= y2 <= 30
    assert main(args) == 0
    assert "no time range" in capsys.readouterr().out


def test_image_box_is_in_the_displayed_orientation(checkpoint, tmp_path, capsys):
    """A JPEG stored 50x30 with EXIF orientation 6 (turn 90 degrees clockwise) displays 30 wide, 50 high."""
    from PIL import Image

    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 50, 3), dtype=np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(tmp_path / "phone.jpg", exif=exif)
    args = ["ground", "--checkpoint", str(checkpoint), "--video", str(tmp_path / "phone.jpg"), "--query", "a"]
    assert main(args + ["--json"]) == 0
    x1, y1, x2, y2 = json.loads(capsys.readouterr().out)["boxes"][0]["box"]
    assert x2 <= 30 and y2 <= 50 and (x2 - x1) * (y2 - y1) > 0


# --- the embedded default model on a real clip, and its variable-frame-rate and rotated versions ----------------


def _ground_json(capsys, video, *extra) -> dict:
    assert main(["ground", "--video", str(video), "--query", "the rabbit", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_default_model_frames_range(default_model, capsys):
    for frames in ("17", "18"):
        args = ["ground", "--video", str(REAL_CLIP), "--query", "the rabbit", "--frames", frames]
        _fails(args, capsys, "--frames must be 1 to 16")
    obj = _ground_json(capsys, REAL_CLIP, "--frames", "1")
    assert obj["start"] == obj["end"] == 0.0 and [b["frame"] for b in obj["boxes"]] == [0]


def test_default_model_on_a_real_clip(default_model, capsys):
    obj = _ground_json(capsys, REAL_CLIP)
    sampled = set(np.linspace(0, 74, 16, dtype=int).tolist())
    assert 0 <= obj["start"] <= obj["end"] <= 3.0 and obj["boxes"]
    for row in obj["boxes"]:
        assert row["frame"] in sampled and row["time"] == round(row["frame"] / 25, 4)
        x1, y1, x2, y2 = row["box"]
        assert 0 <= x1 <= x2 <= 256 and 0 <= y1 <= y2 <= 144


def test_default_model_on_a_variable_frame_rate_clip(default_model, tmp_path, capsys):
    """The clip's frames re-timed irregularly: every reported time is that frame's own timestamp."""
    from test_video import encode_vfr

    with av.open(str(REAL_CLIP)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    steps = np.random.default_rng(0).choice([20, 40, 120], size=len(frames) - 1)
    times_ms = np.concatenate([[0], np.cumsum(steps)])
    obj = _ground_json(capsys, encode_vfr(tmp_path / "vfr.mp4", frames, times_ms.tolist()))
    assert obj["boxes"]
    for row in obj["boxes"]:
        assert row["time"] == pytest.approx(times_ms[row["frame"]] / 1000, abs=1e-4)
    sampled_times = {round(times_ms[i] / 1000, 4) for i in np.linspace(0, 74, 16, dtype=int)}
    assert obj["start"] in sampled_times and obj["end"] in sampled_times  # the pointer picks sampled frames


def test_default_model_on_a_rotated_clip(default_model, tmp_path, capsys):
    """The clip with a 90-degree display matrix grounds exactly as the same frames turned upright would: boxes in
    the displayed 144x256 frame."""
    from test_video import remux

    from spacevllm.modeling.inference import ground, load_model
    from spacevllm.video import SampledFrames, sample_frames

    obj = _ground_json(capsys, remux(REAL_CLIP, tmp_path / "rotated.mp4", rotation=90))
    plain = sample_frames(REAL_CLIP, 16)
    upright = SampledFrames(
        np.ascontiguousarray(np.rot90(plain.frames, 1, axes=(1, 2))),
        plain.times,
        plain.indices,
        replace(plain.info, width=144, height=256),
    )
    model, processor = load_model(default_model, device="cpu", dtype="float32")
    expected = ground(model, processor, upright, "the rabbit").to_json(time_digits=4, box_digits=2)
    assert obj == expected
    assert all(b["box"][2] <= 144 and b["box"][3] <= 256 for b in obj["boxes"])


def test_printed_json_rounds_times_and_boxes(default_model, tmp_path, capsys):
    """At 30000/1001 fps frame 39 is at 1.3013 s, which a float prints as 1.3013000000000001."""
    import re
    from fractions import Fraction

    from spacevllm.video import sample_frames

    path = write_video(tmp_path / "ntsc.mp4", sample_frames(REAL_CLIP, 75).frames[:40], Fraction(30000, 1001))
    assert main(["ground", "--video", str(path), "--query", "the rabbit", "--json"]) == 0
    out = capsys.readouterr().out
    obj = json.loads(out)
    assert obj["boxes"] and not re.search(r"\d\.\d{5,}", out), out
    assert all(row["time"] == round(row["frame"] * 1001 / 30000, 4) for row in obj["boxes"])
