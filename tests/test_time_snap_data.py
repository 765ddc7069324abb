"""Section 3.1.2 in the training data path: the answer text names the GT range snapped to the sampled frames'
seconds (spacevllm.data.dataset through the collator's labels); masks and evaluation keep the raw GT."""

from __future__ import annotations

import json

import numpy as np

from spacevllm.data.collate import Collator
from spacevllm.data.dataset import UniSTGDataset
from spacevllm.data.records import validate_record, write_records
from spacevllm.modeling import SpaceVLLMProcessor
from spacevllm.modeling.tiny import build_tiny_checkpoint
from spacevllm.time_ops import format_time_range
from spacevllm.video import write_video

W, H, T, FPS, N = 32, 24, 30, 10.0, 8
# N = 8 of 30 frames: linspace(0, 29, 8, dtype=int) = 0, 4, 8, 12, 16, 20, 24, 29 -> 0.0, 0.4, ..., 2.4, 2.9 s
TIMES = np.array([0, 4, 8, 12, 16, 20, 24, 29]) / FPS
START, END = 0.55, 2.15  # raw text "from 0.6 to 2.1"; nearest sampled times 0.4 s and 2.0 s


def _records(tmp_path, **fields):
    write_video(tmp_path / "v.mp4", np.zeros((T, H, W, 3), np.uint8), FPS)
    boxes = {str(f): [2.0, 2.0, 20.0, 20.0] for f in range(6, 22)}  # frames 0.6-2.1 s
    rec = {"id": "a", "task": "stvg", "video": "v.mp4", "duration": T / FPS, "fps": FPS, "width": W, "height": H,
           "query": "the red square", "start": START, "end": END, "boxes": boxes, "source": "world"}  # fmt: skip
    write_records(tmp_path / "r.jsonl", [validate_record(rec | fields)])
    return tmp_path / "r.jsonl"


def test_grounding_answers_use_the_snapped_seconds_and_masks_the_raw_range(tmp_path):
    item = UniSTGDataset(_records(tmp_path), num_frames=N)[0]
    np.testing.assert_allclose(item["times"], TIMES)
    assert item["answer"] == "from 0.4 to 2.0 seconds" != format_time_range(START, END)
    inside = [False, False, True, True, True, True, False, False]  # 0.8 .. 2.0 s lie in the raw [0.55, 2.15]
    assert item["time_mask"].tolist() == inside and item["box_mask"].tolist() == inside
    processor = SpaceVLLMProcessor.from_pretrained(build_tiny_checkpoint(tmp_path / "m", num_frames=N))
    batch = Collator(processor)([item])
    labels = batch["labels"][0][batch["labels"][0] != -100]
    assert processor.tokenizer.decode(labels) == "from 0.4 to 2.0 seconds<|im_end|>"


def test_canonical_answers_are_snapped_other_answers_kept(tmp_path):
    raw = format_time_range(START, END)  # what the world generator and the mixture write into records
    assert UniSTGDataset(_records(tmp_path, answer=raw, task="vtg"), num_frames=N)[0]["answer"] == (
        "from 0.4 to 2.0 seconds"
    )
    own = "it happens from 0.6 to 2.1 seconds"
    assert UniSTGDataset(_records(tmp_path, answer=own), num_frames=N)[0]["answer"] == own
    coords = UniSTGDataset(_records(tmp_path), num_frames=N, text_coords=True)[0]["answer"]
    assert coords.startswith("from 0.4 to 2.0 seconds. 0.80s: ")


def test_every_sampled_frame_keeps_the_raw_range(tmp_path):
    item = UniSTGDataset(_records(tmp_path, start=0.6, end=2.1), num_frames=T)[0]  # all 30 frames sampled
    assert item["answer"] == "from 0.6 to 2.1 seconds"
    assert json.loads((tmp_path / "r.jsonl").read_text())["start"] == 0.6  # the record file is not rewritten
