"""``spacevllm train`` on bad settings and on output folders that hold a run: every config key and flag is checked
before any model loads or file is written (one line naming the file and key, or the flag), and one folder never
mixes two runs (refused without --resume / --overwrite; --resume continues only its own run)."""

from __future__ import annotations

import json

import pytest
import yaml

from spacevllm.cli import main
from spacevllm.engine import checkpoint as ckpt
from spacevllm.engine.train import read_log

TINY = {"num_frames": 4, "image_size": 32, "patch_size": 16, "hidden": 32, "layers": 1}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from spacevllm.data.world import generate_world

    return generate_world(tmp_path_factory.mktemp("world"), n=4, seed=7)


def _config(path, world, out, steps=2, seed=0, **optim):
    cfg = {
        "seed": seed,
        "out_dir": str(out),
        "precision": "no",
        "log_every": 1,
        "save_every": 1,
        "keep_checkpoints": 2,
        "model": {"tiny": TINY},
        "data": {"train": [str(world)]},
        "optim": {"lr": 3e-3, "max_steps": steps, "batch_size": 2} | optim,
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a model is built or the data is touched: every check must come first."""
    import spacevllm.engine.train as engine

    monkeypatch.setattr(engine, "build_model", lambda *a, **k: pytest.fail("a model was loaded"))
    monkeypatch.setattr(engine, "build_data", lambda *a, **k: pytest.fail("the data was built"))


def _fails(argv, capsys, *needles) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


BAD_KEYS = [
    ({"optim": {"lr": "abc"}}, "optim.lr must be a positive number, got 'abc'"),
    ({"optim": {"lr": float("nan")}}, "optim.lr must be a positive number"),
    ({"optim": {"batch_size": 0}}, "optim.batch_size must be an integer >= 1, got 0"),
    ({"optim": {"max_steps": -3}}, "optim.max_steps must be an integer >= 1, got -3"),
    ({"optim": {"warmup_ratio": 2}}, "optim.warmup_ratio must be a number >= 0 and <= 1"),
    ({"optim": {"scheduler": "linear"}}, "optim.scheduler must be one of cosine, constant"),
    ({"optim": {"betas": [0.9]}}, "optim.betas must be a list of 2 values"),
    ({"optim": 3}, "optim must be a mapping"),
    ({"seed": -5}, "seed must be an integer >= 0, got -5"),
    ({"seed": 1.5}, "seed must be an integer"),
    ({"threads": 0}, "threads must be an integer >= 1"),
    ({"precision": "fp8"}, "precision must be one of auto, bf16, fp16, no"),
    ({"data": {"task_weights": {"bogus": 1}}}, "data.task_weights has unknown task 'bogus'"),
    ({"data": {"task_weights": {"stvg": -1}}}, "data.task_weights [stvg] must be a number >= 0"),
    ({"data": {"train": "a.jsonl"}}, "data.train must be a list"),
    ({"data": {"num_frames": 0}}, "data.num_frames must be an integer >= 1"),
    ({"model": {"gradient_checkpointing": "yes"}}, "model.gradient_checkpointing must be true or false"),
    ({"log_every": 0}, "log_every must be an integer >= 1"),
]


@pytest.mark.parametrize("change, message", BAD_KEYS)
def test_bad_config_values_name_file_and_key(change, message, world, tmp_path, capsys, no_work):
    path = _config(tmp_path / "c.yaml", world, tmp_path / "run")
    raw = yaml.safe_load(path.read_text())
    for key, value in change.items():
        raw[key] = raw[key] | value if isinstance(value, dict) and isinstance(raw.get(key), dict) else value
    path.write_text(yaml.safe_dump(raw))
    _fails(["train", "--config", str(path), "--no-progress"], capsys, "c.yaml", message)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--seed", "-5"], "--seed must be an integer >= 0, got -5"),
        (["--max-steps", "0"], "--max-steps must be an integer >= 1, got 0"),
        (["--stop-after", "-1"], "--stop-after must be an integer >= 1, got -1"),
        (["--threads", "0"], "--threads must be an integer >= 1, got 0"),
        (["--threads", "-1"], "--threads must be an integer >= 1, got -1"),
        (["--resume", "--overwrite"], "--resume and --overwrite exclude each other"),
        (["--init", "/nonexistent/model"], "model.init: checkpoint folder not found: /nonexistent/model"),
    ],
)
def test_bad_flags_are_named(flags, message, world, tmp_path, capsys, no_work):
    path = _config(tmp_path / "c.yaml", world, tmp_path / "run")
    _fails(["train", "--config", str(path), "--no-progress", *flags], capsys, message)
    assert not (tmp_path / "run").exists()


def test_yaml_nan_and_string_numbers(world, tmp_path, capsys, no_work):
    """``lr: .nan`` as YAML writes it is refused; ``lr: 1e-5`` (a string to YAML 1.1) stays accepted."""
    path = _config(tmp_path / "c.yaml", world, tmp_path / "run")
    path.write_text(path.read_text().replace("lr: 0.003", "lr: .nan"))
    _fails(["train", "--config", str(path)], capsys, "c.yaml: optim.lr must be a positive number, got nan")
    from spacevllm.engine.train import load_config

    path.write_text(path.read_text().replace("lr: .nan", "lr: 1e-5"))
    assert load_config(path).optim.lr == 1e-5


def test_a_folder_holding_a_run_is_refused_then_resumed_or_replaced(world, tmp_path, capsys):
    out = tmp_path / "run"
    a = _config(tmp_path / "a.yaml", world, out, steps=3)
    assert main(["train", "--config", str(a), "--no-progress", "--stop-after", "2"]) == 0
    log_before = (out / "log.jsonl").read_text()
    # another config into the same folder: refused with and without --resume, nothing touched
    b = _config(tmp_path / "b.yaml", world, out, steps=3, seed=1)
    _fails(["train", "--config", str(b), "--no-progress"], capsys, str(out), "stopped at step 2", "--resume")
    _fails(["train", "--config", str(b), "--no-progress", "--resume"], capsys, "another run", "seed")
    assert (out / "log.jsonl").read_text() == log_before
    # its own config without --resume: refused too; with --resume: continues (steps 1, 2, 3)
    _fails(["train", "--config", str(a), "--no-progress"], capsys, "--resume to continue it")
    assert main(["train", "--config", str(a), "--no-progress", "--resume"]) == 0
    assert [r["step"] for r in read_log(out / "log.jsonl")] == [1, 2, 3]
    # a finished run: refused without a flag (final/ exists), replaced with --overwrite
    capsys.readouterr()
    _fails(["train", "--config", str(a), "--no-progress"], capsys, "final/ exists", "--overwrite")
    assert main(["train", "--config", str(b), "--no-progress", "--overwrite", "--max-steps", "2"]) == 0
    assert [r["step"] for r in read_log(out / "log.jsonl")] == [1, 2]
    steps = [ckpt.read_step(p) for p in ckpt.complete_checkpoints(out)]
    assert steps == [1, 2], "--overwrite left the old run's checkpoints"
    assert json.loads((out / "run.json").read_text())["config"]["seed"] == 1


def test_pruning_never_counts_another_runs_checkpoints(world, tmp_path):
    """A higher-step checkpoint of another run (copied in by hand) neither displaces this run's newest checkpoint
    from pruning nor is picked by --resume."""
    import shutil

    out = tmp_path / "run"
    a = _config(tmp_path / "a.yaml", world, out, steps=3)
    assert main(["train", "--config", str(a), "--no-progress", "--stop-after", "1"]) == 0
    foreign = ckpt.checkpoint_dir(out, 64)
    shutil.copytree(ckpt.checkpoint_dir(out, 1), foreign)
    state = json.loads((foreign / "state.json").read_text())
    (foreign / "state.json").write_text(json.dumps(state | {"step": 64, "run": "someone-else"}))
    assert main(["train", "--config", str(a), "--no-progress", "--resume", "--stop-after", "2"]) == 0
    assert [r["step"] for r in read_log(out / "log.jsonl")] == [1, 2]
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["step-00000001", "step-00000002", "step-00000064"]


def test_a_failed_start_does_not_block_the_corrected_config(world, tmp_path, capfd):
    """A run that died before its first checkpoint leaves no run: the next start replaces its leftovers. The
    output has no blank lines (the tokenizer trainer's progress wrote them to stdout, at the C level: capfd)."""
    out = tmp_path / "run"
    a = _config(tmp_path / "a.yaml", world, out, steps=1)
    out.mkdir()
    (out / "log.jsonl").write_text('{"step": 65, "loss": 1.0}\n')
    (out / "init").mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["train", "--config", str(a), "--no-progress"]) == 0
    assert [r["step"] for r in read_log(out / "log.jsonl")] == [1]
    assert (out / "notes.txt").read_text() == "mine"
    out_text = capfd.readouterr().out
    assert "\n\n" not in out_text and not out_text.startswith("\n") and "model saved to" in out_text
