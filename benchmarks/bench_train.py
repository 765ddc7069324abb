"""Benchmark: training throughput (samples/s) and peak memory of ``spacevllm train`` on a config.

Runs ``--steps`` optimizer steps of CONFIG into a temporary folder (the world/records the config names must exist
or be generatable), skips the first ``--warmup`` steps (tokenizer/model build, first batches, frame cache fill),
and prints a Markdown row: samples/s, s/step, peak RSS. Use ``--threads`` to match the machine share.

    .venv/bin/python benchmarks/bench_train.py --config src/spacevllm/configs/train/world.yaml --steps 30
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import torch

from spacevllm.engine.train import load_config, peak_rss_mb, read_log, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(args.config)
        cfg.out_dir, cfg.log_every, cfg.save_every, cfg.threads = tmp, 1, 10**9, args.threads
        cfg.optim.max_steps = args.steps
        train(cfg, progress=False)
        rows = read_log(Path(tmp) / "log.jsonl")
    batch = cfg.optim.batch_size * cfg.optim.grad_accum
    # samples_per_s in the log is cumulative since the start; derive the rate after the warm-up steps
    t_w = args.warmup * batch / rows[args.warmup - 1]["samples_per_s"]
    t_n = args.steps * batch / rows[-1]["samples_per_s"]
    rate = (args.steps - args.warmup) * batch / (t_n - t_w)
    print(f"machine: {platform.processor() or platform.machine()}, nproc {os.cpu_count()}, torch {torch.__version__}")
    print("| config | batch | steps timed | samples/s | s/step | peak RSS |")
    print("|---|---|---|---|---|---|")
    name = Path(args.config).name
    print(
        f"| {name} | {batch} | {args.steps - args.warmup} | {rate:.1f} | {batch / rate:.2f} | {peak_rss_mb():.0f} MB |"
    )


if __name__ == "__main__":
    main()
