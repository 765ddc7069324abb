"""Drawing a grounded tube: an annotated MP4 (box on each frame, time range marked) and a timeline PNG (Pillow).

Inputs are a :class:`~spacevllm.tube.Tube`-like object with ``start``/``end`` (closed seconds or None) and
``frames`` (source frame indices), ``times`` (seconds) and ``boxes`` (pixel xyxy), and the video's frames.
A frame of the video gets the box of the nearest tube frame when it lies inside the predicted range
``[start, end]`` seconds (the tube has boxes only at the sampled frames).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from spacevllm.io_utils import atomic_path
from spacevllm.video import write_video

BOX_COLOR = (255, 40, 40)
RANGE_COLOR = (40, 200, 80)
BAR_BG = (60, 60, 60)
BAR_HEIGHT = 14


def _scale_for(frames: np.ndarray, min_side: int = 256) -> int:
    """Integer upscale so the shorter side is at least ``min_side`` pixels (small world videos)."""
    return max(1, int(np.ceil(min_side / min(frames.shape[1:3]))))


def box_at(tube, t: float):
    """The tube's pixel xyxy box for a frame at ``t`` seconds (nearest tube frame), or None outside the range."""
    if tube.start is None or not len(tube.times) or not (tube.start - 1e-6 <= t <= tube.end + 1e-6):
        return None
    j = int(np.argmin(np.abs(np.asarray(tube.times, np.float64) - t)))
    return tube.boxes[j]


def annotate_frame(frame: np.ndarray, box, t: float, duration: float, tube, scale: int) -> np.ndarray:
    """One output frame (H*scale + bar, W*scale, 3): the box drawn, and a timeline bar with the range and now."""
    h, w = frame.shape[:2]
    img = Image.fromarray(frame).resize((w * scale, h * scale), Image.NEAREST)
    canvas = Image.new("RGB", (w * scale, h * scale + BAR_HEIGHT), BAR_BG)
    canvas.paste(img, (0, 0))
    draw = ImageDraw.Draw(canvas)
    if box is not None:
        draw.rectangle([c * scale for c in box], outline=BOX_COLOR, width=max(2, scale // 2))
    _draw_bar(draw, tube, duration, t, y0=h * scale, width=w * scale)
    return np.asarray(canvas)


def _draw_bar(draw: ImageDraw.ImageDraw, tube, duration: float, t: float, y0: int, width: int) -> None:
    x = lambda s: round(width * s / duration) if duration > 0 else 0  # noqa: E731
    if tube.start is not None:
        draw.rectangle([x(tube.start), y0 + 2, max(x(tube.end), x(tube.start) + 1), y0 + BAR_HEIGHT - 3], RANGE_COLOR)
    draw.line([x(t), y0, x(t), y0 + BAR_HEIGHT], fill=(255, 255, 255), width=2)


def _frame_times(frames: np.ndarray, fps: float, times) -> np.ndarray:
    """(T,) seconds of each frame: ``times`` when given (a variable-frame-rate video's own timestamps), else i / fps."""
    return np.arange(len(frames)) / fps if times is None else np.asarray(times, np.float64)


def write_annotated_video(path, frames: np.ndarray, fps: float, tube, duration: float, times=None) -> Path:
    """Encode ``frames`` (T, H, W, 3) uint8 (all source frames, at ``times`` (T,) seconds or i / fps) with the tube
    drawn, at a constant ``fps``; atomic. Returns ``path``."""
    scale = _scale_for(frames)
    times = _frame_times(frames, fps, times)
    out = [annotate_frame(f, box_at(tube, t), t, duration, tube, scale) for f, t in zip(frames, times)]
    out = np.stack(out)
    out = out[:, : out.shape[1] // 2 * 2, : out.shape[2] // 2 * 2]  # yuv420p needs even sizes
    return write_video(path, out, fps)


def write_timeline(
    path, frames: np.ndarray, fps: float, tube, duration: float, query: str, thumbs: int = 8, times=None
) -> Path:
    """A PNG: ``thumbs`` evenly spaced frames with their boxes, over a time axis with the predicted range.
    ``times``: (T,) seconds of the frames (default i / fps)."""
    times = _frame_times(frames, fps, times)
    idx = np.linspace(0, len(frames) - 1, min(thumbs, len(frames))).round().astype(int)
    scale = max(1, 96 // min(frames.shape[1:3]))
    tiles = [annotate_frame(frames[i], box_at(tube, times[i]), times[i], duration, tube, scale) for i in idx]
    tw, th = tiles[0].shape[1], tiles[0].shape[0] - BAR_HEIGHT
    canvas = Image.new("RGB", (tw * len(tiles), th + BAR_HEIGHT + 44), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for k, tile in enumerate(tiles):
        canvas.paste(Image.fromarray(tile[:th]), (k * tw, 0))
    draw.rectangle([0, th, canvas.width, th + BAR_HEIGHT], BAR_BG)
    _draw_bar(draw, tube, duration, duration, y0=th, width=canvas.width)
    for k, i in enumerate(idx):
        x = round(canvas.width * times[i] / duration) if duration > 0 else 0
        draw.line([x, th, x, th + BAR_HEIGHT], fill=(255, 255, 255), width=1)
        draw.text((k * tw + 2, th + BAR_HEIGHT + 2), f"{times[i]:.2f}s", fill=(0, 0, 0))
    span = "no range" if tube.start is None else f"{tube.start:.2f}-{tube.end:.2f} s"
    draw.text((2, th + BAR_HEIGHT + 18), f"{query}  ->  {span}"[:200], fill=(0, 0, 0))
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")
    return Path(path)
