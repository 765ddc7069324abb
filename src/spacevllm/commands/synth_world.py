"""``spacevllm synth-world --out DIR --n N --seed S [--frames 16] [--fps 5] [--size 64] [--tasks stvg,vtg,rec,qa]``.

Writes DIR/records.jsonl (Uni-STG), DIR/videos/*.mp4, DIR/images/*.png and DIR/scenes.jsonl, then prints the
split's baselines (``spacevllm.data.world.world_stats``). Re-running with the same arguments skips media already
written; a larger ``--n`` extends the split.
"""

from __future__ import annotations

import argparse
import json
import time

from spacevllm.data.world import generate_world, world_stats


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n", type=int, required=True, help="number of scenes")
    parser.add_argument("--seed", type=int, required=True, help="world seed (scene i depends only on seed and i)")
    parser.add_argument("--frames", type=int, default=16, help="frames per video (default 16)")
    parser.add_argument("--fps", type=float, default=5.0, help="frames per second (default 5)")
    parser.add_argument("--size", type=int, default=64, help="frame width = height in pixels, even (default 64)")
    parser.add_argument("--tasks", default="stvg,vtg,rec,qa", help="comma-separated subset of stvg,vtg,rec,qa")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def run(args) -> int:
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    t0 = time.perf_counter()
    path = generate_world(
        args.out,
        args.n,
        args.seed,
        frames=args.frames,
        fps=args.fps,
        size=args.size,
        tasks=tasks,
        progress=not args.no_progress,
    )
    summary = {"records": str(path), "seconds": round(time.perf_counter() - t0, 2)}
    if "stvg" in tasks:
        summary["stats"] = world_stats(path)
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"wrote {path} ({args.n} scenes, {summary['seconds']} s)")
    for key, value in summary.get("stats", {}).items():
        print(f"  {key}: {value if not isinstance(value, float) else round(value, 4)}")
    return 0
