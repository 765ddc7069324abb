"""Video and image I/O with PyAV and Pillow; LLaVA-Video's uniform frame sampling and time instruction.

Conventions: frames are ``uint8`` RGB arrays of shape ``(T, H, W, 3)`` in **display orientation** (a rotation in
the file's display matrix, or its ``rotate`` tag, is applied; ``width`` / ``height`` are the displayed sizes);
times are seconds from the stream's first frame. Source frame ``i`` is the ``i``-th frame in presentation order.
On a constant-frame-rate video it sits at ``i / fps`` seconds (LLaVA-Video's ``frame_time``); on a
variable-frame-rate video at its own timestamp (``(pts_i - pts_0) * time_base``).

Sampling follows LLaVA-Video (``load_video`` in LLaVA-NeXT's ``docs/LLaVA_Video_1003.md`` with
``force_sample=True``): ``indices = np.linspace(0, total - 1, n, dtype=int)`` (truncation, not rounding),
``times = indices / avg_fps``, ``duration = total / avg_fps``. :func:`sample_frames` first reads every packet's
timestamp (demuxing, no decoding: it counts the frames and tells a variable frame rate), then seeks to each
target instead of decoding the whole file, and falls back to one sequential pass when a stream cannot be seeked.
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
    ``fps`` is the stream's average rate. In :attr:`SampledFrames.info` the count is the packets' (or the decoded
    frames') and, on a variable-frame-rate video, ``duration`` runs to the last frame's time plus the median step.
    ``width`` x ``height`` is the displayed size: ``rotation`` (0, 90, 180 or 270 degrees counterclockwise, from
    the display matrix or the ``rotate`` tag) is already applied to it and to every decoded frame.
    """

    path: Path
    duration: float
    fps: float
    num_frames: int
    width: int
    height: int
    rotation: int = 0


@dataclass
class SampledFrames:
    """``frames`` (N, H, W, 3) uint8 RGB, display orientation; ``times`` (N,) float64 seconds (``indices /
    info.fps`` on a constant-frame-rate video, each frame's own timestamp on a variable one); ``indices`` (N,)
    int64 source frame indices, ascending; ``info`` the video's metadata (frame count as counted)."""

    frames: np.ndarray
    times: np.ndarray
    indices: np.ndarray
    info: VideoInfo


class _SeekFailed(Exception):
    """Seeking gave frames we cannot trust; decode sequentially instead."""


