"""Video and image I/O with PyAV and Pillow; LLaVA-Video's uniform frame sampling and time instruction.

Conventions: frames are ``uint8`` RGB arrays of shape ``(T, H, W, 3)``; times are seconds. Source frame ``i``
of a video at ``fps`` is at ``i / fps`` seconds (LLaVA-Video's ``frame_time``), counted from the stream's start.

Sampling follows LLaVA-Video (``load_video`` in LLaVA-NeXT's ``docs/LLaVA_Video_1003.md`` with
``force_sample=True``): ``indices = np.linspace(0, total - 1, n, dtype=int)`` (truncation, not rounding),
``times = indices / avg_fps``, ``duration = total / avg_fps``. :func:`sample_frames` seeks to each target
instead of decoding the whole file, and falls back to one sequential pass when a stream cannot be seeked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from spacevllm.errors import InputFileError, SpaceVLLMError, VideoError
from spacevllm.io_utils import atomic_path


@dataclass(frozen=True)
class VideoInfo:
    """Container metadata of a video's first video stream.

    ``duration`` is ``num_frames / fps`` seconds (LLaVA-Video's ``video_time``); ``num_frames`` comes from the
    stream header, or is ``round(header duration * fps)`` when the header has no frame count (e.g. WebM), or 0
    when it has neither (raw elementary streams; :func:`sample_frames` then counts frames by decoding).
    """

    path: Path
    duration: float
    fps: float
    num_frames: int
    width: int
    height: int


@dataclass
class SampledFrames:
    """``frames`` (N, H, W, 3) uint8 RGB; ``times`` (N,) float64 seconds (= ``indices / info.fps``);
    ``indices`` (N,) int64 source frame indices, ascending; ``info`` the video's metadata."""

    frames: np.ndarray
    times: np.ndarray
    indices: np.ndarray
    info: VideoInfo


class _SeekFailed(Exception):
    """Seeking gave frames we cannot trust; decode sequentially instead."""


# --- probing --------------------------------------------------------------------------------------


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read a video's metadata (no decoding). Raises :class:`VideoError` for missing or unreadable files."""
    with _open(path) as container:
        return _info(Path(path), container, _video_stream(Path(path), container))


@contextmanager
def _open(path: str | os.PathLike) -> Iterator[av.container.InputContainer]:
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: video file not found")
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, ValueError) as err:
        raise VideoError(f"{path}: not a readable video ({_reason(err)})") from None
    try:
        yield container
    finally:
        container.close()


def _reason(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err).splitlines()[0]


def _video_stream(path: Path, container) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise VideoError(f"{path}: no video stream (not a video, or a video without frames)")
    return container.streams.video[0]


def _info(path: Path, container, stream) -> VideoInfo:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or rate <= 0:
        raise VideoError(f"{path}: video stream has no frame rate")
    fps = float(rate)
    num_frames = stream.frames or round(_header_duration(container, stream) * fps)
    ctx = stream.codec_context
    return VideoInfo(path, num_frames / fps, fps, int(num_frames), int(ctx.width), int(ctx.height))


