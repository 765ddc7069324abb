"""STVG metrics: hand-computed cases from the definitions, both protocols, and an independent per-frame
re-implementation of TubeDETR's evaluator loop on random data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spacevllm.data.readers.hcstvg import hcstvg_record, read_hcstvg
from spacevllm.data.records import Record
from spacevllm.errors import InputFileError, SpaceVLLMError
from spacevllm.metrics.predictions import parse_predictions
from spacevllm.metrics.stvg import (
    build_targets,
    evaluate_stvg,
    score_targets,
    summarize,
    tube_scores,
    tubedetr_frames,
)
from spacevllm.metrics.vtg import temporal_iou

BOX = [0.0, 0.0, 10.0, 10.0]
HALF = [0.0, 0.0, 10.0, 5.0]  # IoU with BOX exactly 0.5


def hc(key="v.mp4", st_frame=10, n=10, img_num=100, box=(0, 0, 10, 10)):
    """HC-STVG record; img_num = 100 -> video_fps 5 -> TubeDETR scores every frame 0..98."""
    x, y, w, h = box
    ann = {"bbox": [[x, y, w, h]] * n, "st_frame": st_frame, "img_num": img_num, "st_time": 0.0, "ed_time": 1.0}
    return hcstvg_record(key, {**ann, "caption": "a man", "width": 640, "height": 480}, "mem")


def pred(sted, frames, box=BOX):
    return {"sted": list(sted), "boxes": {str(f): list(box) for f in frames}}


def score(records, preds, **kw):
    return evaluate_stvg(records, parse_predictions(preds), **kw)


# --- sampling --------------------------------------------------------------------------------------------------


def _tubedetr_sampling_loop(first, last, video_fps, fps=5, max_len=200):
    """TubeDETR's frame selection, written as its plain loop."""
    rate = fps / video_fps
    ids = [first]
    for f in range(first, last):
        if int(ids[-1] * rate) < int(f * rate):
            ids.append(f)
    if len(ids) > max_len:
        ids = [ids[(j * len(ids)) // max_len] for j in range(max_len)]
    return ids


def test_hcstvg_sampling_is_5fps_over_20s():
    frames = tubedetr_frames(0, 480 - 1, 480 / 20)
    assert len(frames) == 100 and frames[:6].tolist() == [0, 5, 10, 15, 20, 24]
    assert tubedetr_frames(0, 99, 100 / 20).tolist() == list(range(99))  # frames 0..img_num-2


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 500), st.integers(0, 3000), st.floats(5.0, 60.0))
def test_sampling_matches_tubedetr_loop(first, length, video_fps):
    got = tubedetr_frames(first, first + length, video_fps).tolist()
    assert got == _tubedetr_sampling_loop(first, first + length, video_fps)
    assert len(got) <= 200


# --- hand-computed cases ---------------------------------------------------------------------------------------


def test_perfect_prediction_scores_one_under_tubedetr(real_data):
    records = read_hcstvg(real_data / "hcstvg_v1" / "test_sample.json")
    preds = {r.id: pred((min(r.frame_boxes()), max(r.frame_boxes()) + 1), []) for r in records}
    for r in records:
        preds[r.id]["boxes"] = r.boxes
    s = score(records, preds)
    assert s == {"m_tIoU": 1.0, "m_vIoU": 1.0, "vIoU@0.3": 1.0, "vIoU@0.5": 1.0, "gt_vIoU": 1.0, "n": 10}


def test_cgstvg_perfect_prediction_loses_one_frame():
    # st_frame 11, 10 boxes -> CG-STVG GT inclusive [10, 19] (shifted by -1), used half-open -> 9 frames count
    r = hc(st_frame=11, n=10)
    s = score([r], {r.id: pred((10, 20), range(10, 20))}, protocol="cgstvg")
    assert s["m_tIoU"] == pytest.approx(9 / 10) and s["m_vIoU"] == pytest.approx(9 / 10)
    assert s["gt_vIoU"] == 1.0
    # the same tube in TubeDETR's numbering (st_frame as is) is perfect there
    assert score([r], {r.id: pred((11, 21), range(11, 21))})["m_vIoU"] == 1.0


def test_prediction_outside_gt_counts_in_union_with_iou_zero():
    r = hc(st_frame=10, n=10)  # GT [10, 20); every frame scored
    s = score([r], {r.id: pred((15, 25), range(15, 25))})
    assert s["m_tIoU"] == pytest.approx(5 / 15)
    assert s["m_vIoU"] == pytest.approx(5 / 15)  # 5 frames IoU 1 over a 15-frame union
    assert s["gt_vIoU"] == pytest.approx(5 / 10)  # GT frames 10..14 have no box -> 0


def test_disjoint_prediction_scores_zero():
    r = hc(st_frame=10, n=10)
    s = score([r], {r.id: pred((40, 50), range(40, 50))})
    assert (s["m_tIoU"], s["m_vIoU"], s["gt_vIoU"]) == (0.0, 0.0, 0.0)


