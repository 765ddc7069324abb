"""Batches of :class:`~spacevllm.data.dataset.UniSTGDataset` items -> processor inputs + box targets."""

from __future__ import annotations

import numpy as np
import torch


class Collator:
    """Call the SpaceVLLM processor on a single-task batch and add the space-loss targets.

    Returns the processor's BatchFeature (``input_ids``, ``attention_mask``, ``pixel_values_videos`` or image
    inputs, ``caption_mask``, ``labels`` when the batch has answers) plus ``target_boxes`` (B, N_q, 4) normalized
    cxcywh float32, ``box_mask`` (B, N_q) bool and, for videos, ``time_mask`` (B, N) bool (the pointer's target).
    Training pads on the right.
    """

    def __init__(self, processor, padding_side: str = "right"):
        self.processor, self.padding_side = processor, padding_side

    def __call__(self, items: list[dict]):
        tasks = sorted({it["task"] for it in items})
        if len(tasks) != 1:
            raise ValueError(f"a batch must hold one task, got {tasks}")
        answers = [it["answer"] for it in items]
        kwargs = dict(
            queries=[it["query"] for it in items],
            task=tasks[0],
            templates=[it.get("prompt") for it in items],
            answers=None if any(a is None for a in answers) else answers,
            padding_side=self.padding_side,
            return_tensors="pt",
        )
        if items[0]["video"] is not None:
            kwargs |= dict(
                videos=[it["video"] for it in items],
                times=[it["times"] for it in items],
                durations=[it["duration"] for it in items],
            )
        else:
            kwargs["images"] = [it["image"] for it in items]
        batch = self.processor(**kwargs)
        batch["target_boxes"] = torch.from_numpy(np.stack([it["target_boxes"] for it in items]))
        batch["box_mask"] = torch.from_numpy(np.stack([it["box_mask"] for it in items]))
        if items[0]["video"] is not None:
            batch["time_mask"] = torch.from_numpy(np.stack([it["time_mask"] for it in items]))
        return batch
