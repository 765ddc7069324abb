"""Benchmark: uniform frame sampling by seeking (spacevllm.video.sample_frames) vs decoding the whole file.

Generates a synthetic clip (default: 60 s, 320x240, 30 fps, H.264 with a keyframe every 30 frames), then times
  * ``seek``: ``sample_frames(path, n)``;
  * ``decode-all``: decode every frame to an RGB array, then pick the sampled ones (the naive loader);
  * ``decode-all, convert picked``: decode every frame, convert only the picked ones to RGB (the best a
    non-seeking loader can do; also sample_frames' own fallback for unseekable streams);
checks that all three return identical pixels, and prints a Markdown table (median of ``--repeats`` runs).

    .venv/bin/python benchmarks/bench_video.py [--seconds 60] [--fps 30] [--gop 30] [--n 16 64]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from spacevllm.video import probe_video, sample_frames, uniform_frame_indices, write_video


def make_clip(path: Path, seconds: float, fps: int, width: int, height: int, gop: int) -> Path:
    """A moving gradient plus a moving noise square, so the encoder has real work and frames differ."""
    t = int(seconds * fps)
    yy, xx = np.mgrid[0:height, 0:width]
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    frames = np.empty((t, height, width, 3), np.uint8)
    for i in range(t):
        frames[i, ..., 0] = (xx + 3 * i) % 256
        frames[i, ..., 1] = (yy + 2 * i) % 256
        frames[i, ..., 2] = (i * 255 // max(t - 1, 1)) & 0xFF
        x0, y0 = (5 * i) % (width - 64), (3 * i) % (height - 64)
        frames[i, y0 : y0 + 64, x0 : x0 + 64] = noise
    return write_video(path, frames, fps, gop=gop)


def decode_all_then_pick(path: Path, indices: np.ndarray, convert_all: bool) -> np.ndarray:
    wanted, picked = set(indices.tolist()), []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if convert_all:
            every = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
            return np.stack([every[i] for i in indices])
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                picked.append(frame.to_ndarray(format="rgb24"))
    return np.stack(picked)


def median_seconds(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--size", default="320x240", help="WIDTHxHEIGHT")
    p.add_argument("--gop", type=int, default=30, help="keyframe interval in frames")
    p.add_argument("--n", type=int, nargs="+", default=[16, 64])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        path = make_clip(Path(tmp) / "clip.mp4", args.seconds, args.fps, width, height, args.gop)
        info = probe_video(path)
        print(
            f"clip: {info.duration:.1f} s, {info.num_frames} frames, {width}x{height} @ {info.fps:g} fps, "
            f"GOP {args.gop}, {path.stat().st_size / 1e6:.1f} MB; nproc={os.cpu_count()}; CPU: {cpu_model()}"
        )
        print(
            "\n| GOP | n | seek (`sample_frames`) | decode-all, convert all | speed-up "
            "| decode-all, convert picked | speed-up |"
        )
        print("|---|---|---|---|---|---|---|")
        for n in args.n:
            idx = uniform_frame_indices(info.num_frames, n)
            t_seek, s = median_seconds(lambda n=n: sample_frames(path, n), args.repeats)
            t_all, full = median_seconds(lambda idx=idx: decode_all_then_pick(path, idx, True), args.repeats)
            t_pick, pick = median_seconds(lambda idx=idx: decode_all_then_pick(path, idx, False), args.repeats)
            assert np.array_equal(s.frames, full) and np.array_equal(s.frames, pick), "methods disagree"
            print(
                f"| {args.gop} | {n} | {t_seek * 1e3:.0f} ms | {t_all * 1e3:.0f} ms | {t_all / t_seek:.1f}x "
                f"| {t_pick * 1e3:.0f} ms | {t_pick / t_seek:.1f}x |"
            )


if __name__ == "__main__":
    main()