def test_sparse_sampling_counts_only_sampled_frames():
    # img_num 480 -> 24 fps -> sampled 0, 5, 10, 15, 20, 24, 29, ...; GT [10, 20) holds sampled 10, 15
    r = hc(st_frame=10, n=10, img_num=480)
    s = score([r], {r.id: pred((10, 25), range(10, 25))})
    assert s["m_tIoU"] == pytest.approx(10 / 15)
    assert s["m_vIoU"] == pytest.approx(2 / 4)  # sampled union {10, 15, 20, 24}, intersection {10, 15}


def test_thresholds_are_strict_at_exactly_half():
    r = hc(st_frame=10, n=10)
    s = score([r], {r.id: pred((10, 20), range(10, 20), box=HALF)})
    assert s["m_vIoU"] == 0.5 and s["vIoU@0.5"] == 0.0 and s["vIoU@0.3"] == 1.0
    s = score([r], {r.id: pred((10, 20), range(10, 20), box=HALF)}, protocol="cgstvg")
    assert s["vIoU@0.5"] == 0.0  # CG-STVG is strict too


def test_mean_over_sentences():
    a, b = hc("a.mp4"), hc("b.mp4")
    s = score([a, b], {"a.mp4": pred((10, 20), range(10, 20)), "b.mp4": pred((10, 20), range(10, 20), HALF)})
    assert s["m_vIoU"] == pytest.approx(0.75) and s["vIoU@0.5"] == 0.5 and s["vIoU@0.3"] == 1.0 and s["n"] == 2


def test_missing_box_needed_by_protocol_names_video_and_frame():
    r = hc("clip7.mp4", st_frame=10, n=10)
    p = pred((10, 20), [f for f in range(10, 20) if f != 13])
    with pytest.raises(SpaceVLLMError) as e:
        score([r], {r.id: p})
    assert "clip7.mp4" in str(e.value) and "frame 13" in str(e.value)
    s = score([r], {r.id: p}, allow_missing=True)
    assert s["m_vIoU"] == pytest.approx(9 / 10) and s["gt_vIoU"] == pytest.approx(9 / 10)


def test_box_outside_predicted_interval_is_not_needed():
    r = hc(st_frame=10, n=10)
    s = score([r], {r.id: pred((10, 15), range(10, 15))})  # no boxes on GT frames 15..19: fine
    assert s["m_vIoU"] == pytest.approx(5 / 10) and s["gt_vIoU"] == pytest.approx(5 / 10)


def test_missing_prediction_is_error_or_zero():
    a, b = hc("a.mp4"), hc("b.mp4")
    with pytest.raises(SpaceVLLMError, match="b.mp4"):
        score([a, b], {"a.mp4": pred((10, 20), range(10, 20))})
    s = score([a, b], {"a.mp4": pred((10, 20), range(10, 20))}, allow_missing=True)
    assert s["n"] == 2 and s["m_vIoU"] == 0.5 and s["m_tIoU"] == 0.5


def test_unknown_protocol():
    with pytest.raises(SpaceVLLMError, match="protocol"):
        build_targets([hc()], "stcat-v9")


@pytest.mark.parametrize(
    "value, field",
    [
        ([1, 2], None),
        ({"boxes": {}}, "sted"),
        ({"sted": [5, 1], "boxes": {}}, "sted"),
        ({"sted": [1.5, 3], "boxes": {}}, "sted"),
        ({"sted": [1, 3], "boxes": []}, "boxes"),
        ({"sted": [1, 3], "boxes": {"x": BOX}}, "boxes['x']"),
        ({"sted": [1, 3], "boxes": {"2": [1, 2, 3]}}, "boxes['2']"),
        ({"sted": [1, 3], "boxes": {"1": BOX, "2": [1, 2, "a", 4]}}, "boxes['2']"),
    ],
)
def test_malformed_predictions_name_file_key_field(value, field):
    with pytest.raises(InputFileError) as e:
        parse_predictions({"v.mp4": value}, "P.json")
    assert "P.json" in str(e.value) and "v.mp4" in str(e.value)
    assert field is None or repr(field) in str(e.value)


# --- generic frame-set core ------------------------------------------------------------------------------------


def test_tube_scores_hand_case():
    t, v, g = tube_scores([1, 2, 3, 4], [3, 4, 5, 6], [0.0, 1.0, 0.5, 0.25])
    assert (t, v, g) == pytest.approx((2 / 6, 0.75 / 6, 1.75 / 4))
    assert tube_scores([], [], []) == (0.0, 0.0, 0.0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(-50, 50), st.integers(0, 60)), min_size=1, max_size=8))
