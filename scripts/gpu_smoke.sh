#!/usr/bin/env bash
# GPU smoke test of the real-scale training path, on a machine with one CUDA GPU (about 10 minutes):
#   1. a random checkpoint of LLaVA-OneVision-0.5B's shape (SigLIP so400m 26 layers + projector + Qwen2-0.5B),
#      built by transformers and written with save_pretrained in bf16, then `spacevllm convert` (64 frames);
#   2. a generated world (`spacevllm synth-world`: 8 scenes, 80 frames of 128 px at 8 fps);
#   3. 20 training steps under DeepSpeed ZeRO-3, bf16, gradient checkpointing, 64 frames, launched as the 8-GPU
#      run is (`accelerate launch ... spacevllm.cli train --config CFG --deepspeed zero3`, one process here),
#      saving a checkpoint at step 10 and final/;
#   4. final/ reloaded (load_model: every weight has its full shape) and one video grounded (`spacevllm ground`);
#   5. peak GPU memory of the training process and its samples/s (log.jsonl).
# Without a CUDA GPU it says so and exits 0 having run nothing.
#
#   bash scripts/gpu_smoke.sh [OUT_DIR]      # from anywhere; OUT_DIR default runs/gpu_smoke (must not exist)
#   PYTHON=/path/to/python bash scripts/gpu_smoke.sh   # default .venv/bin/python, else python3
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3

rc=0
"$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)' || rc=$?
if [ "$rc" -eq 3 ]; then
  echo "gpu_smoke: no CUDA GPU here (torch.cuda.is_available() is False); this smoke test needs one. Nothing was run."
  exit 0
elif [ "$rc" -ne 0 ]; then
  echo "gpu_smoke: $PY cannot import torch (run scripts/setup.sh first, or set PYTHON)" >&2
  exit 1
fi

OUT="${1:-runs/gpu_smoke}"
if [ -e "$OUT" ]; then
  echo "gpu_smoke: $OUT exists; remove it or pass another folder" >&2
  exit 2
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
cli() { "$PY" -m spacevllm.cli "$@"; }
step() { echo "== gpu_smoke $(date -u +%H:%M:%S): $*"; }
"$PY" -c 'import torch; p = torch.cuda.get_device_properties(0); print(f"GPU: {p.name}, {p.total_memory / 2**30:.1f} GiB")'

step "world"
cli synth-world --out "$OUT/world" --n 8 --seed 0 --frames 80 --fps 8 --size 128 --tasks stvg,vtg --no-progress

step "random LLaVA-OneVision-0.5B-shaped source checkpoint"
"$PY" - "$OUT/world/records.jsonl" "$OUT/source" <<'EOF'
import json
import sys
from pathlib import Path

import torch
from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

from spacevllm.data.dataset import corpus_words
from spacevllm.modeling.tiny import build_tokenizer
from spacevllm.data.records import read_records

records, out = sys.argv[1], Path(sys.argv[2])
tokenizer = build_tokenizer(corpus_words(read_records(records)))  # offline BPE; digits split as Qwen2 does
vision = dict(model_type="siglip_vision_model", hidden_size=1152, intermediate_size=4304, num_hidden_layers=26,
              num_attention_heads=16, image_size=384, patch_size=14, vision_use_head=False)
text = dict(model_type="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
            num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1e6,
            tie_word_embeddings=True)  # Qwen2-0.5B: 151,936 rows, most of them spare for this small tokenizer
config = LlavaOnevisionConfig(
    vision_config=vision, text_config=text, vision_feature_layer=-1, vision_feature_select_strategy="full",
    image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
)
torch.manual_seed(0)
with torch.device("cuda"):
    model = LlavaOnevisionForConditionalGeneration(config).to(torch.bfloat16)
model.save_pretrained(out)
tokenizer.save_pretrained(out)
meta = {"image_mean": [0.5] * 3, "image_std": [0.5] * 3, "size": {"height": 384, "width": 384}}
(out / "preprocessor_config.json").write_text(json.dumps(meta), encoding="utf-8")
print(f"{sum(p.numel() for p in model.parameters()) / 1e9:.3f}B parameters -> {out}")
EOF

step "convert"
cli convert --llava-onevision "$OUT/source" --out "$OUT/init" --num-frames 64

step "train: 20 steps, ZeRO-3, bf16, gradient checkpointing, 64 frames"
cat > "$OUT/train.yaml" <<EOF
seed: 0
out_dir: "$OUT/run"
precision: bf16
log_every: 5
save_every: 10
keep_checkpoints: 1
model:
  init: "$OUT/init"
  gradient_checkpointing: true
data:
  train: ["$OUT/world/records.jsonl"]
  num_frames: 64
  task_weights: {stvg: 1, vtg: 1}
  num_workers: 2
optim:
  lr: 1.0e-5
  warmup_ratio: 0.1
  max_steps: 20
  batch_size: 1
  grad_accum: 1
EOF
cat > "$OUT/train_peak.py" <<'EOF'
"""spacevllm.cli train in this process, then its peak GPU memory as one JSON line (gpu_smoke.sh)."""
import json
import sys

import torch

from spacevllm.cli import main

rc = main(["train", *sys.argv[1:]])
peak = {"peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
        "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30}
print("PEAK " + json.dumps({k: round(v, 2) for k, v in peak.items()}))
sys.exit(rc)
EOF
"$PY" -m accelerate.commands.launch --num_processes 1 "$OUT/train_peak.py" \
  --config "$OUT/train.yaml" --deepspeed zero3 --no-progress | tee "$OUT/train.out"

step "reload final/"
"$PY" - "$OUT/run/final" "$OUT/init" <<'EOF'
import sys

from spacevllm.modeling.inference import load_model

model, _ = load_model(sys.argv[1], device="cuda", dtype="bfloat16")
reference, _ = load_model(sys.argv[2], device="cpu", dtype="bfloat16")
shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
expected = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
if shapes != expected:
    bad = sorted(k for k in expected if shapes.get(k) != expected[k])[:3]
    sys.exit(f"gpu_smoke: final/ weights do not have the converted shapes, e.g. {bad}")
print(f"final/ reloaded: {sum(p.numel() for p in model.parameters()) / 1e9:.3f}B parameters, shapes as converted")
EOF

step "ground one video"
IFS=$'\t' read -r VIDEO QUERY < <("$PY" - "$OUT/world/records.jsonl" <<'EOF'
import sys
from pathlib import Path

from spacevllm.data.records import read_records

path = Path(sys.argv[1])
record = next(r for r in read_records(path) if r.task == "stvg")
print(f"{path.parent / record.video}\t{record.query}")
EOF
)
cli ground --checkpoint "$OUT/run/final" --video "$VIDEO" --query "$QUERY" --frames 64 --device cuda --json \
  > "$OUT/ground.json"
head -c 300 "$OUT/ground.json"; echo

step "summary"
"$PY" - "$OUT" <<'EOF'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
rows = [json.loads(line) for line in (out / "run" / "log.jsonl").read_text().splitlines() if line.strip()]
peak = next(json.loads(l[5:]) for l in (out / "train.out").read_text().splitlines() if l.startswith("PEAK "))
last = rows[-1]
print(f"steps: {last['step']}, last loss: {last.get('loss')}, samples/s: {last['samples_per_s']}")
print(f"peak GPU memory of training: {peak['peak_allocated_gib']} GiB allocated, {peak['peak_reserved_gib']} GiB reserved")
EOF
echo "gpu_smoke: OK ($OUT)"
