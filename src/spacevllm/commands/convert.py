"""``spacevllm convert --llava-onevision SRC --out DST [--num-frames N] [--query-mode MODE]``."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--llava-onevision",
        required=True,
        metavar="SRC_DIR",
        help="LlavaOnevisionForConditionalGeneration folder (e.g. a converted LLaVA-Video-7B-Qwen2)",
    )
    parser.add_argument("--out", required=True, metavar="DST_DIR", help="SpaceVLLM checkpoint folder to write")
    parser.add_argument("--num-frames", type=int, default=64, help="N_v: frames and video queries (paper: 64)")
    parser.add_argument(
        "--query-mode",
        default="interleaved",
        choices=["interleaved", "appended", "none"],
        help="Table 7 ablation: query layout (default interleaved)",
    )


def run(args) -> int:
    from spacevllm.errors import SpaceVLLMError
    from spacevllm.modeling.convert import convert_llava_onevision

    if args.num_frames < 1:
        raise SpaceVLLMError("--num-frames must be >= 1")
    out = convert_llava_onevision(args.llava_onevision, args.out, args.num_frames, args.query_mode)
    print(f"wrote SpaceVLLM checkpoint to {out}")
    return 0
