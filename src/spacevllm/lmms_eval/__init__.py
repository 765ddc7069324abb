"""lmms-eval integration: the ``spacevllm`` model for ``python -m lmms_eval --model spacevllm`` and a local task.

Registered through lmms-eval's entry-point group ``lmms_eval.models`` (pyproject.toml points it at
:func:`manifest`), so an installed spacevllm is found without touching lmms-eval's tree. The model class is
:class:`spacevllm.lmms_eval.model.SpaceVLLM` (``generate_until`` only). The local task ``unistg_world_qa`` lives in
:data:`TASKS_DIR`; pass that folder to lmms-eval with ``--include_path``. Nothing here imports lmms-eval until
:func:`manifest` is called.
"""

from __future__ import annotations

from pathlib import Path

MODEL_ID = "spacevllm"
MODEL_CLASS = "spacevllm.lmms_eval.model.SpaceVLLM"
TASKS_DIR = Path(__file__).resolve().parent / "tasks"


def manifest():
    """lmms-eval's ``ModelManifest`` for the ``spacevllm`` model (the entry point's payload)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path=MODEL_CLASS)
