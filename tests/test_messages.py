"""Messages that name what is wrong: a folder where a file is expected says so (not "no such file")."""

from __future__ import annotations

import pytest

from spacevllm.cli import main
from spacevllm.errors import SpaceVLLMError
from spacevllm.io_utils import load_json, read_yaml


def test_readers_say_a_folder_is_a_folder(tmp_path):
    with pytest.raises(SpaceVLLMError, match="is a folder, not a config file"):
        read_yaml(tmp_path)
    with pytest.raises(SpaceVLLMError, match="is a folder, not a JSON file"):
        load_json(tmp_path)
    with pytest.raises(SpaceVLLMError, match="no such config file"):
        read_yaml(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--config", "{d}"], "is a folder, not a config file"),
        (["unistg", "run", "--config", "{d}"], "is a folder, not a config file"),
        (["mixture", "build", "--config", "{d}", "--out", "{d}/o"], "is a folder, not a config file"),
        (["evaluate", "run", "--annotations", "{d}"], "is a folder, not a records file"),
        (["unistg", "filter", "--in", "{d}", "--out", "{d}/k.jsonl"], "is a folder, not a detections file"),
    ],
)
def test_commands_say_a_folder_is_a_folder(argv, message, tmp_path, capsys):
    assert main([a.format(d=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(tmp_path) in err, err
