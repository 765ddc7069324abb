"""The Annotator's real detector path: tiny random Grounding-DINO / OWL checkpoints saved by transformers itself.

Random weights give arbitrary scores, so these tests check mechanics: loading through the Auto classes, pixel xyxy
boxes inside the frame, the score threshold, and ``spacevllm unistg run`` end to end on a tiny world.
"""

import json

import numpy as np
import pytest

from spacevllm.cli import main
from spacevllm.data.unistg.annotator import ZeroShotDetector
from spacevllm.data.unistg.tiny_detector import build_tiny_grounding_dino, build_tiny_owl
from spacevllm.errors import SpaceVLLMError


@pytest.fixture(scope="module")
def dino_dir(tmp_path_factory):
    return build_tiny_grounding_dino(tmp_path_factory.mktemp("dino") / "ckpt")


def _frames(n=3, h=48, w=80):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def _check_boxes(found, frames, threshold):
    assert len(found) == len(frames)
    for dets, frame in zip(found, frames):
        h, w = frame.shape[:2]
        scores = [d.score for d in dets]
        assert scores == sorted(scores, reverse=True)  # best first
        for d in dets:
            x1, y1, x2, y2 = d.box
            assert 0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h  # pixel xyxy inside the frame
            assert threshold <= d.score <= 1


def test_grounding_dino_boxes_are_pixel_xyxy_and_thresholded(dino_dir):
    frames = _frames()
    everything = ZeroShotDetector(str(dino_dir), box_threshold=0.0, batch_size=2)
    assert everything.kind == "grounding-dino"
    found = everything.detect(frames, "red circle")
    _check_boxes(found, frames, 0.0)
    assert all(len(d) > 0 for d in found)  # threshold 0 keeps every query's box
    assert any(d.box[2] > 48 for f in found for d in f)  # boxes span the width (80 px), not a 48 px square
    scores = sorted({d.score for f in found for d in f})  # rounded to 1e-4: cut half-way between two of them
    cut = (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2
    strict = ZeroShotDetector(str(dino_dir), box_threshold=cut)
    kept = strict.detect(frames, "red circle")
    _check_boxes(kept, frames, cut)
    for a, b in zip(found, kept):  # the threshold removes exactly the boxes scoring below it
        assert [d for d in a if d.score >= cut] == b


def test_owlvit_boxes_are_pixel_xyxy(tmp_path):
    path = build_tiny_owl(tmp_path / "owl", "owlvit")
    detector = ZeroShotDetector(str(path), box_threshold=0.0)
    assert detector.kind == "owlvit"
    frames = _frames(2)
    found = detector.detect(frames, "dog")
    _check_boxes(found, frames, 0.0)
    assert all(len(d) > 0 for d in found)


def test_owlv2_boxes_are_pixel_xyxy(tmp_path):
    path = build_tiny_owl(tmp_path / "owl2", "owlv2")
    if not any(__import__("importlib").util.find_spec(m) for m in ("scipy", "torchvision")):
        with pytest.raises(SpaceVLLMError, match="scipy"):
            ZeroShotDetector(str(path))
        return
    detector = ZeroShotDetector(str(path), box_threshold=0.0)
    frames = _frames(2)
    _check_boxes(detector.detect(frames, "dog"), frames, 0.0)


def test_not_a_detector_is_one_line_error(tmp_path):
    with pytest.raises(SpaceVLLMError, match="cannot load a zero-shot detector"):
        ZeroShotDetector(str(tmp_path))


def _run(tmp_path, records, dino_dir, name, stages=""):
    config = tmp_path / f"{name}.yaml"
    config.write_text(
        "tasks: [stvg]\nbox_threshold: 0.3\nanalyzer: {backend: rules}\n"
        f"annotator: {{backend: detector, model: {dino_dir}, fps: 5.0, batch_size: 4}}\n" + stages,
        encoding="utf-8",
    )
    out = tmp_path / name
    args = ["unistg", "run", "--config", str(config), "--input", str(records), "--out", str(out), "--no-progress"]
    assert main(args) == 0
    return out, json.loads((out / "report.json").read_text())


def test_unistg_run_with_grounding_dino_on_world(dino_dir, tmp_path, capsys):
    from spacevllm.data.records import read_records
    from spacevllm.data.world import generate_world

    records = generate_world(tmp_path / "world", n=2, seed=5, frames=8, size=48, tasks=["stvg"])
    n = len(read_records(records))
    # paper thresholds (min duration scaled to the 1.6 s clips): the report accounts for every sample
    out, report = _run(tmp_path, records, dino_dir, "paper", "refiner: {min_duration: 0.4}\n")
    assert report["input"] == n == report["kept"] + sum(s["removed"] for s in report["stages"])
    assert [s["stage"] for s in report["stages"]] == ["analyzer", "annotator", "refiner", "filter"]
    assert "filter" in capsys.readouterr().out
    detections = [json.loads(line) for line in (out / "detections.jsonl").read_text().splitlines()]
    assert len(detections) == n
    for d in detections:
        for dets in d["detections"].values():
            for det in dets:
                assert det["score"] >= 0.3 and 0 <= det["box"][0] <= det["box"][2] <= 48
    # permissive Refiner / Filter: the detector's boxes reach STVG records
    permissive = (
        "refiner: {min_duration: 0.0}\nfilter: {max_boxes: 1000, min_area_ratio: 1.0e-9, max_area_ratio: 1.0e9}\n"
    )
    out, report = _run(tmp_path, records, dino_dir, "permissive", permissive)
    kept = read_records(out / "records.jsonl")
    assert len(kept) == report["kept"] > 0
    for r in kept:
        assert r.task == "stvg" and r.boxes and r.start <= r.end
        assert all(0 <= b[0] <= b[2] <= 48 and 0 <= b[1] <= b[3] <= 48 for b in r.boxes.values())
