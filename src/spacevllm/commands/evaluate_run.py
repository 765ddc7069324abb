"""``spacevllm evaluate run``: run a model over Uni-STG records and score it (see
:mod:`spacevllm.engine.evaluate_run`). Multi-process: ``accelerate launch -m spacevllm.cli evaluate run ...``.

``--json`` prints ``{"stvg": {"m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5", "n"}, "vtg": {"R1@0.3", "R1@0.5",
"R1@0.7", "mIoU", "n"}, "rec": {"Acc@0.5", "n"}}`` for the tasks present (fractions in [0, 1]), plus
``"failed": [{"id", "task", "error"}]`` when records could not be predicted (counted as misses; ``--fail-fast``
stops at the first instead). Progress goes to stderr (lines every 30 s when it is not a terminal).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from spacevllm.assets import default_checkpoint_path
from spacevllm.commands.ground import add_time_source_argument
from spacevllm.engine.evaluate_run import evaluate_run
from spacevllm.errors import SpaceVLLMError
from spacevllm.io_utils import check_output
from spacevllm.metrics.table import format_table

COLUMNS = {
    "stvg": ["m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5", "n"],
    "vtg": ["R1@0.3", "R1@0.5", "R1@0.7", "mIoU", "n"],
    "rec": ["Acc@0.5", "n"],
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--annotations", required=True, help="Uni-STG records.jsonl (stvg, vtg, rec are scored)")
    parser.add_argument("--checkpoint", help="model folder (default: the embedded default model)")
    parser.add_argument("--out", help="predictions JSONL, resumable (default: <annotations>.predictions.jsonl)")
    parser.add_argument("--batch-size", type=int, default=8, help="records per forward pass (default 8)")
    parser.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    parser.add_argument("--threads", type=int, help="CPU threads per process")
    parser.add_argument(
        "--fail-fast",
        action="store_true",
        help="stop at the first record whose media fails (default: report it, count it as a miss, go on)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    add_time_source_argument(parser)


def run(args) -> int:
    if args.batch_size < 1:
        raise SpaceVLLMError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.threads is not None and args.threads < 1:
        raise SpaceVLLMError(f"--threads must be at least 1, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    annotations = Path(args.annotations)
    if not annotations.is_file():
        what = "is a folder, not a records file" if annotations.is_dir() else "annotations file not found"
        raise SpaceVLLMError(f"{annotations}: {what}")
    checkpoint = Path(args.checkpoint) if args.checkpoint else default_checkpoint_path()
    out = check_output(args.out or annotations.with_name(annotations.stem + ".predictions.jsonl"), "file")
    scores = evaluate_run(
        annotations,
        checkpoint,
        out,
        args.batch_size,
        progress=not args.no_progress,  # on stderr: --json output on stdout stays one clean line
        time_source=args.time_source,
        fail_fast=args.fail_fast,
    )
    if args.json:
        print(json.dumps(scores))
    else:
        failed = scores.pop("failed", [])
        _print_tables(scores, annotations.name)
        if failed:
            print(f"failed: {len(failed)} records (counted as misses): {', '.join(f['id'] for f in failed[:10])}")
        print(f"predictions: {out}")
    return 0


def _print_tables(scores: dict, name: str) -> None:
    for task, values in scores.items():
        print(format_table([(name, values)], COLUMNS[task], title=task.upper()))
