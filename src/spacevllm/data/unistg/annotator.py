"""Annotator for box generation (paper section 3.2.1): an open-set detector boxes the Analyzer's object on every
annotated frame inside the caption's time range.

:class:`ZeroShotDetector` wraps transformers' zero-shot object detection API (``AutoModelForZeroShotObjectDetection``
+ ``AutoProcessor`` + ``post_process_grounded_object_detection``) for Grounding-DINO checkpoints (the paper's
detector; text prompt ``"<object>."``) and OWLv2 / OWL-ViT checkpoints (text query ``"a photo of a <object>"``).
Boxes are absolute-pixel xyxy on the source frame; only scores ``>= box_threshold`` (0.3) are kept.

:class:`Annotator` is the pipeline stage: it decodes the source frames of the annotation grid (``fps`` frames
per second, see :func:`annotation_frames`) and tries the objects subject first, keeping the first object the
detector finds on at least one frame.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import av
import numpy as np
import torch

from spacevllm.data.unistg.sample import BOX_THRESHOLD, EPS, Detection, Drop, Sample
from spacevllm.errors import SpaceVLLMError, VideoError
from spacevllm.video import probe_video

NO_FRAMES = "no frame in range"
UNREADABLE = "unreadable video"


def annotation_frames(start: float, end: float, source_fps: float, fps: float | None = None,
                      num_frames: int | None = None) -> list[int]:  # fmt: skip
    """Source frame indices to annotate inside the closed range ``[start, end]`` seconds.

    The grid is global to the video: ``f_k = floor(k * source_fps / fps)`` for ``k = 0, 1, ...`` (every source
    frame when ``fps`` is None or ``>= source_fps``), so overlapping captions share frames. Keeps
    ``start * source_fps <= f <= end * source_fps`` (1e-6 tolerance) and ``f < num_frames`` when known.
    """
    step = 1.0 if fps is None or fps >= source_fps else source_fps / fps
    hi = end * source_fps + EPS
    if num_frames is not None:
        hi = min(hi, num_frames - 1 + EPS)
    k0 = max(0, math.floor((start * source_fps - EPS) / step) - 1)
    frames = (math.floor(k * step + EPS) for k in range(k0, math.floor(hi / step) + 2))
    return sorted({f for f in frames if start * source_fps - EPS <= f <= hi})


def decode_frames(path: str | Path, indices: list[int]) -> dict[int, np.ndarray]:
    """``{index: (H, W, 3) uint8 RGB}`` for the wanted source frame indices (frames counted in decode order from
    the first, as :func:`spacevllm.video.sample_frames` counts them). Stops after the last wanted frame; indices
    past the end of the video are absent. Raises :class:`VideoError` for a missing or unreadable file."""
    path, wanted, out = Path(path), set(indices), {}
    if not path.is_file():
        raise VideoError(f"{path}: {'is a folder, not a video file' if path.is_dir() else 'video file not found'}")
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                if i in wanted:
                    out[i] = frame.to_ndarray(format="rgb24")
                if i >= max(wanted, default=-1):
                    break
    except (av.error.FFmpegError, IndexError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise VideoError(f"{path}: not a readable video ({reason})") from None
    return out


class ZeroShotDetector:
    """Open-set detection of one text on a batch of frames through transformers' zero-shot detection API.

    ``model`` is a local checkpoint directory (Grounding-DINO, OWLv2 or OWL-ViT). ``detect(frames, text)`` ->
    one list of :class:`Detection` (pixel xyxy, score ``>= box_threshold``, best first) per frame.
    ``text_threshold`` is Grounding-DINO's token threshold for its phrase labels (unused by OWL).
    """

    def __init__(self, model: str, box_threshold: float = BOX_THRESHOLD, text_threshold: float = 0.25,
                 batch_size: int = 4, device: str = "cpu"):  # fmt: skip
        # transformers only when this model-backed stage is configured: importing it costs 2.4 s beyond torch
        # (python -X importtime, 2-core CPU) and the rule analyzer / oracle annotator runs need none of it
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        try:
            self.processor = AutoProcessor.from_pretrained(model)
            self.model = AutoModelForZeroShotObjectDetection.from_pretrained(model).to(device).eval()
        except (OSError, ValueError) as e:
            raise SpaceVLLMError(f"{model}: cannot load a zero-shot detector ({str(e).splitlines()[0]})") from None
        self.kind = self.model.config.model_type if self.model.config.model_type.startswith("owl") else "grounding-dino"
        if self.kind == "owlv2" and not any(importlib.util.find_spec(m) for m in ("scipy", "torchvision")):
            raise SpaceVLLMError(f"{model}: OWLv2's image processor needs scipy or torchvision (pip install scipy)")
        self.box_threshold, self.text_threshold, self.batch_size = box_threshold, text_threshold, batch_size

    def detect(self, frames: list[np.ndarray], text: str) -> list[list[Detection]]:
        out = []
        for i in range(0, len(frames), self.batch_size):
            out.extend(self._detect_batch(frames[i : i + self.batch_size], text))
        return out

    def _detect_batch(self, frames: list[np.ndarray], text: str) -> list[list[Detection]]:
        sizes = [f.shape[:2] for f in frames]
        if self.kind.startswith("owl"):
            inputs = self.processor(text=[[f"a photo of a {text}"]] * len(frames), images=frames, return_tensors="pt")
            # OWLv2 pads to a square (bottom / right) before resizing, so its boxes are relative to that square;
            # OWL-ViT resizes the frame itself
            target = [(max(h, w), max(h, w)) for h, w in sizes] if self.kind == "owlv2" else sizes
        else:
            prompt = text.lower().strip().rstrip(".") + "."
            inputs = self.processor(images=frames, text=[prompt] * len(frames), return_tensors="pt")
            target = sizes
        inputs = inputs.to(self.model.device)
        with torch.no_grad():
            outputs = self.model(**inputs)
        results = self._post_process(outputs, inputs, target)
        return [self._detections(r, h, w) for r, (h, w) in zip(results, sizes)]

    def _post_process(self, outputs, inputs, target):
        # transformers keeps scores strictly above ``threshold``; the paper keeps >= 0.3, so threshold just below
        low = max(self.box_threshold - 1e-4, 0.0)
        if self.kind.startswith("owl"):
            return self.processor.post_process_grounded_object_detection(outputs, threshold=low, target_sizes=target)
        return self.processor.post_process_grounded_object_detection(
            outputs, inputs["input_ids"], threshold=low, text_threshold=self.text_threshold, target_sizes=target
        )

    def _detections(self, result, h: int, w: int) -> list[Detection]:
        boxes = result["boxes"].detach().cpu().double().numpy().reshape(-1, 4)
        scores = result["scores"].detach().cpu().double().numpy().reshape(-1)
        boxes = np.stack([boxes[:, 0].clip(0, w), boxes[:, 1].clip(0, h), boxes[:, 2].clip(0, w),
                          boxes[:, 3].clip(0, h)], axis=1)  # fmt: skip
        keep = [i for i in np.argsort(-scores, kind="stable") if scores[i] >= self.box_threshold]
        return [Detection(tuple(round(float(v), 2) for v in boxes[i]), round(float(scores[i]), 4)) for i in keep]


class Annotator:
    """Pipeline stage: detections of the sample's object on the annotation grid inside ``[start, end]``.

    ``fps``: annotated frames per second (None: every source frame). Objects are tried in the Analyzer's order
    (subject first); the first one detected on at least one frame becomes ``sample.object`` (all frames of an
    object nobody detects are still recorded when no object is found, and the Refiner drops the sample).
    ``sample.fps`` / ``width`` / ``height`` / ``duration`` are filled from the video when missing.
    """

    name = "annotator"

    max_cached = 1024  # decoded frames kept for the next caption of the same video

    def __init__(self, detector, fps: float | None = 5.0):
        self.detector, self.fps = detector, fps
        self._cache: tuple[str, dict[int, np.ndarray]] | None = None

    def process(self, sample: Sample) -> Sample | Drop:
        try:
            info = probe_video(sample.video)
        except VideoError as e:
            return Drop(UNREADABLE, str(e))
        indices = annotation_frames(sample.start, sample.end, info.fps, self.fps, info.num_frames or None)
        frames = self._frames(sample.video, indices)
        indices = [i for i in indices if i in frames]
        if not indices:
            return Drop(NO_FRAMES, f"no decodable frame in [{sample.start}, {sample.end}] s")
        objects = sample.objects or [sample.object]
        for obj in objects:
            found = self.detector.detect([frames[i] for i in indices], obj)
            if any(found):
                break
        detections = dict(zip(indices, found))
        duration = sample.duration or info.duration
        return sample.replace(object=obj, detections=detections, fps=info.fps, width=info.width,
                              height=info.height, duration=duration)  # fmt: skip

    def _frames(self, video: str, indices: list[int]) -> dict[int, np.ndarray]:
        """Decoded frames, reusing the last video's frames (captions of one video are processed together)."""
        if self._cache is None or self._cache[0] != video:
            self._cache = (video, {})
        cached = self._cache[1]
        missing = [i for i in indices if i not in cached]
        if missing:
            if len(cached) + len(missing) > self.max_cached:
                cached = self._cache[1] = {i: cached[i] for i in indices if i in cached}
            cached.update(decode_frames(video, missing))
        return cached
