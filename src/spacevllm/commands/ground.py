"""``spacevllm ground``: ground a query in a video -> time range + one box per sampled frame inside it.

Prints the tube (or, with ``--json``, exactly ``{"start", "end", "text", "boxes": [{"frame", "time", "box"}]}``:
source frame indices, seconds, pixel xyxy of the source video). Without ``--checkpoint`` the embedded default
model is used. A missing or corrupt video, an empty query or a bad checkpoint stops with one line, exit 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from spacevllm.errors import SpaceVLLMError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="SpaceVLLM model folder (default: the embedded default model)")
    parser.add_argument("--video", required=True, help="video file (anything FFmpeg decodes)")
    parser.add_argument("--query", required=True, help="the caption to ground, e.g. 'the man in red sits down'")
    parser.add_argument("--frames", type=int, help="frames to sample (default: the model's num_frames)")
    parser.add_argument("--json", action="store_true", help="print the tube as one JSON object")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: cuda if present")
    parser.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="default: bfloat16 on a GPU that has it",
    )
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    add_time_source_argument(parser)


TIME_SOURCES = ("text", "pointer")  # = spacevllm.modeling.configuration.TIME_SOURCES, without importing transformers


def add_time_source_argument(parser: argparse.ArgumentParser) -> None:
    """``--time-source`` (``ground`` and ``evaluate run``): see :func:`spacevllm.modeling.inference.load_model`."""
    parser.add_argument(
        "--time-source",
        choices=TIME_SOURCES,
        help="time range from the generated text or the temporal pointer (default: the checkpoint's config)",
    )


def run(args) -> int:
    from spacevllm.video import probe_video

    query = (args.query or "").strip()
    if not query:
        raise SpaceVLLMError("--query is empty")
    if args.frames is not None and args.frames < 1:
        raise SpaceVLLMError(f"--frames must be at least 1, got {args.frames}")
    probe_video(args.video)  # a missing or unreadable video fails here, before the model is loaded
    tube = _ground(_checkpoint(args.checkpoint), args, query)
    print(json.dumps(tube.to_json()) if args.json else tube)
    return 0


def _checkpoint(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    from spacevllm import assets

    return assets.default_checkpoint_path()


def _ground(checkpoint: Path, args, query: str):
    import warnings

    import torch

    from spacevllm.modeling.inference import ground, load_model

    if args.threads:
        torch.set_num_threads(max(1, args.threads))
    model, processor = load_model(checkpoint, device=args.device, dtype=args.dtype, time_source=args.time_source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no time range in the answer" is reported by the printed tube itself
        return ground(model, processor, args.video, query, num_frames=args.frames)