def _header_duration(container, stream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else 0.0


# --- uniform sampling -------------------------------------------------------------------------------


def uniform_frame_indices(num_frames_total: int, n: int) -> np.ndarray:
    """LLaVA-Video's uniform sampling: ``np.linspace(0, total - 1, n, dtype=int)`` -> (n,) int64.

    The float positions are truncated toward zero (``dtype=int``), not rounded, exactly as LLaVA-Video's
    ``load_video`` does; the first and last frames are always included. Distinct when ``n <= total``.
    """
    if num_frames_total < 1 or n < 1:
        raise ValueError(f"need total >= 1 and n >= 1, got total={num_frames_total}, n={n}")
    return np.linspace(0, num_frames_total - 1, n, dtype=int).astype(np.int64)


def sample_frames(path: str | os.PathLike, num_frames: int, size: int | tuple[int, int] | None = None) -> SampledFrames:
    """Decode ``num_frames`` uniformly sampled frames of ``path`` (see :func:`uniform_frame_indices`).

    ``size``: ``(height, width)`` or an int for a square output, resized bilinearly by libswscale;
    None keeps the source size. Seeks to the keyframe before each target and decodes forward to it; a
    stream that cannot be seeked (or whose header over-counts frames) is decoded once, sequentially.
    Raises :class:`VideoError` for a missing, unreadable, empty or too-short video (fewer distinct frames
    than ``num_frames``).
    """
    if num_frames < 1:
        raise SpaceVLLMError(f"num_frames must be at least 1, got {num_frames}")
    out_hw = (size, size) if isinstance(size, int) else size
    with _open(path) as container:
        stream = _video_stream(Path(path), container)
        info = _info(Path(path), container, stream)
        if info.num_frames >= num_frames:
            indices = uniform_frame_indices(info.num_frames, num_frames)
            try:
                frames = _decode_by_seeking(container, stream, info.fps, indices, out_hw)
                return _result(frames, indices, info)
            except _SeekFailed:
                pass
    return _sample_sequentially(Path(path), info, num_frames, out_hw)


def _result(frames: list[np.ndarray], indices: np.ndarray, info: VideoInfo) -> SampledFrames:
    return SampledFrames(np.stack(frames), indices / info.fps, indices, info)


def _check_length(info: VideoInfo, num_frames: int) -> None:
    if info.num_frames == 0:
        raise VideoError(f"{info.path}: video has no decodable frames")
    if info.num_frames < num_frames:
        raise VideoError(
            f"{info.path}: video is too short: it has {info.num_frames} frames, fewer than the {num_frames} asked for"
        )


# --- seeking decoder ----------------------------------------------------------------------------------


def _decode_by_seeking(container, stream, fps: float, indices: np.ndarray, out_hw) -> list[np.ndarray]:
    """Frames at ascending source ``indices`` (one :class:`_SeekCursor` walk over the open stream)."""
    cursor = _SeekCursor(container, stream, fps)
    return [_to_rgb(cursor.frame_at(target), out_hw) for target in indices.tolist()]


class _SeekCursor:
    """Decode position in an open stream, plus what decoding has shown about keyframe spacing.

    For each target it either keeps decoding forward or seeks to the keyframe before the target, whichever
    decodes fewer frames: it seeks when a keyframe probably lies between the current position and the target
    (``gap``: smallest keyframe distance seen in one decoded run), or, before any gap is known, when the target
    is farther ahead than the farthest a seek has had to decode (``reach``).
    """

    def __init__(self, container, stream, fps: float):
        self.container, self.stream, self.fps = container, stream, fps
        self.frames, self.pos, self.last_key, self.gap, self.reach = None, -1, None, None, 0
        self.start, self.target_pts = stream.start_time or 0, 0

    def frame_at(self, target: int) -> av.VideoFrame:
        """The first frame at or after source frame ``target`` (the target itself for constant-rate video)."""
        self.target_pts = self._pts(target)
        seek = self._should_seek(target)
        if seek:
            self._seek(target)
        for idx, frame in self.frames:
            if frame.key_frame:
                self._saw_key(idx)
            if seek and idx > target:
                raise _SeekFailed(f"seek to frame {target} landed at frame {idx}")
            if seek:
                self.reach, seek = max(self.reach, target - idx), False
            self.pos = idx
            if idx >= target:
                return frame
        raise _SeekFailed(f"stream ended before frame {target}")

    def _should_seek(self, target: int) -> bool:
        if self.frames is None or target <= self.pos:
            return True
        if self.gap is not None and self.last_key is not None:
            return target >= self.last_key + self.gap
        return target - self.pos > self.reach

    def _saw_key(self, idx: int) -> None:
        if self.last_key is not None and idx > self.last_key:
            self.gap = min(self.gap or idx - self.last_key, idx - self.last_key)
        self.last_key = idx

    def _pts(self, target: int) -> int:
        return self.start + round(Fraction(target) / Fraction(self.fps) / self.stream.time_base)

    def _seek(self, target: int) -> None:
        """Seek to the keyframe at or before source frame ``target``."""
        try:
            self.container.seek(self._pts(target), stream=self.stream, backward=True, any_frame=False)
        except (av.error.FFmpegError, OSError) as err:
            raise _SeekFailed(str(err)) from None
        self.frames, self.last_key = self._decode_from_here(), None

    def _decode_from_here(self) -> Iterator[tuple[int, av.VideoFrame]]:
        """Yield ``(source frame index, frame)`` from the demuxer's position. Non-reference frames before the
        current target are skipped undecoded (no later frame needs them): about 20% faster on x264 streams."""
        ctx, tb = self.stream.codec_context, self.stream.time_base
        try:
            for packet in self.container.demux(self.stream):
                early = packet.pts is not None and packet.pts < self.target_pts
                ctx.skip_frame = "NONREF" if early else "DEFAULT"
                for frame in packet.decode():
                    if frame.pts is None:
                        raise _SeekFailed("frames carry no timestamps")
                    yield round(float((frame.pts - self.start) * tb) * self.fps), frame
        except av.error.FFmpegError as err:
            raise VideoError(f"{self.container.name}: corrupt video ({_reason(err)})") from None


def _decode(container, stream) -> Iterator[av.VideoFrame]:
    try:
        yield from container.decode(stream)
    except av.error.FFmpegError as err:
        raise VideoError(f"{container.name}: corrupt video ({_reason(err)})") from None


def _to_rgb(frame: av.VideoFrame, out_hw) -> np.ndarray:
    if out_hw is None:
        return frame.to_ndarray(format="rgb24")
    h, w = out_hw
    return frame.reformat(width=w, height=h, format="rgb24", interpolation="BILINEAR").to_ndarray()


# --- sequential fallback --------------------------------------------------------------------------------


def _sample_sequentially(path: Path, info: VideoInfo, num_frames: int, out_hw) -> SampledFrames:
    """Decode from the start, keeping the targets. If the header's frame count was wrong, count the frames
    actually decoded and decode a second time with the corrected targets."""
    if info.num_frames >= num_frames:
        indices = uniform_frame_indices(info.num_frames, num_frames)
        frames, count = _decode_sequentially(path, indices, out_hw)
        if count == info.num_frames:
            return _result(frames, indices, info)
    else:
        count = _decode_sequentially(path, np.zeros(0, np.int64), out_hw)[1]
    info = replace(info, num_frames=count, duration=count / info.fps)
    _check_length(info, num_frames)
    indices = uniform_frame_indices(count, num_frames)
    return _result(_decode_sequentially(path, indices, out_hw)[0], indices, info)


def _decode_sequentially(path: Path, indices: np.ndarray, out_hw) -> tuple[list[np.ndarray], int]:
    """Frames at ``indices`` (decode order = presentation order) and the number of frames decoded."""
    wanted, frames, count = set(indices.tolist()), [], 0
    with _open(path) as container:
        stream = _video_stream(path, container)
        stream.thread_type = "AUTO"
        for count, frame in enumerate(_decode(container, stream), start=1):
            if count - 1 in wanted:
                frames.append(_to_rgb(frame, out_hw))
    return frames, count


# --- images, time instruction, writing ------------------------------------------------------------------


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB (pixels as stored; EXIF orientation is not applied, so boxes
    annotated on the stored pixels stay valid)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "image file not found")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as err:
        raise InputFileError(path, f"not a readable image ({err})") from None


