"""Files shipped inside the package: the embedded default model and a sample world video.

- ``default_model/``: a small SpaceVLLM trained from scratch on the synthetic world by ``spacevllm train``
  (seven stages whose files were removed after commit 6de5f6b, when ``configs/train/world.yaml`` became the one
  recipe; numbers and budget in benchmarks/RESULTS.md), saved with ``save_pretrained`` (safetensors weights,
  config, tokenizer and processor files).
- ``sample/sample.mp4``: a held-out world video; ``sample/sample.json``: its query (and ground truth).
"""

from __future__ import annotations

import json
from pathlib import Path

from spacevllm.errors import SpaceVLLMError

ASSETS = Path(__file__).resolve().parent


def default_checkpoint_path() -> Path:
    """Folder of the embedded default model. Raises SpaceVLLMError when it is not installed."""
    path = ASSETS / "default_model"
    if not (path / "config.json").is_file():
        raise SpaceVLLMError(
            f"the embedded default model is missing at {path}; pass --checkpoint DIR or train it with "
            "`spacevllm train --config src/spacevllm/configs/train/world.yaml`"
        )
    return path


def sample_video_path() -> Path:
    """The bundled sample video (a held-out world scene, MP4)."""
    path = ASSETS / "sample" / "sample.mp4"
    if not path.is_file():
        raise SpaceVLLMError(f"the bundled sample video is missing at {path}")
    return path


def sample_info() -> dict:
    """``{"query": str, "record": the sample's Uni-STG record (ground truth) or null}``."""
    path = ASSETS / "sample" / "sample.json"
    if not path.is_file():
        raise SpaceVLLMError(f"the bundled sample description is missing at {path}")
    return json.loads(path.read_text(encoding="utf-8"))
