"""A sweep of bad inputs to ``spacevllm ground`` and ``spacevllm demo``: each exits 2 with one line naming the file
or flag, no traceback, before any model loads, and leaves nothing behind in the folder it was pointed at."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from spacevllm.cli import main
from spacevllm.video import write_video

TINY_FRAMES = 4  # the tiny checkpoint's num_frames


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):

    from spacevllm.modeling.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), num_frames=TINY_FRAMES, image_size=32, patch_size=16)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """One file (or folder) per kind of bad input, plus a good video and a still image."""
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    files = {
        "video": write_video(d / "good.mp4", rng.integers(0, 255, (12, 24, 40, 3), dtype=np.uint8), 5.0),
        "one_frame": write_video(d / "one.mp4", np.zeros((1, 24, 40, 3), np.uint8), 5.0),
        "missing": d / "missing.mp4",
        "folder": d / "a_folder.mp4",
        "empty": d / "empty.mp4",
        "corrupt": d / "corrupt.mp4",
        "audio_only": _audio_only(d / "audio.m4a"),
        "image": d / "still.png",
    }
    files["folder"].mkdir()
    files["empty"].write_bytes(b"")
    files["corrupt"].write_bytes(bytes(rng.integers(0, 256, 4000, dtype=np.uint8)))
    from PIL import Image

    Image.fromarray(rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)).save(files["image"])
    return files


def _audio_only(path: Path) -> Path:
    """One second of a 440 Hz tone, AAC in MP4: a media file without a video stream."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        t = np.arange(16000) / 16000
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if any command loads a model: every check must come first."""
    import spacevllm.modeling.inference as inference

    monkeypatch.setattr(inference, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))


def _argv(command: str, checkpoint, video, query="the red square", extra=(), out=None) -> list[str]:
    argv = [command, "--checkpoint", str(checkpoint), "--video", str(video), "--query", query, *extra]
    return argv + ["--out", str(out)] if command == "demo" else argv


def _fails_cleanly(argv, capsys, workdir: Path, *needles) -> str:
    """Exit 2, one line on stderr naming each of ``needles``, nothing on stdout, ``workdir`` unchanged."""
    before = sorted(workdir.rglob("*"))
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1 and "Traceback" not in err and not captured.out, err
    assert err.startswith(f"spacevllm {argv[0]}: error: "), err
    for needle in needles:
        assert needle in err, err
    assert sorted(workdir.rglob("*")) == before, "the failed command left files behind"
    return err


FILE_CASES = [
    ("missing", "video file not found"),
    ("folder", "is a folder, not a video file"),
    ("empty", "not a readable video"),
    ("corrupt", "not a readable video"),
    ("audio_only", "no video stream"),
    ("one_frame", "it has 1 frame, fewer than the 4 asked for"),
]


@pytest.mark.parametrize("command", ["ground", "demo"])
@pytest.mark.parametrize("case, message", FILE_CASES)
def test_bad_video_files(command, case, message, checkpoint, inputs, tmp_path, capsys, no_model):
    argv = _argv(command, checkpoint, inputs[case], out=tmp_path / "out")
    _fails_cleanly(argv, capsys, tmp_path, inputs[case].name, message)


def test_demo_refuses_an_image(checkpoint, inputs, tmp_path, capsys, no_model):
    argv = _argv("demo", checkpoint, inputs["image"], out=tmp_path / "out")
    _fails_cleanly(argv, capsys, tmp_path, "still.png", "is an image", "spacevllm ground")


@pytest.mark.parametrize("command", ["ground", "demo"])
@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query(command, query, checkpoint, inputs, tmp_path, capsys, no_model):
    argv = _argv(command, checkpoint, inputs["video"], query=query, out=tmp_path / "out")
    _fails_cleanly(argv, capsys, tmp_path, "--query")


@pytest.mark.parametrize("frames", ["0", "-1", str(TINY_FRAMES + 1), "1000"])
def test_bad_frames(frames, checkpoint, inputs, tmp_path, capsys, no_model):
    argv = _argv("ground", checkpoint, inputs["video"], extra=("--frames", frames))
    _fails_cleanly(argv, capsys, tmp_path, "--frames must be 1 to 4", f"got {frames}")


@pytest.mark.parametrize("command", ["ground", "demo"])
@pytest.mark.parametrize("threads", ["0", "-1"])
def test_bad_threads(command, threads, checkpoint, inputs, tmp_path, capsys, no_model):
    argv = _argv(command, checkpoint, inputs["video"], extra=("--threads", threads), out=tmp_path / "out")
    _fails_cleanly(argv, capsys, tmp_path, "--threads must be at least 1")


@pytest.mark.parametrize("command", ["ground", "demo"])
def test_bad_checkpoint(command, inputs, tmp_path, capsys, no_model):
    a_file = tmp_path / "weights.safetensors"
    a_file.write_bytes(b"x")
    argv = _argv(command, a_file, inputs["video"], out=tmp_path / "out")
    _fails_cleanly(argv, capsys, tmp_path, "weights.safetensors", "is a file", "model folder")
    argv = _argv(command, tmp_path / "nope", inputs["video"], out=tmp_path / "out")
    _fails_cleanly(argv, capsys, tmp_path, "nope", "checkpoint folder not found")


@pytest.mark.parametrize("under", [False, True])
def test_demo_out_is_a_file(under, checkpoint, inputs, tmp_path, capsys, no_model):
    blocker = tmp_path / "taken"
    blocker.write_text("keep me")
    out = blocker / "demo" if under else blocker
    _fails_cleanly(_argv("demo", checkpoint, inputs["video"], out=out), capsys, tmp_path, str(out))
    assert blocker.read_text() == "keep me"


def test_ground_on_an_image_is_not_an_error(checkpoint, inputs, capsys):
    """The README's promise: an image goes to REC (one box), not to "video is too short"."""
    assert main(_argv("ground", checkpoint, inputs["image"], extra=("--json",))) == 0
    assert '"start": null' in capsys.readouterr().out


def test_library_refuses_more_frames_than_queries(checkpoint, inputs):
    from spacevllm.errors import SpaceVLLMError
    from spacevllm.modeling.inference import ground, load_model
    from spacevllm.video import sample_frames

    model, processor = load_model(checkpoint, device="cpu", dtype="float32")
    with pytest.raises(SpaceVLLMError, match="num_frames must be 1 to 4"):
        ground(model, processor, inputs["video"], "a", num_frames=TINY_FRAMES + 1)
    with pytest.raises(SpaceVLLMError, match="num_frames must be 1 to 4"):
        ground(model, processor, inputs["video"], "a", num_frames=0)
    with pytest.raises(SpaceVLLMError, match="the sampled frames must be 1 to 4"):
        ground(model, processor, sample_frames(inputs["video"], TINY_FRAMES + 1), "a")


def test_demo_refuses_a_video_too_large_to_decode_whole(checkpoint, inputs, tmp_path, capsys, no_model, monkeypatch):
    """The annotated video needs every frame decoded: 12 frames of 40x24 are 34,560 bytes; over the limit set."""
    import spacevllm.commands.demo as demo

    monkeypatch.setattr(demo, "MAX_DECODED_BYTES", 30_000)
    argv = _argv("demo", checkpoint, inputs["video"], out=tmp_path / "out")
    _fails_cleanly(argv, capsys, tmp_path, "good.mp4", "too long for the demo", "spacevllm ground")
