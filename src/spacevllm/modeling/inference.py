"""Inference (paper 3.1.5): the time range is generated as text, the boxes come from the same prefill.

One :func:`ground` call runs **one** forward over the prompt (frames + query tokens + time instruction + task
prompt) that keeps the last-layer hidden states and the KV cache, then continues that cache with transformers'
``generate`` (greedy) to write the answer, so the video is never run through the LLM twice. The answer's time
range (:func:`spacevllm.time_ops.parse_time_range`, closed seconds) selects the sampled frames inside it
(:func:`~spacevllm.time_ops.time_range_to_frame_range`, half-open over sampled frames, then only frames whose
time lies in ``[start, end]``); the query-guided space decoder (``model.decode_boxes``, eq. 3-4) on the prefill's
hidden states gives one normalized cxcywh box per query, and the boxes of the selected frames are converted to
pixel xyxy of the source video.

The prefill covers the prompt *but its last token*; ``generate`` is handed the whole prompt and that cache, so it
feeds only the last prompt token before decoding. The decoder never needs that token (the chat template's
assistant header), and the hidden states of the others are the same either way (causal attention).

With ``config.time_source == "pointer"`` (a CPU-scale switch, :mod:`spacevllm.modeling.temporal_pointer`) nothing
is generated: the range is the pointer's most likely (first, last) sampled frame on the same prefill, and the
answer text is written from those frames' times with :func:`~spacevllm.time_ops.format_time_range`.

Text-coordinate mode (``config.query_mode == "none"``, Table 7 row 1): no queries and no decoder; the boxes
are parsed from the generated text (:mod:`spacevllm.text_coords`).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from spacevllm import text_coords
from spacevllm.box_ops import denormalize_xyxy, norm_cxcywh_to_pixel_xyxy
from spacevllm.errors import SpaceVLLMError
from spacevllm.modeling.processing import PROCESSOR_FILE
from spacevllm.modeling.temporal_pointer import best_span
from spacevllm.time_ops import ANSWER_TIME_STEP, format_time_range, parse_time_range, time_range_to_frame_range
from spacevllm.tube import Tube
from spacevllm.video import SampledFrames, sample_frames

# Greedy-decoding budgets (new tokens). A time answer ("from 12.3 to 45.6 seconds") is ~10-20 tokens; a
# text-coordinate entry ("12.63s: [120, 305, 452, 600]; ") ~25 with digit-split tokenizers such as Qwen2's.
TIME_ANSWER_TOKENS = 32
TEXT_COORD_TOKENS_PER_FRAME = 32
REC_TEXT_TOKENS = 32
QA_ANSWER_TOKENS = 256

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


# --- loading ------------------------------------------------------------------------------------------------


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; ``"cuda"`` without a GPU is a user error."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SpaceVLLMError("--device cuda: no CUDA device is available")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``"auto"`` -> bfloat16 on a GPU that supports it, else float32 (bf16 matmuls are slow on most CPUs)."""
    if dtype == "auto":
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]


def load_model(checkpoint, device: str = "auto", dtype: str = "auto", time_source: str | None = None):
    """``(model, processor)`` from a SpaceVLLM checkpoint folder, in eval mode, SDPA attention, on ``device``.

    ``time_source`` ("text" | "pointer", default: the checkpoint's ``config.time_source``) picks where ``ground``
    reads the time range from; "pointer" needs a checkpoint trained with the temporal pointer.

    Raises :class:`SpaceVLLMError` (one line naming the folder or file) for a missing folder, a missing or
    corrupt ``config.json``, missing or corrupt weights, or processor files that do not load.
    """
    path = Path(checkpoint)
    check_checkpoint(path)
    from spacevllm.modeling import SpaceVLLMForConditionalGeneration, SpaceVLLMProcessor

    dev = resolve_device(device)
    with _as_user_error(f"{path}: cannot load the model"):
        model = SpaceVLLMForConditionalGeneration.from_pretrained(
            path, dtype=resolve_dtype(dtype, dev), attn_implementation="sdpa"
        )
    with _as_user_error(f"{path}: cannot load the processor"):
        processor = SpaceVLLMProcessor.from_pretrained(path)
    bad = processor.mismatches(model.config)
    if bad:
        raise SpaceVLLMError(f"{path}: {PROCESSOR_FILE} does not match config.json ({'; '.join(bad)})")
    if time_source is not None:
        if time_source == "pointer" and getattr(model, "temporal_pointer", None) is None:
            raise SpaceVLLMError(f"{path}: --time-source pointer: this model has no temporal pointer")
        model.config.time_source = time_source
    return model.to(dev).eval(), processor


