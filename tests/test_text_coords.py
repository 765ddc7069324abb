"""Text-coordinate baseline answers (Table 7 row 1): target formatting and the lenient parser."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spacevllm.text_coords import (
    COORD_SCALE,
    format_answer,
    format_box,
    match_sampled_frames,
    parse_answer,
    parse_box,
)


def test_format_answer_exact_text():
    text = format_answer(2.5, 7.0, [2.63, 2.94], [[0.12, 0.305, 0.452, 0.6], [0.131, 0.3, 0.46, 0.611]])
    assert text == "from 2.5 to 7.0 seconds. 2.63s: [120, 305, 452, 600]; 2.94s: [131, 300, 460, 611]"
    assert format_answer(1.0, 2.0, [], np.zeros((0, 4))) == "from 1.0 to 2.0 seconds"


def test_format_answer_clips_and_checks_lengths():
    assert format_answer(0, 1, [0.5], [[-0.2, 0.0, 1.3, 1.0]]).endswith("0.50s: [0, 0, 1000, 1000]")
    with pytest.raises(ValueError, match="2 times but 1 boxes"):
        format_answer(0, 1, [0.1, 0.2], [[0, 0, 1, 1]])


def test_parse_answer_reads_variants():
    start, end, boxes = parse_answer("From 1 to 3 seconds: 1.5 sec: (100, 200, 50, 400), 2s [0.5, 10, 20.5, 30")
    assert (start, end) == (1.0, 3.0)
    assert boxes[1.5] == pytest.approx((0.05, 0.2, 0.1, 0.4))  # swapped corners put back in order
    assert boxes[2.0] == pytest.approx((0.0005, 0.01, 0.0205, 0.03))  # missing closing bracket tolerated


def test_parse_answer_garbled_entries_are_skipped():
    text = (
        "from 1.0 to 2.0 seconds. 1.00s: [1, 2, 3]; 1.50s: [10, 20, 30, 40]; 2.00s: [x, 1, 2, 3]; 1.50s: [0, 0, 1, 1]"
    )
    start, end, boxes = parse_answer(text)
    assert (start, end) == (1.0, 2.0)
    assert list(boxes) == [1.5] and boxes[1.5] == pytest.approx((0.01, 0.02, 0.03, 0.04))  # first of duplicates


def test_parse_answer_without_range_or_text():
    assert parse_answer("a cat. 1.00s: [1, 2, 3, 4]")[:2] == (None, None)
    assert parse_answer("1.00s: [1, 2, 3, 4]")[2] == {1.0: pytest.approx((0.001, 0.002, 0.003, 0.004))}
    assert parse_answer("") == (None, None, {})
    assert parse_answer(None) == (None, None, {})


def test_range_is_read_before_the_first_entry_only():
    # "[10, 20]" after the entries must not be taken for a range when the head holds none
    start, end, boxes = parse_answer("somewhere. 1.00s: [1, 2, 3, 4] maybe [10, 20]")
    assert start is None and len(boxes) == 1


centis = st.lists(st.integers(0, 100_000), min_size=0, max_size=12, unique=True).map(sorted)
unit_box = st.tuples(*[st.floats(0, 1, allow_nan=False)] * 4).map(
    lambda b: (min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3]))
)


@given(centis, st.data(), st.floats(0, 5000), st.floats(0, 5000))
def test_round_trip(cs, data, a, b):
    times = np.array(cs, np.float64) / 100
    boxes = np.array([data.draw(unit_box) for _ in cs], np.float64).reshape(-1, 4)
    lo, hi = min(a, b), max(a, b)
    start, end, parsed = parse_answer(format_answer(lo, hi, times, boxes))
    assert (start, end) == (float(f"{lo:.1f}"), float(f"{hi:.1f}"))
    assert list(parsed) == pytest.approx(list(times), abs=1e-9)
    for got, want in zip(parsed.values(), boxes):
        assert np.abs(np.array(got) - want).max() <= 0.5 / COORD_SCALE + 1e-9


@given(st.text(alphabet="0123456789.,:;[]() sfromtoecnd-", max_size=120))
def test_parser_never_raises_and_boxes_are_valid(text):
    start, end, boxes = parse_answer(text)
    assert (start is None) == (end is None)
    if start is not None:
        assert start <= end
    for box in boxes.values():
        assert all(0.0 <= v <= 1.0 for v in box) and box[0] <= box[2] and box[1] <= box[3]


@given(centis.filter(lambda cs: len(cs) >= 3), st.data())
def test_truncated_answer_keeps_the_complete_entries(cs, data):
    times = np.array(cs, np.float64) / 100
    boxes = np.tile([[0.1, 0.2, 0.3, 0.4]], (len(cs), 1))
    text = format_answer(times[0], times[-1], times, boxes)
    cut = data.draw(st.integers(0, len(text)))
    _, _, parsed = parse_answer(text[:cut])
    complete = text[:cut].count("]")
    assert complete <= len(parsed) <= complete + 1
    assert list(parsed)[:complete] == pytest.approx(list(times[:complete]))


def test_match_sampled_frames_nearest_within_half_spacing():
    times = np.array([0.0, 0.625, 1.25, 1.875])
    boxes = {0.63: "a", 1.2: "b", 1.26: "c", 3.0: "far", 0.0: "z"}
    assert match_sampled_frames(boxes, times) == {1: "a", 2: "b", 0: "z"}
    assert match_sampled_frames({0.4: "x"}, [0.0]) == {0: "x"}
    assert match_sampled_frames({}, times) == {}


@given(unit_box)
def test_rec_box_round_trip(box):
    assert parse_box(format_box(box)) == pytest.approx(box, abs=0.5 / COORD_SCALE + 1e-9)


def test_parse_box_first_box_or_none():
    assert parse_box("it is at (500, 20, 100, 40) or [1, 2, 3, 4]") == pytest.approx((0.1, 0.02, 0.5, 0.04))
    assert parse_box("at [1, 2, 3]") is None and parse_box(None) is None