# --- probing --------------------------------------------------------------------------------------


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read a video's metadata (decodes its first frame only, for the rotation). Raises :class:`VideoError` for
    missing or unreadable files."""
    with _open(path) as container:
        stream = _video_stream(Path(path), container)
        return _info(Path(path), container, stream)


@contextmanager
def _open(path: str | os.PathLike) -> Iterator[av.container.InputContainer]:
    path = Path(path)
    if path.is_dir():
        raise VideoError(f"{path}: is a folder, not a video file")
    if not path.exists():
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
    rotation = _display_rotation(path, stream)
    width, height = (ctx.height, ctx.width) if rotation % 180 else (ctx.width, ctx.height)
    return VideoInfo(path, num_frames / fps, fps, int(num_frames), int(width), int(height), rotation)


def _header_duration(container, stream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else 0.0


def _display_rotation(path: Path, stream) -> int:
    """Degrees (0, 90, 180, 270) to turn stored frames counterclockwise for display: the first frame's display
    matrix (FFmpeg attaches the container's to every decoded frame), else the stream's ``rotate`` tag (which
    counts clockwise). Flips in the matrix are ignored; angles are rounded to a quarter turn."""
    degrees = _first_frame_rotation(path, stream.index)
    if not degrees:
        tag = {str(k).lower(): v for k, v in stream.metadata.items()}.get("rotate")
        try:
            degrees = -float(tag) if tag else 0.0
        except ValueError:
            degrees = 0.0
    return int(round(degrees / 90.0)) % 4 * 90


def _first_frame_rotation(path: Path, index: int) -> float:
    """``VideoFrame.rotation`` of the stream's first decoded frame; 0 when nothing decodes (the caller reports)."""
    try:
        with av.open(str(path), mode="r") as container:
            for frame in container.decode(container.streams[index]):
                return float(frame.rotation or 0)
    except (av.error.FFmpegError, OSError, ValueError):
        pass
    return 0.0


# --- frame timestamps -------------------------------------------------------------------------------


def _packet_pts(container, stream) -> np.ndarray | None:
    """(N,) int64 presentation timestamps (stream ``time_base`` ticks), ascending, of every frame's packet, read by
    demuxing without decoding. None when a packet has no timestamp (raw elementary streams), two share one, or
    the demuxer fails; the caller then falls back to the header and to counting decoded frames."""
    pts = []
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue
            if packet.pts is None:
                return None
            pts.append(packet.pts)
    except (av.error.FFmpegError, OSError):
        return None
    table = np.sort(np.asarray(pts, np.int64))
    return table if len(table) and np.all(np.diff(table) > 0) else None


def _timeline(info: VideoInfo, pts: np.ndarray, time_base) -> tuple[VideoInfo, np.ndarray | None]:
    """``info`` with the frame count of ``pts`` (N,) ascending ticks, and (N,) float64 seconds of every frame when
    the frame rate varies. A constant rate (every step within 1.5 ticks or 1% of ``1 / fps``) gives None: frame
    ``i`` is then at ``i / fps`` and the duration ``N / fps``, as LLaVA-Video computes them. A variable rate gives
    ``(pts - pts[0]) * time_base`` and a duration up to the last frame's time plus the median step."""
    n, tick = len(pts), float(time_base)
    seconds = (pts - pts[0]).astype(np.float64) * tick
    steps, period = np.diff(seconds), 1.0 / info.fps
    if n < 2 or np.all(np.abs(steps - period) <= max(1.5 * tick, 0.01 * period)):
        return replace(info, num_frames=n, duration=n / info.fps), None
    return replace(info, num_frames=n, duration=float(seconds[-1] + np.median(steps))), seconds


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

    ``size``: ``(height, width)`` of the displayed frame or an int for a square output, resized bilinearly by
    libswscale; None keeps the (displayed) source size. Reads every packet's timestamp first (frame count; a
    variable frame rate gives each frame its own time), then seeks to the keyframe before each target and
    decodes forward to it; a stream that cannot be seeked (or has no timestamps) is decoded once, sequentially.
    Raises :class:`VideoError` for a missing, unreadable, empty or too-short video (fewer distinct frames
    than ``num_frames``).
    """
    if num_frames < 1:
        raise SpaceVLLMError(f"num_frames must be at least 1, got {num_frames}")
    out_hw = (size, size) if isinstance(size, int) else size
    with _open(path) as container:
        stream = _video_stream(Path(path), container)
        info, pts = _info(Path(path), container, stream), _packet_pts(container, stream)
        times = None
        if pts is not None:
            info, times = _timeline(info, pts, stream.time_base)
            _check_length(info, num_frames)
        if info.num_frames >= num_frames:
            indices = uniform_frame_indices(info.num_frames, num_frames)
            try:
                frames = _SeekCursor(container, stream, info, pts).frames_at(indices, out_hw)
                return _result(frames, indices, info, times)
            except _SeekFailed:
                pass
    return _sample_sequentially(Path(path), info, num_frames, out_hw)


def _result(frames: list[np.ndarray], indices: np.ndarray, info: VideoInfo, times: np.ndarray | None) -> SampledFrames:
    """``times``: (N_total,) seconds of every frame of a variable-rate video, or None for ``indices / fps``."""
    sampled = indices / info.fps if times is None else times[indices]
    return SampledFrames(np.stack(frames), sampled.astype(np.float64), indices, info)


def _check_length(info: VideoInfo, num_frames: int) -> None:
    if info.num_frames == 0:
        raise VideoError(f"{info.path}: video has no decodable frames")
    if info.num_frames < num_frames:
        have = f"{info.num_frames} frame{'s' if info.num_frames != 1 else ''}"
        raise VideoError(f"{info.path}: video is too short: it has {have}, fewer than the {num_frames} asked for")


# --- seeking decoder ----------------------------------------------------------------------------------


class _SeekCursor:
    """Decode position in an open stream, plus what decoding has shown about keyframe spacing.

    For each target it either keeps decoding forward or seeks to the keyframe before the target, whichever
    decodes fewer frames: it seeks when a keyframe probably lies between the current position and the target
    (``gap``: smallest keyframe distance seen in one decoded run), or, before any gap is known, when the target
    is farther ahead than the farthest a seek has had to decode (``reach``). A decoded frame's source index is
    the position of its timestamp in ``pts`` (every packet's timestamp, ascending), or ``round(t * fps)`` when
    the stream's timestamps could not be read up front.
    """

    def __init__(self, container, stream, info: VideoInfo, pts: np.ndarray | None = None):
        self.container, self.stream, self.fps, self.table = container, stream, info.fps, pts
        self.rotation = info.rotation
        self.frames, self.pos, self.last_key, self.gap, self.reach = None, -1, None, None, 0
        self.start, self.target_pts = stream.start_time or 0, 0

    def frames_at(self, indices: np.ndarray, out_hw) -> list[np.ndarray]:
        """(H, W, 3) uint8 RGB display-orientation frames at ascending source ``indices``."""
        return [_to_rgb(self.frame_at(target), out_hw, self.rotation) for target in indices.tolist()]

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
        if self.table is not None:
            return int(self.table[target])
        return self.start + round(Fraction(target) / Fraction(self.fps) / self.stream.time_base)

    def _index(self, pts: int) -> int:
        if self.table is None:
            return round(float((pts - self.start) * self.stream.time_base) * self.fps)
        i = int(np.searchsorted(self.table, pts))
        if i == len(self.table) or self.table[i] != pts:
            raise _SeekFailed(f"a decoded frame's timestamp {pts} is not a packet's")
        return i

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
        ctx = self.stream.codec_context
        try:
            for packet in self.container.demux(self.stream):
                early = packet.pts is not None and packet.pts < self.target_pts
                ctx.skip_frame = "NONREF" if early else "DEFAULT"
                for frame in packet.decode():
                    if frame.pts is None:
                        raise _SeekFailed("frames carry no timestamps")
                    yield self._index(frame.pts), frame
        except av.error.FFmpegError as err:
            raise VideoError(f"{self.container.name}: corrupt video ({_reason(err)})") from None


def _decode(container, stream) -> Iterator[av.VideoFrame]:
    try:
        yield from container.decode(stream)
    except av.error.FFmpegError as err:
        raise VideoError(f"{container.name}: corrupt video ({_reason(err)})") from None


def _to_rgb(frame: av.VideoFrame, out_hw, rotation: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 RGB, turned ``rotation`` degrees counterclockwise; ``out_hw`` is the displayed size."""
    turns = rotation // 90 % 4
    if out_hw is None:
        rgb = frame.to_ndarray(format="rgb24")
    else:
        h, w = out_hw if turns % 2 == 0 else out_hw[::-1]
        rgb = frame.reformat(width=w, height=h, format="rgb24", interpolation="BILINEAR").to_ndarray()
    return to_display(rgb, rotation)


def to_display(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """A stored (H, W, C) frame turned ``rotation`` degrees counterclockwise (:attr:`VideoInfo.rotation`): the
    frame as players show it, (W, H, C) for a quarter turn. For code that decodes frames itself."""
    turns = rotation // 90 % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


# --- sequential fallback --------------------------------------------------------------------------------


def _sample_sequentially(path: Path, info: VideoInfo, num_frames: int, out_hw) -> SampledFrames:
    """Decode from the start, keeping the targets. If the header's frame count was wrong, count the frames
    actually decoded and decode a second time with the corrected targets."""
    if info.num_frames >= num_frames:
        indices = uniform_frame_indices(info.num_frames, num_frames)
        frames, pts, tb = _decode_sequentially(path, indices, out_hw, info.rotation)
        if len(pts) == info.num_frames:
            return _result(frames, indices, *_decoded_timeline(info, pts, tb))
    else:
        pts = _decode_sequentially(path, np.zeros(0, np.int64), out_hw, info.rotation)[1]
    info = replace(info, num_frames=len(pts), duration=len(pts) / info.fps)
    _check_length(info, num_frames)
    indices = uniform_frame_indices(len(pts), num_frames)
    frames, pts, tb = _decode_sequentially(path, indices, out_hw, info.rotation)
    return _result(frames, indices, *_decoded_timeline(info, pts, tb))


def _decoded_timeline(info: VideoInfo, pts: list, time_base) -> tuple[VideoInfo, np.ndarray | None]:
    """:func:`_timeline` from the decoded frames' timestamps; frame ``i`` at ``i / fps`` when they lack any."""
    table = np.asarray([-1 if p is None else p for p in pts], np.int64)
    if None in pts or len(table) < 2 or np.any(np.diff(table) <= 0):
        return info, None
    return _timeline(info, table, time_base)


def _decode_sequentially(
    path: Path, indices: np.ndarray, out_hw, rotation: int
) -> tuple[list[np.ndarray], list, object]:
    """Frames at ``indices`` (decode order = presentation order), every decoded frame's pts (None where it has
    none) and the stream's time base."""
    wanted, frames, pts = set(indices.tolist()), [], []
    with _open(path) as container:
        stream = _video_stream(path, container)
        stream.thread_type = "AUTO"
        for i, frame in enumerate(_decode(container, stream)):
            pts.append(frame.pts)
            if i in wanted:
                frames.append(_to_rgb(frame, out_hw, rotation))
        return frames, pts, stream.time_base


# --- images, time instruction, writing ------------------------------------------------------------------


def read_image(path: str | os.PathLike, display: bool = False) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB: pixels as stored (default; EXIF orientation is not applied, so
    boxes annotated on the stored pixels stay valid), or with ``display`` as viewers show it (EXIF applied)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise InputFileError(path, "is a folder, not an image file")
    if not path.exists():
        raise InputFileError(path, "image file not found")
    try:
        with Image.open(path) as img:
            return np.asarray((ImageOps.exif_transpose(img) if display else img).convert("RGB"), dtype=np.uint8)
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


IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "WEBP", "TIFF", "GIF", "PPM", "TGA")  # Pillow format names; one frame only


def is_image(path) -> bool:
    """Whether ``path`` is a still image Pillow reads (one of :data:`IMAGE_FORMATS`, one frame): grounding then
    runs REC. Animated GIF/WebP and everything else go to the video reader."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        return False
    try:
        with Image.open(path) as img:
            return img.format in IMAGE_FORMATS and getattr(img, "n_frames", 1) == 1
    except (UnidentifiedImageError, OSError, ValueError):
        return False