def test_tiou_symmetric_and_bounded(pairs):
    a = np.array([[s, s + n] for s, n in pairs[::2] or pairs])
    b = np.array([[s, s + n] for s, n in pairs[1::2] or pairs])
    k = min(len(a), len(b))
    ab, ba = temporal_iou(a[:k], b[:k], half_open=True), temporal_iou(b[:k], a[:k], half_open=True)
    assert np.array_equal(ab, ba) and ((ab >= 0) & (ab <= 1)).all()
    same = temporal_iou(a, a, half_open=True)
    assert np.array_equal(same, (a[:, 1] > a[:, 0]).astype(float))


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(0, 40)), st.sets(st.integers(0, 40)), st.randoms(use_true_random=False))
def test_tube_scores_bounds(gt, pr, rnd):
    gt, pr = sorted(gt), sorted(pr)
    ious = [rnd.random() for _ in gt]
    t, v, g = tube_scores(gt, pr, ious)
    assert 0 <= v <= t <= 1 and 0 <= g <= 1
    assert t == tube_scores(pr, gt, [0.0] * len(pr))[0]


# --- independent per-frame reference (TubeDETR's evaluator loop) on random data --------------------------------


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _reference_vidstg(entry, p):
    """One VidSTG-like sentence scored the way TubeDETR's vidstg_eval.py does, frame by frame."""
    frame_ids = _tubedetr_sampling_loop(entry["ub"], entry["ue"], entry["fps"])
    (gs, ge), (ps, pe) = (entry["tb"], entry["te"]), p["sted"]
    max_s, min_e, min_s, max_e = max(gs, ps), min(ge, pe), min(gs, ps), max(ge, pe)
    tiou = 0.0 if min_e <= max_s else (min_e - max_s) / ((ge - gs) + (pe - ps) - (min_e - max_s))
    union = [f for f in frame_ids if min_s <= f < max_e]
    inter = {f for f in frame_ids if max_s <= f < min_e}
    gt_frames = [f for f in frame_ids if gs <= f < ge]
    viou = gt_viou = 0.0
    for f in gt_frames:
        box = p["boxes"].get(str(f))
        iou = _iou(box, entry["boxes"][f]) if box is not None else 0.0
        viou += iou if f in inter else 0.0
        gt_viou += iou
    return tiou, viou / max(len(union), 1), gt_viou / max(len(gt_frames), 1)


def _random_vidstg(rng, n):
    records, preds, entries = [], {}, []
    for i in range(n):
        fps = float(rng.choice([23.976, 25.0, 29.97, 30.0, 59.94]))
        ub = int(rng.integers(0, 300))
        ue = ub + int(rng.integers(20, 2500))
        tb = int(rng.integers(ub, ue - 10))
        te = int(rng.integers(tb + 1, ue + 1))
        xy = rng.uniform(0, 200, (te - tb + 1, 2))
        boxes = {tb + k: [*xy[k], *(xy[k] + rng.uniform(5, 100, 2))] for k in range(te - tb + 1)}
        meta = {"qtype": "declarative", "vid": f"v{i}", "used_segment": [ub, ue], "temporal_gt": [tb, te]}
        records.append(
            Record(
                id=str(i),
                task="stvg",
                query="q",
                video="v.mp4",
                fps=fps,
                width=640,
                height=480,
                boxes={str(f): b for f, b in boxes.items() if f < te},
                source="vidstg",
                meta=meta,
            )
        )
        ps = int(rng.integers(ub - 20, ue))
        pe = ps + int(rng.integers(0, 600))
        jitter = {f: _ordered([v + float(rng.normal(0, 15)) for v in boxes.get(f, [0, 0, 50, 50])])
                  for f in range(ps, pe)}  # fmt: skip
        preds[str(i)] = {"sted": [ps, pe], "boxes": {str(f): b for f, b in jitter.items() if f >= 0}}
        entries.append({"ub": ub, "ue": ue, "tb": tb, "te": te, "fps": fps, "boxes": boxes})
    return records, preds, entries


def _ordered(b: list[float]) -> list[float]:
    """Corners sorted: an inverted box in a prediction file is an error (spacevllm.metrics.predictions)."""
    return [min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])]


def test_vectorized_matches_tubedetr_loop_on_random_vidstg():
    rng = np.random.default_rng(0)
    records, preds, entries = _random_vidstg(rng, 150)
    got = score_targets(build_targets(records), parse_predictions(preds), allow_missing=True)
    ref = np.array([_reference_vidstg(e, preds[str(i)]) for i, e in enumerate(entries)])
    np.testing.assert_allclose(got.tiou, ref[:, 0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.viou, ref[:, 1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.gt_viou, ref[:, 2], rtol=0, atol=1e-12)
    s = summarize(got)
    assert s["n"] == 150 and s["vIoU@0.3"] == pytest.approx(np.mean(ref[:, 1] > 0.3))


def test_vidstg_split_by_sentence_type():
    rng = np.random.default_rng(1)
    records, preds, _ = _random_vidstg(rng, 6)
    for r in records[:2]:
        r.meta["qtype"] = "interrogative"
    out = evaluate_stvg(records, parse_predictions(preds), allow_missing=True, by_qtype=True)
    assert out["interrogative"]["n"] == 2 and out["declarative"]["n"] == 4
