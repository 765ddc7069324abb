"""Shared test fixtures: deterministic seeds, paths to the real annotation files in ../shared/data."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SPACEVLLM_SHARED_DATA", REPO.parent / "shared" / "data"))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of the real benchmark annotation samples (../shared/data beside the repo)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real annotation samples not found at {SHARED_DATA} (set SPACEVLLM_SHARED_DATA)")
    return SHARED_DATA
