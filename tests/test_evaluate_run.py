"""``spacevllm evaluate run``: world STVG scoring over sampled frames, resumable predictions, ``--json`` schema."""

from __future__ import annotations

import pytest

from spacevllm.data.records import Record
from spacevllm.data.world import generate_world
from spacevllm.engine.evaluate_run import score_stvg, stvg_sample
from spacevllm.modeling.tiny import build_tiny_checkpoint

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


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    records = generate_world(tmp_path_factory.mktemp("world"), n=3, seed=99)
    ckpt = build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), num_frames=4, image_size=32, patch_size=16)
    return records, ckpt


def test_evaluate_run_json_schema_and_resume(tiny_setup, tmp_path, capsys):
    import json

    from spacevllm.cli import main
    from spacevllm.data.records import read_records

    records, ckpt = tiny_setup
    out = tmp_path / "pred.jsonl"
    args = ["evaluate", "run", "--annotations", str(records), "--checkpoint", str(ckpt), "--out", str(out), "--json"]
    assert main(args + ["--batch-size", "2"]) == 0
    scores = json.loads(capsys.readouterr().out)
    present = {r.task for r in read_records(records)} & {"stvg", "vtg", "rec"}
    assert set(scores) == present
    assert set(scores["stvg"]) == {"m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5", "n"}
    for task in scores.values():
        assert all(0.0 <= v <= 1.0 for k, v in task.items() if k != "n")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    scored = [r for r in read_records(records) if r.task in present]
    assert [r["id"] for r in rows] == [r.id for r in scored]
    # resume: a done row is kept as is (marked), a missing one is recomputed, a torn partial line is ignored
    stvg = next(r for r in rows if r["task"] == "stvg")
    kept = [dict(r, text="KEPT") if r["id"] == stvg["id"] else r for r in rows[:-1]]
    out.write_text("".join(json.dumps(r) + "\n" for r in kept))
    (tmp_path / "pred.jsonl.rank0.partial").write_text('{"id": "torn", "ta')
    assert main(args) == 0
    again = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert again[stvg["id"]]["text"] == "KEPT" and rows[-1]["id"] in again and len(again) == len(rows)
    assert not list(tmp_path.glob("*.partial"))


def test_evaluate_run_refuses_other_checkpoint_in_same_out(tiny_setup, tmp_path, capsys):
    from spacevllm.cli import main

    records, ckpt = tiny_setup
    out = tmp_path / "pred.jsonl"
    (tmp_path / "pred.jsonl.meta.json").write_text('{"annotations": "x", "checkpoint": "y"}')
    args = ["evaluate", "run", "--annotations", str(records), "--checkpoint", str(ckpt), "--out", str(out)]
    assert main(args) == 2
    assert "another --out" in capsys.readouterr().err


def test_evaluate_run_out_that_is_a_folder_fails_before_predicting(tiny_setup, tmp_path, capsys):
    from spacevllm.cli import main

    records, ckpt = tiny_setup
    out = tmp_path / "preds"
    out.mkdir()
    args = ["evaluate", "run", "--annotations", str(records), "--checkpoint", str(ckpt), "--out", str(out)]
    assert main(args) == 2
    assert "is a folder" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [out] and not list(out.iterdir())


def test_time_source_pointer_runs_and_needs_a_pointer(tiny_setup, tmp_path, capsys):
    """``--time-source pointer``: ranges come from the pointer (one of the sampled frames' times, start <= end);
    a model without a pointer is a one-line error; the meta file keeps the choice apart from a text run."""
    import json

    from spacevllm.cli import main
    from spacevllm.modeling.tiny import build_tiny_checkpoint

    records, ckpt = tiny_setup
    base = ["evaluate", "run", "--annotations", str(records), "--json", "--time-source", "pointer"]
    assert main(base + ["--checkpoint", str(ckpt), "--out", str(tmp_path / "a.jsonl")]) == 2
    assert "no temporal pointer" in capsys.readouterr().err
    pointer = build_tiny_checkpoint(tmp_path / "p", num_frames=4, image_size=32, patch_size=16, lambda_pointer=1.0)
    out = tmp_path / "b.jsonl"
    assert main(base + ["--checkpoint", str(pointer), "--out", str(out)]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["stvg"]["m_tIoU"] <= 1.0
    rows = [json.loads(line) for line in out.read_text().splitlines() if '"stvg"' in line]
    assert rows and all(r["start"] <= r["end"] and r["text"].startswith("from ") for r in rows)
    again = ["evaluate", "run", "--annotations", str(records), "--checkpoint", str(pointer), "--out", str(out)]
    assert main(again) == 2  # same out, other time source
    assert "time source pointer" in capsys.readouterr().err
