"""The lmms-eval model ``spacevllm``: ``python -m lmms_eval --model spacevllm`` runs the shipped local task
``unistg_world_qa`` end to end, offline, with the embedded model, finding the model through the entry point that
pyproject.toml declares (written here as a dist-info on PYTHONPATH, so the test does not depend on how this
checkout was installed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lmms_eval")
try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

from spacevllm.lmms_eval import TASKS_DIR  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TASK = TASKS_DIR / "unistg_world_qa"
LIMIT = 4


def _entry_point_dist(tmp_path: Path) -> Path:
    """A folder holding a dist-info whose entry_points.txt is pyproject.toml's ``lmms_eval.models`` table."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["lmms_eval.models"]
    dist = tmp_path / "eps" / "spacevllm_entry_points-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: spacevllm-entry-points\nVersion: 0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in table.items())
    (dist / "entry_points.txt").write_text(f"[lmms_eval.models]\n{lines}")
    return dist.parent


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """``python -m lmms_eval --model spacevllm --tasks unistg_world_qa --limit 4``: (results dict, samples list)."""
    tmp = tmp_path_factory.mktemp("lmms")
    path = os.pathsep.join([str(ROOT / "src"), str(_entry_point_dist(tmp)), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    env["HF_DATASETS_CACHE"] = str(tmp / "datasets")
    cmd = [sys.executable, "-m", "lmms_eval", "--model", "spacevllm", "--model_args", "threads=2"]
    cmd += ["--tasks", "unistg_world_qa", "--include_path", str(TASKS_DIR), "--limit", str(LIMIT)]
    cmd += ["--output_path", str(tmp / "out"), "--log_samples"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(next((tmp / "out").rglob("*_results.json")).read_text())
    samples = [json.loads(line) for f in (tmp / "out").rglob("*_samples_*.jsonl") for line in f.open()]
    return results, samples


def test_lmms_eval_runs_the_local_task_with_the_spacevllm_model(run):
    results, samples = run
    metrics = results["results"]["unistg_world_qa"]
    assert len(samples) == LIMIT
    hits = [s["exact_match"] for s in samples]
    assert metrics["exact_match,none"] == pytest.approx(sum(hits) / LIMIT)


def test_lmms_eval_answers_are_the_models_own(run):
    """Each logged answer is what ``spacevllm.load().answer`` generates for that record (16 tokens, cut at a
    newline), so the adapter passes the video, the question and the budget through unchanged."""
    import spacevllm

    model = spacevllm.load()
    records = [json.loads(line) for line in (TASK / "world_qa.jsonl").open()][:LIMIT]
    _, samples = run
    by_id = {s["doc_id"]: s for s in samples}
    for i, rec in enumerate(records):
        expected = model.answer(TASK / rec["video"], rec["query"], max_new_tokens=16).split("\n")[0].strip()
        answer = by_id[i]["filtered_resps"]
        assert (answer[0] if isinstance(answer, list) else answer) == expected
        assert by_id[i]["target"] == rec["answer"]


def test_loglikelihood_is_refused_with_a_clear_error():
    from spacevllm.lmms_eval.model import SpaceVLLM

    model = SpaceVLLM(threads="1")
    with pytest.raises(NotImplementedError, match="does not support loglikelihood"):
        model.loglikelihood([])
