#!/usr/bin/env bash
# The text-coordinate baseline (paper Table 7 row 1) at the embedded default model's whole budget: seven stages,
# each the equal-budget partner of one default-model stage (same data, mixture, steps, schedule, precision, seed;
# 15,500 steps x 32 = 496,000 samples). Safe to run again after an interruption: a finished stage (its final/
# exists) is skipped, an unfinished one resumes from its newest checkpoint. Each finished stage is scored on the
# held-out world split (seed 7) into runs/eval/textcoords-sN-heldout.json{,l} before the next one starts, so the
# evaluation has the CPU to itself (~2.5 min; an evaluation beside training takes ~16). About 12 h on 2 CPU cores.
#
#   bash scripts/train_textcoords_baseline.sh            # from the repo root, after scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin/spacevllm
cfg=src/spacevllm/configs/train

stage() {  # stage NAME LABEL: train configs/train/NAME.yaml into runs/NAME unless runs/NAME/final exists; score it
  if [ -d "runs/$1/final" ]; then
    echo "$1: done"
  else
    echo "$1: training ($(date -u +%H:%M))"
    "$bin" train --config "$cfg/$1.yaml" --resume
  fi
  score "$1" "$2"
}

score() {  # score NAME LABEL: held-out (seed 7) evaluation of runs/NAME/final into runs/eval/textcoords-LABEL-heldout.*
  local out=runs/eval/textcoords-$2-heldout
  [ -f "$out.json" ] && return
  [ -f runs/world/heldout/records.jsonl ] || "$bin" synth-world --out runs/world/heldout --n 160 --seed 7
  mkdir -p runs/eval
  "$bin" evaluate run --annotations runs/world/heldout/records.jsonl --checkpoint "runs/$1/final" \
    --out "$out.jsonl" --json --batch-size 16 > "$out.json.tmp"
  mv "$out.json.tmp" "$out.json"
  echo "$1: $(cat "$out.json")"
}

refine() {  # refine SRC OUT STRIDE: 2x finer patches (spacevllm convert --finer-patches) unless OUT exists
  [ -d "$2" ] || "$bin" convert --finer-patches "$1" --out "$2" --pool-stride "$3"
}

stage world_textcoords s1
stage world_textcoords_stage2 s2
stage world_textcoords_stage3 s3
stage world_textcoords_stage4 s4
refine runs/world_textcoords_stage4/final runs/world_textcoords_fine/init8 2
stage world_textcoords_fine s5
refine runs/world_textcoords_fine/final runs/world_textcoords_fine4/init4 4
stage world_textcoords_fine4 s6
stage world_textcoords_stage7 s7
