"""The ``spacevllm unistg run`` configuration (YAML) and the only place that builds stages from it.

Keys (defaults = paper section 3.2.1; relative paths are relative to the current directory)::

    input: records.jsonl        # Uni-STG records: captioned video ranges (VTG, STVG or caption records)
    out: runs/unistg            # output folder (parts/, records.jsonl, detections.jsonl, drops.jsonl, report.json)
    tasks: [vtg, stvg, caption] # which input records become samples
    workers: 1                  # processes
    limit: null                 # only the first N samples
    box_threshold: 0.3          # shared by the Annotator, the Refiner and the Filter
    analyzer:  {backend: rules | llm, model: DIR, max_objects: 4, attributes: false, max_new_tokens: 64}
    annotator: {backend: detector, model: DIR, fps: 5, text_threshold: 0.25, batch_size: 4, device: cpu}
           or  {backend: oracle, scenes: PATH (default: scenes.jsonl beside input), fps: null, seed: 0,
                noise: {miss, jitter, low_score, size_jump, jump_scale, clutter, swap, false_positive, crowd}}
    refiner:   {min_duration: 2.0, max_duration: 120.0}
    filter:    {max_boxes: 3, min_area_ratio: 0.5, max_area_ratio: 2.0}
"""

from __future__ import annotations

import copy
from pathlib import Path

from spacevllm.data.records import TASKS
from spacevllm.data.unistg import sample as paper
from spacevllm.data.unistg.analyzer import Analyzer, build_analyzer
from spacevllm.data.unistg.annotator import Annotator, ZeroShotDetector
from spacevllm.data.unistg.filter import BoxFilter
from spacevllm.data.unistg.oracle import Noise, OracleAnnotator, load_scenes
from spacevllm.data.unistg.refiner import Refiner
from spacevllm.errors import SpaceVLLMError
from spacevllm.io_utils import read_yaml
from spacevllm.schema import Rule, check_flag, check_mapping

DEFAULTS = {
    "input": None,
    "out": None,
    "tasks": ["vtg", "stvg", "caption"],
    "workers": 1,
    "limit": None,
    "box_threshold": paper.BOX_THRESHOLD,
    "analyzer": {"backend": "rules", "max_objects": 4},
    "annotator": {"backend": "detector", "fps": 5.0},
    "refiner": {"min_duration": paper.MIN_DURATION, "max_duration": paper.MAX_DURATION},
    "filter": {"max_boxes": paper.MAX_BOXES, "min_area_ratio": paper.MIN_AREA_RATIO,
               "max_area_ratio": paper.MAX_AREA_RATIO},
}  # fmt: skip
STAGE_NAMES = ("analyzer", "annotator", "refiner", "filter")
# Keys that change results: a resumed run must use the same values (the rest only change speed or scope).
RESULT_KEYS = ("tasks", "box_threshold", "analyzer", "annotator", "refiner", "filter")


def load_config(path: str | Path, **overrides) -> dict:
    """Read a YAML config, fill defaults, apply non-None ``overrides`` (input, out, workers, limit), validate."""
    path = Path(path)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise SpaceVLLMError(f"{path}: a config must be a mapping")
    check_flags(overrides)
    return check_config(merge(raw, {k: v for k, v in overrides.items() if v is not None}), path)


def merge(raw: dict, overrides: dict | None = None) -> dict:
    """Defaults <- ``raw`` <- ``overrides`` (nested mappings merged one level deep)."""
    config = copy.deepcopy(DEFAULTS)
    for source in (raw, overrides or {}):
        for key, value in source.items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
    return config


def _fraction(**kw) -> Rule:
    return Rule(kind=float, ge=0, le=1, **kw)


