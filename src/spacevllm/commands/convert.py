"""``spacevllm convert``: a LLaVA-OneVision / LLaVA-Video checkpoint -> SpaceVLLM, or a SpaceVLLM checkpoint ->
the same model with finer patches.

    spacevllm convert --source SRC --out DST [--source-format auto|llava_onevision|llava_qwen]
                      [--num-frames N] [--query-mode MODE]
    spacevllm convert --finer-patches SRC --out DST [--factor 2] [--pool-stride 1|2|4]

SRC is transformers' ``llava_onevision`` folder or LLaVA-NeXT's own ``llava_qwen`` folder (as
lmms-lab/LLaVA-Video-7B-Qwen2 is released), told apart by its config.json; ``--llava-onevision`` is the same flag
as ``--source``. docs/checkpoints.md: which video token layout each source gets.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from spacevllm.errors import SpaceVLLMError
from spacevllm.io_utils import check_output
from spacevllm.modeling.convert import convert_checkpoint, refine_patch_grid


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--source",
        "--llava-onevision",
        dest="source",
        metavar="SRC_DIR",
        help="LLaVA-OneVision / LLaVA-Video folder: transformers' llava_onevision or LLaVA-NeXT's llava_qwen",
    )
    source.add_argument(
        "--finer-patches",
        metavar="SRC_DIR",
        help="SpaceVLLM folder to continue with --factor x finer patches (progressive resizing)",
    )
    parser.add_argument("--out", required=True, metavar="DST_DIR", help="SpaceVLLM checkpoint folder to write")
    parser.add_argument(
        "--source-format",
        default="auto",
        choices=["auto", "llava_onevision", "llava_qwen"],
        help="format of --source (default: from its config.json's model_type)",
    )
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
    check_not_inside(args.out, args.finer_patches or args.source)
    if args.finer_patches:
        out = refine_patch_grid(args.finer_patches, args.out, args.factor, args.pool_stride)
    else:
        if args.num_frames < 1:
            raise SpaceVLLMError("--num-frames must be >= 1")
        out = convert_checkpoint(args.source, args.out, args.num_frames, args.query_mode, args.source_format)
        print(layout_line(out))
    print(f"wrote SpaceVLLM checkpoint to {out}")
    return 0


def check_not_inside(out, source) -> None:
    """Refuse an ``--out`` that is the source folder or inside it (writing it would replace the source)."""
    out_path, src_path = Path(out).resolve(), Path(source).resolve()
    if out_path == src_path or src_path in out_path.parents:
        where = "is" if out_path == src_path else "is inside"
        raise SpaceVLLMError(f"--out {out} {where} the source folder {source}: choose another folder")


def layout_line(folder) -> str:
    """One line naming the dtype and video token layout a converted checkpoint got (docs/checkpoints.md)."""
    from spacevllm.modeling import SpaceVLLMConfig

    c = SpaceVLLMConfig.from_pretrained(folder)
    pool = "no" if c.pool_stride == 1 else c.frame_pool_mode or {2: "bilinear", 4: "average"}[c.pool_stride]
    dtype = str(c.dtype).removeprefix("torch.")
    return (
        f"dtype {dtype}; video layout: {pool} pooling, stride {c.pool_stride} -> {c.tokens_per_frame} patch tokens "
        f"per frame, newline_position {c.newline_position} -> {c.frame_placeholders} tokens per frame"
        f"{' + 1 per video' if c.video_newlines else ''}"
    )
