"""SpaceVLLM processor: frames -> pixel values, prompt -> token layout (eq. 1-2), answers -> labels.

Token layout of the user turn (``query_mode``):
  interleaved   [S x <video>] <r_0> [S x <video>] <r_1> ... [S x <video>] <r_{N-1}> <video>
  appended      [S x <video>] ... [S x <video>] <video> <r_0> ... <r_{N-1}>
  none          [S x <video>] ... [S x <video>] <video>
The final ``<video>`` is the one newline feature LLaVA-OneVision's ``get_video_features`` appends per video, so the
model's placeholder count check (S * N + 1) holds. That is the default ``newline_position`` "one_token"; with
"grid" each ``[S x <video>]`` above is ``[T x <video>]`` with T = S + sqrt(S) (a newline after each row of the
frame), with "frame" T = S + 1, with "no_token" T = S; those three have no final ``<video>`` (the model's config
says which layout a checkpoint uses; docs/checkpoints.md).

An image is a one-frame video followed by ``<r_{N_v}>`` (paper: "N_v is set to 1 for the image input"; routed
through the same pooled path, not LLaVA-OneVision's anyres tiles). Then the time instruction (LLaVA-Video's
string) and the task prompt with the query.

``text_first`` (:func:`user_turn`) puts the task prompt (with the query) before the visual block instead (the
paper only says the visual tokens and queries "are concatenated with descriptions and user instructions"). With a
causal LLM this lets every frame token and every query ``<r_i>`` read the caption; with the LLaVA-Video order they
cannot, and the caption reaches the boxes only through eq. 3's first attention. The small from-scratch world model
uses it (docs/training.md, "CPU-scale switches"); real checkpoints keep the default.

Pixels: resize to ``image_size`` (bicubic), rescale 1/255, normalize with SigLIP's mean/std 0.5 (what
LLaVA-OneVision's image processor does for a square frame); torchvision is not needed. ``motion_input``
(:func:`motion_frames`) appends each frame's difference to the previous one as 3 more channels.

The processor keeps its own copy of the model config's layout fields (``num_frames``, ``tokens_per_frame``,
``query_mode``, ``motion_input``, ``newline_position``, ``image_size``); :meth:`SpaceVLLMProcessor.mismatches`
lists any that disagree, and the loaders refuse such a pair.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import AutoTokenizer, BatchFeature

from spacevllm.modeling.configuration import frame_placeholders, query_token
from spacevllm.prompts import PHRASINGS, render
from spacevllm.video import time_instruction

PROCESSOR_FILE = "spacevllm_processor.json"
SYSTEM = "You are a helpful assistant."
TASK_PROMPTS = {task: templates[0] for task, templates in PHRASINGS.items()}  # phrasing 0: evaluation, ground


def motion_frames(x: torch.Tensor) -> torch.Tensor:
    """``motion_input``: (N, C, s, s) normalized frames -> (N, 2C, s, s), each frame followed by its difference to
    the previous frame, [x_t, x_t - x_{t-1}] (zero for the first frame)."""
    diff = torch.cat([torch.zeros_like(x[:1]), x[1:] - x[:-1]])
    return torch.cat([x, diff], dim=1)


def user_turn(visual: str, instruction: str, text_first: bool) -> tuple[str, int]:
    """The user turn from the visual block (ending in a newline) and the instruction (with the query), and where the
    instruction starts in it: LLaVA-Video's order, visual block then instruction; with ``text_first`` the
    instruction, a newline, then the visual block without its final newline."""
    if text_first:
        return instruction + "\n" + visual.rstrip("\n"), 0
    return visual + instruction, len(visual)


class SpaceVLLMProcessor:
    """Tokenizer + frame preprocessing + the token layout. ``save_pretrained`` / ``from_pretrained`` round-trip."""

    def __init__(
        self,
        tokenizer,
        num_frames: int,
        image_size: int,
        tokens_per_frame: int,
        query_mode: str,
        motion_input: bool = False,
        image_mean=(0.5, 0.5, 0.5),
        image_std=(0.5, 0.5, 0.5),
        video_token: str = "<video>",
        text_first: bool = False,
        newline_position: str = "one_token",
    ):
        self.tokenizer = tokenizer
        self.num_frames, self.image_size, self.tokens_per_frame = num_frames, image_size, tokens_per_frame
        self.query_mode, self.motion_input, self.video_token = query_mode, motion_input, video_token
        self.image_mean, self.image_std = tuple(image_mean), tuple(image_std)
        self.text_first = bool(text_first)
        self.newline_position = newline_position

    # --- persistence -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        keys = (
            "num_frames",
            "image_size",
            "tokens_per_frame",
            "query_mode",
            "motion_input",
            "image_mean",
            "image_std",
            "video_token",
            "text_first",
            "newline_position",
        )
        return {k: getattr(self, k) for k in keys}

    def save_pretrained(self, path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(path)
        (path / PROCESSOR_FILE).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_pretrained(cls, path, **overrides) -> SpaceVLLMProcessor:
        path = Path(path)
        cfg = json.loads((path / PROCESSOR_FILE).read_text(encoding="utf-8")) | overrides
        return cls(AutoTokenizer.from_pretrained(path), **cfg)

    def mismatches(self, config) -> list[str]:
        """Fields the processor copies from the model config (token layout, frame input) that disagree with
        ``config``, as ``"name: processor X, model Y"`` strings (empty when the pair belongs together)."""
        pairs = {
            "num_frames": config.num_frames,
            "tokens_per_frame": config.tokens_per_frame,
            "query_mode": config.query_mode,
            "motion_input": config.motion_input,
            "newline_position": config.newline_position,
            "image_size": config.vision_config.image_size,
        }
        return [f"{k}: processor {getattr(self, k)!r}, model {v!r}" for k, v in pairs.items() if getattr(self, k) != v]

    # --- pixels --------------------------------------------------------------------------------------------------
    def preprocess_frames(self, frames: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, C, s, s) float32; C = 6 with ``motion_input`` (:func:`motion_frames`)."""
        size = (self.image_size, self.image_size)
        arr = np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BICUBIC)) for f in frames]).astype(np.float32)
        arr = (arr / 255.0 - np.asarray(self.image_mean, np.float32)) / np.asarray(self.image_std, np.float32)
        x = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
        return motion_frames(x) if self.motion_input else x

    # --- text ----------------------------------------------------------------------------------------------------
    def visual_block(self, frames: int, image: bool = False) -> str:
        """The placeholder string for ``frames`` frames (see the module docstring)."""
        v = self.video_token * frame_placeholders(self.tokens_per_frame, self.newline_position)
        end = self.video_token if self.newline_position == "one_token" else ""
        if image:
            q = "" if self.query_mode == "none" else query_token(self.num_frames)
            return v + end + q
        qs = [query_token(i) for i in range(frames)] if self.query_mode != "none" else [""] * frames
        if self.query_mode == "interleaved":
            return "".join(v + q for q in qs) + end
        return v * frames + end + "".join(qs)

    def task_prompt(self, task: str, query: str, template: str | None = None) -> tuple[str, tuple[int, int]]:
        """The instruction of ``task`` around ``query`` (``template``: one of :data:`spacevllm.prompts.PHRASINGS`,
        default phrasing 0) and the query's character span in it."""
        return render(template or TASK_PROMPTS[task], query)

    def build_prompt(self, task: str, query: str, frames: int, times=None, duration=None, image=False, template=None):
        """(prompt text, (start, end) character span of the query inside it)."""
        system = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n"
        visual = self.visual_block(frames, image) + "\n"
        if not image and times is not None:
            visual += time_instruction(duration, times) + "\n"
        instruction, (offset, _) = self.task_prompt(task, query, template)
        user, at = user_turn(visual, instruction, self.text_first)
        start = len(system) + at + offset
        return system + user + "<|im_end|>\n<|im_start|>assistant\n", (start, start + len(query))

    def __call__(
        self,
        videos=None,
        times=None,
        durations=None,
        queries=None,
        task="stvg",
        answers=None,
        images=None,
        templates=None,
        padding_side="left",
        return_tensors="pt",
    ) -> BatchFeature:
        """Batch of videos (or images) + queries (+ answers) -> model inputs. See the module docstring.
        ``templates``: optional per-sample instruction templates (None entries = the task's default)."""
        image = images is not None
        visual = images if image else videos
        tasks = [task] * len(queries) if isinstance(task, str) else list(task)
        rows = []
        for i, (frames, query) in enumerate(zip(visual, queries)):
            frames = np.asarray(frames)[None] if image else np.asarray(frames)
            template = None if templates is None else templates[i]
            prompt, span = self.build_prompt(
                tasks[i], query, len(frames), None if image else times[i], None if image else durations[i], image,
                template,
            )  # fmt: skip
            answer = None if answers is None else answers[i] + "<|im_end|>"
            rows.append((self.preprocess_frames(frames), *self._encode(prompt, span, answer)))
        return self._pad(rows, padding_side)

    def _encode(self, prompt: str, span, answer):
        enc = self.tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        caption = [int(s < span[1] and e > span[0] and e > s) for s, e in enc["offset_mapping"]]
        labels = [-100] * len(ids)
        if answer is not None:
            a = self.tokenizer(answer, add_special_tokens=False)["input_ids"]
            ids, caption, labels = ids + a, caption + [0] * len(a), labels + list(a)
        return ids, caption, labels

    def _pad(self, rows, side: str) -> BatchFeature:
        n = max(len(r[1]) for r in rows)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

        def fill(seq, value):
            extra = [value] * (n - len(seq))
            return extra + list(seq) if side == "left" else list(seq) + extra

        data = {
            "input_ids": torch.tensor([fill(r[1], pad) for r in rows]),
            "attention_mask": torch.tensor([fill([1] * len(r[1]), 0) for r in rows]),
            "caption_mask": torch.tensor([fill(r[2], 0) for r in rows], dtype=torch.bool),
            "pixel_values_videos": torch.stack([r[0] for r in rows]),
        }
        if any(v != -100 for r in rows for v in r[3]):
            data["labels"] = torch.tensor([fill(r[3], -100) for r in rows])
        return BatchFeature(data)
