"""The Python API (``spacevllm.load`` / ``Model.ground``): the same numbers as ``spacevllm ground --json``, a typed
result that draws itself, REC on an image, one-line errors, and ``import spacevllm`` importing no torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import spacevllm
from spacevllm.api import Grounding
from spacevllm.assets import sample_info, sample_video_path
from spacevllm.cli import main
from spacevllm.errors import SpaceVLLMError
from spacevllm.video import probe_video

QUERY = sample_info()["query"]


@pytest.fixture(scope="module")
def model():
    return spacevllm.load(threads=2)


def _cli(capsys, video, query, frames) -> dict:
    assert main(["ground", "--video", str(video), "--query", query, "--frames", str(frames), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_import_spacevllm_imports_no_torch():
    code = "import sys, spacevllm; print('numpy' in sys.modules); spacevllm.load; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]  # nothing heavy on import; no torch until a model is loaded


def test_ground_matches_the_cli(model, capsys):
    tube = model.ground(sample_video_path(), QUERY, frames=12)
    assert isinstance(tube, Grounding) and tube.query == QUERY
    assert tube.to_json() == _cli(capsys, sample_video_path(), QUERY, 12)
    assert tube.start <= tube.times[0] and tube.times[-1] <= tube.end and len(tube.boxes) == len(tube.frames)


def test_draw_writes_the_annotated_video_and_the_timeline(model, tmp_path):
    tube = model.ground(str(sample_video_path()), QUERY, frames=8)
    video = tube.draw(tmp_path / "a.mp4")
    src, out = probe_video(sample_video_path()), probe_video(video)
    assert out.num_frames == src.num_frames and out.height > src.height  # every frame, with the range bar
    assert tube.draw(tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_ground_on_an_image_is_rec(model, tmp_path, capsys):
    image = tmp_path / "shapes.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(image)
    result = model.ground(image, "the red square")
    assert result.image and result.start is None and len(result.boxes) == 1
    assert result.to_json() == _cli(capsys, image, "the red square", 16)
    drawn = Image.open(result.draw(tmp_path / "box.png"))
    assert drawn.size == (64, 48)


@pytest.mark.parametrize(
    ("video", "query", "frames", "message"),
    [
        ("missing.mp4", "x", None, "missing.mp4: video file not found"),
        (None, "  ", None, "query is empty"),
        (None, QUERY, 0, "frames must be 1 to 16"),
        (None, QUERY, 17, "frames must be 1 to 16"),
    ],
)
def test_bad_input_is_one_line(model, tmp_path, video, query, frames, message):
    video = tmp_path / video if video else sample_video_path()
    with pytest.raises(SpaceVLLMError, match=message):
        model.ground(video, query, frames=frames)


def test_load_names_a_bad_folder(tmp_path):
    with pytest.raises(SpaceVLLMError, match="checkpoint folder not found"):
        spacevllm.load(tmp_path / "nope")
