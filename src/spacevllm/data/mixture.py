"""The multi-task training mixture (paper Table 1): sources -> instruction records in the Table 1 proportions.

A mixture config (YAML; ``spacevllm mixture build --config CONFIG.yaml --out DIR``)::

    seed: 0
    scale: 1.0            # multiply every task's count (0.01: a 1 % build with the same proportions)
    replace: true         # a source smaller than its quota is repeated; false: it gives what it has
    tasks:                # samples per task (Table 1's "Samples" column)
      vtg: 50000
      rec: 320000
    sources:
      - name: charades-sta               # unique; prefixes the mixture ids ("charades-sta:17")
        format: charades-sta             # see FORMATS
        path: charades/charades_sta_train.txt
        weight: null                     # share of its task; default: its number of records
        options: {videos_dir: charades/videos}

Relative paths (``path`` and the path-valued options) are relative to ``root`` (default: the config's folder).

:func:`build_mixture` gives each task its count (``round(count * scale)``), splits it over the task's sources in
proportion to their weights (largest remainder), then draws each source's quota without replacement from a
``numpy`` generator seeded by ``(seed, source name)``; a quota above the source's size takes every record
``quota // size`` times and the rest without replacement (``replace: true``). Output order: sources in config
order, records in source order. Every record is converted by :func:`to_instruction`, with its phrasing chosen from
its mixture id (a repeated record usually gets another phrasing).

Training reads the output like any records file; set the train config's ``data.task_weights`` to the written
per-task counts (the report's ``task_weights``) so that :class:`~spacevllm.data.dataset.MixtureSampler` draws
tasks in the Table 1 proportions.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spacevllm.data.readers.charades import load_durations, read_charades_sta
from spacevllm.data.readers.didemo import read_didemo
from spacevllm.data.readers.refcoco import read_rec_jsonl, read_refcoco
from spacevllm.data.readers.tacos import read_tacos
from spacevllm.data.records import TASKS, Record, read_records, resolve_media
from spacevllm.errors import InputFileError, SpaceVLLMError
from spacevllm.io_utils import check_memory, read_yaml
from spacevllm.prompts import choose_phrasing, phrasings
from spacevllm.time_ops import format_time_range

FORMATS = {  # format -> (task, path-valued options)
    "charades-sta": ("vtg", ("videos_dir", "durations")),
    "didemo": ("vtg", ("videos_dir", "durations")),
    "tacos": ("vtg", ("videos_dir",)),
    "refcoco": ("rec", ("instances", "images_dir")),
    "rec-jsonl": ("rec", ()),
    "records": (None, ()),  # Uni-STG records of any task (synthesized STVG, QA, caption, chat, the world)
}
CONFIG_KEYS = ("seed", "scale", "replace", "tasks", "sources")
SOURCE_KEYS = ("name", "format", "path", "weight", "options")
GROUNDING = ("vtg", "stvg")


@dataclass
class Source:
    """One entry of ``sources``; ``path`` and path-valued ``options`` already resolved against the root."""

    name: str
    format: str
    path: Path
    weight: float | None = None
    options: dict = field(default_factory=dict)


@dataclass
class MixtureConfig:
    tasks: dict[str, int]
    sources: list[Source]
    seed: int = 0
    scale: float = 1.0
    replace: bool = True


# --- config --------------------------------------------------------------------------------------------------


def load_mixture_config(path: str | Path, root: str | Path | None = None) -> MixtureConfig:
    """Read and check a mixture YAML; relative paths resolve against ``root`` (default: the config's folder)."""
    path = Path(path)
    raw = read_yaml(path)
    return parse_mixture_config(raw, Path(root) if root is not None else path.resolve().parent, path)


def parse_mixture_config(raw, root: Path, where="<config>") -> MixtureConfig:
    """A checked :class:`MixtureConfig` from a parsed YAML mapping."""
    if not isinstance(raw, dict):
        raise SpaceVLLMError(f"{where}: a mixture config must be a mapping")
    _known(raw, CONFIG_KEYS, where)
    tasks = raw.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        raise SpaceVLLMError(f"{where}: 'tasks' must map tasks {TASKS} to sample counts")
    for task, count in tasks.items():
        if task not in TASKS or not _is_count(count):
            raise SpaceVLLMError(f"{where}: tasks: {task}: {count!r} (need a task of {TASKS} and a count >= 0)")
    sources = raw.get("sources")
    if not isinstance(sources, list) or not sources:
        raise SpaceVLLMError(f"{where}: 'sources' must be a non-empty list")
    parsed = [_source(s, i, root, where) for i, s in enumerate(sources)]
    names = [s.name for s in parsed]
    if len(set(names)) != len(names):
        raise SpaceVLLMError(f"{where}: source names must be unique, got {names}")
    scale = raw.get("scale", 1.0)
    if not (isinstance(scale, (int, float)) and not isinstance(scale, bool) and 0 < scale < math.inf):
        raise SpaceVLLMError(f"{where}: 'scale' must be a positive number, got {scale!r}")
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise SpaceVLLMError(f"{where}: 'seed' must be an integer >= 0, got {seed!r}")
    return MixtureConfig(dict(tasks), parsed, seed, float(scale), bool(raw.get("replace", True)))


def _source(s, i: int, root: Path, where) -> Source:
    if not isinstance(s, dict):
        raise SpaceVLLMError(f"{where}: sources[{i}] must be a mapping")
    _known(s, SOURCE_KEYS, f"{where}: sources[{i}]")
    name, fmt = s.get("name"), s.get("format")
    if not isinstance(name, str) or not name or ":" in name:
        raise SpaceVLLMError(f"{where}: sources[{i}].name must be a non-empty string without ':', got {name!r}")
    if fmt not in FORMATS:
        raise SpaceVLLMError(f"{where}: source {name}: format must be one of {sorted(FORMATS)}, got {fmt!r}")
    if not isinstance(s.get("path"), str):
        raise SpaceVLLMError(f"{where}: source {name}: 'path' is required")
    weight = s.get("weight")
    if weight is not None and not (_is_count(weight) or isinstance(weight, float) and weight >= 0):
        raise SpaceVLLMError(f"{where}: source {name}: 'weight' must be a number >= 0, got {weight!r}")
    options = copy.deepcopy(s.get("options") or {})
    if not isinstance(options, dict):
        raise SpaceVLLMError(f"{where}: source {name}: 'options' must be a mapping")
    for key in FORMATS[fmt][1]:
        if options.get(key) is not None:
            options[key] = root / options[key]
    return Source(name, fmt, root / s["path"], None if weight is None else float(weight), options)


def _known(d: dict, keys, where) -> None:
    unknown = set(d) - set(keys)
    if unknown:
        raise SpaceVLLMError(f"{where}: unknown key(s) {sorted(unknown)}; known: {list(keys)}")


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


# --- sources -------------------------------------------------------------------------------------------------


def read_source(source: Source) -> list[Record]:
    """The source's records, media paths made absolute (relative ones are relative to the source file)."""
    records = _read(source)
    base = source.path.resolve()
    for r in records:
        for attr in ("video", "image"):
            if getattr(r, attr) is not None:
                setattr(r, attr, str(resolve_media(r, base, attr)))
    return records


def _read(source: Source) -> list[Record]:
    o, path = dict(source.options), source.path
    try:
        if source.format in ("charades-sta", "didemo"):
            if o.get("durations") is not None:
                o["durations"] = load_durations(o["durations"])
            if source.format == "didemo":
                return read_didemo(path, **o)
            return read_charades_sta(path, **o)
        if source.format == "tacos":
            return read_tacos(path, **o)
        if source.format == "refcoco":
            if o.get("instances") is None:
                raise SpaceVLLMError(f"source {source.name}: format refcoco needs options.instances")
            return read_refcoco(path, **o)
        if source.format == "rec-jsonl":
            return [r for _, r in read_rec_jsonl(path, **o)]
        return _read_records(path, o, source.name)
    except TypeError as e:  # an unknown option of the reader
        raise SpaceVLLMError(f"source {source.name}: bad options {sorted(source.options)} ({e})") from None


def _read_records(path: Path, options: dict, name: str) -> list[Record]:
    tasks = options.pop("tasks", None)
    if options:
        raise SpaceVLLMError(f"source {name}: format records takes only the option 'tasks', got {sorted(options)}")
    records = read_records(path)
    return records if tasks is None else [r for r in records if r.task in tasks]


# --- conversion ----------------------------------------------------------------------------------------------


def to_instruction(record: Record, mixture_id: str, seed: int = 0) -> Record:
    """``record`` as an instruction record: id ``mixture_id``, a phrasing of its task's instruction in
    ``meta["prompt"]`` (chosen from the id and ``seed``), and the answer in the project's format (VTG / STVG: the
    closed ``[start, end]`` seconds as :func:`format_time_range` text; REC: none, the box is the target). ``query``
    stays the bare caption; the source id and phrasing index go to ``meta["mixture"]``."""
    k = choose_phrasing(record.task, mixture_id, seed)
    answer = record.answer
    if record.task in GROUNDING and record.start is not None and record.end is not None:
        answer = format_time_range(record.start, record.end)
    meta = {**record.meta, "prompt": phrasings(record.task)[k], "mixture": {"id": record.id, "phrasing": k}}
    out = copy.deepcopy(record)
    out.id, out.answer, out.meta = mixture_id, answer, meta
    return out


# --- sampling ------------------------------------------------------------------------------------------------


def apportion(total: int, weights: list[float]) -> list[int]:
    """``total`` split over ``weights`` by the largest-remainder method (sums to ``total``; ties: earlier first).
    All-zero weights give zeros."""
    w = np.asarray(weights, np.float64)
    if total <= 0 or w.sum() <= 0:
        return [0] * len(weights)
    exact = total * w / w.sum()
    out = np.floor(exact).astype(int)
    order = sorted(range(len(w)), key=lambda i: (-(exact[i] - out[i]), i))
    for i in order[: total - int(out.sum())]:
        out[i] += 1
    return out.tolist()


def draw(n: int, quota: int, rng: np.random.Generator, replace: bool = True) -> list[tuple[int, int]]:
    """``quota`` picks from ``n`` records as ``(index, copy)``: without replacement while possible; above ``n``
    every record ``quota // n`` times plus ``quota % n`` distinct extras (``replace``), or just all ``n``."""
    if n == 0 or quota == 0:
        return []
    full, rest = divmod(quota, n) if replace else (int(quota >= n), 0 if quota >= n else quota)
    picks = [(i, c) for c in range(full) for i in range(n)]
    extra = np.sort(rng.choice(n, size=rest, replace=False)).tolist() if rest else []
    picks += [(i, full) for i in extra]
    return sorted(picks, key=lambda p: (p[0], p[1]))


def source_rng(seed: int, name: str) -> np.random.Generator:
    """The generator of one source: ``default_rng([seed, sha256(name) as int])``, stable across runs."""
    return np.random.default_rng([seed, int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")])


@dataclass
class Part:
    """The records of one task from one source, and what the mixture takes from them."""

    source: Source
    task: str
    records: list[Record]
    quota: int = 0
    picks: list[tuple[int, int]] = field(default_factory=list)


def build_mixture(
    config: MixtureConfig, sources: dict[str, list[Record]] | None = None, skip_missing: bool = False
) -> tuple[list[Record], dict]:
    """Instruction records in the config's task proportions, and a report (see the module docstring).

    ``sources``: records already read, by source name (default: :func:`read_source` of each). ``skip_missing``:
    a source whose file does not exist is left out (its task's count goes to the task's other sources).
    """
    check_mixture_memory(config)
    parts, missing = _parts(config, sources, skip_missing)
    for task, count in config.tasks.items():
        mine = [p for p in parts if p.task == task]
        weights = [p.source.weight if p.source.weight is not None else len(p.records) for p in mine]
        for p, q in zip(mine, apportion(round(count * config.scale), weights)):
            p.quota = q
            p.picks = draw(len(p.records), q, source_rng(config.seed, f"{p.source.name}/{task}"), config.replace)
    out = []
    for p in parts:
        for i, c in p.picks:
            r = p.records[i]
            mixture_id = f"{p.source.name}:{r.id}" + (f"~{c}" if c else "")
            out.append(to_instruction(r, mixture_id, config.seed))
    if not out:
        raise SpaceVLLMError(f"the mixture is empty: no records from any source (missing: {missing or 'none'})")
    return out, mixture_report(config, parts, missing)


# bytes of memory per instruction record while a mixture is built (Record objects, their JSON lines); measured
# with tracemalloc on the world mixture: 1.5 KB per record (records with long box tubes take more)
BYTES_PER_RECORD = 2048


def mixture_size(config: MixtureConfig) -> int:
    """Records the mixture will hold: the sum of each task's ``round(count * scale)``."""
    return sum(round(count * config.scale) for count in config.tasks.values())


def check_mixture_memory(config: MixtureConfig) -> None:
    """Refuse, before any source is read, a mixture whose records cannot fit in memory (one line with the count
    and the memory it would need)."""
    n = mixture_size(config)
    check_memory(n * BYTES_PER_RECORD, f"a mixture of {n:,} records (scale {config.scale:g})", "lower --scale")


def _parts(config: MixtureConfig, sources, skip_missing: bool) -> tuple[list[Part], list[str]]:
    parts, missing = [], []
    for s in config.sources:
        if sources is not None and s.name in sources:
            records = sources[s.name]
        elif skip_missing and not s.path.exists():
            missing.append(s.name)
            continue
        else:
            records = read_source(s)
        by_task: dict[str, list[Record]] = {}
        for r in records:
            by_task.setdefault(r.task, []).append(r)
        for task, recs in by_task.items():
            if task not in config.tasks:
                raise InputFileError(
                    s.path,
                    f"source {s.name} has {task} records but 'tasks' gives no count for "
                    f"{task!r} (add it, or filter with options.tasks)",
                )
            parts.append(Part(s, task, recs))
    return parts, missing


def mixture_report(config: MixtureConfig, parts: list[Part], missing: list[str]) -> dict:
    """Per task: target, written, share vs the config's share; per source part: available, quota, written."""
    total_target = sum(config.tasks.values()) or 1
    written = {t: sum(len(p.picks) for p in parts if p.task == t) for t in config.tasks}
    total = sum(written.values()) or 1
    tasks = {
        t: {
            "count": c,
            "target": round(c * config.scale),
            "written": written[t],
            "share": round(written[t] / total, 4),
            "target_share": round(c / total_target, 4),
        }
        for t, c in config.tasks.items()
    }
    rows = [
        {
            "source": p.source.name,
            "format": p.source.format,
            "task": p.task,
            "available": len(p.records),
            "quota": p.quota,
            "written": len(p.picks),
            "repeated": sum(1 for _, c in p.picks if c),
        }
        for p in parts
    ]
    return {
        "total": sum(written.values()),
        "seed": config.seed,
        "scale": config.scale,
        "tasks": tasks,
        "sources": rows,
        "missing_sources": missing,
        "task_weights": {t: n for t, n in written.items() if n},
    }


def rebase_media(records: list[Record], out_dir: str | Path) -> list[Record]:
    """Media paths rewritten relative to ``out_dir`` (where the mixture's records file lives)."""
    out_dir = Path(out_dir).resolve()
    for r in records:
        for attr in ("video", "image"):
            p = getattr(r, attr)
            if p is not None and Path(p).is_absolute():
                setattr(r, attr, os.path.relpath(p, out_dir))
    return records


def format_report(report: dict) -> str:
    """The report as a few aligned text lines."""
    lines = [f"{'task':<8} {'target':>8} {'written':>8} {'share':>7} {'table':>7}"]
    for t, d in report["tasks"].items():
        lines.append(f"{t:<8} {d['target']:>8} {d['written']:>8} {d['share']:>7.3f} {d['target_share']:>7.3f}")
    lines.append(f"{'source':<24} {'task':<6} {'available':>9} {'quota':>8} {'written':>8} {'repeated':>8}")
    for s in report["sources"]:
        lines.append(
            f"{s['source']:<24} {s['task']:<6} {s['available']:>9} {s['quota']:>8} {s['written']:>8} {s['repeated']:>8}"
        )
    empty = [t for t, d in report["tasks"].items() if d["target"] and not d["written"]]
    if empty:
        lines.append(f"tasks without records (no source present): {', '.join(empty)}")
    if report["missing_sources"]:
        lines.append(f"missing (skipped): {', '.join(report['missing_sources'])}")
    lines.append(f"task_weights for the train config: {report['task_weights']}")
    return "\n".join(lines)