def check_checkpoint(path) -> dict:
    """The parsed ``config.json`` of a SpaceVLLM checkpoint folder, after checking (without loading weights) that
    the folder, its config and its weights are there. Raises :class:`SpaceVLLMError` naming the path."""
    path = Path(path)
    if path.is_file():
        raise SpaceVLLMError(f"{path}: is a file; a checkpoint is a model folder (with config.json)")
    if not path.is_dir():
        raise SpaceVLLMError(f"{path}: checkpoint folder not found")
    config = path / "config.json"
    if not config.is_file():
        raise SpaceVLLMError(f"{path}: not a model folder (no config.json)")
    try:
        raw = json.loads(config.read_text(encoding="utf-8"))
        model_type = raw.get("model_type")
    except (ValueError, UnicodeDecodeError, AttributeError) as err:
        raise SpaceVLLMError(f"{config}: not a valid config file ({_first_line(err)})") from None
    if model_type != "spacevllm":
        convertible = model_type in ("llava_onevision", "llava_qwen")
        hint = "; convert it first with `spacevllm convert`" if convertible else ""
        raise SpaceVLLMError(f"{config}: model_type is {model_type!r}, not 'spacevllm'{hint}")
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise SpaceVLLMError(f"{path}: no weights (expected model.safetensors)")
    return raw


def check_num_frames(n: int, model_frames: int, name: str = "num_frames") -> int:
    """``n`` if the model can take that many video frames: 1 to its ``num_frames`` (one video query token per
    frame, ``<r_0>..<r_{N_v - 1}>``; ``<r_{N_v}>`` is the image query), else :class:`SpaceVLLMError` naming
    ``name`` (e.g. ``--frames``) and the range."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= model_frames:
        raise SpaceVLLMError(f"{name} must be 1 to {model_frames} (this model's num_frames), got {n}")
    return int(n)


def check_query(query, name: str = "query") -> str:
    """``query`` if it is a string with text (the space decoder attends to its tokens, eq. 3), else
    :class:`SpaceVLLMError` naming ``name``."""
    if not isinstance(query, str) or not query.strip():
        raise SpaceVLLMError(f"{name} is empty: give the words that describe the object")
    return query


class _as_user_error:
    """Context manager: any exception from a loader becomes a one-line SpaceVLLMError ``"{prefix} (reason)"``."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, (SpaceVLLMError, KeyboardInterrupt)):
            return False
        raise SpaceVLLMError(f"{self.prefix} ({_first_line(exc)})") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


# --- grounding ------------------------------------------------------------------------------------------------


@dataclass
class _Prefill:
    """The one forward over the prompt: ``hidden`` (B, L - 1, D) last-layer states, ``cache`` for ``generate``,
    ``patches`` (B, N_v, P*P, D) unpooled patch features for a ``fine_anchor`` model (else None)."""

    hidden: torch.Tensor
    cache: object
    patches: torch.Tensor | None = None


def ground(model, processor, video, query: str, num_frames: int | None = None, **generate_kwargs) -> Tube:
    """Spatio-temporal grounding of ``query`` in ``video`` (a path, or :class:`~spacevllm.video.SampledFrames`).

    Returns a :class:`~spacevllm.tube.Tube`: closed range ``[start, end]`` seconds and, for every sampled frame
    whose time lies inside it, the source frame index, its time and a pixel xyxy box of the source video. An
    answer without a time range gives ``start = end = None``, no boxes, and a ``UserWarning``.
    ``num_frames``: frames to sample (default ``model.config.num_frames``). ``generate_kwargs`` go to
    ``model.generate`` (e.g. a ``logits_processor``; see :class:`ForcedAnswer`).
    """
    return ground_batch(model, processor, [video], [query], num_frames, **generate_kwargs)[0]


