#!/usr/bin/env bash
# Fresh-machine setup: a virtual environment in .venv with spacevllm (editable) and its dev tools.
# torch: if the venv has none, install TORCH_SPEC (default torch==2.13.0, the CPU wheel on this
# project's machines). GPU users: install your own CUDA build of torch into .venv first (or set
# TORCH_SPEC), this script then leaves it alone.
# DeepSpeed (`spacevllm train --deepspeed ...`, tests/test_train_deepspeed.py): installed against the venv's torch
# (its setup imports torch, hence --no-build-isolation; no ops are compiled at install time). WITH_DEEPSPEED=0 skips
# it; the DeepSpeed tests then skip and say why.
# Web demo and integrations (WITH_EXTRAS=0 skips them; their tests then skip and say why): the serve and
# browser-tests extras (gradio, gradio_client, playwright; ~30 s), Debian's chromium when /usr/bin/chromium is
# missing and we are root (~60 s; Playwright's own browser download is not used), and lmms-eval 0.7.3 with
# --no-deps plus the lmms-eval extra (its own requirements would replace torch and av; ~20 s).
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
if [ "${WITH_EXTRAS:-1}" != "0" ]; then
  .venv/bin/pip install -q -e ".[serve,browser-tests,lmms-eval]"
  .venv/bin/python -c "import lmms_eval" >/dev/null 2>&1 || .venv/bin/pip install -q --no-deps "${LMMS_EVAL_SPEC:-lmms-eval==0.7.3}"
  if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi
