"""Task instructions: several phrasings per task, and the deterministic choice of one per record.

Every phrasing is a template with exactly one ``{query}`` (the caption, expression or question). Phrasing 0 of each
task is the processor's default (:data:`spacevllm.modeling.processing.TASK_PROMPTS`, what evaluation and
``spacevllm ground`` use; a test keeps them equal); the others vary the wording for training (paper section 3.2.1:
"we collect existing datasets and devise task instructions and output formats for each task").

Answers keep the project's formats: VTG and STVG answer the time range with
:func:`spacevllm.time_ops.format_time_range` (``"from 2.5 to 7.0 seconds"``; STVG boxes come from the space head);
REC has no text answer (its box comes from the space head through the image query).

An instruction record stores its template in ``meta["prompt"]`` and keeps ``query`` as the bare caption, so the
caption's character span inside the prompt (which the space decoder's cross attention reads, eq. 3) is
``render(template, query)[1]``.
"""

from __future__ import annotations

import hashlib

QUERY = "{query}"

PHRASINGS: dict[str, tuple[str, ...]] = {
    "vtg": (
        'When does "{query}" happen in the video? Answer with the time range.',
        'Find the moment in the video when "{query}". Answer with the start and end time in seconds.',
        'During which part of the video does "{query}" take place? Answer with the time range.',
        'Localize the segment of the video described by "{query}". Answer with the time range.',
        'Give the time range of the video in which "{query}" is seen.',
    ),
    "stvg": (
        'Find when the object described by "{query}" appears and locate it. Answer with the time range.',
        'Ground "{query}" in time and space: when does it happen, and where is the object? Answer with the time range.',
        'Track the object that "{query}" refers to while the description holds. Answer with the time range.',
        'Locate the object described by "{query}" in every frame where the description holds. '
        "Answer with the time range.",
        'Which part of the video shows the object described by "{query}", and where is it? Answer with the time range.',
    ),
    "rec": (
        'Locate "{query}" in the image.',
        'Find the region of the image described by "{query}".',
        'Where is "{query}" in the image?',
        'Give the bounding box of "{query}" in the image.',
        'Point out the object referred to as "{query}".',
    ),
    "qa": (QUERY,),
    "caption": (QUERY,),
    "chat": (QUERY,),
}


def phrasings(task: str) -> tuple[str, ...]:
    """The templates of ``task`` (a task without its own phrasings asks the bare query)."""
    return PHRASINGS.get(task, (QUERY,))


def choose_phrasing(task: str, key: str, seed: int = 0) -> int:
    """Index of the phrasing of ``task`` for the record ``key`` (its id): a stable hash of ``(seed, key)``, the same
    on every machine and Python run."""
    digest = hashlib.sha256(f"{seed}\0{task}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % len(phrasings(task))


def render(template: str, query: str) -> tuple[str, tuple[int, int]]:
    """``(instruction text, (start, end) character span of the query in it)``."""
    head, tail = template.split(QUERY)
    return head + query + tail, (len(head), len(head) + len(query))
