"""``spacevllm demo``: the tube printed, tube.json + annotated.mp4 + timeline.png written (tiny checkpoint and the
bundled default model), and the drawing helpers."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
from helpers import REAL_CLIP

from spacevllm import assets
from spacevllm.box_ops import elementwise_box_iou
from spacevllm.cli import main
from spacevllm.demo import box_at, write_annotated_video, write_timeline
from spacevllm.modeling.tiny import build_tiny_checkpoint
from spacevllm.video import probe_video, sample_frames, write_video


def _tube():
    times = np.arange(4, 12) / 5.0
    return types.SimpleNamespace(start=0.8, end=2.2, times=times, boxes=[[4.0, 6.0, 20.0, 30.0]] * 8)


def test_box_at_only_inside_the_range():
    tube = _tube()
    assert box_at(tube, 0.4) is None and box_at(tube, 2.6) is None
    assert box_at(tube, 1.0) == [4.0, 6.0, 20.0, 30.0]
    assert box_at(types.SimpleNamespace(start=None, end=None, times=[], boxes=[]), 1.0) is None


def test_annotated_video_draws_box_and_bar(tmp_path):
    frames = np.zeros((16, 32, 32, 3), np.uint8)
    out = write_annotated_video(tmp_path / "a.mp4", frames, 5.0, _tube(), 3.2)
    info = probe_video(out)
    assert info.num_frames == 16 and info.width == 256
    drawn = sample_frames(out, 16).frames.astype(int)
    red = (drawn[..., 0] > 150) & (drawn[..., 1] < 100)
    assert red[5].any() and not red[1].any()  # frame 5 (1.0 s) is inside the range, frame 1 is not
    write_timeline(tmp_path / "t.png", frames, 5.0, _tube(), 3.2, "the red square")
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def _check_outputs(out, capsys):
    text = capsys.readouterr().out
    assert "time range" in text or "no time range" in text
    tube = json.loads((out / "tube.json").read_text())
    assert set(tube) == {"start", "end", "text", "boxes"}
    assert probe_video(out / "annotated.mp4").num_frames > 0
    assert (out / "timeline.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(out.glob(".*.tmp"))


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), num_frames=4, image_size=32, patch_size=16)


def test_demo_with_tiny_checkpoint_on_own_video(tiny_checkpoint, tmp_path, capsys):
    frames = np.random.default_rng(0).integers(0, 255, (12, 32, 32, 3), dtype=np.uint8)
    video = write_video(tmp_path / "v.mp4", frames, 5.0)
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--checkpoint", str(tiny_checkpoint), "--video", str(video), "--query", "a"]
    assert main(args) == 0
    _check_outputs(out, capsys)


def test_demo_video_without_query_is_an_error(tiny_checkpoint, tmp_path, capsys):
    video = write_video(tmp_path / "v.mp4", np.zeros((8, 32, 32, 3), np.uint8), 5.0)
    assert main(["demo", "--checkpoint", str(tiny_checkpoint), "--video", str(video), "--out", str(tmp_path)]) == 2
    assert "--query" in capsys.readouterr().err


def test_demo_with_bundled_default_model(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    _check_outputs(tmp_path / "demo", capsys)


def test_bundled_default_model_grounds_the_sample(tmp_path):
    """The shipped model on its sample (a held-out seed-7 scene): the GT range and a box overlapping the GT box on
    every GT frame (mean IoU > 0.5). A regression check of the shipped weights, not a benchmark."""
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    tube = json.loads((tmp_path / "demo" / "tube.json").read_text())
    record = json.loads((assets.ASSETS / "sample" / "sample.json").read_text())["record"]
    assert (tube["start"], tube["end"]) == (record["start"], record["end"])
    pred = {b["frame"]: b["box"] for b in tube["boxes"]}
    frames = sorted(int(f) for f in record["boxes"])
    assert sorted(pred) == frames
    ious = elementwise_box_iou(np.array([pred[f] for f in frames]), np.array([record["boxes"][str(f)] for f in frames]))
    assert ious.min() > 0.2 and ious.mean() > 0.5, ious


@pytest.mark.parametrize("under_file", [False, True])
def test_demo_out_that_is_a_file_fails_before_grounding(tmp_path, capsys, under_file):
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    out = blocker / "demo" if under_file else blocker
    assert main(["demo", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out) in err and "Traceback" not in err
    assert blocker.read_text() == "not a folder"


# --- real clips, rotation, variable frame rate, bad input ----------------------------------------------------------


def test_demo_on_a_rotated_clip_draws_upright(default_model, tmp_path, capsys):
    """A 90-degree display matrix: the annotated video comes out in display orientation (taller than wide), the
    boxes in the displayed 144x256 frame, and its frames are the clip's frames turned."""
    from test_video import remux

    video = remux(REAL_CLIP, tmp_path / "rotated.mp4", rotation=90)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--video", str(video), "--query", "the rabbit"]) == 0
    _check_outputs(out, capsys)
    info = probe_video(out / "annotated.mp4")
    assert info.height > info.width and info.num_frames == 75
    tube = json.loads((out / "tube.json").read_text())
    assert all(b["box"][2] <= 144 and b["box"][3] <= 256 for b in tube["boxes"])


def test_demo_on_a_variable_frame_rate_clip(default_model, tmp_path, capsys):
    import av
    from test_video import encode_vfr

    with av.open(str(REAL_CLIP)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])[:30]
    times_ms = [0, 40, 80, 120, 160, 200, 240, 280, 320, 360] + [1000 + 100 * i for i in range(20)]
    video = encode_vfr(tmp_path / "vfr.mp4", frames, times_ms)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--video", str(video), "--query", "the rabbit"]) == 0
    _check_outputs(out, capsys)
    tube = json.loads((out / "tube.json").read_text())
    assert tube["boxes"]
    for row in tube["boxes"]:
        assert row["time"] == pytest.approx(times_ms[row["frame"]] / 1000, abs=1e-4)


def test_demo_uses_each_frames_time_when_drawing(tmp_path):
    """Variable frame rate: a frame is boxed when its own time is in the range, not when index / fps is."""
    frames = np.zeros((6, 32, 32, 3), np.uint8)
    times = np.array([0.0, 0.1, 0.2, 2.0, 2.1, 2.2])
    tube = types.SimpleNamespace(start=1.9, end=2.3, times=times[3:], boxes=[[4.0, 6.0, 20.0, 30.0]] * 3)
    out = write_annotated_video(tmp_path / "a.mp4", frames, 10.0, tube, 2.3, times=times)
    drawn = sample_frames(out, 6).frames.astype(int)
    red = ((drawn[..., 0] > 150) & (drawn[..., 1] < 100)).any(axis=(1, 2))
    assert red.tolist() == [False, False, False, True, True, True]


@pytest.mark.parametrize("threads", ["0", "-3"])
def test_demo_bad_threads(tmp_path, capsys, threads):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--threads", threads]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--threads must be at least 1" in err
    assert not (tmp_path / "demo").exists()


def test_demo_failure_while_writing_leaves_nothing(default_model, tmp_path, capsys, monkeypatch):
    import spacevllm.demo as drawing
    from spacevllm.errors import SpaceVLLMError

    def broken(*args, **kwargs):
        raise SpaceVLLMError("disk full (simulated)")

    monkeypatch.setattr(drawing, "write_timeline", broken)
    out = tmp_path / "nested" / "demo"
    assert main(["demo", "--out", str(out)]) == 2
    assert "disk full" in capsys.readouterr().err
    assert not out.exists() and not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))