# the type and range of every key (spacevllm.schema); keys of a stage that a backend does not use are still checked
SCHEMA = {
    "input": Rule(kind=str, optional=True),
    "out": Rule(kind=str, optional=True),
    "tasks": Rule(kind=list, each=Rule(kind=str, choices=TASKS)),
    "workers": Rule(kind=int, ge=1),
    "limit": Rule(kind=int, ge=1, optional=True),
    "box_threshold": _fraction(),
    "analyzer": {
        "backend": Rule(kind=str, choices=("rules", "llm")),
        "model": Rule(kind=str, optional=True),
        "max_objects": Rule(kind=int, ge=1),
        "attributes": Rule(kind=bool),
        "max_new_tokens": Rule(kind=int, ge=1),
        "device": Rule(kind=str),
        "fallback": Rule(kind=str, choices=("rules", "none"), optional=True),
        "grounded_only": Rule(kind=bool),
    },
    "annotator": {
        "backend": Rule(kind=str, choices=("detector", "oracle")),
        "model": Rule(kind=str, optional=True),
        "fps": Rule(kind=float, gt=0, optional=True),
        "text_threshold": _fraction(),
        "batch_size": Rule(kind=int, ge=1),
        "device": Rule(kind=str),
        "scenes": Rule(kind=str, optional=True),
        "seed": Rule(kind=int, ge=0),
        "noise": Rule(kind=dict, optional=True, each=Rule(kind=float, ge=0)),
    },
    "refiner": {"min_duration": Rule(kind=float, ge=0), "max_duration": Rule(kind=float, gt=0)},
    "filter": {
        "max_boxes": Rule(kind=int, ge=1),
        "min_area_ratio": Rule(kind=float, gt=0),
        "max_area_ratio": Rule(kind=float, gt=0),
    },
}
# ``spacevllm unistg run`` flags -> config keys (checked with the key's rule, named by the flag)
FLAGS = {"workers": "--workers", "limit": "--limit"}


def check_config(config: dict, path="<config>") -> dict:
    """Every key's type and range (:data:`SCHEMA`), then the relations between keys: one line naming the file and
    the key. The config as converted (e.g. ``"1e-5"`` -> ``1e-05``)."""
    config = check_mapping(config, SCHEMA, str(path))
    for key in ("input", "out"):
        if not config[key]:
            raise SpaceVLLMError(f"{path}: '{key}' is required (in the config or as --{key})")
    refiner = config["refiner"]
    if refiner.get("min_duration", 0) > refiner.get("max_duration", float("inf")):
        raise SpaceVLLMError(f"{path}: refiner.min_duration is above refiner.max_duration")
    return config


def check_flags(overrides: dict) -> None:
    """The CLI values among ``overrides`` (``FLAGS``; None = not given), each named by its flag."""
    for key, flag in FLAGS.items():
        if overrides.get(key) is not None:
            check_flag(flag, overrides[key], SCHEMA[key])


def build_stages(config: dict, input_path: str | Path | None = None) -> list:
    """Analyzer, Annotator, Refiner, Filter from a checked config."""
    thr = float(config["box_threshold"])
    a = config["analyzer"]
    try:
        analyzer = Analyzer(build_analyzer(a), int(a.get("max_objects", 4)))
        refiner = Refiner(**_floats(config["refiner"], ("min_duration", "max_duration")), score_threshold=thr)
        f = config["filter"]
        box_filter = BoxFilter(int(f.get("max_boxes", paper.MAX_BOXES)),
                               **_floats(f, ("min_area_ratio", "max_area_ratio")), score_threshold=thr)  # fmt: skip
    except (TypeError, ValueError) as e:
        raise SpaceVLLMError(f"bad stage option: {e}") from None
    return [analyzer, build_annotator(config["annotator"], thr, input_path), refiner, box_filter]


def _floats(d: dict, names: tuple[str, ...]) -> dict:
    unknown = set(d) - set(names) - {"max_boxes"}
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)}")
    return {k: float(d[k]) for k in names if k in d}


def build_annotator(a: dict, box_threshold: float, input_path=None):
    """The Annotator stage of an ``annotator:`` mapping (``backend: detector`` or ``oracle``)."""
    backend = a.get("backend", "detector")
    fps = None if a.get("fps") is None else float(a["fps"])
    if backend == "oracle":
        scenes = a.get("scenes") or (Path(input_path).parent / "scenes.jsonl" if input_path else None)
        if scenes is None:
            raise SpaceVLLMError("annotator backend 'oracle' needs 'scenes' (the world's scenes.jsonl)")
        return OracleAnnotator(load_scenes(scenes), fps, Noise.from_dict(a.get("noise")), int(a.get("seed", 0)))
    if backend == "detector":
        if not a.get("model"):
            raise SpaceVLLMError("annotator backend 'detector' needs 'model': a local Grounding-DINO / OWLv2 directory")
        detector = ZeroShotDetector(a["model"], box_threshold, float(a.get("text_threshold", 0.25)),
                                    int(a.get("batch_size", 4)), a.get("device", "cpu"))  # fmt: skip
        return Annotator(detector, fps)
    raise SpaceVLLMError(f"annotator backend must be 'detector' or 'oracle', got {backend!r}")
