#!/usr/bin/env bash
# Fresh-machine setup: a virtual environment in .venv with spacevllm (editable) and its dev tools.
# torch: if the venv has none, install TORCH_SPEC (default torch==2.13.0, the CPU wheel on this
# project's machines). GPU users: install your own CUDA build of torch into .venv first (or set
# TORCH_SPEC), this script then leaves it alone.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/pip install -q "${TORCH_SPEC:-torch==2.13.0}"
fi
.venv/bin/pip install -q -e ".[dev]"
