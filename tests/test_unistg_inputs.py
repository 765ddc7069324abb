"""``spacevllm unistg run`` / ``analyze`` on bad settings: every config key and flag checked up front (one line
naming the file and key, or the flag), and a failed run's leftovers never refuse the corrected config."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import fails_with_one_line

from spacevllm.cli import main

CONFIG = "src/spacevllm/configs/unistg/world.yaml"


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    from spacevllm.data.world import generate_world

    return generate_world(tmp_path_factory.mktemp("world"), n=2, seed=5)


def _config(tmp_path, change: dict):
    raw = yaml.safe_load(open(CONFIG)) | change
    path = tmp_path / "u.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        ({"refiner": {"min_duration": "abc"}}, "refiner.min_duration must be a number >= 0, got 'abc'"),
        ({"tasks": "stvg"}, "tasks must be a list, got 'stvg'"),
        ({"tasks": ["stvg", "bogus"]}, "tasks [1] must be one of"),
        ({"box_threshold": 3}, "box_threshold must be a number >= 0 and <= 1"),
        ({"analyzer": {"max_objects": 0}}, "analyzer.max_objects must be an integer >= 1"),
        ({"annotator": {"backend": "oracle", "fps": -1}}, "annotator.fps must be a positive number"),
        ({"filter": {"max_boxes": 1.5}}, "filter.max_boxes must be an integer"),
        ({"refiner": "fast"}, "refiner must be a mapping"),
        ({"workers": 0}, "workers must be an integer >= 1"),
    ],
)
def test_bad_config_values_name_file_and_key(change, message, records, tmp_path, capsys):
    config = _config(tmp_path, change)
    out = tmp_path / "out"
    fails_with_one_line(["unistg", "run", "--config", str(config), "--input", str(records), "--out", str(out)], capsys,
           "u.yaml", message)  # fmt: skip
    assert not out.exists()


@pytest.mark.parametrize("flag, value", [("--limit", "0"), ("--workers", "0"), ("--limit", "-2")])
def test_bad_flags(flag, value, records, tmp_path, capsys):
    argv = ["unistg", "run", "--config", CONFIG, "--input", str(records), "--out", str(tmp_path / "o"), flag, value]
    fails_with_one_line(argv, capsys, f"{flag} must be an integer >= 1, got {value}")


def test_a_failed_run_does_not_refuse_the_fixed_config(records, tmp_path, capsys):
    """A run that failed before its first video (here: a detector model that is not there) leaves a manifest;
    the corrected config then runs."""
    out = tmp_path / "out"
    bad = _config(tmp_path, {"annotator": {"backend": "detector", "model": str(tmp_path / "no-dino")}})
    assert main(["unistg", "run", "--config", str(bad), "--input", str(records), "--out", str(out)]) == 2
    capsys.readouterr()
    assert main(["unistg", "run", "--config", CONFIG, "--input", str(records), "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["annotator"]["backend"] == "oracle"


def test_analyze_max_objects_and_missing_model(tmp_path, capsys):
    fails_with_one_line(["unistg", "analyze", "--max-objects", "0", "a man and a dog"], capsys, "--max-objects must be")
    assert main(["unistg", "analyze", "--max-objects", "1", "The man picks up the remote control."]) == 0
    assert json.loads(capsys.readouterr().out)["objects"] == ["man"]
    err = fails_with_one_line(["unistg", "analyze", "--backend", "llm", "--model", "/nonexistent", "a man"], capsys,
                 "/nonexistent: model folder not found")  # fmt: skip
    assert "repo" not in err.lower()
