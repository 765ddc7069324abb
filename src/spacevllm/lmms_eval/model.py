"""The lmms-eval model ``spacevllm``: video QA and multiple choice by generation (``generate_until``).

``--model_args pretrained=DIR,frames=N,device=auto,dtype=auto,threads=T``: ``pretrained`` a SpaceVLLM folder
(default: the embedded model), ``frames`` the frames sampled per video (default: the model's ``num_frames``).
Each request's first visual must be a video path; the answer is the model's greedy text for the task's prompt,
cut at the first of the request's ``until`` strings. Log-likelihood requests (the ``*_mcppl`` task variants) are
refused with a one-line error: use the generation variant of the task.
"""

from __future__ import annotations

import os

from lmms_eval.api.model import lmms

from spacevllm.errors import SpaceVLLMError

UNSUPPORTED = "the spacevllm lmms-eval model does not support {what}; use the task's generate_until variant"


class SpaceVLLM(lmms):
    """lmms-eval wrapper around :class:`spacevllm.api.Model` (one process, one device)."""

    is_simple = True

    def __init__(self, pretrained=None, frames=None, device="auto", dtype="auto", threads=None, **kwargs):
        super().__init__()
        from spacevllm.api import load

        self.model = load(pretrained or None, device=device, dtype=dtype, threads=_int_or_none(threads, "threads"))
        self.frames = _int_or_none(frames, "frames")
        self.unused_args = kwargs  # lmms-eval passes batch_size, device_map, ... that one CPU process ignores

    def generate_until(self, requests) -> list[str]:
        """One greedy answer per request: ``req.args = (context, gen_kwargs, doc_to_visual, doc_id, task, split)``."""
        out = []
        for req in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = req.args
            video = _video_of(doc_to_visual(self.task_dict[task][split][doc_id]), task, doc_id)
            tokens = int(gen_kwargs.get("max_new_tokens") or 256)
            text = self.model.answer(video, context, frames=self.frames, max_new_tokens=tokens)
            out.append(_cut(text, gen_kwargs.get("until")))
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), out[-1])
        return out

    def loglikelihood(self, requests):
        raise NotImplementedError(UNSUPPORTED.format(what="loglikelihood (multiple choice by perplexity)"))

    def generate_until_multi_round(self, requests):
        raise NotImplementedError(UNSUPPORTED.format(what="multi-round generation"))


def _video_of(visuals, task: str, doc_id) -> str:
    """The first visual as a video path; anything else (an image, nothing) is a :class:`SpaceVLLMError`."""
    visuals = visuals if isinstance(visuals, (list, tuple)) else [visuals]
    for v in visuals:
        if isinstance(v, (str, os.PathLike)):
            return str(v)
    raise SpaceVLLMError(f"{task} doc {doc_id}: the spacevllm lmms-eval model needs a video path, got {visuals!r:.80}")


def _cut(text: str, until) -> str:
    """``text`` up to the first of the stop strings ``until`` (a string or a list)."""
    for stop in [until] if isinstance(until, str) else until or []:
        if stop:
            text = text.split(stop, 1)[0]
    return text.strip()


def _int_or_none(value, name: str) -> int | None:
    """A model argument as an int (lmms-eval passes strings or ints), or None when empty."""
    if value in (None, "", "None"):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SpaceVLLMError(f"--model_args {name} must be a whole number, got {value!r}") from None
