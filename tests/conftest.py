"""Shared test fixtures: deterministic seeds, the folder of real annotation excerpts (tests/data)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from spacevllm.assets import default_checkpoint_path

REAL_DATA = Path(__file__).resolve().parent / "data"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Folder of small excerpts of the real benchmark annotation files, committed with the tests (their sources:
    tests/data/README.md)."""
    return REAL_DATA


@pytest.fixture(scope="session")
def default_model() -> Path:
    """The embedded default model's folder (committed: a missing one fails in tests/test_assets.py, never skips)."""
    return default_checkpoint_path()
