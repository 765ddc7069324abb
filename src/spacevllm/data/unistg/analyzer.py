"""Analyzer for object extraction (paper section 3.2.1): the groundable objects of a caption, the subject first.

Two backends behind ``objects(caption) -> list[str]``:

- :class:`RuleAnalyzer` (offline default): a lexicon-based noun-phrase extractor for Charades / HC-STVG style
  captions ("The man in the black coat turns around and walks to the woman." -> ["man", "woman"]).
- :class:`LLMAnalyzer`: any local instruction-tuned causal LM through transformers (the paper uses Qwen2.5-72B),
  prompted for JSON; :func:`parse_objects` reads the answer robustly (code fences, trailing text, single quotes).

:class:`Analyzer` is the pipeline stage: it sets ``sample.objects`` (subject first) and ``sample.object`` (the
subject), or drops the sample when the caption names nothing groundable.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import torch

from spacevllm.data.unistg import lexicon as lx
from spacevllm.data.unistg.sample import Drop, Sample
from spacevllm.errors import SpaceVLLMError

NO_OBJECT = "no groundable object"
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")


class RuleAnalyzer:
    """Lexicon noun phrases in caption order, the subject first, the subject's own attire skipped.

    The subject is the first groundable noun before the main verb (or, failing the lexicon, the word after a
    leading determiner: "The robot picks up ..." -> "robot"). Nouns in the subject's description up to its verb
    ("in the black coat") are skipped; later nouns are objects. Consecutive lexicon nouns form one compound
    ("closet door"); duplicates are dropped. ``attributes=True`` keeps colour/size adjectives ("red square").
    """

    def __init__(self, attributes: bool = False):
        self.attributes = attributes

    def objects(self, caption: str) -> list[str]:
        words = _WORD.findall(caption.lower())
        spans = self._noun_spans(words)
        subject = _subject(words, spans)
        if subject is None:
            return []
        end = _subject_end(words, subject[1])
        rest = [s for s in spans if s[0] > end or s[1] < subject[0]]
        out = [self._phrase(words, s) for s in [subject, *rest]]
        return list(dict.fromkeys(out))

    def _noun_spans(self, words: list[str]) -> list[tuple[int, int]]:
        """(first, last) word indices of the lexicon noun phrases (compounds merged), in order."""
        spans, i = [], 0
        while i < len(words):
            j = i
            while j < len(words) and _is_noun(words, j) and (j == i or words[j - 1] not in lx.PEOPLE):
                j += 1
            if j > i:
                spans.append((i, j - 1))
            i = max(j, i + 1)
        return spans

    def _phrase(self, words: list[str], span: tuple[int, int]) -> str:
        a, b = span
        while self.attributes and a > 0 and words[a - 1] in lx.ADJECTIVES:
            a -= 1
        return " ".join(words[a : b + 1])


def _subject(words: list[str], spans: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The subject span: the first noun before the main verb; else the word after a leading determiner ("the
    robot picks ..."); else the first person ("taking the picture the person lies back"); else the first noun."""
    if spans and spans[0][0] < _first_verb(words):
        return spans[0]
    people = [s for s in spans if words[s[1]] in lx.PEOPLE]
    return _subject_fallback(words) or (people or spans or [None])[0]


def _is_noun(words: list[str], i: int) -> bool:
    w, prev = words[i], words[i - 1] if i else ""
    nxt = words[i + 1] if i + 1 < len(words) else ""
    if (w, nxt) in lx.COMPOUNDS or (prev, w) in lx.COMPOUNDS:
        return True
    if w not in lx.NOUNS:
        return False
    if w in lx.AMBIGUOUS:
        after_noun = prev in lx.NOUNS and prev not in lx.PEOPLE
        return prev in lx.DETERMINERS or prev in lx.PREPOSITIONS or prev in lx.ADJECTIVES or after_noun
    return True


def _subject_fallback(words: list[str]) -> tuple[int, int] | None:
    """ "the robot picks ..." -> the span of "robot" (a leading determiner, adjectives, then an unknown word)."""
    i = 1 if words and words[0] in lx.DETERMINERS else 0
    while i < len(words) and words[i] in lx.ADJECTIVES:
        i += 1
    if 0 < i < len(words) and words[i] not in lx.PRONOUNS | lx.VERB_WORDS | lx.PREPOSITIONS:
        return (i, i)
    return None