def ground_batch(model, processor, videos, queries, num_frames: int | None = None, **generate_kwargs) -> list[Tube]:
    """:func:`ground` for several videos at once: one left-padded batch, one prefill, one ``generate``."""
    if len(videos) != len(queries):
        raise ValueError(f"{len(videos)} videos but {len(queries)} queries")
    for query in queries:
        check_query(query)
    samples = [_sampled(v, num_frames, model.config.num_frames) for v in videos]
    inputs = _video_inputs(model, processor, samples, queries, "stvg")
    text_mode = _text_mode(model)
    budget = TIME_ANSWER_TOKENS + (TEXT_COORD_TOKENS_PER_FRAME * len(samples[0].times) if text_mode else 0)
    budget = generate_kwargs.pop("max_new_tokens", budget)
    if text_mode:
        texts = _generate(model, processor, inputs, budget, **generate_kwargs)
        return [_text_tube(t, s) for t, s in zip(texts, samples)]
    prefill = _prefill(model, inputs)
    spans = [None] * len(samples)
    if getattr(model.config, "time_source", "text") == "pointer":
        spans = _pointed_spans(model, inputs, prefill.hidden, samples)
        texts = [format_time_range(*span) for span in spans]
    else:
        texts = _generate(model, processor, inputs, budget, cache=prefill.cache, **generate_kwargs)
    boxes = _decode_boxes(model, inputs, prefill)
    return [_query_tube(t, s, b, span) for t, s, b, span in zip(texts, samples, boxes, spans)]


def ground_image(model, processor, image, expression: str, **generate_kwargs) -> np.ndarray:
    """Referring expression comprehension: one pixel xyxy box (4,) float64 for ``expression`` in ``image``.

    ``image``: a path or an (H, W, 3) uint8 array. With queries, the box is the space decoder's output on the
    image query ``<r_Nv>`` (one forward, nothing generated); in text-coordinate mode it is parsed from the
    generated answer (an unreadable answer gives the empty box ``[0, 0, 0, 0]`` and a ``UserWarning``).
    """
    from spacevllm.video import read_image

    check_query(expression, "expression")
    image = read_image(image) if isinstance(image, (str, os.PathLike)) else np.asarray(image)
    height, width = image.shape[:2]
    inputs = _batch_to(model, processor(images=[image], queries=[expression], task="rec", return_tensors="pt"))
    if _text_mode(model):
        text = _generate(model, processor, inputs, REC_TEXT_TOKENS, **generate_kwargs)[0]
        box = text_coords.parse_box(text)
        if box is None:
            warnings.warn(f"no box in the answer {text!r}", stacklevel=2)
            return np.zeros(4)
        return np.clip(denormalize_xyxy(np.asarray(box, np.float64), width, height), 0, [width, height] * 2)
    with torch.no_grad():
        out = model(**_model_inputs(inputs), use_cache=False, logits_to_keep=1)
        boxes = model.decode_boxes(
            out.last_hidden_state, inputs["input_ids"], inputs["caption_mask"], out.patch_features
        )
    return norm_cxcywh_to_pixel_xyxy(boxes[0, -1].float().cpu().numpy().astype(np.float64), width, height)


def generate_answer(
    model, processor, video, question: str, num_frames: int | None = None, max_new_tokens: int = QA_ANSWER_TOKENS
) -> str:
    """Plain video question answering / captioning: the generated text (greedy), special tokens removed."""
    sample = _sampled(video, num_frames, model.config.num_frames)
    inputs = _video_inputs(model, processor, [sample], [question], "qa")
    return _generate(model, processor, inputs, max_new_tokens)[0]


