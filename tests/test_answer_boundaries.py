"""A generated time range names sampled frame times rounded to one decimal: the boundary frames stay in the tube."""

from __future__ import annotations

import numpy as np

from spacevllm.assets import default_checkpoint_path
from spacevllm.modeling.inference import forced_answer, ground, load_model
from spacevllm.video import sample_frames, write_video


def test_rounded_boundaries_keep_their_frames(tmp_path):
    # 6 fps: frame times 0, 0.167, 0.333, ... are never on the 0.1 s grid the answer text uses
    frames = np.random.default_rng(0).integers(0, 255, (16, 64, 64, 3), dtype=np.uint8)
    video = write_video(tmp_path / "v.mp4", frames, fps=6)
    times = sample_frames(video, 16).times
    start, end = times[4], times[10]  # 0.667 s and 1.667 s: the answer says 0.7 and 1.7
    model, processor = load_model(default_checkpoint_path(), time_source="text")
    answer = f"from {start:.1f} to {end:.1f} seconds"
    tube = ground(model, processor, str(video), "the object", num_frames=16, **forced_answer(processor, [answer]))
    assert tube.text.strip() == answer
    np.testing.assert_allclose(tube.times, times[4:11])
