"""VTG (R1@m, mIoU) and REC (Acc@0.5) metrics: hand-computed cases from the definitions, properties, loop references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from spacevllm.metrics.rec import rec_accuracy, rec_ious
from spacevllm.metrics.vtg import temporal_iou, vtg_ious, vtg_metrics

seconds = st.floats(min_value=0, max_value=1_000, allow_nan=False, allow_infinity=False)
intervals = st.tuples(seconds, seconds)


# --- temporal IoU ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "iou"),
    [
        ((0, 10), (5, 15), 5 / 15),  # partial overlap
        ((0, 10), (2, 4), 2 / 10),  # contained
        ((0, 10), (0, 10), 1.0),  # identical
        ((0, 5), (5, 10), 0.0),  # touching closed intervals share one instant: measure 0
        ((0, 5), (6, 10), 0.0),  # disjoint
        ((10, 0), (5, 15), 5 / 15),  # reversed pair is swapped
        ((3, 3), (3, 3), 1.0),  # identical points
        ((3, 3), (0, 10), 0.0),  # a point inside an interval
        ((24.3, 30.4), (24.3, 27.35), 3.05 / 6.1),
    ],
)
def test_temporal_iou_hand_cases(a, b, iou):
    assert temporal_iou(a, b) == pytest.approx(iou, abs=1e-12)
    assert isinstance(temporal_iou(a, b), float)


def test_temporal_iou_vectorized_and_nan():
    a = np.array([[0, 10], [0, 10], [np.nan, 1.0]])
    b = np.array([[5, 15], [20, 30], [0, 1.0]])
    np.testing.assert_allclose(temporal_iou(a, b), [1 / 3, 0.0, 0.0])


@given(intervals, intervals)
@example((0.0, 0.0), (0.0, 0.0))
@example((1.0, 2.0), (2.0, 3.0))
def test_temporal_iou_symmetric_and_bounded(a, b):
    iou = temporal_iou(a, b)
    assert iou == temporal_iou(b, a)
    assert 0.0 <= iou <= 1.0


@given(intervals)
def test_temporal_iou_identical_is_one(a):
    assert temporal_iou(a, a) == 1.0
    assert temporal_iou(a, a[::-1]) == 1.0


def _loop_iou(p, g):
    """Plain reference from the definition: |intersection| / |union| of closed intervals."""
    if p is None:
        return 0.0
    (ps, pe), (gs, ge) = sorted(p), sorted(g)
    inter = max(0.0, min(pe, ge) - max(ps, gs))
    union = max(pe, ge) - min(ps, gs)
    return inter / union if union > 0 else float((ps, pe) == (gs, ge))


@settings(max_examples=60)
@given(st.lists(st.tuples(st.one_of(st.none(), intervals), intervals), min_size=1, max_size=40))
def test_vtg_metrics_match_a_plain_loop(pairs):
    preds, gts = [p for p, _ in pairs], [g for _, g in pairs]
    ious = [_loop_iou(p, g) for p, g in pairs]
    out = vtg_metrics(preds, gts)
    assert out["n"] == len(pairs)
    assert out["mIoU"] == pytest.approx(sum(ious) / len(ious), abs=1e-12)
    for m in (0.3, 0.5, 0.7):
        expected = sum(iou >= m - 1e-9 for iou in ious) / len(ious)
        assert out[f"R1@{m}"] == pytest.approx(expected)


# --- VTG metrics -----------------------------------------------------------------------------------------


def test_vtg_metrics_hand_computed():
    gts = [(0.0, 10.0)] * 5
    # IoU 0.5 exactly, 0.3 exactly, 0.7 exactly, 0.29, unparsable (None)
    preds = [(0.0, 5.0), (0.0, 3.0), (3.0, 10.0), (0.0, 2.9), None]
    out = vtg_metrics(preds, gts)
    assert out == {
        "R1@0.3": 3 / 5,
        "R1@0.5": 2 / 5,  # IoU exactly 0.5 counts
        "R1@0.7": 1 / 5,
        "mIoU": pytest.approx((0.5 + 0.3 + 0.7 + 0.29 + 0.0) / 5),
        "n": 5,
    }


def test_vtg_nominal_threshold_survives_float_error():
    # (0.3 - 0.1) / (0.5 - 0.1) is 0.49999999999999994 in float64; nominally exactly 0.5
    assert temporal_iou((0.1, 0.3), (0.1, 0.5)) < 0.5
    assert vtg_metrics([(0.1, 0.3)], [(0.1, 0.5)])["R1@0.5"] == 1.0
    assert vtg_metrics([(0.1, 0.29)], [(0.1, 0.5)])["R1@0.5"] == 0.0


def test_vtg_unparsable_answers_stay_in_the_denominator():
    out = vtg_metrics([None, None, (1.0, 2.0)], [(1.0, 2.0)] * 3)
    assert out["n"] == 3
    assert out["R1@0.7"] == pytest.approx(1 / 3)
    assert out["mIoU"] == pytest.approx(1 / 3)
    assert vtg_metrics([None], [(0.0, 1.0)]) == {"R1@0.3": 0.0, "R1@0.5": 0.0, "R1@0.7": 0.0, "mIoU": 0.0, "n": 1}
    np.testing.assert_array_equal(vtg_ious([None, (0, 1)], [(0, 1), (0, 1)]), [0.0, 1.0])


def test_vtg_metrics_rejects_mismatch_and_empty():
    with pytest.raises(ValueError, match="2 predictions for 1"):
        vtg_metrics([(0, 1), (0, 1)], [(0, 1)])
    with pytest.raises(ValueError, match="no queries"):
        vtg_metrics([], [])


def test_vtg_metrics_are_fast_on_a_charades_sized_split():
    rng = np.random.default_rng(0)
    gts = [tuple(sorted(v)) for v in rng.uniform(0, 30, (3720, 2))]
    preds = [None if i % 7 == 0 else tuple(sorted(v)) for i, v in enumerate(rng.uniform(0, 30, (3720, 2)))]
    out = vtg_metrics(preds, gts)
    ref = [_loop_iou(p, g) for p, g in zip(preds, gts)]
    assert out["mIoU"] == pytest.approx(np.mean(ref))


# --- REC -------------------------------------------------------------------------------------------------


def test_rec_accuracy_hand_computed():
    gt = [[0, 0, 10, 10]] * 6
    pred = [
        [0, 0, 10, 10],  # IoU 1
        [0, 0, 10, 5],  # IoU 50/100 = 0.5 exactly: counts
        [0, 0, 10, 4.9],  # IoU 0.49: miss
        [5, 0, 15, 10],  # IoU 50/150: miss
        [20, 20, 30, 30],  # disjoint
        None,  # missing prediction: miss
    ]
    assert rec_accuracy(pred, gt) == {"Acc@0.5": 2 / 6, "n": 6}
    np.testing.assert_allclose(rec_ious(pred, gt), [1, 0.5, 0.49, 1 / 3, 0, 0])


def test_rec_accuracy_arrays_with_nan_rows_are_misses():
    pred = np.array([[0, 0, 10, 10], [np.nan] * 4], dtype=np.float64)
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], dtype=np.float64)
    assert rec_accuracy(pred, gt) == {"Acc@0.5": 0.5, "n": 2}


def test_rec_accuracy_pixels_not_plus_one():
    # without +1: IoU = 10 * 4.95 / 100 = 0.495 (miss); the +1-pixel convention would give 11 * 5.95 / 121 = 0.54
    assert rec_accuracy([[0, 0, 10, 4.95]], [[0, 0, 10, 10]])["Acc@0.5"] == 0.0
    assert rec_accuracy([[0, 0, 100, 50]], [[0, 0, 100, 100]])["Acc@0.5"] == 1.0


def test_rec_accuracy_rejects_mismatch_and_empty():
    with pytest.raises(ValueError, match="1 predicted boxes for 2"):
        rec_accuracy([[0, 0, 1, 1]], [[0, 0, 1, 1]] * 2)
    with pytest.raises(ValueError, match="no expressions"):
        rec_accuracy([], np.zeros((0, 4)))


coords = st.floats(min_value=0, max_value=500, allow_nan=False, allow_infinity=False)
boxes = st.tuples(coords, coords, coords, coords).map(
    lambda b: [min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])]
)


def _loop_box_iou(p, g):
    if p is None:
        return 0.0
    iw = max(0.0, min(p[2], g[2]) - max(p[0], g[0]))
    ih = max(0.0, min(p[3], g[3]) - max(p[1], g[1]))
    union = (p[2] - p[0]) * (p[3] - p[1]) + (g[2] - g[0]) * (g[3] - g[1]) - iw * ih
    return iw * ih / union if union > 0 else 0.0


@settings(max_examples=60)
@given(st.lists(st.tuples(st.one_of(st.none(), boxes), boxes), min_size=1, max_size=30))
def test_rec_accuracy_matches_a_plain_loop(pairs):
    preds, gts = [p for p, _ in pairs], [g for _, g in pairs]
    ious = [_loop_box_iou(p, g) for p, g in pairs]
    out = rec_accuracy(preds, gts)
    assert out["n"] == len(pairs)
    assert out["Acc@0.5"] == pytest.approx(sum(i >= 0.5 - 1e-9 for i in ious) / len(ious))
    assert all(0.0 <= v <= 1.0 and not math.isnan(v) for v in rec_ious(preds, gts))
