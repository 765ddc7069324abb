#!/usr/bin/env bash
# Fresh-machine setup: a virtual environment in .venv with spacevllm (editable) and its dev tools.
# torch: if the venv has none, install TORCH_SPEC (default torch==2.13.0, the CPU wheel on this
# project's machines). GPU users: install your own CUDA build of torch into .venv first (or set
# TORCH_SPEC), this script then leaves it alone.
# DeepSpeed (`spacevllm train --deepspeed ...`, tests/test_train_deepspeed.py): installed against the venv's torch
# (its setup imports torch, hence --no-build-isolation; no ops are compiled at install time). WITH_DEEPSPEED=0 skips
# it; the DeepSpeed tests then skip and say why.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/pip install -q "${TORCH_SPEC:-torch==2.13.0}"
fi
.venv/bin/pip install -q -e ".[dev]"
if [ "${WITH_DEEPSPEED:-1}" != "0" ] && ! .venv/bin/python -c "import deepspeed" >/dev/null 2>&1; then
  .venv/bin/pip install -q wheel
  .venv/bin/pip install -q --no-build-isolation "${DEEPSPEED_SPEC:-deepspeed>=0.14}"
fi
