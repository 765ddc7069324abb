"""Uni-STG Refiner and Filter (paper section 3.2.1): every rule on hand-built detection samples, properties,
and ``spacevllm unistg filter`` end to end."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spacevllm.cli import main
from spacevllm.data.records import read_records
from spacevllm.data.unistg import BoxFilter, Refiner, refine_and_filter, sample_from_json
from spacevllm.data.unistg.sample import Drop


def det(x1, y1, x2, y2, score=0.9):
    return {"box": [x1, y1, x2, y2], "score": score}


def square(side, score=0.9, x=0.0):
    """A box of area side**2."""
    return det(x, 0, x + side, side, score)


def line(detections, start=0.0, end=10.0, fps=5.0, id="s0"):
    return {"id": id, "video": "v.mp4", "fps": fps, "caption": "person turn a light on.", "object": "person",
            "start": start, "end": end, "detections": {str(f): d for f, d in detections.items()}}  # fmt: skip


def refine(detections, **kw):
    return Refiner().process(sample_from_json(line(detections, **kw)))


def refine_filter(detections, **kw):
    refined = Refiner(min_duration=0).process(sample_from_json(line(detections, **kw)))
    return refined if isinstance(refined, Drop) else BoxFilter().process(refined)


def frames(a, b, box=None):
    """Frames a..b (inclusive) with one confident box each."""
    return {f: [box or square(10)] for f in range(a, b + 1)}


# --- Refiner ---------------------------------------------------------------------------------------------------


def test_refiner_moves_start_and_end_to_first_and_last_detected_frame():
    out = refine({**frames(3, 15), 20: []}, start=0.0, end=5.0)
    assert (out.start, out.end) == (3 / 5, 15 / 5)
    assert sorted(out.detections) == list(range(3, 16))


def test_refiner_drops_a_sample_without_detected_frame():
    out = refine({4: [square(10, 0.29)], 5: []})
    assert isinstance(out, Drop) and out.reason == "no detected frame"
    assert refine({}).reason == "no detected frame"


def test_frame_with_only_subthreshold_boxes_is_not_detected():
    out = refine({2: [square(10, 0.2999), square(12, 0.1)], **frames(3, 13), 14: [square(10, 0.05)]})
    assert (out.start, out.end) == (0.6, 13 / 5)


def test_score_exactly_threshold_counts():
    out = refine({0: [square(10, 0.3)], 10: [square(10, 0.3)]})
    assert (out.start, out.end) == (0.0, 2.0)


def test_duration_bounds_are_inclusive():
    assert refine(frames(0, 10)).end == 2.0  # exactly 2 s kept
    short = refine(frames(0, 9))  # 1.8 s
    assert isinstance(short, Drop) and short.reason == "too short"
    long_ok = refine({0: [square(5)], 600: [square(5)]}, end=200.0)  # exactly 120 s at 5 fps
    assert (long_ok.start, long_ok.end) == (0.0, 120.0)
    too_long = refine({0: [square(5)], 601: [square(5)]}, end=200.0)
    assert isinstance(too_long, Drop) and too_long.reason == "too long"


def test_duration_bounds_with_an_fps_that_does_not_divide():
    # 3 fps: frames 1 and 7 are 2 s apart, 7/3 - 1/3 is not exactly 2.0 in floats
    out = refine({1: [square(5)], 7: [square(5)]}, fps=3.0)
    assert out.end - out.start == pytest.approx(2.0)


def test_frames_outside_the_caption_range_are_ignored():
    # range [1, 3] s at 5 fps = frames 5..15 inclusive; 4 and 16 are outside even with many boxes
    dets = {4: [square(10)], 5: [square(10)], 15: [square(10)], 16: [square(10)] * 5, 0: [square(99)]}
    out = refine(dets, start=1.0, end=3.0)
    assert (out.start, out.end) == (1.0, 3.0)
    assert sorted(out.detections) == [5, 15]


def test_range_boundary_survives_float_error():
    # 0.3 * 10 = 2.9999999999999996: frame 3 lies on both boundaries of [0.3, 2.3] s at 10 fps
    out = refine({3: [square(5)], 23: [square(5)], 24: [square(5)]}, start=0.3, end=2.3, fps=10.0)
    assert (out.start, out.end) == (0.3, 2.3)


def test_frames_are_visited_in_numeric_order_not_string_order():
    out = refine({100: [square(5)], 9: [square(5)], 10: [square(5)]}, end=30.0)
    assert (out.start, out.end) == (9 / 5, 100 / 5)


# --- Filter ----------------------------------------------------------------------------------------------------


def test_more_than_three_boxes_is_a_complex_scene_and_is_discarded():
    dets = {**frames(0, 10), 5: [square(10, 0.9), square(10, 0.8), square(10, 0.7), square(10, 0.3)]}
    out = refine_filter(dets)
    assert 5 not in out.boxes and sorted(out.boxes) == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert out.meta["complex_frames"] == 1


def test_three_boxes_and_subthreshold_extras_are_not_complex():
    three = [square(10, 0.5), square(10, 0.9, x=20), square(10, 0.4)]
    dets = {0: three, 1: three + [square(10, 0.29), square(10, 0.1)]}
    out = refine_filter(dets)
    assert out.boxes == {0: [20.0, 0.0, 30.0, 10.0], 1: [20.0, 0.0, 30.0, 10.0]}


def test_only_the_highest_score_box_is_kept_first_on_ties():
    dets = {0: [square(10, 0.5), square(10, 0.7, x=5), square(10, 0.7, x=9)]}
    assert refine_filter(dets).boxes == {0: [5.0, 0.0, 15.0, 10.0]}


@pytest.mark.parametrize("area_ratio, kept", [(2.0, True), (0.5, True), (2.01, False), (0.49, False), (1.0, True)])
def test_area_ratio_bounds(area_ratio, kept):
    dets = {0: [det(0, 0, 10, 10)], 1: [det(0, 0, 10, 10 * area_ratio)]}
    out = refine_filter(dets)
    assert isinstance(out, Drop) != kept
    if not kept:
        assert out.reason == "area jump"


def test_area_ratio_compares_with_the_previous_kept_frame_not_a_discarded_one():
    crowd = [square(1, 0.9)] * 4
    ok = refine_filter({0: [det(0, 0, 10, 10)], 1: crowd, 2: [det(0, 0, 10, 15)]})
    assert sorted(ok.boxes) == [0, 2]
    jump = refine_filter({0: [det(0, 0, 10, 10)], 1: [det(0, 0, 10, 19)] * 4, 2: [det(0, 0, 10, 25)]})
    assert isinstance(jump, Drop) and jump.reason == "area jump"


def test_area_walk_follows_numeric_frame_order():
    # numeric 2 (100) -> 9 (150) -> 10 (250) is stable; string order "10" (250) -> "2" (100) would jump
    out = refine_filter({10: [det(0, 0, 10, 25)], 2: [det(0, 0, 10, 10)], 9: [det(0, 0, 10, 15)]})
    assert list(out.boxes) == [2, 9, 10]


def test_a_slow_drift_is_kept_even_if_first_and_last_differ_a_lot():
    dets = {f: [det(0, 0, 10, 10 * 1.5**f)] for f in range(6)}  # 7.6x overall, 1.5x per step
    assert sorted(refine_filter(dets).boxes) == list(range(6))


def test_every_frame_complex_drops_the_sample():
    out = refine_filter({f: [square(5, 0.9)] * 4 for f in range(5)})
    assert isinstance(out, Drop) and out.reason == "no frame kept"


def test_filter_alone_respects_the_range_and_keeps_start_end():
    sample = sample_from_json(line({0: [square(10)], 5: [square(10)], 6: [square(30)], 99: [square(1)]}, end=1.0))
    out = BoxFilter().process(sample)  # frame 6 (1.2 s) and 99 are outside [0, 1] s
    assert sorted(out.boxes) == [0, 5] and (out.start, out.end) == (0.0, 1.0)


# --- properties ------------------------------------------------------------------------------------------------

box_st = st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(1, 40), st.integers(1, 40)).map(
    lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]]
)
dets_st = st.dictionaries(
    st.integers(0, 60),
    st.lists(
        st.builds(lambda b, s: {"box": b, "score": s}, box_st, st.sampled_from([0.1, 0.29, 0.3, 0.5, 0.9])), max_size=5
    ),  # fmt: skip
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(dets_st, st.integers(0, 30), st.integers(0, 40))
def test_kept_samples_satisfy_every_rule(dets, a, length):
    start, end = a / 5, (a + length) / 5
    kept, report = refine_and_filter([sample_from_json(line(dets, start, end))], Refiner(0.4, 6.0), BoxFilter())
    assert report.total == 1 and report.kept == len(kept)
    if not kept:
        return
    r = kept[0]
    assert start <= r.start <= r.end <= end and 0.4 - 1e-9 <= r.end - r.start <= 6.0 + 1e-9
    frames_kept = sorted(int(f) for f in r.boxes)
    for f in frames_kept:
        confident = [d for d in dets[f] if d["score"] >= 0.3]
        best = max(confident, key=lambda d: d["score"])  # first on ties, like max()
        assert 1 <= len(confident) <= 3 and r.boxes[str(f)] == [float(v) for v in best["box"]]
        assert r.start * 5 - 1e-6 <= f <= r.end * 5 + 1e-6
    areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in (r.boxes[str(f)] for f in frames_kept)]
    assert all(0.5 * p <= q <= 2 * p for p, q in zip(areas, areas[1:]))


@settings(max_examples=60, deadline=None)
@given(dets_st, st.randoms(use_true_random=False))
def test_result_does_not_depend_on_key_order(dets, rnd):
    items = list(dets.items())
    rnd.shuffle(items)
    results = [refine_and_filter([sample_from_json(line(dict(d), 0, 12))], Refiner(0.4), BoxFilter())[0]
               for d in (items, sorted(items))]  # fmt: skip
    assert [r.to_dict() for r in results[0]] == [r.to_dict() for r in results[1]]


# --- CLI -------------------------------------------------------------------------------------------------------


def write_lines(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_filter_command_writes_kept_records_and_report(tmp_path, capsys):
    rows = [
        line(frames(2, 14), start=0, end=4, id="kept"),
        line(frames(0, 5), id="short"),
        line({0: [square(5, 0.1)]}, id="nothing"),
        line({**frames(0, 12), 6: [det(0, 0, 10, 30)]}, id="jump"),
        line({f: [square(5)] * 4 for f in range(12)}, id="crowded"),
    ]
    src = write_lines(tmp_path / "dets.jsonl", rows)
    out, rep = tmp_path / "kept.jsonl", tmp_path / "report.json"
    assert main(["unistg", "filter", "--in", str(src), "--out", str(out), "--report", str(rep)]) == 0
    records = read_records(out)
    assert [r.id for r in records] == ["kept"]
    r = records[0]
    assert (r.task, r.start, r.end, r.query, r.video, r.fps) == ("stvg", 0.4, 2.8, "person turn a light on.",
                                                                  "v.mp4", 5.0)  # fmt: skip
    assert r.boxes == {str(f): [0.0, 0.0, 10.0, 10.0] for f in range(2, 15)}
    assert r.answer == "from 0.4 to 2.8 seconds"
    report = json.loads(rep.read_text())
    assert (report["input"], report["kept"]) == (5, 1)
    by_stage = {s["stage"]: s for s in report["stages"]}
    assert by_stage["refiner"]["reasons"] == {"no detected frame": 1, "too short": 1}
    assert by_stage["filter"]["reasons"] == {"area jump": 1, "no frame kept": 1}
    assert by_stage["filter"]["in"] == 3
    printed = capsys.readouterr().out
    assert "too short" in printed and "kept 1 of 5" in printed


def test_filter_command_thresholds_are_options(tmp_path):
    src = write_lines(tmp_path / "dets.jsonl", [line(frames(0, 5), id="short")])
    out = tmp_path / "kept.jsonl"
    assert main(["unistg", "filter", "--in", str(src), "--out", str(out), "--min-duration", "1"]) == 0
    assert [r.id for r in read_records(out)] == ["short"]


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d.pop("fps"), "fps"),
        (lambda d: d.update(fps=0), "fps"),
        (lambda d: d.update(start="1"), "start"),
        (lambda d: d.update(start=5, end=1), "end"),
        (lambda d: d.update(object=""), "object"),
        (lambda d: d.update(detections=[]), "detections"),
        (lambda d: d["detections"].update({"x": []}), "detections['x']"),
        (lambda d: d["detections"].update({"3": [{"box": [1, 2, 3]}]}), "detections['3'][0]"),
        (lambda d: d["detections"].update({"3": [{"box": [5, 0, 1, 1], "score": 0.5}]}), "detections['3'][0].box"),
        (lambda d: d["detections"].update({"3": [{"box": [0, 0, 1, 1], "score": "hi"}]}), "detections['3'][0].score"),
    ],
)
def test_malformed_input_exits_2_naming_file_line_and_field(tmp_path, capsys, mutate, field):
    bad = line(frames(0, 10), id="bad")
    mutate(bad)
    src = write_lines(tmp_path / "dets.jsonl", [line(frames(0, 10), id="good"), "", bad])
    out = tmp_path / "kept.jsonl"
    assert main(["unistg", "filter", "--in", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(src) in err and "line 3" in err and f"field {field!r}" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_not_json_missing_file_and_duplicate_ids(tmp_path, capsys):
    src = write_lines(tmp_path / "dets.jsonl", ["{not json"])
    assert main(["unistg", "filter", "--in", str(src), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "line 1" in capsys.readouterr().err
    assert main(["unistg", "filter", "--in", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    src = write_lines(tmp_path / "dup.jsonl", [line({}, id="a"), line({}, id="a")])
    assert main(["unistg", "filter", "--in", str(src), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "duplicate id" in capsys.readouterr().err


def test_bad_threshold_option_is_a_user_error(tmp_path, capsys):
    src = write_lines(tmp_path / "dets.jsonl", [line({})])
    args = ["unistg", "filter", "--in", str(src), "--out", str(tmp_path / "o.jsonl"), "--min-area-ratio", "3"]
    assert main(args) == 2
    assert "min_area_ratio" in capsys.readouterr().err
