"""``spacevllm evaluate run``: world STVG scoring over sampled frames, resumable predictions, ``--json`` schema."""

from __future__ import annotations

import pytest

from spacevllm.engine.evaluate_run import score_stvg, stvg_sample
from spacevllm.records import Record

FPS = 5.0
BOX = [10.0, 10.0, 30.0, 30.0]


def _record(start=0.4, end=1.0):
    boxes = {str(f): BOX for f in range(16)}
    return Record(id="a", task="stvg", query="q", fps=FPS, start=start, end=end, boxes=boxes, duration=3.2)


def _row(frames, box=BOX, sampled=range(0, 16, 2)):
    return {"id": "a", "sampled_frames": list(sampled), "fps": FPS, "boxes": [{"frame": f, "box": box} for f in frames]}


def test_perfect_prediction_scores_one():
    # sampled frames 0,2,..,14 at 0.0,0.4,..,2.8 s; GT [0.4, 1.0] s -> sampled frames 2 and 4
    assert stvg_sample(_record(), _row([2, 4])) == (1.0, 1.0)


def test_partial_overlap_and_box_iou():
    half = [10.0, 10.0, 20.0, 30.0]  # IoU 0.5 with BOX
    t, v = stvg_sample(_record(), _row([4, 6], box=half))  # P={4,6}, G={2,4}: inter {4}, union {2,4,6}
    assert t == pytest.approx(1 / 3) and v == pytest.approx(0.5 / 3)


def test_missing_prediction_is_a_miss_and_counts():
    other = Record(id="b", task="stvg", query="q", fps=FPS, start=0.4, end=1.0, boxes={"2": BOX}, duration=3.2)
    scores = score_stvg([_record(), other], {"a": _row([2, 4])})
    assert scores["n"] == 2 and scores["m_vIoU"] == 0.5 and scores["m_tIoU"] == 0.5
    scores = score_stvg([_record()], {})
    assert scores == {"m_tIoU": 0.0, "m_vIoU": 0.0, "vIoU@0.3": 0.0, "vIoU@0.5": 0.0, "n": 1}


def test_viou_thresholds_are_strict():
    half = [10.0, 10.0, 20.0, 30.0]
    scores = score_stvg([_record(0.4, 0.4)], {"a": _row([2], box=half, sampled=[2])})  # vIoU exactly 0.5
    assert scores["m_vIoU"] == pytest.approx(0.5) and scores["vIoU@0.5"] == 0.0 and scores["vIoU@0.3"] == 1.0
