"""Run a model over Uni-STG records and score it: batched, sharded across accelerate processes, incremental and
resumable.

Predictions (one JSON line per record, written as soon as its batch is done):

- STVG / VTG: ``{"id", "task", "start", "end", "text", "boxes": [{"frame", "time", "box"}], "sampled_frames"}``
  (the ``ground --json`` tube; boxes pixel xyxy at source frame indices; ``sampled_frames`` the N_v source frame
  indices the model saw);
- REC: ``{"id", "task", "box": [x1, y1, x2, y2] pixels}``.

Each process ``r`` of ``W`` takes the records ``i`` with ``i % W == r`` that are not done yet and appends to
``PRED.jsonl.rank{r}.partial`` (flushed per batch); at the end the main process merges everything into
``PRED.jsonl`` (atomic rename, records order) and removes the partial files. A rerun (even with another number
of processes, or after ``kill -9``) skips every id already in ``PRED.jsonl`` or in a partial file.
``PRED.jsonl.meta.json`` remembers the checkpoint and annotations; a rerun with different ones is refused.

Scoring: see :func:`score` (STVG under the ``"sampled"`` protocol of :mod:`spacevllm.metrics.stvg`: the frames the
model saw).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState

from spacevllm.data.records import Record, read_records, resolve_media
from spacevllm.errors import SpaceVLLMError
from spacevllm.io_utils import write_json_atomic, write_jsonl_atomic
from spacevllm.metrics.rec import rec_accuracy
from spacevllm.metrics.stvg import SentenceScores, sampled_protocol_scores, summarize
from spacevllm.metrics.vtg import vtg_metrics
from spacevllm.modeling.inference import ground_batch, ground_image, load_model
from spacevllm.progress import progress_bar
from spacevllm.video import probe_video, read_image, uniform_frame_indices

SCORED_TASKS = ("stvg", "vtg", "rec")


def evaluate_run(
    annotations,
    checkpoint,
    out,
    batch_size: int = 8,
    progress: bool = True,
    time_source: str | None = None,
    fail_fast: bool = False,
) -> dict:
    """Predict every STVG/VTG/REC record of ``annotations`` not yet in ``out`` and score all; returns the scores.
    ``time_source``: see :func:`spacevllm.modeling.inference.load_model` (default: the checkpoint's own).

    A record whose media cannot be used (a :class:`SpaceVLLMError`: missing, corrupt, too-short video) is reported
    on stderr with its id, kept as a ``{"id", "task", "error"}`` row (retried by a rerun) and counted as a miss;
    the scores then carry ``"failed": [{"id", "task", "error"}]``. ``fail_fast``: stop at the first such record
    instead (one line naming it). Nothing is written before the first prediction (no meta or partial file)."""
    state = PartialState()
    annotations, out, checkpoint = Path(annotations), Path(out), Path(checkpoint)
    records = [r for r in read_records(annotations) if r.task in SCORED_TASKS]
    if not records:
        raise SpaceVLLMError(f"{annotations}: no stvg, vtg or rec records to evaluate")
    meta = _check_meta(out, annotations, checkpoint, time_source)
    done = {i for i, row in read_predictions(out, partials=True).items() if "error" not in row}
    todo = [r for i, r in enumerate(records) if i % state.num_processes == state.process_index and r.id not in done]
    if todo:
        model, processor = load_model(checkpoint, time_source=time_source)
        writer = _PartialWriter(partial_path(out, state.process_index), _meta_path(out), meta)
        _predict_all(model, processor, todo, annotations, writer, batch_size, progress, fail_fast)
    state.wait_for_everyone()
    if state.is_main_process:
        _merge(out, records, meta)
    state.wait_for_everyone()
    preds = read_predictions(out)
    scores = score(records, preds, annotations)
    failed = [{"id": r.id, "task": r.task, "error": preds[r.id]["error"]} for r in records if _failed(preds, r)]
    return scores | ({"failed": failed} if failed else {})


def _failed(preds: dict[str, dict], record: Record) -> bool:
    return "error" in preds.get(record.id, {})


def partial_path(out: Path, rank: int) -> Path:
    return out.with_name(f"{out.name}.rank{rank}.partial")


def _meta_path(out: Path) -> Path:
    return out.with_name(f"{out.name}.meta.json")


def _check_meta(out: Path, annotations: Path, checkpoint: Path, time_source: str | None = None) -> dict:
    """The meta of this run; refuses an ``out`` whose meta file names other ones (read only: the meta file is
    written with the first prediction, :class:`_PartialWriter`)."""
    meta = {"annotations": str(annotations.resolve()), "checkpoint": str(checkpoint.resolve())}
    if time_source is not None:
        meta["time_source"] = time_source
    path = _meta_path(out)
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != meta:
            raise SpaceVLLMError(
                f"{out}: holds predictions of {old['checkpoint']} on {old['annotations']}"
                f"{' (time source ' + old['time_source'] + ')' if 'time_source' in old else ''}; "
                "choose another --out or delete it"
            )
    return meta


def read_predictions(out: Path, partials: bool = False) -> dict[str, dict]:
    """id -> prediction row from ``out`` (and its partial files); torn lines (a kill mid-write) are skipped."""
    paths = [out] + (sorted(out.parent.glob(f"{out.name}.rank*.partial")) if partials else [])
    rows: dict[str, dict] = {}
    for path in paths:
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                rows[row["id"]] = row
    return rows


def _merge(out: Path, records: list[Record], meta: dict) -> None:
    rows = read_predictions(out, partials=True)
    write_jsonl_atomic(out, [rows[r.id] for r in records if r.id in rows])
    if not _meta_path(out).is_file():
        write_json_atomic(_meta_path(out), meta)
    for p in out.parent.glob(f"{out.name}.rank*.partial"):
        p.unlink()


def _ends_torn(path: Path) -> bool:
    """True when ``path`` is non-empty and its last line has no newline (a torn write)."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def _batches(records: list[Record], batch_size: int) -> Iterable[list[Record]]:
    """Consecutive single-task batches of at most ``batch_size`` records."""
    by_task: dict[str, list[Record]] = {}
    for r in records:
        by_task.setdefault(r.task, []).append(r)
    for rs in by_task.values():
        for i in range(0, len(rs), batch_size):
            yield rs[i : i + batch_size]


class _PartialWriter:
    """Appends prediction rows to a partial file, opened (and the meta file written) only with the first rows, so
    a run that fails before its first prediction leaves nothing behind."""

    def __init__(self, partial: Path, meta_path: Path, meta: dict):
        self.partial, self.meta_path, self.meta, self.file = partial, meta_path, meta, None

    def write(self, rows: list[dict]) -> None:
        if self.file is None:
            if not self.meta_path.is_file():
                write_json_atomic(self.meta_path, self.meta)
            torn = _ends_torn(self.partial)
            self.file = open(self.partial, "a", encoding="utf-8")
            if torn:
                self.file.write("\n")  # a kill mid-write left a partial line: start ours on a fresh line
        self.file.write("".join(json.dumps(row) + "\n" for row in rows))
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _predict_all(model, processor, records, annotations, writer, batch_size: int, progress: bool, fail_fast: bool):
    bar = progress_bar(total=len(records), enabled=progress, desc="evaluate")
    try:
        with torch.no_grad():
            for batch in _batches(records, batch_size):
                writer.write(_predict_or_fail(model, processor, batch, annotations, fail_fast))
                bar.update(len(batch))
    finally:
        bar.close()
        writer.close()


def _predict_or_fail(model, processor, batch: list[Record], annotations: Path, fail_fast: bool) -> list[dict]:
    """Rows of a batch; when it fails on bad input, each record alone, a record that still fails becoming an
    ``{"id", "task", "error"}`` row (reported on stderr), or with ``fail_fast`` a one-line error naming it."""
    try:
        return predict_batch(model, processor, batch, annotations)
    except SpaceVLLMError as err:
        if len(batch) == 1:
            record = batch[0]
            message = f"record {record.id}: {err}"
            if fail_fast:
                raise SpaceVLLMError(f"{annotations}: {message} (--fail-fast)") from None
            print(f"spacevllm evaluate run: skipped {message}", file=sys.stderr)
            return [{"id": record.id, "task": record.task, "error": str(err)}]
    return [row for r in batch for row in _predict_or_fail(model, processor, [r], annotations, fail_fast)]


def predict_batch(model, processor, batch: list[Record], annotations: Path) -> list[dict]:
    """Prediction rows for a single-task batch of records (see the module docstring)."""
    if batch[0].task == "rec":
        rows = []
        for r in batch:
            box = ground_image(model, processor, read_image(resolve_media(r, annotations, "image")), r.query)
            rows.append({"id": r.id, "task": r.task, "box": [float(v) for v in box]})
        return rows
    videos = [str(resolve_media(r, annotations, "video")) for r in batch]
    tubes = ground_batch(model, processor, videos, [r.query for r in batch])
    n = int(model.config.num_frames)
    return [_tube_row(r, t, v, n) for r, t, v in zip(batch, tubes, videos)]


def _tube_row(record: Record, tube, video: str, num_frames: int) -> dict:
    info = probe_video(video)
    sampled = uniform_frame_indices(info.num_frames, num_frames).tolist() if info.num_frames else []
    return {"id": record.id, "task": record.task, **tube.to_json(), "sampled_frames": sampled, "fps": info.fps}


# --- scoring ------------------------------------------------------------------------------------------------


def score(records: list[Record], preds: dict[str, dict], annotations: Path) -> dict:
    """``{"stvg": {...}, "vtg": {...}, "rec": {...}}`` for the tasks present (fractions; ``n`` = records scored).

    A record without a prediction counts as a miss (it stays in the denominator).
    """
    out = {}
    for task, fn in (("stvg", score_stvg), ("vtg", score_vtg), ("rec", score_rec)):
        rs = [r for r in records if r.task == task]
        if rs:
            out[task] = fn(rs, preds)
    return out


def score_vtg(records: list[Record], preds: dict[str, dict]) -> dict:
    """R1@0.3/0.5/0.7 and mIoU of the predicted time ranges (``spacevllm.metrics.vtg``)."""
    pred = [_range(preds.get(r.id)) for r in records]
    return vtg_metrics(pred, [(r.start, r.end) for r in records])


def _range(row):
    if not row or row.get("start") is None:
        return None
    return (row["start"], row["end"])


def score_rec(records: list[Record], preds: dict[str, dict]) -> dict:
    """Acc@0.5 (``spacevllm.metrics.rec``); a missing prediction is a zero-area box (a miss)."""
    pred = np.array([preds.get(r.id, {}).get("box", [0.0, 0.0, 0.0, 0.0]) for r in records], np.float64)
    gt = np.array([r.frame_boxes()[0] for r in records], np.float64)
    return rec_accuracy(pred, gt)


def score_stvg(records: list[Record], preds: dict[str, dict]) -> dict:
    """m_tIoU, m_vIoU, vIoU@0.3, vIoU@0.5 and n under the ``"sampled"`` STVG protocol (the frames the model saw;
    :mod:`spacevllm.metrics.stvg`), vIoU@R strict as TubeDETR. A record without a prediction scores 0. Real
    benchmarks use ``spacevllm evaluate stvg`` (TubeDETR protocol)."""
    t, v = np.array([stvg_sample(r, preds.get(r.id)) for r in records], np.float64).reshape(-1, 2).T
    scores = summarize(SentenceScores(t, v, np.zeros_like(v)))
    del scores["gt_vIoU"]  # not reported: the tube covers only the predicted range
    return scores


def stvg_sample(record: Record, row: dict | None) -> tuple[float, float]:
    """(tIoU, vIoU) of one STVG prediction row over its sampled frames; (0, 0) without a prediction."""
    if not row or not row.get("sampled_frames"):
        return 0.0, 0.0
    fps = float(row.get("fps") or record.fps)
    pred = {int(b["frame"]): b["box"] for b in row.get("boxes") or []}
    tiou, viou, _ = sampled_protocol_scores(
        record.start, record.end, fps, row["sampled_frames"], record.frame_boxes(), pred
    )
    return tiou, viou
