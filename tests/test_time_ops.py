"""Time math and the time-range parser (spacevllm.time_ops)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from spacevllm.time_ops import (
    format_time_range,
    frame_to_time,
    nearest_sampled_index,
    parse_time_range,
    snap_time_range,
    time_range_to_frame_range,
    time_to_frame,
)

seconds = st.floats(min_value=0, max_value=10_000, allow_nan=False, allow_infinity=False)
fps_values = st.sampled_from([1.0, 5.0, 10.0, 24.0, 25.0, 29.97, 30.0, 30000 / 1001, 60.0])


# --- format / parse ------------------------------------------------------------------------------


def test_format_time_range_is_the_canonical_answer():
    assert format_time_range(2.5, 7.0) == "from 2.5 to 7.0 seconds"
    assert format_time_range(0, 12.345) == "from 0.0 to 12.3 seconds"


@given(seconds, seconds)
@example(0.0, 0.0)
@example(0.05, 0.15)
def test_parse_inverts_format_at_one_decimal(a, b):
    lo, hi = min(a, b), max(a, b)
    parsed = parse_time_range(format_time_range(lo, hi))
    assert parsed is not None
    assert parsed == (float(f"{lo:.1f}"), float(f"{hi:.1f}"))


@given(seconds, seconds)
def test_reversed_pair_is_swapped(a, b):
    parsed = parse_time_range(f"from {a:.2f} to {b:.2f} seconds")
    assert parsed is not None
    assert parsed[0] <= parsed[1]
    assert sorted(parsed) == sorted([float(f"{a:.2f}"), float(f"{b:.2f}")])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("from 2.5 to 7.0 seconds", (2.5, 7.0)),
        ("The person appears from 2.5 to 7.0 seconds.", (2.5, 7.0)),
        ("2.5 - 7.0 seconds", (2.5, 7.0)),
        ("2.5s-7s", (2.5, 7.0)),
        ("2.5 s - 7 s", (2.5, 7.0)),
        ("from 2.5 seconds to 7.0 seconds", (2.5, 7.0)),
        ("00:02.5 to 00:07", (2.5, 7.0)),
        ("1:02 to 1:05.5", (62.0, 65.5)),
        ("0:01:02 - 0:01:05", (62.0, 65.0)),
        ("between 3 and 5 s", (3.0, 5.0)),
        ("Between 3s and 5s.", (3.0, 5.0)),
        ("2.5 \u2013 7.0", (2.5, 7.0)),  # en dash
        ("2.5\u20147.0 sec", (2.5, 7.0)),  # em dash
        ("2.5 \u2212 7", (2.5, 7.0)),  # minus sign
        ("2.5~7", (2.5, 7.0)),
        ("2.5 to 7", (2.5, 7.0)),
        ("It happens 3 until 9 secs in.", (3.0, 9.0)),
        ("[2.5, 7.0]", (2.5, 7.0)),
        ("(12, 4)", (4.0, 12.0)),
        ("from 7.0 to 2.5 seconds", (2.5, 7.0)),
        ("FROM 1 TO 2 SECONDS", (1.0, 2.0)),
        ("from 2.5 to 7.", (2.5, 7.0)),
        ("from .5 to 1.5 seconds", (0.5, 1.5)),
        ("Start time: 2.5s, end time: 7.0s.", (2.5, 7.0)),
        ("It starts at 1:02 and ends at 1:05.", (62.0, 65.0)),
        ("start=3, end=9", (3.0, 9.0)),
    ],
)
def test_parse_phrasings(text, expected):
    assert parse_time_range(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I cannot tell.",
        "at 3.5 seconds",
        "42",
        "from to seconds",
        "the man in the red shirt",
        "between 3 and the end",
        "3 apples and 5 oranges",
        "it starts at 3 seconds",
        None,
    ],
)
def test_parse_returns_none_without_a_range(text):
    assert parse_time_range(text) is None


@given(st.text(alphabet=st.characters(blacklist_categories=("Nd",), blacklist_characters="0123456789")))
def test_text_without_digits_never_parses(text):
    assert parse_time_range(text) is None


@given(st.text())
def test_parse_never_raises_and_is_ordered(text):
    parsed = parse_time_range(text)
    assert parsed is None or (len(parsed) == 2 and 0 <= parsed[0] <= parsed[1])


# --- frames <-> seconds ---------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=10_000_000), fps_values)
def test_frame_time_round_trip(frame, fps):
    assert time_to_frame(frame_to_time(frame, fps), fps) == frame


@given(seconds, fps_values)
def test_time_to_frame_is_the_frame_on_screen(t, fps):
    i = time_to_frame(t, fps)
    assert frame_to_time(i, fps) <= t + 1e-6
    assert t < frame_to_time(i + 1, fps)


def test_frame_time_hand_cases_and_arrays():
    assert frame_to_time(30, 30.0) == 1.0
    assert time_to_frame(0.3, 10.0) == 3  # 0.3 * 10 = 2.9999999999999996 in floats
    assert time_to_frame(0.999, 30.0) == 29
    np.testing.assert_array_equal(time_to_frame(np.array([0.0, 0.5, 1.0]), 4.0), [0, 2, 4])
    np.testing.assert_allclose(frame_to_time(np.array([0, 2, 4]), 4.0), [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="fps"):
        time_to_frame(1.0, 0)


# --- sampled-frame lookups -------------------------------------------------------------------------

TIMES = np.array([0.0, 1.0, 2.0, 3.0, 4.0])


def test_nearest_sampled_index():
    assert nearest_sampled_index(2.4, TIMES) == 2
    assert nearest_sampled_index(2.5, TIMES) == 2  # tie -> earlier
    assert nearest_sampled_index(-3, TIMES) == 0
    assert nearest_sampled_index(99, TIMES) == 4


@pytest.mark.parametrize(
    "start, end, expected",
    [
        (1.0, 3.0, (1, 4)),  # closed seconds: both end frames are inside
        (0.5, 2.5, (1, 3)),
        (2.9999999, 3.0000001, (3, 4)),
        (1.2, 1.4, (1, 2)),  # no frame inside -> the nearest one
        (1.6, 1.8, (2, 3)),
        (-5, -1, (0, 1)),
        (10, 20, (4, 5)),
        (3.0, 1.0, (1, 4)),  # reversed pair
        (0, 100, (0, 5)),
    ],
)
def test_time_range_to_frame_range(start, end, expected):
    assert time_range_to_frame_range(start, end, TIMES) == expected


@given(seconds, seconds, st.lists(seconds, min_size=1, max_size=30))
def test_frame_range_is_never_empty_and_covers_inside_frames(a, b, times):
    times = np.sort(np.array(times))
    start, end = min(a, b), max(a, b)
    first, last = time_range_to_frame_range(start, end, times)
    assert 0 <= first < last <= len(times)
    inside = np.flatnonzero((times >= start) & (times <= end))
    if inside.size:
        assert first <= inside[0] and inside[-1] < last


def test_empty_times_raise():
    with pytest.raises(ValueError):
        nearest_sampled_index(1.0, [])


# --- section 3.1.2: GT boundaries snapped to the sampled frames' seconds ------------------------------------------


def test_snap_time_range_hand_cases():
    times = np.linspace(0, 19.96, 64)  # the paper's example: 64 frames of a 20 s video, 0.00s, 0.32s, ... 19.96s
    assert snap_time_range(3.1, 7.9, times) == (float(times[10]), float(times[25]))  # 3.17 s and 7.92 s
    assert snap_time_range(0.5, 1.5, TIMES) == (0.0, 1.0)  # ties go to the earlier frame
    assert snap_time_range(2.3, 2.4, TIMES) == (2.0, 2.0)  # shorter than half an interval: one frame
    assert snap_time_range(3.6, 1.2, TIMES) == (1.0, 4.0)  # a reversed pair is swapped
    assert snap_time_range(-4, 99, TIMES) == (0.0, 4.0)  # outside the sampled span: the end frames
    with pytest.raises(ValueError):
        snap_time_range(1.0, 2.0, [])


@example(1.0, 1.1e-156, [0.0, 1.1e-156])  # 1 - 1.1e-156 rounds to 1: a float tie that once put end before start
@given(seconds, seconds, st.lists(seconds, min_size=1, max_size=40))
def test_snap_time_range_lands_on_the_nearest_sampled_times(a, b, times):
    times = np.sort(np.array(times))
    start, end = snap_time_range(a, b, times)
    assert start in times and end in times
    assert start <= end
    lo, hi = min(a, b), max(a, b)
    assert abs(start - lo) == np.abs(times - lo).min() and abs(end - hi) == np.abs(times - hi).min()
    assert snap_time_range(start, end, times) == (start, end)  # idempotent
