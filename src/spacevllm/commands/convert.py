"""``spacevllm convert``: a LLaVA-OneVision / LLaVA-Video checkpoint -> SpaceVLLM, or a SpaceVLLM checkpoint ->
the same model with finer patches.

    spacevllm convert --llava-onevision SRC --out DST [--num-frames N] [--query-mode MODE]
    spacevllm convert --finer-patches SRC --out DST [--factor 2] [--pool-stride 1|2|4]
"""

from __future__ import annotations

import argparse

from spacevllm.errors import SpaceVLLMError
from spacevllm.io_utils import check_output
from spacevllm.modeling.convert import convert_llava_onevision, refine_patch_grid


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--llava-onevision",
        metavar="SRC_DIR",
        help="LlavaOnevisionForConditionalGeneration folder (e.g. a converted LLaVA-Video-7B-Qwen2)",
    )
    source.add_argument(
        "--finer-patches",
        metavar="SRC_DIR",
        help="SpaceVLLM folder to continue with --factor x finer patches (progressive resizing)",
    )
    parser.add_argument("--out", required=True, metavar="DST_DIR", help="SpaceVLLM checkpoint folder to write")
    parser.add_argument("--num-frames", type=int, default=64, help="N_v: frames and video queries (paper: 64)")
    parser.add_argument(
        "--query-mode",
        default="interleaved",
        choices=["interleaved", "appended", "none"],
        help="Table 7 ablation: query layout (default interleaved)",
    )
    parser.add_argument("--factor", type=int, default=2, help="--finer-patches: patch size divisor (default 2)")
    parser.add_argument(
        "--pool-stride",
        type=int,
        choices=[1, 2, 4],
        default=None,
        help="--finer-patches: pooling after the vision tower (default: the source's)",
    )


def run(args) -> int:
    check_output(args.out, "folder")
    if args.finer_patches:
        out = refine_patch_grid(args.finer_patches, args.out, args.factor, args.pool_stride)
    else:
        if args.num_frames < 1:
            raise SpaceVLLMError("--num-frames must be >= 1")
        out = convert_llava_onevision(args.llava_onevision, args.out, args.num_frames, args.query_mode)
    print(f"wrote SpaceVLLM checkpoint to {out}")
    return 0
