"""Benchmark: one training forward + backward in fp32 vs bf16 autocast on this CPU, side by side.

Loads a SpaceVLLM checkpoint (default: the embedded model), builds one batch of STVG samples from a small
generated world, and times ``model(**batch).loss.backward()`` alternately in fp32 and under
``torch.autocast("cpu", dtype=torch.bfloat16)`` (what ``precision: bf16`` in a train config does through
accelerate), ``--repeats`` times each after one warm-up of each. Prints the median seconds, the ratio and the
largest relative difference between the loss terms of the two precisions.

    .venv/bin/python benchmarks/bench_precision.py --batch 32 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import torch

from spacevllm.assets import default_checkpoint_path
from spacevllm.data.collate import Collator
from spacevllm.data.dataset import UniSTGDataset
from spacevllm.data.world import generate_world
from spacevllm.modeling.inference import load_model


def step(model, batch, bf16: bool) -> tuple[float, dict[str, float]]:
    """Seconds for one forward + backward, and the loss terms."""
    t = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(**batch)
    out.loss.backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - t, {k: float(v.detach()) for k, v in out.loss_dict.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="SpaceVLLM folder (default: the embedded model)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ckpt = args.checkpoint or default_checkpoint_path()
    model, processor = load_model(ckpt, device="cpu", dtype="float32")
    model.train()
    with tempfile.TemporaryDirectory() as tmp:
        records = generate_world(tmp, n=max(1, args.batch // 2), seed=99)
        ds = UniSTGDataset(records, model.config.num_frames)
        stvg = [i for i, t in enumerate(ds.tasks) if t == "stvg"][: args.batch]
        batch = Collator(processor)([ds[i] for i in stvg])
    times: dict[bool, list[float]] = {False: [], True: []}
    losses: dict[bool, dict[str, float]] = {}
    for k in range(args.repeats + 1):
        for bf16 in (False, True):
            seconds, losses[bf16] = step(model, batch, bf16)
            if k:  # the first of each is a warm-up
                times[bf16].append(seconds)
    fp32, bf16 = statistics.median(times[False]), statistics.median(times[True])
    diff = max(abs(losses[True][k] - v) / max(abs(v), 1e-8) for k, v in losses[False].items())
    print(f"machine: {platform.processor() or platform.machine()}, nproc {os.cpu_count()}, torch {torch.__version__}")
    print(f"batch {len(stvg)} STVG samples, sequence {batch['input_ids'].shape[1]} tokens, {args.threads} threads")
    print("| fp32 s | bf16 autocast s | fp32 / bf16 | max relative loss-term difference |")
    print("|---|---|---|---|")
    print(f"| {fp32:.3f} | {bf16:.3f} | {fp32 / bf16:.2f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
