"""The files shipped inside the package are present: a fresh clone or wheel without them fails here, not skips."""

from __future__ import annotations

import json

import pytest

from spacevllm import assets
from spacevllm.errors import SpaceVLLMError


def test_default_model_is_bundled():
    path = assets.default_checkpoint_path()
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    assert config["model_type"] == "spacevllm" and (path / "model.safetensors").stat().st_size > 0


def test_sample_video_and_its_query_are_bundled():
    assert assets.sample_video_path().stat().st_size > 0
    info = assets.sample_info()
    assert info["query"] and info["record"]["task"] == "stvg"


def test_missing_asset_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setattr(assets, "ASSETS", tmp_path)
    for get in (assets.default_checkpoint_path, assets.sample_video_path, assets.sample_info):
        with pytest.raises(SpaceVLLMError, match=str(tmp_path)):
            get()
