"""``spacevllm demo [--out DIR]``: ground a query on the bundled sample video with the embedded default model.

Prints the tube and writes, atomically, ``DIR/tube.json`` (the ``ground --json`` object), ``DIR/annotated.mp4``
(the box drawn on each frame, the predicted time range marked on a bar under the frame) and
``DIR/timeline.png`` (frames with their boxes over the time axis). DIR defaults to ``./demo_out``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_out", help="output folder (default ./demo_out)")
    parser.add_argument("--checkpoint", help="model folder (default: the embedded default model)")
    parser.add_argument("--video", help="video to ground in (default: the bundled sample video)")
    parser.add_argument("--query", help="caption to ground (default: the sample video's query)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")


def run(args) -> int:
    import torch

    from spacevllm import assets
    from spacevllm.io_utils import check_output

    out = check_output(args.out, "folder")  # a bad --out fails before the model is loaded
    torch.set_num_threads(max(1, args.threads))
    t0 = time.perf_counter()
    checkpoint = Path(args.checkpoint) if args.checkpoint else assets.default_checkpoint_path()
    video = Path(args.video) if args.video else assets.sample_video_path()
    query = args.query or (assets.sample_info()["query"] if not args.video else None)
    if not query:
        from spacevllm.errors import SpaceVLLMError

        raise SpaceVLLMError("--query is required with --video")
    tube = _ground(checkpoint, video, query)
    _write_outputs(out, video, query, tube)
    print(f"query: {query}")
    print(_describe(tube))
    files = ", ".join(str(out / name) for name in ("tube.json", "annotated.mp4", "timeline.png"))
    print(f"wrote {files} ({time.perf_counter() - t0:.1f} s)")
    return 0


def _ground(checkpoint: Path, video: Path, query: str):
    import torch

    from spacevllm.modeling.inference import ground, load_model

    model, processor = load_model(checkpoint)
    with torch.no_grad():
        return ground(model, processor, str(video), query)


def _write_outputs(out: Path, video: Path, query: str, tube) -> None:
    from spacevllm.demo import write_annotated_video, write_timeline
    from spacevllm.io_utils import write_json_atomic
    from spacevllm.video import probe_video, sample_frames

    info = probe_video(video)
    frames = sample_frames(video, info.num_frames).frames if info.num_frames else None
    if frames is None:
        from spacevllm.errors import VideoError

        raise VideoError(f"{video}: cannot count the video's frames")
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "tube.json", tube.to_json())
    write_annotated_video(out / "annotated.mp4", frames, info.fps, tube, info.duration)
    write_timeline(out / "timeline.png", frames, info.fps, tube, info.duration, query)


def _describe(tube) -> str:
    if tube.start is None:
        return f"no time range could be read from the answer {tube.text!r}"
    lines = [f"time range: {tube.start:.1f} - {tube.end:.1f} s  (answer: {tube.text!r})"]
    for box in tube.to_json()["boxes"]:
        x1, y1, x2, y2 = box["box"]
        lines.append(f"  frame {box['frame']:>4}  t={box['time']:6.2f}s  box=[{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]")
    return "\n".join(lines)