class ForcedAnswer(LogitsProcessor):
    """Makes greedy ``generate`` write given answers: row b writes ``token_ids[b]``, then EOS (or pads).

    For teacher-forced answers (boxes given a known range) and fixed-length benchmarks. Stateful: it takes the
    prompt length from its first call, so use one instance per ``generate`` call. Build it with
    :func:`forced_answer`.
    """

    def __init__(self, token_ids: list[list[int]], end_token_id: int):
        self.rows, self.end_token_id, self.prompt_length = [list(r) for r in token_ids], int(end_token_id), None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.prompt_length is None:
            self.prompt_length = input_ids.shape[1]
        step = input_ids.shape[1] - self.prompt_length
        forced = torch.tensor(
            [r[step] if step < len(r) else self.end_token_id for r in self.rows], device=scores.device
        )
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(len(forced), device=scores.device), forced] = 0.0
        return out


def forced_answer(processor, answers: list[str]) -> dict:
    """``generate`` kwargs that force ``answers`` (one per batch row): ``{"logits_processor": [ForcedAnswer]}``."""
    tokenizer = processor.tokenizer
    rows = [tokenizer(a, add_special_tokens=False)["input_ids"] for a in answers]
    end = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id
    return {"logits_processor": LogitsProcessorList([ForcedAnswer(rows, end)])}


# --- steps ----------------------------------------------------------------------------------------------------


def _sampled(video, num_frames: int, model_frames: int) -> SampledFrames:
    """``video`` sampled to ``num_frames`` frames (None: the model's ``num_frames``); at most the model's."""
    if isinstance(video, SampledFrames):
        check_num_frames(len(video.indices), model_frames, "the sampled frames")
        return video
    return sample_frames(video, check_num_frames(model_frames if num_frames is None else num_frames, model_frames))


def _text_mode(model) -> bool:
    return getattr(model.config, "query_mode", "interleaved") == "none"


def _video_inputs(model, processor, samples: list[SampledFrames], queries, task: str) -> dict:
    inputs = processor(
        videos=[s.frames for s in samples],
        times=[s.times for s in samples],
        durations=[s.info.duration for s in samples],
        queries=list(queries),
        task=task,
        padding_side="left",
        return_tensors="pt",
    )
    return _batch_to(model, inputs)


def _batch_to(model, inputs) -> dict:
    """Tensors onto the model's device; floating ones (pixels) in the model's dtype."""
    out = {}
    for key, value in dict(inputs).items():
        if isinstance(value, torch.Tensor):
            value = value.to(model.device, dtype=model.dtype if value.is_floating_point() else None)
        out[key] = value
    return out


def _model_inputs(inputs: dict) -> dict:
    """What ``forward`` takes from a processor batch: everything but the decoder's caption mask and labels."""
    return {k: v for k, v in inputs.items() if k not in ("caption_mask", "labels")}


def _position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) positions counted over real tokens only, as ``generate`` derives them (left padding -> 0)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)


@torch.no_grad()
def _prefill(model, inputs: dict) -> _Prefill:
    """One forward over the prompt minus its last token; keeps the last-layer hidden states and the cache.
    Its logits are never read (``generate`` feeds the last prompt token itself): ``lm_head`` runs on one position."""
    mask = inputs["attention_mask"]
    head = {k: v for k, v in _model_inputs(inputs).items() if k not in ("input_ids", "attention_mask")}
    out = model(
        input_ids=inputs["input_ids"][:, :-1],
        attention_mask=mask[:, :-1],
        position_ids=_position_ids(mask)[:, :-1],
        use_cache=True,
        logits_to_keep=1,
        **head,
    )
    return _Prefill(out.last_hidden_state, _cache_of(out), out.patch_features)


