"""``spacevllm ground``: ground a query in a video -> time range + one box per sampled frame inside it.

Prints the tube (or, with ``--json``, exactly ``{"start", "end", "text", "boxes": [{"frame", "time", "box"}]}``:
source frame indices, seconds, pixel xyxy of the displayed source video; times rounded to 0.1 ms, boxes to
0.01 px). An image (PNG, JPEG, ...) runs referring expression comprehension instead: one box, no time range
(``start`` and ``end`` null, one box at frame 0), in the image as displayed (EXIF orientation applied, as a
video's rotation is). Without ``--checkpoint`` the embedded default model is used.

Every setting is checked before the model is loaded: the query, ``--threads``, the checkpoint folder,
``--frames`` against the model's ``num_frames`` (1 to N_v: one video query token per frame) and the video's
length. A bad one stops with one line, exit 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from spacevllm import api
from spacevllm.errors import SpaceVLLMError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="SpaceVLLM model folder (default: the embedded default model)")
    parser.add_argument(
        "--video", required=True, help="video file (anything FFmpeg decodes), or an image (one box, no time range)"
    )
    parser.add_argument("--query", required=True, help="the caption to ground, e.g. 'the man in red sits down'")
    parser.add_argument("--frames", type=int, help="frames to sample, 1 to the model's num_frames (default: all)")
    parser.add_argument("--json", action="store_true", help="print the tube as one JSON object")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: cuda if present")
    parser.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="default: bfloat16 on a GPU that has it",
    )
    parser.add_argument("--threads", type=int, help="CPU threads for torch, at least 1 (default: torch's choice)")
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
    query = check_query(args.query)
    check_threads(args.threads)
    image = is_image(args.video)
    info = None if image else probe_video(args.video)  # a missing or unreadable video fails here
    checkpoint, frames = _checked_model(args)
    if info is not None:
        check_video_length(info, frames, args.frames is None)
    tube = _ground_image(checkpoint, args, query) if image else _ground(checkpoint, args, query, frames)
    if args.json:
        print(json.dumps(tube.to_json(time_digits=4, box_digits=2)))
    else:
        print(describe_image_box(tube) if image else tube)
    return 0


# --- checks (no model loaded) ------------------------------------------------------------------------------------


def check_query(query: str | None) -> str:
    """The stripped ``--query``; an empty or blank one is a :class:`SpaceVLLMError`."""
    return api.check_query(query, "--query")


def check_threads(threads: int | None) -> None:
    """``--threads`` must be None (torch's choice) or at least 1."""
    if threads is not None and threads < 1:
        raise SpaceVLLMError(f"--threads must be at least 1, got {threads}")


def _checked_model(args) -> tuple[Path, int]:
    """The checkpoint folder (config and weights present) and the frames to sample, 1 to its ``num_frames``."""
    from spacevllm.modeling.inference import check_checkpoint, check_num_frames

    checkpoint = _checkpoint(args.checkpoint)
    model_frames = int(check_checkpoint(checkpoint).get("num_frames") or 0)
    frames = model_frames if args.frames is None else args.frames
    return checkpoint, check_num_frames(frames, model_frames, "--frames")


def probe_video(video):
    """:func:`spacevllm.video.probe_video` (imported lazily: ``--help`` stays fast)."""
    from spacevllm.video import probe_video as probe

    return probe(video)


def check_video_length(info, frames: int, default: bool) -> None:
    """A video (its :class:`~spacevllm.video.VideoInfo`) whose header counts fewer than ``frames`` frames fails
    here, naming the file (and ``--frames`` when the count was the model's default)."""
    if 0 < info.num_frames < frames:
        have = f"{info.num_frames} frame{'s' if info.num_frames != 1 else ''}"
        hint = f"; pass --frames {info.num_frames} or fewer" if default else ""
        raise SpaceVLLMError(f"{info.path}: video is too short: it has {have}, fewer than the {frames} asked for{hint}")


def is_image(path) -> bool:
    """:func:`spacevllm.video.is_image` (imported lazily: ``--help`` stays fast)."""
    from spacevllm.video import is_image as still_image

    return still_image(path)


def _checkpoint(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    from spacevllm import assets

    return assets.default_checkpoint_path()


# --- grounding ---------------------------------------------------------------------------------------------------


def _load(checkpoint: Path, args):
    import torch

    from spacevllm.modeling.inference import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    return load_model(checkpoint, device=args.device, dtype=args.dtype, time_source=args.time_source)


def _ground(checkpoint: Path, args, query: str, frames: int):
    import warnings

    from spacevllm.modeling.inference import ground

    model, processor = _load(checkpoint, args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no time range in the answer" is reported by the printed tube itself
        return ground(model, processor, args.video, query, num_frames=frames)


def _ground_image(checkpoint: Path, args, query: str):
    """REC on an image: a :class:`~spacevllm.tube.Tube` with no time range and one box (frame 0, time 0)."""
    import warnings

    from spacevllm.modeling.inference import ground_image
    from spacevllm.tube import Tube
    from spacevllm.video import read_image

    image = read_image(args.video, display=True)  # EXIF orientation applied: the box is where a viewer sees it
    model, processor = _load(checkpoint, args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # text-coordinate models: an unreadable answer gives the empty box
        box = ground_image(model, processor, image, query)
    return Tube(None, None, "", [0], [0.0], [box])


def describe_image_box(tube) -> str:
    """One line for an image's REC box (pixel xyxy)."""
    x1, y1, x2, y2 = tube.boxes[0]
    return f"box=[{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]  (an image: one box, no time range)"
