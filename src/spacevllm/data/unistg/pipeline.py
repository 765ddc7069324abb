"""Compose the Uni-STG stages (Analyzer -> Annotator -> Refiner -> Filter) and run them over many samples.

:class:`Pipeline` runs one sample through its stages and says which stage removed it. :func:`refine_and_filter`
is the detector-free half (``spacevllm unistg filter``). :func:`run_pipeline` (``spacevllm unistg run``) runs
the whole pipeline over a Uni-STG records file: resumable (one result file per video under ``OUT/parts``,
written atomically; videos already done are skipped), parallel across processes, with a progress bar and a
:class:`~spacevllm.data.unistg.report.Report`.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing as mp
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spacevllm.box_ops import elementwise_box_iou
from spacevllm.data.records import Record, read_records, resolve_media
from spacevllm.data.unistg.config import RESULT_KEYS, STAGE_NAMES, build_stages
from spacevllm.data.unistg.filter import BoxFilter
from spacevllm.data.unistg.refiner import Refiner
from spacevllm.data.unistg.report import Report
from spacevllm.data.unistg.sample import Drop, Sample, Stage, to_record
from spacevllm.errors import SpaceVLLMError
from spacevllm.io_utils import check_output, write_json_atomic, write_jsonl_atomic
from spacevllm.metrics.stvg import tube_scores
from spacevllm.progress import progress_bar


@dataclass
class Outcome:
    """What happened to one sample: ``sample`` when kept (else None), or the ``stage`` and ``drop`` that removed
    it. ``detections`` is the annotated sample (None when it never reached the Annotator's output)."""

    id: str
    sample: Sample | None
    stage: str | None = None
    drop: Drop | None = None
    detections: Sample | None = None


class Pipeline:
    """Stages applied in order; the first :class:`Drop` stops the sample."""

    def __init__(self, stages: list[Stage]):
        self.stages = list(stages)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def process(self, sample: Sample) -> Outcome:
        annotated = None
        for stage in self.stages:
            out = stage.process(sample)
            if isinstance(out, Drop):
                return Outcome(sample.id, None, stage.name, out, annotated)
            sample = out
            if stage.name == "annotator":
                annotated = sample
        return Outcome(sample.id, sample, detections=annotated)


def refine_and_filter(
    samples: Iterable[Sample], refiner: Refiner, box_filter: BoxFilter
) -> tuple[list[Record], Report]:
    """Refiner + Filter over detection samples -> (STVG records of the kept samples, report)."""
    pipeline = Pipeline([refiner, box_filter])
    report, kept = Report(pipeline.names), []
    for sample in samples:
        outcome = pipeline.process(sample)
        report.add(outcome.stage, outcome.drop)
        if outcome.sample is not None:
            kept.append(to_record(outcome.sample))
    return kept, report


# --- run over a records file ---------------------------------------------------------------------------------


def sample_from_record(record: Record) -> Sample:
    """A Uni-STG record (a captioned video range: VTG, STVG or caption) -> a pipeline :class:`Sample`.

    ``caption`` = the record's query; ``start``/``end`` default to the whole video (``0`` / ``duration``);
    ``fps`` may be None (the Annotator probes the video). ``meta`` keeps the record's meta plus its source.
    """
    if record.video is None:
        raise SpaceVLLMError(f"record {record.id!r} has no video")
    start = record.start if record.start is not None else 0.0
    end = record.end if record.end is not None else (record.duration if record.duration is not None else math.inf)
    meta = {**record.meta, "source_id": record.id, "source_task": record.task}
    return Sample(id=record.id, video=record.video, caption=record.query, start=start, end=end, fps=record.fps,
                  duration=record.duration, width=record.width, height=record.height,
                  source=record.source, meta=meta)  # fmt: skip


def video_key(video: str) -> str:
    """A file-name-safe key for a video path (stem + short hash), naming its part file."""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(video).stem)[:48]
    return f"{stem}-{hashlib.sha1(video.encode()).hexdigest()[:10]}"


def group_by_video(samples: Iterable[Sample]) -> dict[str, list[Sample]]:
    """Samples grouped by their video path, in first-seen order."""
    groups: dict[str, list[Sample]] = {}
    for s in samples:
        groups.setdefault(s.video, []).append(s)
    return groups


