"""Uni-STG records -> sampled frames + text + box targets, and a task-weighted mixture sampler.

One :class:`UniSTGDataset` item is a dict

- ``task``      "stvg" | "vtg" | "rec" | "qa" | "caption" | "chat"
- ``video``     (N, H, W, 3) uint8 sampled frames (video tasks) or None
- ``image``     (H, W, 3) uint8 (image tasks, REC) or None
- ``times``     (N,) float64 seconds of the sampled frames (LLaVA-Video uniform sampling)
- ``duration``  seconds
- ``query``, ``answer``  text (``answer`` of a grounding record defaults to the canonical time range text of its GT
  range snapped to the sampled frames' seconds, section 3.1.2)
- ``prompt``    the record's instruction template (``meta["prompt"]``, see :mod:`spacevllm.prompts`) or None
- ``target_boxes`` (N_q, 4) float32 normalized cxcywh: one per sampled frame (N_q = N) or one for an image
- ``box_mask``  (N_q,) bool: the sampled frame lies in the closed GT interval ``[start, end]`` seconds *and*
  the record has a box at that source frame (an image: True when it has a box)
- ``time_mask`` (N,) bool: the sampled frame lies in ``[start, end]`` (grounding records; all False otherwise and
  for images) -- the temporal pointer's target
- ``id``        the record id

Boxes are read from the record's pixel xyxy at the sampled source frame index and normalized by the record's
``width``/``height`` (falling back to the video's own size).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from spacevllm.box_ops import box_cxcywh_to_xyxy, pixel_xyxy_to_norm_cxcywh
from spacevllm.data.records import Record, read_records, resolve_media
from spacevllm.errors import InputFileError, SpaceVLLMError
from spacevllm.prompts import QUERY
from spacevllm.text_coords import format_answer, format_box
from spacevllm.time_ops import format_time_range, snap_time_range
from spacevllm.video import read_image, sample_frames

GROUNDING = ("stvg", "vtg")
_EPS = 1e-6


class UniSTGDataset:
    """Indexable dataset over one or more Uni-STG records files.

    ``num_frames``: N_v frames sampled per video; ``frame_size``: optional (H, W) or int resize at decode time;
    ``text_coords``: the Table 7 text-coordinate baseline, whose STVG answer also spells the boxes
    (``spacevllm.text_coords.format_answer``). ``cache_frames``: keep every decoded video in memory
    (small synthetic worlds: decoding costs as much as a CPU training step; use with ``num_workers: 0``).
    """

    def __init__(self, records_paths, num_frames: int, frame_size=None, text_coords: bool = False, cache_frames=False):
        paths = [records_paths] if isinstance(records_paths, (str, Path)) else list(records_paths)
        self.items: list[tuple[Record, Path]] = [(r, Path(p)) for p in paths for r in read_records(p)]
        if not self.items:
            raise SpaceVLLMError(f"no records in {', '.join(map(str, paths))}")
        for record, path in self.items:
            _check_prompt(record, path)
        self.num_frames, self.frame_size, self.text_coords = num_frames, frame_size, text_coords
        self._cache: dict | None = {} if cache_frames else None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def tasks(self) -> list[str]:
        """The task of every item, in order."""
        return [r.task for r, _ in self.items]

    def __getitem__(self, i: int) -> dict:
        record, path = self.items[i]
        if record.image is not None and record.video is None:
            return self._image_item(record, path)
        return self._video_item(record, path)

    def _video_item(self, record: Record, path: Path) -> dict:
        sampled = self._frames(resolve_media(record, path, "video"))
        duration = float(record.duration or sampled.info.duration)
        size = (record.width or sampled.info.width, record.height or sampled.info.height)
        boxes, mask = frame_targets(record, sampled.indices, sampled.times, size)
        answer = self._answer(record, sampled.times, boxes, mask)
        time_mask = time_targets(record, sampled.times)
        return _item(record, sampled.frames, None, sampled.times, duration, answer, boxes, mask, time_mask)

    def _frames(self, media: Path):
        if self._cache is None:
            return sample_frames(media, self.num_frames, size=self.frame_size)
        if media not in self._cache:
            self._cache[media] = sample_frames(media, self.num_frames, size=self.frame_size)
        return self._cache[media]

    def _image_item(self, record: Record, path: Path) -> dict:
        image = read_image(resolve_media(record, path, "image"))
        size = (record.width or image.shape[1], record.height or image.shape[0])
        box = record.frame_boxes().get(0)
        boxes = np.zeros((1, 4), np.float32)
        if box is not None:
            boxes[0] = pixel_xyxy_to_norm_cxcywh(np.asarray(box, np.float64), *size)
        mask = np.array([box is not None])
        answer = record.answer
        if self.text_coords and record.task == "rec" and box is not None and answer is None:
            answer = format_box(box_cxcywh_to_xyxy(boxes[0]))  # the baseline answers the box as text
        return _item(record, None, image, np.zeros(1), 0.0, answer, boxes, mask)

    def _answer(self, record: Record, times, boxes, mask) -> str | None:
        """The training answer. A grounding record's time range is snapped to the sampled frames' seconds (paper
        section 3.1.2, :func:`~spacevllm.time_ops.snap_time_range`) when the record has no answer or its answer is
        the canonical text of its own raw range; any other answer text is kept. Masks stay on the raw GT range."""
        if record.task not in GROUNDING or record.start is None:
            return record.answer
        start, end = snap_time_range(record.start, record.end, times)
        if self.text_coords and record.task == "stvg":
            sel = np.flatnonzero(mask)
            return format_answer(start, end, times[sel], box_cxcywh_to_xyxy(boxes[sel]))
        if record.answer and record.answer != format_time_range(record.start, record.end):
            return record.answer
        return format_time_range(start, end)


def _item(record, video, image, times, duration, answer, boxes, mask, time_mask=None) -> dict:
    return {
        "id": record.id,
        "task": record.task,
        "video": video,
        "image": image,
        "times": np.asarray(times, np.float64),
        "duration": duration,
        "query": record.query,
        "prompt": (record.meta or {}).get("prompt"),
        "answer": answer,
        "target_boxes": boxes.astype(np.float32),
        "box_mask": np.asarray(mask, bool),
        "time_mask": np.zeros(len(times), bool) if time_mask is None else time_mask,
    }


def _check_prompt(record: Record, path: Path) -> None:
    """A record's ``meta["prompt"]`` template must be a string holding ``{query}`` exactly once."""
    prompt = (record.meta or {}).get("prompt")
    if prompt is not None and (not isinstance(prompt, str) or prompt.count(QUERY) != 1):
        raise InputFileError(path, f"must be a string with {QUERY} exactly once", record=record.id, field="meta.prompt")


