"""Time math and the time-range text format.

Conventions (DESIGN section 2):
  * times are seconds (float); a time range in seconds is **closed**, ``[start, end]``;
  * a range of frame indices is **half-open**, ``[first, last_exclusive)``;
  * source frame ``i`` of a video at ``fps`` starts at ``i / fps`` seconds and is shown during
    ``[i / fps, (i + 1) / fps)``.

The model answers a grounding question with :func:`format_time_range` text
(``"from 2.5 to 7.0 seconds"``); :func:`parse_time_range` reads a range back out of free model text.
"""

from __future__ import annotations

import re

import numpy as np

# Float error allowed when a time sits "exactly" on a frame or range boundary (e.g. 0.3 * 10 = 2.9999999999999996).
_EPS = 1e-6


def frame_to_time(frame, fps: float):
    """Source frame index (int or int array) -> its start time in seconds, ``frame / fps``."""
    _check_fps(fps)
    return np.asarray(frame, dtype=np.float64) / fps if np.ndim(frame) else float(frame) / fps


def time_to_frame(t, fps: float):
    """Seconds (float or array) -> index of the frame shown at ``t``: ``floor(t * fps + 1e-6)``.

    Rounds *down* (frame ``i`` is on screen during ``[i / fps, (i + 1) / fps)``), with a ``1e-6`` frame
    tolerance so that ``time_to_frame(frame_to_time(i, fps), fps) == i`` despite float error.
    Negative times give negative indices; clamp at the caller if needed.
    """
    _check_fps(fps)
    idx = np.floor(np.asarray(t, dtype=np.float64) * fps + _EPS).astype(np.int64)
    return idx if np.ndim(t) else int(idx)


def _check_fps(fps: float) -> None:
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")


ANSWER_TIME_STEP = 0.1  # seconds: format_time_range writes one decimal


def format_time_range(start: float, end: float) -> str:
    """Canonical answer text for the closed range ``[start, end]`` seconds: ``"from 2.5 to 7.0 seconds"``.

    This is the exact string the model is trained to generate for VTG/STVG; do not change it.
    """
    return f"from {start:.1f} to {end:.1f} seconds"


# --- parser ------------------------------------------------------------------------------------
# A time token: seconds ("7", "2.5", ".5"), m:ss(.f) ("1:05.5") or h:mm:ss(.f) ("0:01:02").
_T = r"(?<![\w.:])(?:\d+(?::\d{1,2}(?!\d)){0,2}(?:\.\d*)?|\.\d+)"
_UNIT = r"(?:\s*(?:seconds?|secs?|s)\b)?"
_DASH = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212~"  # hyphen, unicode hyphens/dashes, minus sign, tilde
_CONN = rf"(?:[{_DASH}]|\b(?:to|until|till|through|thru)\b)"
_RANGE_RE = re.compile(
    rf"\bbetween\s+(?P<a1>{_T}){_UNIT}\s*and\s*(?P<b1>{_T})"  # "between 3 and 5 s"
    rf"|[\[(]\s*(?P<a2>{_T}){_UNIT}\s*,\s*(?P<b2>{_T}){_UNIT}\s*[\])]"  # "[2.5, 7.0]"
    rf"|\bstart\D{{0,20}}?(?P<a4>{_T}){_UNIT}\D{{0,20}}?\bend\D{{0,20}}?(?P<b4>{_T})"  # "start: 2.5s, end: 7s"
    rf"|(?P<a3>{_T}){_UNIT}\s*{_CONN}\s*(?P<b3>{_T})",  # "2.5 - 7", "2.5s-7s", "00:02.5 to 00:07"
    re.IGNORECASE,
)


def parse_time_range(text: str) -> tuple[float, float] | None:
    """Read the first time range out of free text; ``(start, end)`` seconds, closed, or None.

    Accepts "from 2.5 to 7.0 seconds", "2.5 - 7.0 seconds", "2.5s-7s", "2.5 to 7", "between 3 and 5 s",
    "[2.5, 7.0]", "start: 2.5s, end: 7.0s", "starts at 2.5 and ends at 7", clock times "00:02.5 to 00:07" /
    "1:02 to 1:05.5" / "0:01:02 - 0:01:05", any unicode dash or a tilde as the separator. A reversed pair is
    swapped. Returns None when no two-number range is found (a single number is not a range).
    """
    if not isinstance(text, str):
        return None
    m = _RANGE_RE.search(text)
    if m is None:
        return None
    a, b = (g for g in m.groups() if g is not None)
    start, end = _clock_to_seconds(a), _clock_to_seconds(b)
    return (start, end) if start <= end else (end, start)


def _clock_to_seconds(token: str) -> float:
    """ "7" -> 7.0, "1:05.5" -> 65.5, "1:00:02" -> 3602.0."""
    seconds = 0.0
    for part in token.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


# --- sampled-frame lookups (inference: text range -> which sampled frames get a box) ----------------


def nearest_sampled_index(t: float, times) -> int:
    """Index into ``times`` (N,) seconds of the sampled frame closest to ``t``; ties go to the earlier one."""
    times = _as_times(times)
    return int(np.argmin(np.abs(times - t)))


def time_range_to_frame_range(start: float, end: float, times) -> tuple[int, int]:
    """Closed seconds ``[start, end]`` -> half-open ``[first, last_exclusive)`` over sampled frames.

    ``times`` (N,) are the ascending timestamps (seconds) of the sampled frames. The result covers every
    sampled frame whose time lies inside ``[start, end]`` (1e-6 s tolerance). When none does, it is the
    single frame nearest to the range, so the result is never empty. A reversed pair is swapped.
    """
    times = _as_times(times)
    start, end = min(start, end), max(start, end)
    first = int(np.searchsorted(times, start - _EPS, side="left"))
    last = int(np.searchsorted(times, end + _EPS, side="right"))
    if first < last:
        return first, last
    distance = np.maximum(np.maximum(start - times, times - end), 0.0)
    nearest = int(np.argmin(distance))
    return nearest, nearest + 1


def _as_times(times) -> np.ndarray:
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    if times.size == 0:
        raise ValueError("no sampled frame times")
    return times


def snap_time_range(start: float, end: float, times) -> tuple[float, float]:
    """Section 3.1.2's adjusted boundary: closed ``[start, end]`` seconds -> the sampled frame times nearest to each.

    ``times`` (N,) are the ascending timestamps (seconds) of the sampled frames, the ones the time instruction
    lists. Each boundary moves to the sampled time closest to it (ties go to the earlier frame, as in
    :func:`nearest_sampled_index`), so the training answer names times the model was shown. Returns
    ``(times[i], times[j])`` seconds with ``i <= j`` (a reversed pair is swapped first); a range shorter than half
    the sampling interval can collapse onto one frame (``start == end``). Snapping a snapped range changes nothing.
    Training targets only: evaluation compares predictions with the raw ground truth.
    """
    times = _as_times(times)
    start, end = min(start, end), max(start, end)
    first = nearest_sampled_index(start, times)
    # in exact arithmetic the end's nearest frame is never before the start's; a float tie can put it there
    last = max(first, nearest_sampled_index(end, times))
    return float(times[first]), float(times[last])