def outcome_row(outcome: Outcome, out_dir: Path | None = None) -> dict:
    """One line of a part file: ``{"id", "record"}`` when kept, ``{"id", "stage", "reason", "detail"}`` when
    dropped; plus ``"detections"`` (the detections-line dict) when the sample was annotated. With ``out_dir``,
    video paths are written relative to it (outputs live there)."""
    row: dict = {"id": outcome.id}
    if outcome.sample is not None:
        row["record"] = to_record(_relative(outcome.sample, out_dir)).to_dict()
    else:
        row.update(stage=outcome.stage, reason=outcome.drop.reason, detail=outcome.drop.detail)
    if outcome.detections is not None:
        row["detections"] = _relative(outcome.detections, out_dir).to_json()
    return row


def _relative(sample: Sample, out_dir: Path | None) -> Sample:
    if out_dir is None or not os.path.isabs(sample.video):
        return sample
    return sample.replace(video=os.path.relpath(sample.video, Path(out_dir).resolve()))


def read_part(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- the resumable, parallel run -----------------------------------------------------------------------------


@dataclass
class RunResult:
    """``report`` of every sample of the input (done now or in an earlier run), where the outputs are, how many
    videos were already done, and ``quality`` (tubes vs the input's own boxes, when it has any)."""

    report: Report
    out: Path
    videos: int
    resumed_videos: int
    quality: dict = field(default_factory=dict)

    @property
    def records_path(self) -> Path:
        return self.out / "records.jsonl"

    def summary(self) -> dict:
        return {"report": self.report.to_dict(), "records": str(self.records_path), "videos": self.videos,
                "resumed_videos": self.resumed_videos, "quality": self.quality}  # fmt: skip


def load_samples(path: str | Path, tasks, limit: int | None = None) -> tuple[list[Sample], dict[str, Record]]:
    """Samples of the records of ``tasks`` in ``path`` (video paths made absolute), and those records by id."""
    records = [r for r in read_records(path) if r.task in tasks and r.video]
    records = records[:limit] if limit is not None else records
    if not records:
        raise SpaceVLLMError(f"{path}: no records of task(s) {list(tasks)} with a video")
    samples = [sample_from_record(r).replace(video=str(resolve_media(r, path, "video"))) for r in records]
    return samples, {r.id: r for r in records}


def run_pipeline(config: dict, progress: bool = False) -> RunResult:
    """Run the configured stages over the input records (see :mod:`spacevllm.data.unistg.config`).

    Writes under ``out``: ``parts/<video key>.jsonl`` (one per video, atomically, skipped when present: the
    run resumes), then ``records.jsonl`` (kept STVG records, input order), ``detections.jsonl`` (every annotated
    sample, the ``unistg filter`` input format), ``drops.jsonl`` (id, stage, reason, detail) and
    ``report.json``. Video paths in the outputs are relative to ``out``.
    """
    out = Path(config["out"])
    samples, records = load_samples(config["input"], config["tasks"], config["limit"])
    _claim(out, config)
    groups = group_by_video(samples)
    keys = {video: video_key(video) for video in groups}
    todo = [(keys[v], s) for v, s in groups.items() if not (out / "parts" / f"{keys[v]}.jsonl").is_file()]
    for key, rows in _execute(config, todo, out, progress, total=len(groups)):
        write_jsonl_atomic(out / "parts" / f"{key}.jsonl", rows)
    rows = [row for v in groups for row in read_part(out / "parts" / f"{keys[v]}.jsonl")]
    report = _write_outputs(out, rows, [s.id for s in samples])
    quality = tube_quality([r["record"] for r in rows if "record" in r], records)
    return RunResult(report, out, len(groups), len(groups) - len(todo), quality)


def _claim(out: Path, config: dict) -> None:
    """Record the result-changing options in ``out/config.json``; refuse a folder holding results made with other
    ones. A manifest without any result (a run that failed before its first video) is replaced."""
    check_output(out, "folder")
    wanted = {k: config[k] for k in RESULT_KEYS} | {"input": str(Path(config["input"]).resolve())}
    manifest = out / "config.json"
    done = any((out / "parts").glob("*.jsonl")) if (out / "parts").is_dir() else False
    if manifest.is_file() and done:
        try:
            old = json.loads(manifest.read_text(encoding="utf-8"))
        except ValueError:
            old = None
        if old != json.loads(json.dumps(wanted)):
            raise SpaceVLLMError(f"{out} holds a run with other options ({manifest}); use another out folder")
    else:
        (out / "parts").mkdir(parents=True, exist_ok=True)
        write_json_atomic(manifest, wanted)


def _execute(config: dict, todo: list, out: Path, progress: bool, total: int) -> Iterator[tuple[str, list[dict]]]:
    """Process the video groups ``todo`` in this process or in ``workers`` processes; yields (key, rows)."""
    bar = _bar(progress, total, total - len(todo))
    if config["workers"] == 1 or len(todo) <= 1:
        _init_worker(config, out)
        results = map(_process_group, todo)
    else:
        pool = mp.get_context("spawn").Pool(config["workers"], initializer=_init_worker, initargs=(config, out))
        results = pool.imap_unordered(_process_group, todo)
    try:
        for key, rows in results:
            bar.update(1)
            yield key, rows
    finally:
        bar.close()
        if config["workers"] > 1 and len(todo) > 1:
            pool.terminate()


def _bar(enabled: bool, total: int, initial: int):
    return progress_bar(total=total, initial=initial, unit="video", desc="unistg", enabled=enabled)


_WORKER: dict = {}


def _init_worker(config: dict, out: Path) -> None:
    _WORKER.update(pipeline=Pipeline(build_stages(config, config["input"])), out=out)


def _process_group(task: tuple[str, list[Sample]]) -> tuple[str, list[dict]]:
    key, samples = task
    pipeline, out = _WORKER["pipeline"], _WORKER["out"]
    return key, [outcome_row(pipeline.process(s), out) for s in samples]


def _write_outputs(out: Path, rows: list[dict], order: list[str]) -> Report:
    by_id = {r["id"]: r for r in rows}
    rows = [by_id[i] for i in order]
    report = Report(list(STAGE_NAMES))
    for r in rows:
        report.add(r.get("stage"), Drop(r["reason"]) if "reason" in r else None)
    write_jsonl_atomic(out / "records.jsonl", (r["record"] for r in rows if "record" in r))
    write_jsonl_atomic(out / "detections.jsonl", (r["detections"] for r in rows if "detections" in r))
    drops = ({k: r[k] for k in ("id", "stage", "reason", "detail")} for r in rows if "reason" in r)
    write_jsonl_atomic(out / "drops.jsonl", drops)
    write_json_atomic(out / "report.json", report.to_dict())
    return report


# --- quality against ground truth ----------------------------------------------------------------------------


def tube_quality(kept: list[dict], truth: dict[str, Record]) -> dict:
    """How close kept tubes come to the input's own boxes (when the input records have them, e.g. the world).

    Per kept record with a GT record that has boxes: the predicted tube spans every source frame of its
    ``[start, end]``; frames without a kept box score 0. ``m_vIoU`` / ``m_tIoU`` / ``gt_vIoU`` as in
    :func:`spacevllm.metrics.stvg.tube_scores` (frame sets at the source fps); ``box_IoU``: mean IoU on frames
    where both have a box. Empty dict when no kept record has a GT tube.
    """
    scores, box_ious = [], []
    for d in kept:
        gt = truth.get(d["id"])
        if gt is None or not gt.boxes or not gt.fps:
            continue
        gt_boxes, pred = gt.frame_boxes(), {int(k): v for k, v in d["boxes"].items()}
        frames = sorted(gt_boxes)
        ious = np.array([_iou(pred.get(f), gt_boxes[f], elementwise_box_iou) for f in frames])
        span = range(round(d["start"] * d["fps"]), round(d["end"] * d["fps"]) + 1)
        scores.append(tube_scores(frames, list(span), ious))
        box_ious += [_iou(pred[f], gt_boxes[f], elementwise_box_iou) for f in pred if f in gt_boxes]
    if not scores:
        return {}
    t, v, g = np.mean(scores, axis=0)
    box_iou = float(np.mean(box_ious)) if box_ious else 0.0
    return {"n": len(scores), "m_tIoU": round(float(t), 4), "m_vIoU": round(float(v), 4),
            "gt_vIoU": round(float(g), 4), "box_IoU": round(box_iou, 4)}  # fmt: skip


def _iou(a, b, iou) -> float:
    return 0.0 if a is None else float(iou(np.asarray(a, np.float64), np.asarray(b, np.float64)))