def frame_targets(record: Record, indices, times, size) -> tuple[np.ndarray, np.ndarray]:
    """Per sampled frame: normalized cxcywh box (N, 4) and mask (N,) (inside [start, end] s with a GT box).

    ``indices`` (N,) source frame indices, ``times`` (N,) seconds, ``size`` = (width, height) pixels.
    """
    n = len(indices)
    boxes, mask = np.zeros((n, 4), np.float32), np.zeros(n, bool)
    if record.start is None or not record.boxes:
        return boxes, mask
    by_frame = record.frame_boxes()
    inside = _in_range(record, times)
    for j, idx in enumerate(np.asarray(indices).tolist()):
        box = by_frame.get(int(idx))
        if box is not None and inside[j]:
            boxes[j] = pixel_xyxy_to_norm_cxcywh(np.asarray(box, np.float64), *size)
            mask[j] = True
    return boxes, mask


def time_targets(record: Record, times) -> np.ndarray:
    """(N,) bool: sampled frame times (seconds) inside the closed GT range of a grounding record, else all False."""
    if record.task not in GROUNDING or record.start is None or record.end is None:
        return np.zeros(len(times), bool)
    return _in_range(record, times)


def _in_range(record: Record, times) -> np.ndarray:
    """(N,) bool: times (seconds) inside the record's closed ``[start, end]``, with 1e-6 s slack."""
    t = np.asarray(times, np.float64)
    return (t >= record.start - _EPS) & (t <= record.end + _EPS)


class MixtureSampler:
    """Task-weighted mixture (paper Table 1 as weights), stateless in the position: resumable by construction.

    Micro-batch ``g`` (a global counter over all processes) draws its task with probability proportional to
    ``task_weights[task]`` among the tasks present, then ``batch_size`` items of that task uniformly with
    replacement, from ``numpy.random.default_rng([seed, g])``. Batches are single-task (videos and images never
    share a batch). Resuming = starting from the micro-batch counter saved in the checkpoint.
    """

    def __init__(self, tasks: list[str], task_weights: dict | None, batch_size: int, seed: int):
        by_task: dict[str, list[int]] = {}
        for i, t in enumerate(tasks):
            by_task.setdefault(t, []).append(i)
        weights = {t: float((task_weights or {}).get(t, 1.0 if not task_weights else 0.0)) for t in by_task}
        self.tasks = [t for t in sorted(by_task) if weights[t] > 0]
        if not self.tasks:
            raise SpaceVLLMError(f"task_weights {task_weights} select none of the tasks present: {sorted(by_task)}")
        p = np.array([weights[t] for t in self.tasks])
        self.probs = p / p.sum()
        self.index = {t: np.asarray(by_task[t]) for t in self.tasks}
        self.batch_size, self.seed = batch_size, seed

    def batch(self, g: int) -> list[int]:
        """Dataset indices of global micro-batch ``g``."""
        rng = np.random.default_rng([self.seed, g])
        task = self.tasks[int(rng.choice(len(self.tasks), p=self.probs))]
        return rng.choice(self.index[task], size=self.batch_size, replace=True).tolist()


class ShardedBatches:
    """Batch sampler for a DataLoader: micro-batches ``g = start*W + rank, (start+1)*W + rank, ...`` (W processes),
    ``count`` of them for this process."""

    def __init__(self, sampler: MixtureSampler, start: int, count: int, rank: int = 0, world: int = 1):
        self.sampler, self.start, self.count, self.rank, self.world = sampler, start, count, rank, world

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        for k in range(self.start, self.start + self.count):
            yield self.sampler.batch(k * self.world + self.rank)


_WORD = re.compile(r"[A-Za-z]+|\d|[^\sA-Za-z\d]")


def corpus_words(records) -> list[str]:
    """Sorted distinct words, digits and punctuation of the records' queries and answers (a world vocabulary)."""
    words: set[str] = set()
    for r in records:
        for text in (r.query, r.answer or ""):
            words.update(_WORD.findall(text))
    return sorted(words)
