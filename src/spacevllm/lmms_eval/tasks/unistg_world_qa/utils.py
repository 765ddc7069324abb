"""The ``unistg_world_qa`` task: Uni-STG ``qa`` records (``spacevllm synth-world``) answered with one word.

Each line of ``world_qa.jsonl`` is a Uni-STG record (``task: qa``; ``video`` relative to this folder; ``answer``
one word such as a shape or colour). The score is exact match after lower-casing and stripping punctuation.
"""

from __future__ import annotations

import string
from pathlib import Path

HERE = Path(__file__).resolve().parent


def doc_to_visual(doc: dict) -> list[str]:
    """The record's video as an absolute path (records store it relative to the records file)."""
    return [str(HERE / doc["video"])]


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """The question, as the model was trained on it (no extra prompt)."""
    kw = lmms_eval_specific_kwargs or {}
    return f"{kw.get('pre_prompt', '')}{doc['query']}{kw.get('post_prompt', '')}"


def _norm(text: str) -> str:
    return text.lower().strip().strip(string.punctuation + " ").strip()


def process_results(doc: dict, results: list[str]) -> dict:
    """``{"exact_match": 1.0 | 0.0}`` for the first generated answer."""
    return {"exact_match": float(_norm(results[0]) == _norm(doc["answer"]))}