def _subject_end(words: list[str], head: int) -> int:
    """Index of the last word of the subject's description: up to (excluding) the first verb-like word."""
    i = head + 1
    if i >= len(words) or words[i] not in lx.PREPOSITIONS | {"wearing", "dressed"}:
        return head
    while i < len(words) and not _is_verb_like(words, i):
        i += 1
    return i - 1


def _first_verb(words: list[str]) -> int:
    """Index of the first verb-like word (not an attributive participle: "a smiling person"), else len(words)."""
    attributive = lx.DETERMINERS | lx.ADJECTIVES
    return next(
        (i for i in range(len(words)) if _is_verb_like(words, i) and (i == 0 or words[i - 1] not in attributive)),
        len(words),
    )


def _is_verb_like(words: list[str], i: int) -> bool:
    w = words[i]
    if w in lx.VERB_WORDS:
        return True
    if w in lx.NOUNS or w in lx.ADJECTIVES or w in lx.PREPOSITIONS or w in lx.DETERMINERS or len(w) < 4:
        return False
    return w.endswith(lx.VERB_SUFFIXES) and not w.endswith("ss")


# --- LLM backend ---------------------------------------------------------------------------------------------

PROMPT = (
    'Caption: "{caption}"\n'
    "List the objects mentioned in this video caption that can be localized with a bounding box in a frame "
    "(people, animals, vehicles, items). Put the subject of the caption first. Use short noun phrases. "
    'Answer with JSON only, like {{"objects": ["man", "door"]}}.'
)
SYSTEM = "You extract groundable objects from video captions and answer with JSON."


class LLMAnalyzer:
    """A local instruction-tuned causal LM (``AutoModelForCausalLM`` + its chat template) asked for JSON.

    The answer is read by :func:`parse_objects`; objects whose words do not occur in the caption are dropped
    (``grounded_only``, against hallucinations). When nothing usable comes back and ``fallback`` is given, the
    fallback analyzer (e.g. :class:`RuleAnalyzer`) answers instead. Greedy decoding, ``max_new_tokens`` tokens.
    """

    def __init__(self, model: str, max_new_tokens: int = 64, device: str = "cpu", grounded_only: bool = True,
                 fallback: RuleAnalyzer | None = None):  # fmt: skip
        # transformers only when this model-backed stage is configured: importing it costs 2.4 s beyond torch
        # (python -X importtime, 2-core CPU) and the rule analyzer / oracle annotator runs need none of it
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not Path(model).is_dir():  # else transformers answers with its hub repo-name rules
            what = "is a file, not a model folder" if Path(model).exists() else "model folder not found"
            raise SpaceVLLMError(f"{model}: {what} (the llm analyzer needs a local causal LM folder)")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.model = AutoModelForCausalLM.from_pretrained(model).to(device).eval()
        except (OSError, ValueError) as e:
            raise SpaceVLLMError(f"{model}: cannot load an analyzer LM ({str(e).splitlines()[0]})") from None
        self.max_new_tokens, self.grounded_only, self.fallback = max_new_tokens, grounded_only, fallback
        self.last_answer = ""

    def generate(self, caption: str) -> str:
        """The model's raw answer text to :data:`PROMPT` for ``caption``."""
        ids = self._prompt_ids(caption).to(self.model.device)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.no_grad():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=self.max_new_tokens,
                                      do_sample=False, pad_token_id=pad)  # fmt: skip
        return self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)

    def _prompt_ids(self, caption: str):
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT.format(caption=caption)}]
        if getattr(self.tokenizer, "chat_template", None):
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                     return_dict=True)  # fmt: skip
            return ids["input_ids"]
        text = f"{SYSTEM}\n{messages[1]['content']}\nAnswer: "
        return self.tokenizer(text, return_tensors="pt").input_ids

    def objects(self, caption: str) -> list[str]:
        self.last_answer = self.generate(caption)
        found = parse_objects(self.last_answer)
        if self.grounded_only:
            found = [o for o in found if _occurs_in(o, caption)]
        if not found and self.fallback is not None:
            return self.fallback.objects(caption)
        return found


def _occurs_in(phrase: str, caption: str) -> bool:
    words = set(_WORD.findall(caption.lower()))
    return any(w in words or w.rstrip("s") in words or w + "s" in words for w in _WORD.findall(phrase))


_FENCE = re.compile(r"```[a-zA-Z]*\s*(.*?)```", re.DOTALL)
_LIST_KEYS = ("objects", "object", "entities", "nouns", "items", "targets")


