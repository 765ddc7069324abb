"""A noisy oracle detector for the synthetic world (``spacevllm.data.world``): the Annotator stage without a model.

It reads the world's exact per-object boxes (``scenes.jsonl`` beside the world's ``records.jsonl``) and
imitates an open-set detector's failure modes, so the Refiner and the Filter have real work to do and the
pipeline's output can be scored against the truth. Per annotated frame (independent draws, deterministic for
``(seed, sample id)``):

- the target (``record.meta["target"]``) on a frame where it is visible: missed with probability ``miss``;
  else its box jittered by ``jitter`` x its size (Gaussian, per coordinate), score ~ U(0.4, 0.95), or a
  low score ~ U(0.05, 0.3) with probability ``low_score``; with probability ``size_jump`` the box is blown up
  ``jump_scale`` x around its centre (a detection that merged with the surroundings);
- every other visible object: a box with score ~ U(0.05, 0.45) with probability ``clutter`` (so some pass the
  0.3 threshold); with probability ``swap`` one of them out-scores the target (a wrong pick);
- a random false positive with score ~ U(0.05, 0.4) with probability ``false_positive``;
- with probability ``crowd``, three extra boxes with scores ~ U(0.3, 0.6): a complex scene (> 3 boxes).

The text prompt is ignored: the oracle always looks for the world's target object.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from spacevllm.data.unistg.annotator import annotation_frames
from spacevllm.data.unistg.sample import Detection, Drop, Sample
from spacevllm.errors import SpaceVLLMError

NOT_A_WORLD_SAMPLE = "no world scene"


@dataclass(frozen=True)
class Noise:
    """Failure rates of the oracle detector (probabilities per frame; ``jitter`` relative to the box size)."""

    miss: float = 0.1
    jitter: float = 0.05
    low_score: float = 0.05
    size_jump: float = 0.01
    jump_scale: float = 2.5
    clutter: float = 0.5
    swap: float = 0.03
    false_positive: float = 0.2
    crowd: float = 0.05

    @classmethod
    def from_dict(cls, d: dict | None) -> Noise:
        d = dict(d or {})
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            known = [f.name for f in fields(cls)]
            raise SpaceVLLMError(f"unknown oracle noise option(s) {sorted(unknown)}; known: {known}")
        return cls(**{k: float(v) for k, v in d.items()})


def load_scenes(path: str | Path) -> dict[tuple[int, int], dict]:
    """World ``scenes.jsonl`` -> {(seed, index): scene row}."""
    path = Path(path)
    if not path.is_file():
        raise SpaceVLLMError(f"{path}: no world scenes file (the oracle annotator needs the world's scenes.jsonl)")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {(int(r["seed"]), int(r["index"])): r for r in rows}


class OracleAnnotator:
    """Pipeline stage: noisy detections from the world's ground truth (see the module docstring).

    ``scenes``: {(seed, index): scene row} (:func:`load_scenes`); ``fps``: annotated frames per second (None:
    every frame); ``noise``: :class:`Noise`; ``seed``: noise seed.
    """

    name = "annotator"

    def __init__(self, scenes: dict, fps: float | None = None, noise: Noise | None = None, seed: int = 0):
        self.scenes, self.fps, self.noise, self.seed = scenes, fps, noise or Noise(), seed

    def process(self, sample: Sample) -> Sample | Drop:
        scene = self.scenes.get((sample.meta.get("seed"), sample.meta.get("index")))
        if scene is None or "target" not in sample.meta:
            return Drop(NOT_A_WORLD_SAMPLE, f"no scene for meta seed/index of {sample.id!r}")
        fps, size = float(scene["fps"]), int(scene["size"])
        frames = annotation_frames(sample.start, sample.end, fps, self.fps, int(scene["frames"]))
        rng = np.random.default_rng([self.seed, zlib.crc32(sample.id.encode())])
        objects = scene["objects"]
        target = int(sample.meta["target"])
        detections = {f: self._frame(rng, objects, target, str(f), size) for f in frames}
        obj = sample.object or (sample.objects[0] if sample.objects else None)
        return sample.replace(detections=detections, fps=fps, width=size, height=size,
                              duration=scene["frames"] / fps, object=obj)  # fmt: skip

    def _frame(self, rng, objects: list[dict], target: int, f: str, size: int) -> list[Detection]:
        n, out = self.noise, []
        true = objects[target]["boxes"].get(f)
        if true is not None and rng.random() >= n.miss:
            out.append(self._target_box(rng, true, size))
        for o in objects:
            if o["id"] != target and f in o["boxes"] and rng.random() < n.clutter:
                score = rng.uniform(0.05, 0.45)
                if out and rng.random() < n.swap:
                    score = min(1.0, out[0].score + 0.02)
                out.append(Detection(_jitter(rng, o["boxes"][f], n.jitter, size), float(score)))
        if rng.random() < n.false_positive:
            out.append(Detection(_random_box(rng, size), float(rng.uniform(0.05, 0.4))))
        if rng.random() < n.crowd:
            out += [Detection(_random_box(rng, size), float(rng.uniform(0.3, 0.6))) for _ in range(3)]
        return sorted((Detection(d.box, round(d.score, 4)) for d in out), key=lambda d: -d.score)

    def _target_box(self, rng, box, size: int) -> Detection:
        n = self.noise
        score = rng.uniform(0.05, 0.3) if rng.random() < n.low_score else rng.uniform(0.4, 0.95)
        if rng.random() < n.size_jump:
            box = _scale(box, n.jump_scale, size)
        return Detection(_jitter(rng, box, n.jitter, size), float(score))


def _jitter(rng, box, sigma: float, size: int) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    d = rng.normal(0.0, sigma, 4) * np.array([w, h, w, h])
    return _clip([x1 + d[0], y1 + d[1], x2 + d[2], y2 + d[3]], size)


def _scale(box, s: float, size: int) -> list[float]:
    x1, y1, x2, y2 = box
    cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * s**0.5 / 2, (y2 - y1) * s**0.5 / 2
    return list(_clip([cx - hw, cy - hh, cx + hw, cy + hh], size))


def _random_box(rng, size: int) -> tuple[float, float, float, float]:
    w, h = rng.uniform(4, size / 2, 2)
    x, y = rng.uniform(0, size - w), rng.uniform(0, size - h)
    return _clip([x, y, x + w, y + h], size)


def _clip(b, size: int) -> tuple[float, float, float, float]:
    x1, x2 = sorted((float(np.clip(b[0], 0, size)), float(np.clip(b[2], 0, size))))
    y1, y2 = sorted((float(np.clip(b[1], 0, size)), float(np.clip(b[3], 0, size))))
    return (round(x1, 2), round(y1, 2), round(x2, 2), round(y2, 2))