def _cache_of(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


@torch.no_grad()
def _generate(model, processor, inputs: dict, max_new_tokens: int, cache=None, **generate_kwargs) -> list[str]:
    """Greedy answers (special tokens removed). With ``cache`` (a prefill of the prompt minus its last token)
    no pixel input is passed again: ``generate`` feeds only the last prompt token before decoding. ``generate``
    passes ``logits_to_keep=1`` to the forward (transformers' convention), so every step computes logits at the
    last position only; a ``logits_to_keep`` in ``generate_kwargs`` overrides that (0 = all positions)."""
    tokenizer = processor.tokenizer
    kwargs = dict(
        input_ids=inputs["input_ids"],
        attention_mask=inputs["attention_mask"],
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
    )
    if tokenizer.eos_token_id is not None:
        kwargs["eos_token_id"] = tokenizer.eos_token_id
    if cache is None:
        kwargs.update(_model_inputs(inputs))
    else:
        kwargs["cache"] = cache
    sequences = model.generate(**{**kwargs, **generate_kwargs})
    new = sequences[:, inputs["input_ids"].shape[1] :]
    return [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]


@torch.no_grad()
def _decode_boxes(model, inputs: dict, prefill: _Prefill) -> np.ndarray:
    """(B, N_q, 4) normalized cxcywh float64 from the prefill's hidden states (eq. 3-4 on every query)."""
    ids, caption = inputs["input_ids"][:, :-1], inputs["caption_mask"][:, :-1]
    boxes = model.decode_boxes(prefill.hidden, ids, caption, prefill.patches)
    return boxes.float().cpu().numpy().astype(np.float64)


@torch.no_grad()
def _pointed_spans(model, inputs: dict, hidden: torch.Tensor, samples: list[SampledFrames]) -> list[tuple]:
    """Closed ``(start, end)`` seconds from the temporal pointer: the best (first, last) sampled frame's times."""
    logits = model.point_time(hidden, inputs["input_ids"][:, :-1])
    spans = []
    for row, sample in zip(logits, samples):
        first, last = best_span(row[: len(sample.times)])
        spans.append((float(sample.times[first]), float(sample.times[last])))
    return spans


# --- answers -> tubes -------------------------------------------------------------------------------------------


def _frames_in_range(start: float, end: float, times: np.ndarray) -> np.ndarray:
    """Indices of the sampled frames whose time lies in the closed ``[start, end]`` seconds read from an answer.

    Answers name sampled frame times rounded to ``ANSWER_TIME_STEP`` (training snaps the range to the frames,
    section 3.1.2, then writes one decimal), so a frame within half a step of a boundary belongs to the range."""
    slack = ANSWER_TIME_STEP / 2 + 1e-6
    first, last = time_range_to_frame_range(start - slack, end + slack, times)
    j = np.arange(first, last)
    return j[(times[j] >= start - slack) & (times[j] <= end + slack)]


def _no_range(text: str) -> Tube:
    warnings.warn(f"no time range in the answer {text!r}; the tube is empty", stacklevel=3)
    return Tube(None, None, text)


def _query_tube(text: str, sample: SampledFrames, boxes_cxcywh: np.ndarray, span=None) -> Tube:
    """Tube from an answer and the decoder's (N_q, 4) normalized cxcywh boxes (query i = frame i); the range is
    ``span`` (closed seconds) when given, else parsed from the generated ``text``."""
    span = span or parse_time_range(text)
    if span is None:
        return _no_range(text)
    j = _frames_in_range(*span, sample.times)
    j = j[j < len(boxes_cxcywh)]
    pixels = norm_cxcywh_to_pixel_xyxy(boxes_cxcywh[j], sample.info.width, sample.info.height)
    return Tube(*span, text, sample.indices[j], sample.times[j], pixels)


def _text_tube(text: str, sample: SampledFrames) -> Tube:
    """Tube from a text-coordinate answer: range and per-frame boxes both parsed from ``text``."""
    start, end, entries = text_coords.parse_answer(text)
    if start is None:
        return _no_range(text)
    by_frame = text_coords.match_sampled_frames(entries, sample.times)
    j = np.array([i for i in _frames_in_range(start, end, sample.times) if i in by_frame], np.int64)
    width, height = sample.info.width, sample.info.height
    norm = np.array([by_frame[i] for i in j], np.float64).reshape(-1, 4)
    pixels = np.clip(denormalize_xyxy(norm, width, height), 0, [width, height] * 2)
    return Tube(start, end, text, sample.indices[j], sample.times[j], pixels)
