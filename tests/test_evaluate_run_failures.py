"""``spacevllm evaluate run`` with a bad video among good ones: the record is reported by id, kept in a ``failed``
list and scored as a miss (``--fail-fast`` stops at it instead, leaving no meta or partial file); progress goes
to stderr also with ``--json``."""

from __future__ import annotations

import json

import pytest

from spacevllm.cli import main
from spacevllm.data.records import read_records
from spacevllm.data.world import generate_world
from spacevllm.modeling.tiny import build_tiny_checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A world of 1 scene whose first STVG record points at a corrupt video; the checkpoint."""
    folder = tmp_path_factory.mktemp("world")
    records = generate_world(folder, n=1, seed=3, tasks="stvg,vtg")
    (folder / "videos" / "broken.mp4").write_bytes(b"\x00not a video" * 100)
    rows = [json.loads(line) for line in records.read_text().splitlines()]
    rows[0]["video"] = "videos/broken.mp4"
    records.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ckpt = build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), num_frames=4, image_size=32, patch_size=16)
    return records, ckpt, rows[0]["id"]


def _args(setup, out, *extra):
    records, ckpt, _ = setup
    return ["evaluate", "run", "--annotations", str(records), "--checkpoint", str(ckpt), "--out", str(out), *extra]


def test_a_bad_video_is_skipped_into_failed_and_counted_as_a_miss(setup, tmp_path, capsys):
    bad = setup[2]
    assert main(_args(setup, tmp_path / "p.jsonl", "--json", "--batch-size", "4")) == 0
    captured = capsys.readouterr()
    scores = json.loads(captured.out)  # stdout: one JSON object, progress went to stderr
    assert [f["id"] for f in scores["failed"]] == [bad] and "broken.mp4" in scores["failed"][0]["error"]
    n_stvg = sum(r.task == "stvg" for r in read_records(setup[0]))
    assert scores["stvg"]["n"] == n_stvg
    assert f"record {bad}" in captured.err and "evaluate" in captured.err and "\r" not in captured.err
    others = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines() if bad not in x]
    assert others and all("error" not in r for r in others)


def test_fail_fast_stops_at_the_record_and_leaves_nothing(setup, tmp_path, capsys):
    assert main(_args(setup, tmp_path / "p.jsonl", "--fail-fast", "--batch-size", "1", "--no-progress")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"record {setup[2]}" in err and "broken.mp4" in err
    assert list(tmp_path.iterdir()) == [], "a failed first record left a meta or partial file"