def time_instruction(duration: float, times) -> str:
    """LLaVA-Video's time instruction for frames at ``times`` (seconds) of a ``duration``-second video.

    Verbatim from LLaVA-NeXT (``docs/LLaVA_Video_1003.md``): ``frame_time = ",".join(f"{t:.2f}s" ...)`` (comma,
    no space) inside ``f"The video lasts for {video_time:.2f} seconds, and {n} frames are uniformly sampled from
    it. These frames are located at {frame_time}.Please answer the following questions related to this
    video."`` -- no space before "Please", as the released checkpoints saw it.
    """
    frame_time = ",".join(f"{t:.2f}s" for t in np.asarray(times, dtype=np.float64).reshape(-1))
    return (
        f"The video lasts for {duration:.2f} seconds, and {len(np.atleast_1d(times))} frames are uniformly "
        f"sampled from it. These frames are located at {frame_time}.Please answer the following questions "
        "related to this video."
    )


def write_video(
    path: str | os.PathLike, frames: np.ndarray, fps: float, crf: int = 18, *, gop: int | None = None
) -> Path:
    """Encode ``frames`` (T, H, W, 3) uint8 RGB as an H.264 MP4 at ``fps``, atomically.

    H and W must be even (yuv420p). ``gop``: a keyframe exactly every ``gop`` frames; None keeps libx264's
    defaults (at most 250 frames apart, more at scene cuts).
    Returns the path written.
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
            stream.options = {"crf": str(crf), "preset": "veryfast", **_gop_options(gop)}
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return path


def _gop_options(gop: int | None) -> dict[str, str]:
    """A keyframe exactly every ``gop`` frames (x264 scene-cut keyframes off); x264's defaults when None."""
    return {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"} if gop else {}


def _fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)
