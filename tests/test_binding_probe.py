"""benchmarks/binding_probe.py: the variants' configs, the binding scores by hand, and the smoke run."""

from __future__ import annotations

import json

import pytest
from helpers import load_benchmark


@pytest.fixture(scope="module")
def bp():
    return load_benchmark("binding_probe")


def test_variants_change_only_their_keys_on_rec_batches(bp, tmp_path):
    cell = bp.variant_config("cell", 7, tmp_path, tmp_path / "out")
    assert cell["data"]["task_weights"] == {"rec": 1} and cell["optim"]["max_steps"] == 7
    assert cell["model"]["tiny"]["lambda_cell"] > 0  # world.yaml's spatial pointer
    no_cell = bp.variant_config("no_cell", 7, tmp_path, tmp_path / "out")
    assert no_cell["model"]["tiny"] == cell["model"]["tiny"] | {"lambda_cell": 0.0}
    lr = bp.variant_config("no_cell_lr3e-3", 7, tmp_path, tmp_path / "out")
    assert lr["optim"] == cell["optim"] | {"lr": 3e-3} and lr["model"] == no_cell["model"]
    with pytest.raises(SystemExit, match="unknown variant"):
        bp.variant_config("nope", 7, tmp_path, tmp_path / "out")


def test_binding_scores_by_hand(bp, tmp_path):
    objects = [{"id": 0, "boxes": {"3": [0, 0, 10, 10]}}, {"id": 1, "boxes": {"3": [20, 20, 30, 30]}}]
    (tmp_path / "scenes.jsonl").write_text(json.dumps({"index": 0, "objects": objects}) + "\n")
    records = [{"id": f"r{i}", "boxes": {"0": [0, 0, 10, 10]}, "meta": {"index": 0, "frame": 3, "object": 0}}
               for i in range(3)]  # fmt: skip
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    preds = [[0, 0, 10, 10], [0, 0, 10, 5], [22, 22, 32, 32]]  # exact; half (IoU 0.5); on the other object
    lines = [json.dumps({"id": f"r{i}", "box": b}) + "\n" for i, b in enumerate(preds)]
    (tmp_path / "p.jsonl").write_text("".join(lines))
    s = bp.binding_scores(tmp_path / "p.jsonl", tmp_path)
    assert s["n"] == 3 and s["on_target"] == pytest.approx(2 / 3)
    assert s["mIoU"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert s["median_centre_error_px"] == pytest.approx(2.5)  # errors 0, 2.5, sqrt(22^2 + 22^2)


def test_smoke_trains_and_scores_every_variant(bp, tmp_path, capsys):
    assert bp.main(["--smoke", "--runs", str(tmp_path)]) == 0
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert [r["variant"] for r in rows] == list(bp.VARIANTS)
    assert all(0 <= r["on_target"] <= 1 and r["n"] == 2 and r["samples"] == 4 for r in rows)
    assert bp.main(["--table", "--runs", str(tmp_path)]) == 0
    assert capsys.readouterr().out.count("| no_cell |") == 2
