"""Benchmark: vectorized STVG scoring (spacevllm.metrics.stvg) vs a plain per-frame Python loop.

Builds ``--sentences`` synthetic VidSTG-like sentences (default 10,303, the size of the VidSTG test split: random
frame rates, ``used_segment`` lengths of 1-80 s, GT tubes inside them, predictions that overlap, miss or overrun
the GT with jittered boxes on every predicted frame), then scores them

  * ``vectorized``: ``parse_predictions`` (validates every predicted box) + ``build_targets`` + ``score_targets``
    (numpy over all sentences and frames at once);
  * ``pure-Python loop``: TubeDETR's evaluator written as a plain loop (sampling loop, one pure-Python IoU per
    frame, no validation);
  * ``numpy-IoU loop``: the same loop with one numpy IoU call per frame, as TubeDETR's ``vidstg_eval.py`` does;

with predictions carrying a box on every frame of the predicted interval (``all``) or only on the 5 fps frames
the protocol scores (``sampled``). Asserts identical per-sentence tIoU / vIoU / gt_vIoU (to 1e-12) and prints a
Markdown table (median of ``--repeats`` runs; the numpy-IoU loop runs once).

    .venv/bin/python benchmarks/bench_metrics.py [--sentences 10303] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from spacevllm.box_ops import elementwise_box_iou
from spacevllm.data.records import Record
from spacevllm.metrics.predictions import parse_predictions
from spacevllm.metrics.stvg import build_targets, score_targets, summarize, tubedetr_frames


def make_data(n: int, seed: int = 0, pred_boxes: str = "all") -> tuple[list[Record], dict]:
    """``n`` VidSTG-like records and a prediction dict in the ``evaluate stvg`` format.

    ``pred_boxes="all"``: a box on every frame of the predicted interval; ``"sampled"``: only on the frames the
    TubeDETR protocol scores (5 fps).
    """
    rng = np.random.default_rng(seed)
    records, preds = [], {}
    for i in range(n):
        fps = float(rng.choice([23.976, 25.0, 29.97, 30.0]))
        ub = int(rng.integers(0, 300))
        ue = ub + int(rng.integers(int(fps), int(80 * fps)))
        tb = int(rng.integers(ub, ue - 5))
        te = int(rng.integers(tb + 1, min(ue, tb + int(30 * fps)) + 1))
        xy = rng.uniform(0, 400, (te - tb, 2))
        wh = rng.uniform(10, 200, (te - tb, 2))
        gt = np.concatenate([xy, xy + wh], 1)
        meta = {"qtype": ("declarative", "interrogative")[i % 2], "vid": f"v{i}", "used_segment": [ub, ue]}
        meta["temporal_gt"] = [tb, te]
        boxes = {str(tb + k): gt[k].tolist() for k in range(te - tb)}
        records.append(
            Record(
                str(i),
                "stvg",
                "q",
                video="v.mp4",
                fps=fps,
                width=640,
                height=480,
                boxes=boxes,
                source="vidstg",
                meta=meta,
            )
        )
        ps = max(0, tb + int(rng.normal(0, 2 * fps)))
        pe = max(ps + 1, te + int(rng.normal(0, 2 * fps)))
        frames = np.arange(ps, pe)
        if pred_boxes == "sampled":
            frames = np.intersect1d(frames, tubedetr_frames(ub, ue, fps))
        base = gt[np.clip(frames - tb, 0, te - tb - 1)]
        pb = base + rng.normal(0, 10, base.shape)
        preds[str(i)] = {"sted": [ps, pe], "boxes": {str(f): b for f, b in zip(frames.tolist(), pb.tolist())}}
    return records, preds


# --- the plain per-frame loop (TubeDETR's vidstg_eval.py structure) -----------------------------------------


def _sample(first: int, last: int, video_fps: float, fps: int = 5, max_len: int = 200) -> list[int]:
    rate = fps / video_fps
    ids = [first]
    for f in range(first, last):
        if int(ids[-1] * rate) < int(f * rate):
            ids.append(f)
    if len(ids) > max_len:
        ids = [ids[(j * len(ids)) // max_len] for j in range(max_len)]
    return ids


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1]) + max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _np_iou(a, b) -> float:
    """TubeDETR's way: a numpy IoU call per frame on (1, 4) arrays."""
    return float(elementwise_box_iou(np.array([a], np.float64), np.array([b], np.float64))[0])


def loop_scores(records: list[Record], preds: dict, iou_fn=_iou) -> np.ndarray:
    """(N, 3) tIoU, vIoU, gt_vIoU, one sentence and one frame at a time (``iou`` per frame)."""
    out = []
    for r in records:
        (ub, ue), (gs, ge) = r.meta["used_segment"], r.meta["temporal_gt"]
        p = preds[r.id]
        ps, pe = p["sted"]
        frame_ids = _sample(ub, ue, r.fps)
        max_s, min_e, min_s, max_e = max(gs, ps), min(ge, pe), min(gs, ps), max(ge, pe)
        tiou = 0.0 if min_e <= max_s else (min_e - max_s) / ((ge - gs) + (pe - ps) - (min_e - max_s))
        union = sum(1 for f in frame_ids if min_s <= f < max_e)
        viou = gt_viou = 0.0
        n_gt = 0
        for f in frame_ids:
            if gs <= f < ge and str(f) in r.boxes:
                n_gt += 1
                box = p["boxes"].get(str(f))
                iou = iou_fn(box, r.boxes[str(f)]) if box is not None else 0.0
                viou += iou if max_s <= f < min_e else 0.0
                gt_viou += iou
        out.append((tiou, viou / max(union, 1), gt_viou / max(n_gt, 1)))
    return np.array(out)


def _time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=10303)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pred-boxes", choices=["all", "sampled"], nargs="+", default=["all", "sampled"])
    args = ap.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"# Python {platform.python_version()}, numpy {np.__version__}, nproc {os.cpu_count()}, CPU {cpu}")
    print(
        "| predicted boxes | vectorized: validate preds + targets + score = total | pure-Python loop | speed-up "
        "| numpy-IoU loop (TubeDETR) | speed-up |"
    )
    print("|---|---|---|---|---|---|")
    for mode in args.pred_boxes:
        print(_row(args.sentences, mode, args.repeats))


def _row(n: int, mode: str, repeats: int) -> str:
    records, preds = make_data(n, pred_boxes=mode)
    n_boxes = sum(len(p["boxes"]) for p in preds.values())
    t_parse, parsed = _time(lambda: parse_predictions(preds), repeats)
    t_targets, targets = _time(lambda: build_targets(records), repeats)
    t_score, scores = _time(lambda: score_targets(targets, parsed, allow_missing=True), repeats)
    t_loop, ref = _time(lambda: loop_scores(records, preds), repeats)
    t_np, ref_np = _time(lambda: loop_scores(records, preds, _np_iou), 1)
    vec = np.stack([scores.tiou, scores.viou, scores.gt_viou], 1)
    np.testing.assert_allclose(vec, ref, rtol=0, atol=1e-12)  # same results, sentence by sentence
    np.testing.assert_allclose(vec, ref_np, rtol=0, atol=1e-12)
    total = t_parse + t_targets + t_score
    m = summarize(scores)["m_vIoU"]
    return (
        f"| {mode}: {n} sentences, {n_boxes} boxes (m_vIoU {m:.3f}) "
        f"| {t_parse:.2f} + {t_targets:.2f} + {t_score:.3f} = {total:.2f} s | {t_loop:.2f} s | {t_loop / total:.1f}x "
        f"| {t_np:.2f} s | {t_np / total:.1f}x |"
    )


if __name__ == "__main__":
    main()
