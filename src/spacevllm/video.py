"""Video I/O with PyAV.

Conventions: frames are ``uint8`` arrays of shape ``(T, H, W, 3)`` in RGB; times are seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np

from spacevllm.io_utils import atomic_path


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float, crf: int = 18) -> Path:
    """Encode ``frames`` (T, H, W, 3) uint8 RGB as an H.264 MP4 at ``fps``, atomically.

    H and W must be even (yuv420p). Returns the path written.
    """
    frames = np.asarray(frames, dtype=np.uint8)
    t, h, w, _ = frames.shape
    if t == 0 or h % 2 or w % 2:
        raise ValueError(f"need at least one frame of even size, got {frames.shape}")
    path = Path(path)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=_fps_fraction(fps))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = {"crf": str(crf), "preset": "veryfast"}
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return path


def _fps_fraction(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)
