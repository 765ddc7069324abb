"""The Python API: ``model = spacevllm.load()`` then ``model.ground(video, query, frames=16)``.

:func:`load` gives a :class:`Model` (the embedded default model, or any SpaceVLLM folder); :meth:`Model.ground`
returns a :class:`Grounding`: the :class:`~spacevllm.tube.Tube` (closed ``[start, end]`` seconds, source frame
indices, pixel xyxy boxes) plus the video and query it came from, so it can ``draw`` itself. ``to_json()`` is
exactly what ``spacevllm ground --json`` prints for the same input. :meth:`Model.ground_image` runs REC on an
image (one box, no time range), as ``spacevllm ground`` does for an image.

torch and transformers are imported when a model is loaded, not when this module is: ``import spacevllm`` stays
cheap. Every input is checked before the model runs; a bad one raises a one-line
:class:`~spacevllm.errors.SpaceVLLMError` naming the file or argument.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from spacevllm.errors import SpaceVLLMError
from spacevllm.tube import Tube

JSON_TIME_DIGITS = 4  # the rounding of ``spacevllm ground --json``
JSON_BOX_DIGITS = 2
MAX_DRAW_BYTES = 2 * 1024**3  # draw() decodes every frame; refuse what would not fit


@dataclass
class Grounding(Tube):
    """A :class:`~spacevllm.tube.Tube` with its input: ``video`` (path of the video or image) and ``query``.

    ``start`` / ``end``: closed seconds (None when the answer held no range; an image's REC result has none);
    ``frames`` (K,) source frame indices, ``times`` (K,) seconds, ``boxes`` (K, 4) pixel xyxy; ``text`` the
    generated answer."""

    video: str = ""
    query: str = ""
    image: bool = False

    @classmethod
    def of(cls, tube: Tube, video, query: str, image: bool = False) -> Grounding:
        """Wrap a plain tube with its input."""
        return cls(tube.start, tube.end, tube.text, tube.frames, tube.times, tube.boxes, str(video), query, image)

    def to_json(self, time_digits: int | None = JSON_TIME_DIGITS, box_digits: int | None = JSON_BOX_DIGITS) -> dict:
        """``{"start", "end", "text", "boxes": [{"frame", "time", "box"}]}``, rounded as ``ground --json`` prints
        it (times to 0.1 ms, boxes to 0.01 px); pass None for full precision."""
        return Tube.to_json(self, time_digits, box_digits)

    def draw(self, out_path) -> Path:
        """Draw the result: a video gives an annotated MP4 (box on every frame inside the range, the range on a
        bar under the frame) or, when ``out_path`` ends in ``.png``, the timeline picture; an image gives the
        image with its box (PNG). Returns the path written."""
        from spacevllm import demo

        out = Path(out_path)
        if self.image:
            return _write_image_box(out, self.video, self.boxes[0])
        frames, fps, times, duration = _all_frames(self.video)
        if out.suffix.lower() == ".png":
            return demo.write_timeline(out, frames, fps, self, duration, self.query, times=times)
        return demo.write_annotated_video(out, frames, fps, self, duration, times=times)


class Model:
    """A loaded SpaceVLLM (model + processor) on one device. Build it with :func:`load`."""

    def __init__(self, model, processor, checkpoint: Path):
        self.model, self.processor, self.checkpoint = model, processor, Path(checkpoint)

    @property
    def num_frames(self) -> int:
        """The most frames a video can be sampled to (one video query token per frame)."""
        return int(self.model.config.num_frames)

    def ground(self, video, query: str, frames: int | None = None) -> Grounding:
        """Spatio-temporal grounding of ``query`` in ``video`` (a path): the time range and one pixel xyxy box per
        sampled frame inside it. ``frames``: frames to sample, 1 to :attr:`num_frames` (default all). An image
        path runs :meth:`ground_image` instead (as ``spacevllm ground`` does)."""
        from spacevllm.modeling.inference import ground

        query = check_query(query)
        if is_image(video):
            return self.ground_image(video, query)
        frames = self.check_video(video, frames)
        with warnings.catch_warnings():  # as `spacevllm ground` runs it (same kernels, so the same rounded numbers)
            warnings.simplefilter("ignore")  # "no time range in the answer": the result says so itself
            tube = ground(self.model, self.processor, str(video), query, num_frames=frames)
        return Grounding.of(tube, video, query)

    def ground_image(self, image, expression: str) -> Grounding:
        """Referring expression comprehension: one pixel xyxy box (frame 0, time 0), no time range, in the image
        as displayed (EXIF orientation applied)."""
        from spacevllm.modeling.inference import ground_image
        from spacevllm.video import read_image

        expression = check_query(expression)
        pixels = read_image(image, display=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # text-coordinate models: an unreadable answer gives the empty box
            box = ground_image(self.model, self.processor, pixels, expression)
        return Grounding.of(Tube(None, None, "", [0], [0.0], [box]), image, expression, image=True)

    def answer(self, video, question: str, frames: int | None = None, max_new_tokens: int = 256) -> str:
        """Video question answering / captioning: the generated text (greedy)."""
        from spacevllm.modeling.inference import generate_answer

        question = check_query(question, "question")
        frames = self.check_video(video, frames)
        return generate_answer(self.model, self.processor, str(video), question, frames, max_new_tokens)

    def check_video(self, video, frames: int | None) -> int:
        """The frames to sample (``frames`` or :attr:`num_frames`) once ``video`` is known to be a readable video
        with at least that many frames; else :class:`SpaceVLLMError` naming the file or ``frames``."""
        from spacevllm.modeling.inference import check_num_frames
        from spacevllm.video import probe_video

        n = check_num_frames(self.num_frames if frames is None else frames, self.num_frames, "frames")
        info = probe_video(video)
        if 0 < info.num_frames < n:
            raise SpaceVLLMError(f"{video}: video is too short: it has {info.num_frames} frames, fewer than {n}")
        return n


def load(checkpoint=None, device: str = "auto", dtype: str = "auto", threads: int | None = None) -> Model:
    """A :class:`Model` from a SpaceVLLM folder (default: the embedded default model). ``device``: auto / cpu /
    cuda; ``dtype``: auto / float32 / bfloat16; ``threads``: CPU threads for torch (default: torch's choice)."""
    import torch

    from spacevllm import assets
    from spacevllm.modeling.inference import load_model

    path = Path(checkpoint) if checkpoint else assets.default_checkpoint_path()
    if threads is not None:
        if threads < 1:
            raise SpaceVLLMError(f"threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    model, processor = load_model(path, device=device, dtype=dtype)
    return Model(model, processor, path)


def check_query(query, name: str = "query") -> str:
    """The stripped query; an empty or blank one (or not a string) is a :class:`SpaceVLLMError`."""
    query = query.strip() if isinstance(query, str) else ""
    if not query:
        raise SpaceVLLMError(f"{name} is empty")
    return query


def is_image(path) -> bool:
    """:func:`spacevllm.video.is_image`: a one-frame still image runs REC (imported lazily: ``import spacevllm``
    stays cheap)."""
    from spacevllm.video import is_image as still_image

    return still_image(path)


def _all_frames(video):
    """Every frame of ``video`` for drawing: ``(frames (T, H, W, 3) uint8, fps, times (T,) s, duration s)``."""
    from spacevllm.video import probe_video, sample_frames

    info = probe_video(video)
    if info.num_frames * info.width * info.height * 3 > MAX_DRAW_BYTES:
        raise SpaceVLLMError(f"{video}: too long to draw ({info.num_frames} frames of {info.width}x{info.height})")
    counted = sample_frames(video, 1).info.num_frames  # as decoding counts them (a header can be wrong)
    sample = sample_frames(video, counted)
    return sample.frames, sample.info.fps, sample.times, sample.info.duration


def _write_image_box(out: Path, image, box) -> Path:
    """``image`` (a path) as displayed, with the pixel xyxy ``box`` drawn, saved as PNG at ``out``; atomic."""
    from PIL import Image, ImageDraw

    from spacevllm.demo import BOX_COLOR
    from spacevllm.io_utils import atomic_path
    from spacevllm.video import read_image

    canvas = Image.fromarray(read_image(image, display=True))
    ImageDraw.Draw(canvas).rectangle(box, outline=BOX_COLOR, width=max(2, min(canvas.size) // 100))
    with atomic_path(out) as tmp:
        canvas.save(tmp, format="PNG")
    return out
