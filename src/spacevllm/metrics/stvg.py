"""Spatio-temporal video grounding metrics: m_tIoU, m_vIoU, vIoU@0.3, vIoU@0.5, gt_vIoU.

Definitions (per sentence; means over sentences)
-----------------------------------------------
* ``tIoU``  = |pred ∩ gt| / |pred ∪ gt| of the two frame intervals, on the raw frame numbers
  (``sted = [start, end)``: :func:`spacevllm.metrics.vtg.temporal_iou` with ``half_open=True``).
* ``vIoU``  = sum of box IoU over the scored frames in both intervals / number of scored frames in
  their union. Frames predicted outside GT count in the union with IoU 0.
* ``gt_vIoU`` = mean box IoU over the scored GT frames (the vIoU the model would get with the GT interval).
* ``vIoU@R`` = share of sentences with vIoU **>** R (strict, every protocol).
Box IoU is pixel ``xyxy`` without TubeDETR's absent "+1" (:func:`spacevllm.box_ops.elementwise_box_iou`).

Protocols -- the one place that documents how they differ (summary: docs/evaluation.md)
---------------------------------------------------------------------------------------
``"tubedetr"`` (default; the protocol of the SpaceVLLM comparison tables, TubeDETR's
``hcstvg_eval.py`` / ``vidstg_eval.py`` after its ``max_end`` fix):

* scored frames: a 5 fps sampling. Candidates ``range(first, last)``; the first is kept and a frame is kept
  when ``int(f * rate) > int(kept[-1] * rate)``, ``rate = 5 / video_fps``; more than 200 kept frames are
  thinned to ``kept[(j * len) // 200]``, j < 200.
  HC-STVG: ``video_fps = img_num / 20`` (20 s clips assumed), ``first, last = 0, img_num - 1``.
  VidSTG: ``video_fps`` from the file, ``first, last = used_segment`` (``end_fid`` excluded).
* GT interval half-open ``[gt_start, gt_end)``. HC-STVG: ``[st_frame, st_frame + len(bbox))`` with
  ``st_frame`` as is; VidSTG: ``[temporal_gt.begin_fid, temporal_gt.end_fid)``.
* The union counts sampled frames in ``[min start, max end)``; GT frames are the sampled ones in the GT interval.

``"cgstvg"`` (STCAT / CG-STVG, every frame):

* scored frames: every integer frame; the union is ``range(min start, max end)``.
* GT stored *inclusive* ``[b, e]`` but used as a half-open pair in tIoU and in the intersection, so the
  GT end frame never counts as intersection: a perfect prediction ``[b, e + 1)`` scores tIoU and vIoU
  ``(n - 1) / n`` for an n-frame tube instead of 1 (gt_vIoU stays 1).
  HC-STVG (v1 and v2): ``b = st_frame - 1`` (shifted), ``e = min(b + len(bbox) - 1, img_num - 1)``, boxes
  clipped to the frame; prediction frame numbers are in this shifted numbering.
  VidSTG: ``b = temporal_gt.begin_fid``, ``e = min(temporal_gt.end_fid, used_segment.end_fid)``; the box on
  ``e`` is VidOR's, or the previous frame's when VidOR has none; sentences with a hole in the track, or whose
  GT lies outside ``used_segment``, are dropped (as CG-STVG does), so ``n`` can be smaller.

``"sampled"`` (Uni-STG records scored by ``spacevllm evaluate run``, e.g. the synthetic world;
:func:`sampled_protocol_scores`):

* scored frames: the N_v source frames the model saw (its uniform sampling), nothing else;
* GT set G: the scored frames whose time ``frame / fps`` lies in the record's closed ``[start, end]`` seconds
  and that have a GT box; predicted set P: the frames of the predicted tube; tIoU, vIoU and gt_vIoU as
  :func:`tube_scores` on those sets.

(The HC-STVG challenge script, inclusive ends and ``|pred ∩ gt| / |pred ∪ gt|`` in frames, is
:func:`tube_scores` on frame sets; so is the every-frame scoring of the world's reference predictors,
:func:`spacevllm.data.world.world_stats`.)

Missing boxes: a frame that is in both intervals and has a GT box needs a predicted box; without one
:func:`score_targets` raises :class:`SpaceVLLMError` naming the video and the frame, unless
``allow_missing`` (then IoU 0). GT frames outside the predicted interval without a box score IoU 0 in gt_vIoU
(TubeDETR's model predicts on every frame; SpaceVLLM only inside its interval). A sentence without any
prediction is an error, or all zeros with ``allow_missing``; it stays in ``n``.

Prediction format: ``{key: {"sted": [start, end_exclusive], "boxes": {"<frame>": [x1, y1, x2, y2]}}}``,
frames in the protocol's numbering (above), boxes in pixels; read by
:func:`spacevllm.metrics.predictions.load_predictions`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spacevllm.box_ops import elementwise_box_iou
from spacevllm.errors import SpaceVLLMError
from spacevllm.metrics.vtg import temporal_iou

PROTOCOLS = ("tubedetr", "cgstvg")
TUBEDETR_FPS = 5  # frames per second scored by TubeDETR
TUBEDETR_MAX_FRAMES = 200  # at most this many scored frames per video
HCSTVG_DURATION = 20.0  # seconds; TubeDETR: video_fps = img_num / 20
IOU_THRESHOLDS = (0.3, 0.5)
METRIC_KEYS = ("m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5", "gt_vIoU", "n")
_STRIDE = np.int64(1 << 32)  # flat key = owner * _STRIDE + frame (frames < 2**32)


@dataclass(frozen=True)
class STVGTarget:
    """What one sentence is scored against, already in a protocol's terms.

    key       the prediction key (HC-STVG video key, VidSTG sentence number as a string)
    video     video id for messages
    gt_sted   (start, end) frames, used half-open in tIoU and in the intersection
    frames    int64 (F,) sorted scored frames, or None = every integer frame (all-frame protocol)
    gt_frames int64 (G,) scored GT frames that have a GT box (gt_vIoU's denominator)
    gt_boxes  float64 (G, 4) pixel xyxy on ``gt_frames``
    qtype     "declarative" / "interrogative" (VidSTG) or None
    """

    key: str
    video: str
    gt_sted: tuple[int, int]
    frames: np.ndarray | None
    gt_frames: np.ndarray
    gt_boxes: np.ndarray
    qtype: str | None = None


@dataclass(frozen=True)
class TubePrediction:
    """One predicted tube: ``sted = (start, end_exclusive)`` frames; ``frames`` int64 (K,) sorted with
    ``boxes`` float64 (K, 4) pixel xyxy."""

    sted: tuple[int, int]
    frames: np.ndarray
    boxes: np.ndarray


# --- frame sampling ------------------------------------------------------------------------------------------


def tubedetr_frames(
    first: int, last: int, video_fps: float, fps: float = TUBEDETR_FPS, max_frames: int = TUBEDETR_MAX_FRAMES
) -> np.ndarray:
    """TubeDETR's scored frames of ``range(first, last)`` at ``fps`` (int64, sorted; see the module docstring).

    ``first`` is always kept (even when ``last <= first``), then the first frame of each new value of
    ``int(f * fps / video_fps)``; more than ``max_frames`` are thinned as TubeDETR does.
    """
    rate = fps / video_fps
    f = np.arange(first, max(last, first + 1), dtype=np.int64)
    bucket = (f * rate).astype(np.int64)  # truncation == int() for f >= 0
    keep = np.ones(len(f), bool)
    keep[1:] = bucket[1:] > bucket[:-1]
    kept = f[keep]
    if len(kept) > max_frames:
        kept = kept[(np.arange(max_frames) * len(kept)) // max_frames]
    return kept


# --- targets from Uni-STG records ----------------------------------------------------------------------------


def build_targets(records: Iterable, protocol: str = "tubedetr") -> list[STVGTarget]:
    """Records from :mod:`spacevllm.data.readers.hcstvg` / :mod:`~spacevllm.data.readers.vidstg` -> targets.

    The prediction key is the record id. Under ``"cgstvg"`` VidSTG sentences CG-STVG drops are left out.
    """
    check_protocol(protocol)
    out = []
    for r in records:
        if r.source.startswith("hcstvg"):
            out.append(_hcstvg_target(r, protocol))
        elif r.source == "vidstg":
            t = _vidstg_target(r, protocol)
            out += [t] if t is not None else []
        else:
            raise SpaceVLLMError(f"record {r.id}: no STVG protocol for source {r.source!r} (hcstvg-*, vidstg)")
    return out


def check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise SpaceVLLMError(f"unknown STVG protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def _box_array(boxes: Mapping[str, list], frames) -> np.ndarray:
    """(len(frames), 4) float64 of ``boxes[str(f)]`` (a record's boxes, keyed by frame strings)."""
    return np.asarray([boxes[str(f)] for f in frames], dtype=np.float64).reshape(-1, 4)


def _hcstvg_target(r, protocol: str) -> STVGTarget:
    st, img_num, n = int(r.meta["st_frame"]), int(r.meta["img_num"]), len(r.boxes)  # boxes keyed st_frame + i
    if protocol == "tubedetr":
        frames = tubedetr_frames(0, img_num - 1, img_num / HCSTVG_DURATION)
        gt = frames[(frames >= st) & (frames < st + n)]
        return STVGTarget(r.id, r.id, (st, st + n), frames, gt, _box_array(r.boxes, gt.tolist()))
    b = max(0, st - 1)
    e = min(st - 1 + n - 1, img_num - 1)
    gt = np.arange(b, e + 1, dtype=np.int64)
    gt_boxes = _box_array(r.boxes, (gt + 1).tolist())  # shifted frame f holds bbox[f - (st_frame - 1)]
    gt_boxes[:, 2:] = np.minimum(gt_boxes[:, 2:], [r.width, r.height])  # CG-STVG: x2 <= W, y2 <= H
    return STVGTarget(r.id, r.id, (b, e), None, gt, gt_boxes)


def _vidstg_target(r, protocol: str) -> STVGTarget | None:
    m = r.meta
    (ub, ue), (tb, te) = m["used_segment"], m["temporal_gt"]
    if protocol != "tubedetr":
        return _vidstg_cgstvg_target(r)
    frames = tubedetr_frames(ub, ue, r.fps)
    gt = [f for f in frames[(frames >= tb) & (frames < te)].tolist() if str(f) in r.boxes]  # VidOR holes: not scored
    gt_frames = np.asarray(gt, np.int64)
    return STVGTarget(r.id, m["vid"], (tb, te), frames, gt_frames, _box_array(r.boxes, gt), m["qtype"])


def _vidstg_cgstvg_target(r) -> STVGTarget | None:
    m = r.meta
    (ub, ue), (tb, te) = m["used_segment"], m["temporal_gt"]
    if te < ub or tb > ue:
        return None  # CG-STVG: GT outside the used segment
    e = min(te, ue)
    boxes = dict(r.boxes)
    if e == te and str(e) not in boxes:
        boxes[str(e)] = m.get("end_box") or boxes.get(str(e - 1))
    gt = list(range(tb, e + 1))
    if any(boxes.get(str(f)) is None for f in gt):
        return None  # CG-STVG: "spoiled" sentence, a hole in the track
    return STVGTarget(r.id, m["vid"], (tb, e), None, np.asarray(gt, np.int64), _box_array(boxes, gt), m["qtype"])


# --- scoring -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SentenceScores:
    """Per-sentence scores, each float64 (N,) in [0, 1], aligned with the targets."""

    tiou: np.ndarray
    viou: np.ndarray
    gt_viou: np.ndarray


def score_targets(
    targets: Sequence[STVGTarget],
    predictions: Mapping[str, TubePrediction],
    allow_missing: bool = False,
    source: str | Path = "predictions",
) -> SentenceScores:
    """Score every target against its prediction, vectorized over all sentences and frames.

    Raises :class:`SpaceVLLMError` for a missing prediction or a missing needed box (module docstring),
    naming ``source``, the video and the frame; ``allow_missing`` scores those 0 instead.
    """
    n = len(targets)
    has = np.array([t.key in predictions for t in targets], bool)
    if not allow_missing and not has.all():
        t = targets[int(np.argmin(has))]
        raise SpaceVLLMError(
            f"{source}: no prediction for {_name(t)} ({int((~has).sum())} missing); "
            "pass --allow-missing to score missing ones as 0"
        )
    idx = np.flatnonzero(has)
    preds = [predictions[targets[i].key] for i in idx]
    gt = np.array([targets[i].gt_sted for i in idx], np.int64).reshape(-1, 2)
    ps = np.array([p.sted for p in preds], np.int64).reshape(-1, 2)
    lo, hi = np.minimum(gt[:, 0], ps[:, 0]), np.maximum(gt[:, 1], ps[:, 1])
    inter_lo, inter_hi = np.maximum(gt[:, 0], ps[:, 0]), np.minimum(gt[:, 1], ps[:, 1])
    union = _union_counts([targets[i] for i in idx], lo, hi)
    iou, owner, in_inter = _gt_frame_ious([targets[i] for i in idx], preds, inter_lo, inter_hi, allow_missing, source)
    out = [np.zeros(n) for _ in range(3)]
    out[0][idx] = temporal_iou(gt, ps, half_open=True)
    out[1][idx] = np.bincount(owner, iou * in_inter, len(idx)) / np.maximum(union, 1)
    out[2][idx] = np.bincount(owner, iou, len(idx)) / np.maximum(np.bincount(owner, minlength=len(idx)), 1)
    return SentenceScores(*out)


def _name(t: STVGTarget) -> str:
    return f"video {t.video!r}" if t.key == t.video else f"sentence {t.key} (video {t.video!r})"


def _flat(arrays: list[np.ndarray], dtype) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate per-sentence arrays -> (values, owner index of each value)."""
    lengths = np.fromiter((len(a) for a in arrays), np.int64, len(arrays))
    values = np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype)
    return values, np.repeat(np.arange(len(arrays), dtype=np.int64), lengths)


def _union_counts(targets: list[STVGTarget], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Number of scored frames in ``[lo, hi)`` per sentence (all frames when ``frames is None``)."""
    counts = np.maximum(hi - lo, 0).astype(np.float64)
    sampled = np.array([t.frames is not None for t in targets], bool)
    if sampled.any():
        sel = np.flatnonzero(sampled)
        frames, owner = _flat([targets[i].frames for i in sel], np.int64)
        keys = owner * _STRIDE + frames
        base = np.arange(len(sel), dtype=np.int64) * _STRIDE
        a = np.searchsorted(keys, base + np.clip(lo[sel], 0, _STRIDE))
        b = np.searchsorted(keys, base + np.clip(hi[sel], 0, _STRIDE))
        counts[sel] = np.maximum(b - a, 0)
    return counts


def _gt_frame_ious(targets, preds, inter_lo, inter_hi, allow_missing: bool, source):
    """Flat arrays over every scored GT frame: (box IoU, owner sentence, in-intersection flag)."""
    gt_frames, owner = _flat([t.gt_frames for t in targets], np.int64)
    gt_boxes = np.concatenate([t.gt_boxes for t in targets]) if targets else np.zeros((0, 4))
    p_frames, p_owner = _flat([p.frames for p in preds], np.int64)
    p_boxes = np.concatenate([p.boxes for p in preds]) if preds else np.zeros((0, 4))
    p_keys, g_keys = p_owner * _STRIDE + p_frames, owner * _STRIDE + gt_frames
    j = np.minimum(np.searchsorted(p_keys, g_keys), max(len(p_keys) - 1, 0))
    found = (p_keys[j] == g_keys) if len(p_keys) else np.zeros(len(g_keys), bool)
    in_inter = (gt_frames >= inter_lo[owner]) & (gt_frames < inter_hi[owner])
    missing = in_inter & ~found
    if missing.any() and not allow_missing:
        r = int(np.argmax(missing))
        raise SpaceVLLMError(
            f"{source}: {_name(targets[owner[r]])} has no predicted box for frame {int(gt_frames[r])}, "
            f"which the protocol scores ({int(missing.sum())} such frames); pass --allow-missing to score them as IoU 0"
        )
    iou = np.zeros(len(g_keys))
    if found.any():
        iou[found] = elementwise_box_iou(p_boxes[j[found]], gt_boxes[found])
    return iou, owner, in_inter


# --- aggregation ---------------------------------------------------------------------------------------------


def summarize(scores: SentenceScores, thresholds: Sequence[float] = IOU_THRESHOLDS) -> dict:
    """Means over sentences: ``{"m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5", "gt_vIoU", "n"}`` (fractions).

    ``vIoU@R`` counts vIoU > R (strict). With no sentences every metric is 0 and ``n`` is 0.
    """
    n = len(scores.viou)
    mean = (lambda a: float(np.mean(a))) if n else (lambda a: 0.0)
    out = {"m_tIoU": mean(scores.tiou), "m_vIoU": mean(scores.viou)}
    out.update({f"vIoU@{r:g}": mean(scores.viou > r) for r in thresholds})
    out.update({"gt_vIoU": mean(scores.gt_viou), "n": n})
    return out


def evaluate_stvg(
    records: Iterable,
    predictions: Mapping[str, TubePrediction],
    protocol: str = "tubedetr",
    allow_missing: bool = False,
    by_qtype: bool = False,
    source: str | Path = "predictions",
) -> dict:
    """Score records against predictions: one metric dict, or ``{qtype: dict}`` when ``by_qtype`` (VidSTG)."""
    targets = build_targets(records, protocol)
    scores = score_targets(targets, predictions, allow_missing, source)
    if not by_qtype:
        return summarize(scores)
    qtypes = np.array([t.qtype for t in targets], object)
    return {q: summarize(_select(scores, qtypes == q)) for q in ("declarative", "interrogative")}


def _select(scores: SentenceScores, mask: np.ndarray) -> SentenceScores:
    return SentenceScores(scores.tiou[mask], scores.viou[mask], scores.gt_viou[mask])


# --- generic frame-set core (synthetic world, HC-STVG challenge style) ----------------------------------------


def tube_scores(gt_frames, pred_frames, ious) -> tuple[float, float, float]:
    """(tIoU, vIoU, gt_vIoU) of one tube over explicit frame sets.

    gt_frames   int (G,) frames of the GT set G (each with a GT box)
    pred_frames int (P,) frames of the predicted set P
    ious        float (G,) box IoU of the prediction on each GT frame (0 where it has no box)

    tIoU = |P ∩ G| / |P ∪ G|; vIoU = sum of ``ious`` over P ∩ G / |P ∪ G|; gt_vIoU = mean(ious). Empty
    union -> 0. Use :func:`batch_tube_scores` for many tubes at once.
    """
    g, p = np.asarray(gt_frames, np.int64).reshape(-1), np.asarray(pred_frames, np.int64).reshape(-1)
    out = batch_tube_scores(g, np.zeros(len(g), np.int64), p, np.zeros(len(p), np.int64), ious, 1)
    return float(out.tiou[0]), float(out.viou[0]), float(out.gt_viou[0])


def batch_tube_scores(gt_frames, gt_owner, pred_frames, pred_owner, ious, n: int) -> SentenceScores:
    """:func:`tube_scores` for ``n`` tubes given flat arrays: GT rows ``(gt_owner, gt_frames, ious)`` and
    predicted rows ``(pred_owner, pred_frames)``; owners are tube indices in ``[0, n)``. Duplicate
    (owner, frame) rows count once in P."""
    g_keys = np.asarray(gt_owner, np.int64) * _STRIDE + np.asarray(gt_frames, np.int64)
    p_keys = np.unique(np.asarray(pred_owner, np.int64) * _STRIDE + np.asarray(pred_frames, np.int64))
    g_owner = np.asarray(gt_owner, np.int64)
    ious = np.asarray(ious, np.float64).reshape(-1)
    in_p = np.isin(g_keys, p_keys)
    n_g = np.bincount(g_owner, minlength=n)
    n_p = np.bincount(p_keys // _STRIDE, minlength=n)
    inter = np.bincount(g_owner, in_p, n)
    union = n_g + n_p - inter
    tiou = np.divide(inter, union, out=np.zeros(n), where=union > 0)
    viou = np.divide(np.bincount(g_owner, ious * in_p, n), union, out=np.zeros(n), where=union > 0)
    gt_viou = np.divide(np.bincount(g_owner, ious, n), n_g, out=np.zeros(n), where=n_g > 0)
    return SentenceScores(tiou, viou, gt_viou)


def sampled_protocol_scores(
    start: float,
    end: float,
    fps: float,
    sampled_frames: Sequence[int],
    gt_boxes: Mapping[int, Sequence[float]],
    pred_boxes: Mapping[int, Sequence[float]],
) -> tuple[float, float, float]:
    """(tIoU, vIoU, gt_vIoU) of one predicted tube under the ``"sampled"`` protocol (module docstring).

    ``start``/``end``: the GT range, closed seconds; ``sampled_frames``: ascending source frame indices the
    model saw, at ``fps``; ``gt_boxes`` / ``pred_boxes``: source frame -> pixel xyxy. A GT frame's time may lie
    1e-6 s outside ``[start, end]`` (float round-off) and still count.
    """
    gt = [f for f in sampled_frames if start - 1e-6 <= f / fps <= end + 1e-6 and f in gt_boxes]
    ious = np.zeros(len(gt))
    hit = [i for i, f in enumerate(gt) if f in pred_boxes]
    if hit:
        pred = np.array([pred_boxes[gt[i]] for i in hit], np.float64)
        ious[hit] = elementwise_box_iou(pred, np.array([gt_boxes[gt[i]] for i in hit], np.float64))
    return tube_scores(gt, sorted(pred_boxes), ious)