def parse_objects(text: str) -> list[str]:
    """Objects from an LLM answer, subject first: ``'{"objects": ["man", "door"]}'`` -> ``["man", "door"]``.

    Accepts a JSON object (``objects`` / ``entities`` / ... list, optional ``subject`` first) or a JSON list
    (of strings, or of ``{"name": ...}`` objects), inside code fences or with text around it, with single
    quotes (Python literal) or a trailing comma; else a bulleted / numbered list or an ``Objects: a, b`` line.
    Names are lower-cased, stripped of articles, de-duplicated. Unreadable text gives ``[]``.
    """
    if not isinstance(text, str):
        return []
    fenced = _FENCE.findall(text)
    for candidate in [*fenced, text]:
        value = _first_literal(candidate)
        if value is not None:
            return _clean(_names(value))
    return _clean(_plain_list(text))


def _first_literal(text: str):
    """The first balanced ``{...}`` or ``[...]`` in ``text`` that parses as JSON or a Python literal."""
    for start, ch in enumerate(text):
        if ch in "{[":
            end = _matching(text, start)
            if end is not None:
                value = _load(text[start : end + 1])
                if value is not None:
                    return value
    return None


def _matching(text: str, start: int) -> int | None:
    depth, quote = 0, None
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            quote = None if ch == quote and text[i - 1] != "\\" else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i
    return None


def _load(snippet: str):
    cleaned = re.sub(r",\s*([}\]])", r"\1", snippet)
    for loader in (json.loads, ast.literal_eval):
        try:
            value = loader(cleaned)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(value, (dict, list, tuple)):
            return value
    return None


def _names(value) -> list:
    if isinstance(value, dict):
        lower = {str(k).lower(): v for k, v in value.items()}
        head = [lower["subject"]] if isinstance(lower.get("subject"), str) else []
        for key in _LIST_KEYS:
            if key in lower:
                inner = lower[key]
                return head + (_names(inner) if isinstance(inner, (list, tuple, dict)) else [inner])
        return head or [v for v in value.values() if isinstance(v, str)]
    out = []
    for item in value:
        if isinstance(item, dict):
            item = next((item[k] for k in ("name", "object", "text", "label") if isinstance(item.get(k), str)), None)
        out.append(item)
    return out


_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+(.+?)\s*$", re.MULTILINE)
_LABELLED = re.compile(r"objects?\s*:\s*(.+)", re.IGNORECASE)


def _plain_list(text: str) -> list[str]:
    bullets = _BULLET.findall(text)
    if bullets:
        return bullets
    m = _LABELLED.search(text)
    return [p for p in re.split(r",|;|\band\b", m.group(1).splitlines()[0])] if m else []


def _clean(names) -> list[str]:
    out = []
    for n in names:
        if not isinstance(n, str):
            continue
        words = _WORD.findall(n.lower())
        while words and words[0] in lx.DETERMINERS:
            words = words[1:]
        if 0 < len(words) <= 5:
            out.append(" ".join(words))
    return list(dict.fromkeys(out))


# --- the stage -----------------------------------------------------------------------------------------------


class Analyzer:
    """Pipeline stage: ``objects`` = the backend's list (at most ``max_objects``), ``object`` = the subject."""

    name = "analyzer"

    def __init__(self, backend, max_objects: int = 4):
        self.backend, self.max_objects = backend, max_objects

    def process(self, sample: Sample) -> Sample | Drop:
        objects = self.backend.objects(sample.caption)[: self.max_objects]
        if not objects:
            return Drop(NO_OBJECT, f"caption {sample.caption!r}")
        return sample.replace(objects=objects, object=objects[0])


def build_analyzer(cfg: dict) -> RuleAnalyzer | LLMAnalyzer:
    """``{"backend": "rules" | "llm", "model": dir, "attributes", "max_new_tokens", "device", "fallback"}``."""
    backend = cfg.get("backend", "rules")
    rules = RuleAnalyzer(attributes=bool(cfg.get("attributes", False)))
    if backend == "rules":
        return rules
    if backend == "llm":
        if not cfg.get("model"):
            raise SpaceVLLMError("analyzer backend 'llm' needs 'model': a local causal LM directory")
        fallback = rules if cfg.get("fallback", "rules") == "rules" else None
        return LLMAnalyzer(cfg["model"], int(cfg.get("max_new_tokens", 64)), cfg.get("device", "cpu"),
                           bool(cfg.get("grounded_only", True)), fallback)  # fmt: skip
    raise SpaceVLLMError(f"analyzer backend must be 'rules' or 'llm', got {backend!r}")
