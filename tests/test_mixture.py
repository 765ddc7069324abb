"""Instruction prompts, the Table 1 mixture (apportioning, drawing, conversion) and ``spacevllm mixture``."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spacevllm.cli import main
from spacevllm.data.mixture import (
    apportion,
    build_mixture,
    draw,
    load_mixture_config,
    parse_mixture_config,
    source_rng,
    to_instruction,
)
from spacevllm.data.records import Record, read_records
from spacevllm.errors import SpaceVLLMError
from spacevllm.modeling.processing import TASK_PROMPTS
from spacevllm.prompts import PHRASINGS, choose_phrasing, phrasings, render
from spacevllm.time_ops import format_time_range

CONFIGS = "src/spacevllm/configs/mixture"
TABLE1 = {"vtg": 50, "stvg": 110, "rec": 320, "qa": 100, "caption": 50, "chat": 50}  # thousands, paper Table 1


# --- prompts -------------------------------------------------------------------------------------------------


def test_phrasing_zero_is_the_processor_default():
    for task, template in TASK_PROMPTS.items():
        assert phrasings(task)[0] == template


def test_every_phrasing_has_one_query_and_render_spans_it():
    for templates in PHRASINGS.values():
        assert len(set(templates)) == len(templates)
        for t in templates:
            assert t.count("{query}") == 1 and "{" not in t.replace("{query}", "")
            text, (a, b) = render(t, "the red ball rolls")
            assert text[a:b] == "the red ball rolls" and text == t.format(query="the red ball rolls")
    assert len(phrasings("vtg")) >= 4 and len(phrasings("stvg")) >= 4 and len(phrasings("rec")) >= 4


def test_phrasing_choice_is_deterministic_and_varied():
    picks = [choose_phrasing("vtg", f"id{i}", seed=0) for i in range(200)]
    assert picks == [choose_phrasing("vtg", f"id{i}", seed=0) for i in range(200)]
    assert set(picks) == set(range(len(phrasings("vtg"))))
    assert picks != [choose_phrasing("vtg", f"id{i}", seed=1) for i in range(200)]
    assert choose_phrasing("qa", "x") == 0


# --- sampling ------------------------------------------------------------------------------------------------


@given(st.integers(0, 10_000), st.lists(st.floats(0, 1000, allow_nan=False), min_size=1, max_size=8))
def test_apportion_sums_and_is_proportional(total, weights):
    out = apportion(total, weights)
    if sum(weights) == 0:
        assert out == [0] * len(weights)
        return
    assert sum(out) == total and all(q >= 0 for q in out)
    for q, w in zip(out, weights):
        assert abs(q - total * w / sum(weights)) < 1 + 1e-9


@given(st.integers(0, 50), st.integers(0, 200), st.booleans(), st.integers(0, 3))
def test_draw_counts_and_uniqueness(n, quota, replace, seed):
    picks = draw(n, quota, source_rng(seed, "s"), replace)
    expected = 0 if n == 0 else quota if replace else min(quota, n)
    assert len(picks) == expected and len(set(picks)) == len(picks)
    assert all(0 <= i < n for i, _ in picks)
    if quota <= n:
        assert all(c == 0 for _, c in picks)  # no repeat while the source suffices
    counts = [sum(1 for i, _ in picks if i == j) for j in range(n)]
    assert not counts or max(counts) - min(counts) <= 1  # repeats are spread evenly
    assert picks == draw(n, quota, source_rng(seed, "s"), replace)


# --- conversion ----------------------------------------------------------------------------------------------


def test_to_instruction_answers_and_prompt():
    vtg = Record(id="7", task="vtg", query="a man opens the door.", video="v.mp4", start=2.25, end=7.0)
    out = to_instruction(vtg, "charades-sta:7", seed=0)
    assert out.id == "charades-sta:7" and out.query == vtg.query and out.answer == format_time_range(2.25, 7.0)
    assert out.meta["prompt"] in phrasings("vtg") and out.meta["mixture"]["id"] == "7"
    assert vtg.answer is None and vtg.meta == {}  # the input is not modified
    rec = Record(id="1", task="rec", query="left dog", image="i.jpg", boxes={"0": [1, 2, 3, 4]}, answer=None)
    assert to_instruction(rec, "refcoco:1").answer is None and to_instruction(rec, "refcoco:1").boxes == rec.boxes
    qa = Record(id="q", task="qa", query="What colour is the ball?", video="v.mp4", answer="red")
    assert to_instruction(qa, "world-qa:q").answer == "red" and to_instruction(qa, "x").meta["prompt"] == "{query}"


def _fake(task: str, n: int, name: str) -> list[Record]:
    media = {"image": "i.jpg"} if task == "rec" else {"video": "v.mp4"}
    return [Record(id=str(i), task=task, query=f"{name} {i}", start=0.0, end=1.0, **media) for i in range(n)]


def test_paper_table1_config_reproduces_the_proportions():
    config = load_mixture_config(f"{CONFIGS}/paper_table1.yaml")
    assert config.tasks == {k: v * 1000 for k, v in TABLE1.items()}
    config.scale = 0.002  # 100 + 220 + 640 + 200 + 100 + 100 = 1360 records
    sizes = {
        "didemo": 300,
        "charades-sta": 100,
        "tacos": 100,
        "unistg": 50,
        "refcoco": 500,
        "refcoco+": 500,
        "refcocog": 0,
        "nextqa": 10,
        "activitynetqa": 10,
        "clevrer": 20,
        "sharegemini": 1,
        "sharegpt4video": 3,
        "vcg-plus": 7,
    }
    tasks = {s.name: (s.options.get("tasks") or [None])[0] for s in config.sources}
    formats = {"didemo": "vtg", "charades-sta": "vtg", "tacos": "vtg", "refcoco": "rec"}
    kind = {
        "nextqa": "qa",
        "activitynetqa": "qa",
        "clevrer": "qa",
        "sharegemini": "caption",
        "sharegpt4video": "caption",
        "vcg-plus": "chat",
    }
    sources = {}
    for s in config.sources:
        task = tasks[s.name] or formats.get(s.format) or kind[s.name]
        sources[s.name] = _fake(task, sizes[s.name], s.name)
    records, report = build_mixture(config, sources)
    written = {t: d["written"] for t, d in report["tasks"].items()}
    assert written == {t: 2 * v for t, v in TABLE1.items()}
    assert report["task_weights"] == written
    for t, d in report["tasks"].items():  # shares equal Table 1's
        assert d["share"] == pytest.approx(TABLE1[t] / 680, abs=1e-4)
    rows = {r["source"]: r for r in report["sources"]}
    assert [rows[n]["quota"] for n in ("didemo", "charades-sta", "tacos")] == [60, 20, 20]  # 100 VTG by size
    assert rows["unistg"]["written"] == 220 and rows["unistg"]["repeated"] == 170
    assert rows["refcoco"]["quota"] == rows["refcoco+"]["quota"] == 320 and "refcocog" not in rows
    assert len({r.id for r in records}) == len(records) == 1360
    assert records == build_mixture(config, sources)[0]  # deterministic


def test_weights_and_no_replacement():
    raw = {
        "tasks": {"vtg": 30},
        "replace": False,
        "sources": [
            {"name": "a", "format": "records", "path": "a.jsonl", "weight": 2},
            {"name": "b", "format": "records", "path": "b.jsonl", "weight": 1},
        ],
    }
    config = parse_mixture_config(raw, root=__import__("pathlib").Path("."))
    records, report = build_mixture(config, {"a": _fake("vtg", 5, "a"), "b": _fake("vtg", 50, "b")})
    rows = {r["source"]: r for r in report["sources"]}
    assert (rows["a"]["quota"], rows["a"]["written"], rows["b"]["written"]) == (20, 5, 10)  # a has only 5


@pytest.mark.parametrize(
    "raw, match",
    [
        ({"tasks": {"vtg": 1}, "sources": [], "extra": 1}, "unknown key"),
        ({"tasks": {"dance": 1}, "sources": [{"name": "a", "format": "records", "path": "x"}]}, "dance"),
        ({"tasks": {"vtg": 1}, "sources": [{"name": "a", "format": "avi", "path": "x"}]}, "format must be"),
        ({"tasks": {"vtg": 1}, "sources": [{"name": "a", "format": "records"}]}, "'path' is required"),
        ({"tasks": {"vtg": 1}, "sources": [{"name": "a", "format": "records", "path": "x"}] * 2}, "unique"),
        ({"tasks": {"vtg": 1}, "scale": 0, "sources": [{"name": "a", "format": "records", "path": "x"}]}, "scale"),
    ],
)
def test_bad_configs(raw, match, tmp_path):
    with pytest.raises(SpaceVLLMError, match=match):
        parse_mixture_config(raw, tmp_path)


# --- command line ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from spacevllm.data.world import generate_world

    return generate_world(tmp_path_factory.mktemp("world"), n=4, seed=3).parent


def test_build_world_tiny_end_to_end(world, tmp_path, capsys):
    out = tmp_path / "mix"
    args = ["mixture", "build", "--config", f"{CONFIGS}/world_tiny.yaml", "--root", str(world), "--out", str(out)]
    assert main(args) == 0
    assert "task_weights" in capsys.readouterr().out
    records = read_records(out / "records.jsonl")
    report = json.loads((out / "mixture.json").read_text())
    assert report["task_weights"] == {"vtg": 5, "stvg": 11, "rec": 32, "qa": 10}
    assert len(records) == 58 and all("prompt" in r.meta for r in records)
    assert all(r.answer == format_time_range(r.start, r.end) for r in records if r.task in ("vtg", "stvg"))
    first = (out / "records.jsonl").read_bytes()
    assert main(args) == 0 and (out / "records.jsonl").read_bytes() == first  # deterministic
    from spacevllm.data.dataset import UniSTGDataset

    ds = UniSTGDataset(out / "records.jsonl", num_frames=4)  # media paths resolve from the mixture folder
    for task in ("vtg", "stvg", "rec", "qa"):
        item = ds[ds.tasks.index(task)]
        assert item["task"] == task and (item["video"] is not None or item["image"] is not None)


def test_build_from_raw_vtg_files_and_convert(tmp_path, capsys):
    (tmp_path / "cha.txt").write_text("AAAAA 1.0 4.5##a person sits.\nBBBBB 0 2##a person stands.\n")
    (tmp_path / "did.json").write_text(
        json.dumps([{"annotation_id": 5, "video": "x.mov", "description": "a cat", "times": [[1, 1], [1, 1], [0, 1]]}])
    )
    (tmp_path / "tac.json").write_text(
        json.dumps({"s1.avi": {"num_frames": 294, "fps": 29.4, "timestamps": [[0, 147]], "sentences": ["cut"]}})
    )
    (tmp_path / "m.yaml").write_text(
        "tasks: {vtg: 8}\nsources:\n"
        "  - {name: cha, format: charades-sta, path: cha.txt, options: {videos_dir: vids}}\n"
        "  - {name: did, format: didemo, path: did.json}\n"
        "  - {name: tac, format: tacos, path: tac.json}\n"
        "  - {name: gone, format: tacos, path: missing.json}\n"
    )
    out = tmp_path / "out"
    assert main(["mixture", "build", "--config", str(tmp_path / "m.yaml"), "--out", str(out)]) == 2  # strict
    assert "missing.json" in capsys.readouterr().err
    build = ["mixture", "build", "--config", str(tmp_path / "m.yaml"), "--out", str(out)]
    assert main([*build, "--skip-missing", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["quota"] for r in report["sources"]] == [4, 2, 2] and report["missing_sources"] == ["gone"]
    records = read_records(out / "records.jsonl")
    assert {r.video for r in records} == {"../vids/AAAAA.mp4", "../vids/BBBBB.mp4", "../x.mov", "../s1.avi"}
    assert next(r for r in records if r.source == "didemo").answer == "from 5.0 to 10.0 seconds"
    conv = tmp_path / "conv" / "did.jsonl"
    convert = ["mixture", "convert", "--format", "didemo", "--in", str(tmp_path / "did.json"), "--out", str(conv)]
    assert main([*convert, "--option", "consensus=median", "--option", "videos_dir=/data/didemo"]) == 0
    (r,) = read_records(conv)
    assert (r.start, r.end, r.answer) == (5.0, 10.0, None)  # median consensus; a plain record, no prompt
    assert r.video == os.path.relpath("/data/didemo/x.mov", conv.parent)
    assert main([*convert[:3], "tacos", "--in", str(tmp_path / "tac.json"), "--out", str(conv), "--option", "x=1"]) == 2
    assert "bad options" in capsys.readouterr().err
    assert main([*build, "--skip-missing", "--root", str(tmp_path / "nowhere")]) == 2
    assert "the mixture is empty" in capsys.readouterr().err


def test_convert_rec_jsonl_and_build_rec(tmp_path, capsys):
    lines = [
        {"image": "imgs/a.jpg", "expression": "left dog", "bbox": [10, 20, 30, 40], "width": 100, "height": 80},
        {"id": 9, "image": "imgs/b.jpg", "sent": "the cup", "bbox": [0, 0, 5, 5]},
    ]
    (tmp_path / "rec.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))
    out = tmp_path / "rec_records.jsonl"
    args = ["mixture", "convert", "--format", "rec-jsonl", "--in", str(tmp_path / "rec.jsonl"), "--out", str(out)]
    assert main([*args, "--option", "bbox_format=xywh"]) == 0
    a, b = read_records(out)
    assert (a.task, a.image, a.boxes, b.id) == ("rec", "imgs/a.jpg", {"0": [10, 20, 40, 60]}, "9")
    (tmp_path / "m.yaml").write_text(
        "tasks: {rec: 3}\nsources: [{name: r, format: records, path: rec_records.jsonl}]\n"
    )
    assert main(["mixture", "build", "--config", str(tmp_path / "m.yaml"), "--out", str(tmp_path / "mix")]) == 0
    mixed = read_records(tmp_path / "mix" / "records.jsonl")
    assert [r.id for r in mixed] == ["r:0", "r:0~1", "r:9"] or [r.id for r in mixed] == ["r:0", "r:9", "r:9~1"]
    assert all(
        r.answer is None and r.meta["prompt"] in phrasings("rec") and r.image.startswith("../imgs/") for r in mixed
    )
