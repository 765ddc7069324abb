"""Diagnose a SpaceVLLM checkpoint on held-out world STVG queries: where do its boxes go, teacher-forced?

Runs the training forward (the ground-truth answer as the text turn, so the time range is known) over the first
``--n`` STVG records of a ``synth-world`` split and reports, over the ground-truth frames (sampled frames inside
``[start, end]`` with a box):

- box IoU with the target (mean, share > 0.5) and the median centre error in pixels;
- which object the predicted box overlaps most (``scenes.jsonl`` has every object's box on every frame):
  the target, another object, or none;
- with a temporal pointer: how often its best (first, last) frame is exactly the GT's first / last frame.

With ``--predictions`` (an ``evaluate run`` output on the same records) it also prints m_vIoU by the target's
action, the caption type and whether a still frame identifies the target.

    .venv/bin/python benchmarks/diagnose_world.py --records runs/world/heldout/records.jsonl --n 64 \
        [--checkpoint DIR] [--predictions runs/eval/final-text.jsonl]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from spacevllm.assets import default_checkpoint_path
from spacevllm.box_ops import box_cxcywh_to_xyxy, box_iou, elementwise_box_iou
from spacevllm.data.collate import Collator
from spacevllm.data.dataset import UniSTGDataset
from spacevllm.data.records import read_records
from spacevllm.engine.evaluate_run import read_predictions, stvg_sample
from spacevllm.modeling.inference import load_model
from spacevllm.modeling.temporal_pointer import best_span
from spacevllm.video import uniform_frame_indices


def scene_boxes(records_path: Path) -> dict[str, tuple[int, list[dict]]]:
    """video path (as records name it) -> (frame count, per object ``{frame index: pixel xyxy}``), from
    ``scenes.jsonl``."""
    out = {}
    for line in (records_path.parent / "scenes.jsonl").read_text(encoding="utf-8").splitlines():
        scene = json.loads(line)
        out[scene["video"]] = (scene["frames"], [{int(k): v for k, v in o["boxes"].items()} for o in scene["objects"]])
    return out


def overlapped_object(box: np.ndarray, objects: list[dict], frame: int, target: int) -> str:
    """``"target"``, ``"other"`` or ``"none"``: which object's box on ``frame`` overlaps pixel xyxy ``box`` most."""
    boxes = np.array([o.get(frame, [0, 0, 0, 0]) for o in objects], np.float64)
    overlaps = box_iou(box[None], boxes)[0]
    best = int(np.argmax(overlaps))
    return "none" if overlaps[best] <= 0 else "target" if best == target else "other"


def teacher_forced(model, processor, ds, idx: list[int], batch: int):
    """Yield (item, pred boxes (N, 4) norm cxcywh, pointer logits (N, 2) or None) for dataset indices ``idx``."""
    collate = Collator(processor)
    for k in range(0, len(idx), batch):
        items = [ds[i] for i in idx[k : k + batch]]
        with torch.no_grad():
            out = model(**collate(items))
        logits = out.time_logits if out.time_logits is not None else [None] * len(items)
        yield from zip(items, out.pred_boxes.float().numpy(), logits)


def box_report(model, processor, records_path: Path, n: int, batch: int) -> dict:
    """Teacher-forced box and pointer statistics over the GT frames of the first ``n`` STVG records."""
    ds = UniSTGDataset(records_path, int(model.config.num_frames))
    idx = [i for i, t in enumerate(ds.tasks) if t == "stvg"][:n]
    objects = scene_boxes(records_path)
    iou, centre_err, on, starts, ends = [], [], defaultdict(int), [], []
    records = [ds.items[i][0] for i in idx]
    for record, (item, boxes, logits) in zip(records, teacher_forced(model, processor, ds, idx, batch)):
        size = np.array([record.width, record.height] * 2, np.float64)
        pred = box_cxcywh_to_xyxy(boxes.astype(np.float64)) * size
        gt = box_cxcywh_to_xyxy(item["target_boxes"].astype(np.float64)) * size
        frames = np.flatnonzero(item["box_mask"])
        iou += elementwise_box_iou(pred[frames], gt[frames]).tolist()
        centres = (pred[frames, :2] + pred[frames, 2:] - gt[frames, :2] - gt[frames, 2:]) / 2
        centre_err += np.hypot(centres[:, 0], centres[:, 1]).tolist()
        count, objs = objects[record.video]
        sampled = uniform_frame_indices(count, len(item["times"]))
        for j in frames:
            on[overlapped_object(pred[j], objs, int(sampled[j]), record.meta["target"])] += 1
        if logits is not None:
            first, last = best_span(logits[: len(item["times"])])
            gt_frames = np.flatnonzero(item["time_mask"])
            starts.append(first == gt_frames[0])
            ends.append(last == gt_frames[-1])
    iou = np.array(iou)
    total = sum(on.values())
    report = {
        "queries": len(idx),
        "gt_frames": len(iou),
        "box_iou_mean": float(iou.mean()),
        "box_iou>0.5": float((iou > 0.5).mean()),
        "centre_error_px_median": float(np.median(centre_err)),
        "on_target": on["target"] / total,
        "on_other_object": on["other"] / total,
        "on_nothing": on["none"] / total,
    }
    if starts:
        report |= {"pointer_exact_start": float(np.mean(starts)), "pointer_exact_end": float(np.mean(ends))}
    return report


def breakdown(records_path: Path, predictions: Path) -> dict[str, dict[str, float]]:
    """m_vIoU (%) of an ``evaluate run`` prediction file by action, caption type and still-identifiability."""
    preds = read_predictions(predictions)
    groups: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in read_records(records_path):
        if r.task != "stvg":
            continue
        _, viou = stvg_sample(r, preds.get(r.id))
        groups["action"][r.meta["action"]["kind"]].append(viou)
        groups["sentence_type"][r.meta["sentence_type"]].append(viou)
        groups["still_identifiable"][str(r.meta["still_identifiable"])].append(viou)
    return {g: {k: round(100 * float(np.mean(v)), 1) for k, v in sorted(d.items())} for g, d in groups.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=Path, required=True, help="records.jsonl of a synth-world split")
    ap.add_argument("--checkpoint", default=None, help="SpaceVLLM folder (default: the embedded model)")
    ap.add_argument("--n", type=int, default=64, help="STVG records to run teacher-forced")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--predictions", type=Path, default=None, help="evaluate run output on the same records")
    args = ap.parse_args()
    torch.manual_seed(0)
    ckpt = args.checkpoint or default_checkpoint_path()
    model, processor = load_model(ckpt, device="cpu")
    result = {"checkpoint": str(ckpt), **box_report(model, processor, args.records, args.n, args.batch)}
    if args.predictions:
        result["m_vIoU_by"] = breakdown(args.records, args.predictions)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
