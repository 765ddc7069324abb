"""``spacevllm train --config CONFIG.yaml [--deepspeed zero2|zero3|DS.json] [--out DIR] [--init DIR]
[--resume | --overwrite]``:
multi-task training on accelerate, optionally under DeepSpeed ZeRO.

Runs in whatever process group it is launched in: one plain process, ``accelerate launch [--num_processes N] -m
spacevllm.cli train ...`` or ``torchrun --nproc_per_node N -m spacevllm.cli train ...`` (each process draws its own
micro-batches of the mixture; the main process logs and saves). See docs/training-at-scale.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="training YAML (see src/spacevllm/configs/train/)")
    parser.add_argument(
        "--deepspeed",
        metavar="zero2|zero3|JSON",
        help="train under DeepSpeed ZeRO: a shipped config (zero2, zero3) or a DeepSpeed JSON file",
    )
    parser.add_argument("--out", help="output folder (overrides the config's out_dir)")
    parser.add_argument("--init", metavar="DIR", help="start from this model folder (overrides model.init)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in the output folder from its newest checkpoint"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the run in the output folder (default: refuse to mix runs)"
    )
    parser.add_argument("--max-steps", type=int, help="override optim.max_steps")
    parser.add_argument("--seed", type=int, help="override seed")
    parser.add_argument("--threads", type=int, help="override threads (torch intra-op threads per process)")
    parser.add_argument("--stop-after", type=int, metavar="STEP", help="checkpoint and stop after this step")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to log.jsonl)")


def run(args) -> int:
    if args.deepspeed:
        _cpu_deepspeed()
    from spacevllm.engine.train import apply_flags, load_config, train
    from spacevllm.io_utils import check_output

    cfg = load_config(args.config)  # every key checked (one line naming the file and the key)
    if args.out:
        cfg.out_dir = args.out
    check_output(cfg.out_dir, "folder")  # a bad out_dir fails before the data and the model are built
    if args.init:
        cfg.model.init = args.init
    apply_flags(cfg, {"--max-steps": args.max_steps, "--seed": args.seed, "--threads": args.threads})
    final = train(
        cfg,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        stop_after=args.stop_after,
        deepspeed=args.deepspeed,
    )
    log = Path(cfg.out_dir) / "log.jsonl"
    last = log.read_text(encoding="utf-8").splitlines()[-1:] if log.exists() else []
    print(f"model saved to {final}")
    if last:
        print("last log:", json.dumps(json.loads(last[0])))
    return 0


def _cpu_deepspeed() -> None:
    """Without CUDA, DeepSpeed must use its CPU accelerator: ``DS_ACCELERATOR=cpu`` before it is first used."""
    import os

    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
