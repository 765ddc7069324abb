"""benchmarks/ablations.py: the rows, the cell configs, the paper's tables, the table's JSON interface, the smoke."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from helpers import load_benchmark

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ab():
    return load_benchmark("ablations")


def _diff(a: dict, b: dict, prefix="") -> set[str]:
    keys = set(a) | set(b)
    out = set()
    for k in keys:
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            out |= _diff(a[k], b[k], f"{prefix}{k}.")
        elif a.get(k) != b.get(k):
            out.add(prefix + k)
    return out


@pytest.mark.parametrize(
    "row, changed",
    [
        (
            "text_coords",
            {"model.tiny.query_mode", "model.tiny.lambda_pointer", "model.tiny.lambda_cell", "model.tiny.time_source"},
        ),
        ("appended", {"model.tiny.query_mode"}),
        ("no_dual_cross_attention", {"model.tiny.dual_cross_attention", "model.tiny.lambda_cell"}),
        ("queries_8", {"model.tiny.num_frames"}),
        ("queries_32", {"model.tiny.num_frames"}),
        ("queries_16", set()),
    ],
)
def test_a_row_changes_only_its_switch(ab, tmp_path, row, changed):
    full = ab.cell_config("full", 0, tmp_path)
    cfg = ab.cell_config(row, 0, tmp_path)
    assert _diff(full, cfg) == changed
    assert (ab.config_hash(cfg) == ab.config_hash(full)) == (not changed)


def test_cells_share_world_budget_and_differ_by_seed(ab, tmp_path):
    a, b = ab.cell_config("full", 0, tmp_path), ab.cell_config("full", 1, tmp_path)
    assert _diff(a, b) == {"seed"}
    assert a["data"]["world"]["frames"] >= 32  # long enough clips for queries_32
    assert a["optim"]["max_steps"] == ab.CELL["max_steps"]
    assert ab.config_hash(a) == ab.config_hash(ab.cell_config("full", 0, tmp_path / "elsewhere"))


def test_world_recipe_is_one_file_from_scratch_with_world_generation():
    from spacevllm.engine.train import load_config

    cfg = load_config(REPO / "src/spacevllm/configs/train/world.yaml")
    assert cfg.model.init is None and cfg.model.tiny["time_source"] == "pointer"
    assert cfg.data.world is not None and cfg.data.task_weights["stvg"] > sum(cfg.data.task_weights.values()) / 2


def test_unknown_row_is_refused(ab, tmp_path):
    with pytest.raises(SystemExit, match="unknown row 'queries'"):
        ab.cell_config("queries", 0, tmp_path)


def test_paper_tables_are_read_from_the_text(ab, tmp_path):
    text = (
        "Methods\tm_tIoU\tm_vIoU\tvIoU@0.3\tvIoU@0.5\n"
        "w/o Queries and Decoder\t53.8\t27.7\t45.5\t22.4\n"
        "<i>SpaceVLLM</i>\t56.9\t39.3\t66.6\t36.9\n\n"
        "Table 7. Ablation studies\n"
        "Number of queries\tm_tIoU\tm_vIoU\tvIoU@0.3\tvIoU@0.5\n32\t55.2\t37.0\t63.8\t35.0\n"
        "96\t58.0\t40.2\t67.8\t37.6\nTable 9. numbers of queries\n"
    )
    (tmp_path / "paper.txt").write_text(text)
    paper = ab.paper_tables(tmp_path / "paper.txt")
    assert ab.paper_numbers("full", paper)["m_vIoU"] == 39.3
    assert ab.paper_numbers("text_coords", paper)["vIoU@0.5"] == 22.4
    assert ab.paper_numbers("queries_8", paper)["m_tIoU"] == 55.2
    assert ab.paper_numbers("queries_32", paper)["m_vIoU"] == 40.2
    assert ab.paper_numbers("appended", paper) is None


def _cell(row, seed, m_viou, sources=("text", "pointer")):
    metrics = {
        s: {"mean": {"m_tIoU": 0.5, "m_vIoU": m_viou, "vIoU@0.3": 0.4, "vIoU@0.5": 0.2}, "per_seed": {}}
        for s in sources
    }
    return {"row": row, "seed": seed, "samples": 19200, "wall_s": 1200.0, "metrics": metrics, "config_hash": "x"}


def test_table_json_is_one_entry_per_cell_and_time_source(ab, tmp_path):
    for c in (_cell("full", 1, 0.3), _cell("full", 0, 0.2), _cell("text_coords", 0, 0.1, ("text",))):
        (tmp_path / f"{c['row']}-seed{c['seed']}.json").write_text(json.dumps(c))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert ab.main(["--table", "--json", "--results", str(tmp_path)]) == 0
    entries = json.loads(out.getvalue())
    keys = {"row", "seed", "time_source", "m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5", "samples", "wall_s"}
    assert all(set(e) == keys for e in entries)
    assert [(e["row"], e["seed"], e["time_source"]) for e in entries] == [
        ("text_coords", 0, "text"),
        ("full", 0, "text"),
        ("full", 0, "pointer"),
        ("full", 1, "text"),
        ("full", 1, "pointer"),
    ]
    table = ab.format_table(ab.load_cells(tmp_path), {"table7": {"SpaceVLLM": dict.fromkeys(ab.METRICS, 39.3)}})
    assert "| full | text | 0,1 | 50.0 [50.0-50.0] | 25.0 [20.0-30.0] |" in table
    assert "39.3 / 39.3" in table


def test_smoke_trains_and_scores_every_row(ab, tmp_path):
    committed = sorted(ab.RESULTS.glob("*")) if ab.RESULTS.is_dir() else []
    cells = ab.smoke(tmp_path)
    assert [c["row"] for c in cells] == [*ab.TABLE7, *ab.TABLE9]
    for c in cells:
        sources = {"text"} if c["row"] == "text_coords" else {"text", "pointer"}
        assert set(c["metrics"]) == sources
        for m in c["metrics"].values():
            assert all(0.0 <= m["mean"][k] <= 1.0 for k in ab.METRICS)
            assert m["per_seed"]["7"]["n"] == 2 * ab.SMOKE["eval_scenes"]
        assert c["samples"] == ab.SMOKE["max_steps"] * ab.SMOKE["batch_size"]
    by_row = {c["row"]: c for c in cells}
    assert by_row["queries_16"]["config_hash"] == by_row["full"]["config_hash"]
    assert len({c["config_hash"] for c in cells}) == len(cells) - 1
    # world.yaml's model ships its time source in the config.json training writes (no hand edit)
    shipped = json.loads((tmp_path / "cells" / by_row["full"]["config_hash"] / "final" / "config.json").read_text())
    assert shipped["time_source"] == "pointer" and shipped["lambda_pointer"] > 0
    assert (sorted(ab.RESULTS.glob("*")) if ab.RESULTS.is_dir() else []) == committed


def test_threads_do_not_change_the_cell(ab, tmp_path):
    """How many CPU threads train a cell is an execution detail: the same hash (the same cell) either way."""
    a = ab.cell_config("full", 0, tmp_path)
    b = ab.cell_config("full", 0, tmp_path) | {"threads": 1}
    assert a.get("threads") != 1
    assert ab.config_hash(a) == ab.config_hash(b)
    assert ab.config_hash(a) != ab.config_hash(ab.cell_config("full", 1, tmp_path))
