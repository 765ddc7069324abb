"""The Tube result: JSON schema, round trip, printing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spacevllm.tube import Tube


def _tube():
    return Tube(1.0, 2.5, "from 1.0 to 2.5 seconds", np.array([10, 20]), np.array([1.0, 2.0]), np.ones((2, 4)))


def test_to_json_exact_schema_and_plain_types():
    obj = _tube().to_json()
    assert obj == {
        "start": 1.0,
        "end": 2.5,
        "text": "from 1.0 to 2.5 seconds",
        "boxes": [
            {"frame": 10, "time": 1.0, "box": [1.0, 1.0, 1.0, 1.0]},
            {"frame": 20, "time": 2.0, "box": [1.0, 1.0, 1.0, 1.0]},
        ],
    }
    assert type(obj["boxes"][0]["frame"]) is int and type(obj["boxes"][0]["box"][0]) is float
    assert json.loads(json.dumps(obj)) == obj


def test_empty_tube_json_and_round_trip():
    tube = Tube(None, None, "no idea")
    assert tube.to_json() == {"start": None, "end": None, "text": "no idea", "boxes": []}
    assert Tube.from_json(_tube().to_json()) == _tube()


def test_inconsistent_tubes_are_rejected():
    with pytest.raises(ValueError, match="both"):
        Tube(1.0, None, "")
    with pytest.raises(ValueError, match="differ in length"):
        Tube(1.0, 2.0, "", [1, 2], [1.0], [[0, 0, 1, 1]])


def test_str_lists_every_box_or_says_no_range():
    text = str(_tube())
    assert "1.00 - 2.50 s" in text and text.count("frame") == 2
    assert "no time range" in str(Tube(None, None, "??"))
