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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from spacevllm.data.unistg.filter import BoxFilter
from spacevllm.data.unistg.refiner import Refiner
from spacevllm.data.unistg.report import Report
from spacevllm.data.unistg.sample import Drop, Sample, Stage, to_record
from spacevllm.errors import SpaceVLLMError
from spacevllm.records import Record


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


def outcome_row(outcome: Outcome) -> dict:
    """One line of a part file: ``{"id", "record"}`` when kept, ``{"id", "stage", "reason", "detail"}`` when
    dropped; plus ``"detections"`` (the detections-line dict) when the sample was annotated."""
    row: dict = {"id": outcome.id}
    if outcome.sample is not None:
        row["record"] = to_record(outcome.sample).to_dict()
    else:
        row.update(stage=outcome.stage, reason=outcome.drop.reason, detail=outcome.drop.detail)
    if outcome.detections is not None:
        row["detections"] = outcome.detections.to_json()
    return row


def read_part(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
