"""Write a world split to disk (videos, REC images, Uni-STG records) and measure how hard it is.

Layout of ``out_dir``::

    records.jsonl          Uni-STG records (spacevllm.data.records), media paths relative to out_dir
    scenes.jsonl           one line per scene: every object, its action and its box on every frame it is visible
    world.json             the options (frames, fps, size) the folder was generated with
    videos/s{seed}-{index:06d}.mp4
    images/s{seed}-{index:06d}-f{frame:02d}.png

``scenes.jsonl`` rows: ``{"scene", "seed", "index", "video", "frames", "fps", "size", "target" (object id), "ref",
"background", "objects": [{"id", "colour", "shape", "x", "y", "radius", "action": {"kind", "start", "end", ...},
"boxes": {"<frame>": [x1, y1, x2, y2]}}]}``, ids = positions in ``objects``, boxes pixel-edge xyxy
(``spacevllm.data.world.render``) on every frame the object is visible (e.g. for a noisy "oracle detector").

Record ``meta`` (video tasks): ``seed``, ``index``, ``target`` (object id), the target's ``colour``/``shape``
(initial) and ``action`` (as in scenes.jsonl), ``ref`` (static attributes the caption mentions: "colour_shape",
"colour", "shape", "none"), ``static_matches`` (ids of the objects with those attributes), ``still_identifiable``
(only the target has them), ``distractors`` (``{"<id>": kinds}``: same_colour, same_shape, still,
different_action, same_time, same_action_other_time), ``n_objects``, ``sentence_type`` ("declarative" /
"interrogative"), and ``question_type`` for QA. REC ``meta``: ``seed``, ``index``, ``frame``, ``object``,
``expression`` ("colour", "shape", "colour_shape" or "position").

Scene ``index`` of ``seed`` depends only on ``(seed, index, frames, size)``, so a larger ``n`` extends a split
and an interrupted run resumes: files already present are not written again (every file is written
atomically, so a present file is complete).
"""

from __future__ import annotations

import json
import math
import operator
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from spacevllm.box_ops import elementwise_box_iou
from spacevllm.data.records import Record, read_records, validate_record
from spacevllm.data.world import captions
from spacevllm.data.world.render import render_scene
from spacevllm.data.world.scene import Scene, sample_scene
from spacevllm.errors import SpaceVLLMError
from spacevllm.io_utils import atomic_path, check_memory, write_json_atomic, write_jsonl_atomic
from spacevllm.metrics.stvg import tube_scores
from spacevllm.metrics.vtg import temporal_iou
from spacevllm.progress import progress_bar
from spacevllm.time_ops import format_time_range
from spacevllm.video import write_video

WORLD_TASKS = ("stvg", "vtg", "rec", "qa")
_VIDEO_TASKS = ("stvg", "vtg", "qa")
FORMAT_VERSION = 1
MOTION_ONLY = ("move", "jump", "grow", "shrink")  # actions no single frame reveals


def generate_world(
    out_dir: str | os.PathLike,
    n: int,
    seed: int,
    *,
    frames: int = 16,
    fps: float = 5.0,
    size: int = 64,
    tasks: Iterable[str] = WORLD_TASKS,
    progress: bool = False,
) -> Path:
    """Generate ``n`` scenes of the world ``seed`` into ``out_dir`` and return the path of its ``records.jsonl``.

    Each scene is a ``frames``-frame clip of ``size`` x ``size`` pixels at ``fps`` (frame ``f`` at ``f / fps`` s;
    defaults: 16 frames at 5 fps = 3.2 s, 64 x 64). Per scene and per task in ``tasks``: "stvg" gives two records
    (declarative caption, interrogative question), "vtg", "rec" (one still frame as a PNG, box key "0") and "qa"
    one each. Grounding records: ``start``/``end`` = first/last frame of the target's action window divided by
    ``fps`` (closed interval in seconds), answer ``format_time_range(start, end)``, ``boxes`` = the target's exact
    pixel-edge xyxy box on every frame of the window (it is visible on all of them). Deterministic: the same
    arguments give byte-identical records and identical frames. Raises :class:`SpaceVLLMError` for bad options
    or an unwritable ``out_dir``.
    """
    n, seed, frames, size, tasks = _check_options(n, seed, frames, fps, size, tasks)
    check_memory(scene_memory(frames, size), f"a scene of {frames} frames of {size}x{size}", "use fewer --frames "
                 "or a smaller --size")  # fmt: skip
    fps = float(fps)
    options = {"format": FORMAT_VERSION, "frames": frames, "fps": fps, "size": size}
    out = _prepare(Path(out_dir), options)
    records, scenes = [], []
    try:
        for index in _progress(range(n), progress, f"world seed {seed}"):
            scene = sample_scene(seed, index, frames, fps, size)
            rows, scene_row = _scene_outputs(out, scene, tasks)
            records.extend(rows)
            scenes.append(scene_row)
        write_jsonl_atomic(out / "scenes.jsonl", scenes)
        write_jsonl_atomic(out / "records.jsonl", records)
        write_json_atomic(out / "world.json", options | {"records": {"n": n, "seed": seed, "tasks": list(tasks)}})
        _remove_stale_temporaries(out)
    except OSError as err:
        raise SpaceVLLMError(f"{err.filename or out}: cannot write ({err.strerror or err})") from None
    return out / "records.jsonl"


# peak bytes of rendering one scene per byte of its uint8 clip (frames x size x size x 3): float work arrays;
# measured with tracemalloc: 24-28 for 16-200 frames of 64-256 pixels
RENDER_BYTES_PER_PIXEL_BYTE = 28


def scene_memory(frames: int, size: int) -> int:
    """Bytes of memory rendering and encoding one scene of ``frames`` frames of ``size`` x ``size`` needs (about)."""
    return RENDER_BYTES_PER_PIXEL_BYTE * frames * size * size * 3


def _remove_stale_temporaries(out: Path) -> None:
    """Delete the hidden ``.NAME.*.tmp`` files a killed run left in videos/ and images/ (atomic writes that never
    completed); called after a successful run."""
    for folder in (out / "videos", out / "images"):
        for tmp in folder.glob(".*.tmp"):
            if tmp.is_file():
                tmp.unlink(missing_ok=True)


def _check_options(n, seed, frames, fps, size, tasks) -> tuple:
    """Validated ``(n, seed, frames, size, tasks)`` as ints and a tuple of task names; SpaceVLLMError if bad.
    ``tasks`` may be a comma-separated string."""
    raw = {"n": n, "seed": seed, "frames": frames, "size": size}
    n, seed, frames, size = (_as_int(v) for v in raw.values())
    checks = [
        (n is not None and n >= 1, f"n must be a positive integer, got {raw['n']!r}"),
        (seed is not None and seed >= 0, f"seed must be a non-negative integer, got {raw['seed']!r}"),
        (frames is not None and frames >= 4, f"frames must be an integer >= 4, got {raw['frames']!r}"),
        (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0, f"fps must be positive, got {fps!r}"),
        (size is not None and size >= 32 and size % 2 == 0, f"size must be an even integer >= 32, got {raw['size']!r}"),
    ]
    for ok, msg in checks:
        if not ok:
            raise SpaceVLLMError(msg)
    tasks = tuple(dict.fromkeys(tasks.split(",") if isinstance(tasks, str) else tasks))
    bad = [t for t in tasks if t not in WORLD_TASKS]
    if bad or not tasks:
        raise SpaceVLLMError(f"tasks must be a non-empty subset of {','.join(WORLD_TASKS)}, got {','.join(tasks)!r}")
    return n, seed, frames, size, tasks


def _as_int(v) -> int | None:
    if isinstance(v, bool):
        return None
    try:
        return operator.index(v)
    except TypeError:
        return None


def _prepare(out: Path, options: dict) -> Path:
    """Create ``out`` and record the options; refuse a folder holding a world generated with other frames/fps/size
    (a manifest without any media or records, left by a run that failed, is replaced)."""
    manifest = out / "world.json"
    try:
        (out / "videos").mkdir(parents=True, exist_ok=True)
        (out / "images").mkdir(exist_ok=True)
        if manifest.is_file() and _has_world(out):
            old = json.loads(manifest.read_text(encoding="utf-8"))
            old.pop("records", None)  # what records.jsonl holds (world_matches); any n, seed and tasks may follow
            if old != options:
                raise SpaceVLLMError(f"{out} holds a world made with other options ({old}); use another --out")
        else:
            write_json_atomic(manifest, options)
    except OSError as err:
        raise SpaceVLLMError(f"{out}: cannot write the world there ({err.strerror or err})") from None
    return out


def world_mismatch(out_dir: str | os.PathLike, options: dict) -> str | None:
    """How the world whose ``records.jsonl`` is in ``out_dir`` differs from :func:`generate_world` ``options``
    (n, seed, frames, fps, size, tasks; defaults filled), e.g. ``"seed 0, not 12345"``; None when it matches or
    when its ``world.json`` (older versions) does not say."""
    try:
        held = json.loads((Path(out_dir) / "world.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(held, dict) or not isinstance(held.get("records"), dict):
        return None
    held = held | held["records"]
    wanted = {"frames": 16, "fps": 5.0, "size": 64, "tasks": list(WORLD_TASKS)} | dict(options)
    if isinstance(wanted["tasks"], str):
        wanted["tasks"] = [t.strip() for t in wanted["tasks"].split(",") if t.strip()]
    differ = [f"{k} {held.get(k)!r}, not {v!r}" for k, v in wanted.items() if _differs(held.get(k), v)]
    return "; ".join(differ) or None


def _differs(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) != float(b)
    if isinstance(a, list) and isinstance(b, (list, tuple)):
        return list(a) != list(b)
    return a != b


def _has_world(out: Path) -> bool:
    """Whether ``out`` holds records or any finished media file."""
    if (out / "records.jsonl").exists():
        return True
    return any(not p.name.startswith(".") for folder in ("videos", "images") for p in (out / folder).iterdir())


def _progress(it, enabled: bool, desc: str):
    if not enabled:
        return it
    return progress_bar(it, desc=desc, unit="scene")


# --- one scene ----------------------------------------------------------------------------------------------------


def _scene_outputs(out: Path, scene: Scene, tasks: tuple[str, ...]) -> tuple[list[dict], dict]:
    """Render the scene, write its missing media, and return (its records, its scenes.jsonl row)."""
    pixels, boxes = render_scene(scene)
    name = f"s{scene.seed}-{scene.index:06d}"
    video = f"videos/{name}.mp4"
    if any(t in tasks for t in _VIDEO_TASKS):
        _write_video_once(out / video, pixels, scene.fps)
    rng = np.random.default_rng([scene.seed, scene.index, 1])  # captions: own stream
    rows = []
    for task in tasks:
        rows.extend(_TASK_RECORDS[task](_Ctx(out, scene, pixels, boxes, video, name, rng)))
    return [validate_record(r, out / "records.jsonl").to_dict() for r in rows], _scene_row(scene, video, boxes)


def _write_video_once(path: Path, pixels: np.ndarray, fps: float) -> None:
    if not path.is_file():
        write_video(path, pixels, fps)


def _write_png_once(path: Path, pixels: np.ndarray) -> None:
    if path.is_file():
        return
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")


@dataclass
class _Ctx:
    """One scene being written: output folder, scene, rendered frames (F, H, W, 3), per-object boxes, video path
    (relative), file stem, caption RNG."""

    out: Path
    scene: Scene
    pixels: np.ndarray
    boxes: dict
    video: str
    name: str
    rng: np.random.Generator


def _base(scene: Scene, rid: str, task: str, query: str, video: str) -> dict:
    return Record(
        id=rid,
        task=task,
        query=query,
        video=video,
        duration=round(scene.frames / scene.fps, 6),
        fps=float(scene.fps),
        width=scene.size,
        height=scene.size,
        source="world",
        meta=_meta(scene),
    ).to_dict()


def _meta(scene: Scene) -> dict:
    t = scene.target_object
    return {
        "seed": scene.seed,
        "index": scene.index,
        "target": t.id,
        "colour": t.colour,
        "shape": t.shape,
        "action": t.action.to_json(),
        "ref": scene.ref,
        "static_matches": scene.matching(scene.ref),
        "still_identifiable": len(scene.matching(scene.ref)) == 1,
        "distractors": {str(k): v for k, v in sorted(scene.distractors.items())},
        "n_objects": len(scene.objects),
    }


def _grounding(scene: Scene, boxes) -> dict:
    a = scene.target_object.action
    start, end = round(a.start / scene.fps, 6), round(a.end / scene.fps, 6)
    track = boxes[scene.target]
    gt = {str(f): track[f] for f in range(a.start, a.end + 1) if track[f] is not None}
    return {"start": start, "end": end, "answer": format_time_range(start, end), "boxes": gt}


def _stvg(c: _Ctx) -> list[dict]:
    scene, boxes, video, name, rng = c.scene, c.boxes, c.video, c.name, c.rng
    rows = []
    for kind, make in (("declarative", captions.declarative), ("interrogative", captions.interrogative)):
        r = _base(scene, f"world-{name}-stvg-{kind[0]}", "stvg", make(scene, rng), video)
        r.update(_grounding(scene, boxes))
        r["meta"]["sentence_type"] = kind
        rows.append(r)
    return rows


def _vtg(c: _Ctx) -> list[dict]:
    scene, boxes, video, name, rng = c.scene, c.boxes, c.video, c.name, c.rng
    r = _base(scene, f"world-{name}-vtg", "vtg", captions.vtg_query(scene, rng), video)
    r.update(_grounding(scene, boxes), boxes=None)
    r["meta"]["sentence_type"] = "declarative"
    return [r]


def _qa(c: _Ctx) -> list[dict]:
    scene, video, name, rng = c.scene, c.video, c.name, c.rng
    question, answer, kind = captions.qa_pair(scene, rng)
    r = _base(scene, f"world-{name}-qa", "qa", question, video)
    r["answer"], r["meta"]["question_type"] = answer, kind
    r["meta"]["sentence_type"] = "interrogative"
    return [r]


def _rec(c: _Ctx) -> list[dict]:
    scene, boxes, name, rng = c.scene, c.boxes, c.name, c.rng
    frame, oid, expr, kind = captions.rec_expression(scene, boxes, rng)
    image = f"images/{name}-f{frame:02d}.png"
    _write_png_once(c.out / image, c.pixels[frame])
    r = Record(id=f"world-{name}-rec", task="rec", query=expr, image=image, width=scene.size, height=scene.size)
    meta = {"seed": scene.seed, "index": scene.index, "frame": frame, "object": oid, "expression": kind}
    r = {**r.to_dict(), "boxes": {"0": boxes[oid][frame]}, "source": "world", "meta": meta}
    return [r]


_TASK_RECORDS = {"stvg": _stvg, "vtg": _vtg, "rec": _rec, "qa": _qa}


def _scene_row(scene: Scene, video: str, boxes) -> dict:
    objects = []
    for o in scene.objects:
        row = o.to_json()
        row["boxes"] = {str(f): b for f, b in enumerate(boxes[o.id]) if b is not None}
        objects.append(row)
    return {
        "scene": f"s{scene.seed}-{scene.index:06d}",
        "seed": scene.seed,
        "index": scene.index,
        "video": video,
        "frames": scene.frames,
        "fps": scene.fps,
        "size": scene.size,
        "target": scene.target,
        "ref": scene.ref,
        "background": scene.background,
        "objects": objects,
    }


# --- difficulty -----------------------------------------------------------------------------------------------


def world_stats(records_path: str | os.PathLike) -> dict:
    """Simple baselines on a generated split (STVG records; every source frame counts, as when N_v = frames).

    - ``fixed_interval_m_tIoU``: the best single frame interval ``[a, b]`` guessed for every query, and
      ``fixed_interval`` its ``[start, end]`` seconds.
    - ``still_identifiable``: share of STVG queries whose target the caption's static attributes (colour, shape)
      already single out, i.e. a still frame before any action would suffice to find the object.
    - ``motion_only``: share of STVG queries whose target action leaves no trace on any single frame (it moves,
      jumps, grows or shrinks: only comparing frames shows it; a spin, fade or colour blend is visible mid-action).
    - ``still_oracle_time_m_vIoU``: m_vIoU of a model that knows the GT interval but, looking at still frames,
      can only pick uniformly among the objects with the caption's static attributes (expected value).
    - ``still_fixed_interval_m_vIoU``: the same pick with the best fixed interval instead of the GT one.
    - ``blind_box_oracle_time_m_vIoU``: m_vIoU of a model that knows the GT interval but never where: the same
      box on every frame, the mean of the split's GT boxes (pixel xyxy); ``blind_box_fixed_interval_m_vIoU``: that
      box over the best fixed interval. A model that has not learned to localize scores about these.
    The two ``still_*`` need the ``scenes.jsonl`` beside the records (else they are omitted).
    """
    path = Path(records_path)
    stvg = [r for r in read_records(path) if r.task == "stvg"]
    if not stvg:
        raise SpaceVLLMError(f"{path}: no STVG records to measure")
    frames = max(round(r.duration * r.fps) for r in stvg)
    gt = np.array([[round(r.start * r.fps), round(r.end * r.fps)] for r in stvg])
    (a, b), best = _best_fixed_interval(gt, frames)
    fps = stvg[0].fps
    stats = {
        "n_scenes": len({r.meta["index"] for r in stvg}),
        "n_stvg": len(stvg),
        "fixed_interval": [a / fps, b / fps],
        "fixed_interval_m_tIoU": best,
        "still_identifiable": float(np.mean([bool(r.meta["still_identifiable"]) for r in stvg])),
        "motion_only": float(np.mean([r.meta["action"]["kind"] in MOTION_ONLY for r in stvg])),
    }
    mean_box = np.mean([box for r in stvg for box in r.frame_boxes().values()], axis=0).tolist()
    blind = {str(f): mean_box for f in range(frames)}
    stats["blind_box_oracle_time_m_vIoU"] = float(np.mean([_tube_viou(r, blind, None) for r in stvg]))
    stats["blind_box_fixed_interval_m_vIoU"] = float(np.mean([_tube_viou(r, blind, (a, b)) for r in stvg]))
    scenes_path = path.parent / "scenes.jsonl"
    if scenes_path.is_file():
        scenes = {row["index"]: row for row in map(json.loads, scenes_path.read_text(encoding="utf-8").splitlines())}
        stats["still_oracle_time_m_vIoU"] = _still_viou(stvg, scenes, None)
        stats["still_fixed_interval_m_vIoU"] = _still_viou(stvg, scenes, (a, b))
    return stats


def _best_fixed_interval(gt: np.ndarray, frames: int) -> tuple[tuple[int, int], float]:
    """The closed frame interval with the best mean tIoU against the (n, 2) closed GT intervals."""
    gt_half_open = gt + [0, 1]  # closed frames [s, e] hold the frames of the half-open [s, e + 1)
    best, arg = -1.0, (0, 0)
    for a in range(frames):
        for b in range(a, frames):
            score = float(temporal_iou([a, b + 1], gt_half_open, half_open=True).mean())
            if score > best:
                best, arg = score, (a, b)
    return arg, best


def _still_viou(stvg: list[Record], scenes: dict, interval) -> float:
    """Mean over queries of the expected vIoU of a uniform pick among the objects matching the caption's static
    attributes, each object's exact tube cut to ``interval`` (closed source frames; None: the GT interval)."""
    per_query = []
    for r in stvg:
        objects = scenes[r.meta["index"]]["objects"]
        per_query.append(np.mean([_tube_viou(r, objects[i]["boxes"], interval) for i in r.meta["static_matches"]]))
    return float(np.mean(per_query))


def _tube_viou(r: Record, pred: dict[str, list], interval) -> float:
    """vIoU of predicted boxes ``pred`` (source frame index as a string -> pixel xyxy) kept on the closed frame
    ``interval`` (None: the GT interval), against the record's GT tube; every source frame counts
    (:func:`spacevllm.metrics.stvg.tube_scores` with P = every frame of the interval, boxed or not)."""
    gt = r.frame_boxes()
    frames = sorted(gt)
    a, b = interval or (frames[0], frames[-1])
    ious = np.zeros(len(frames))
    hits = [i for i, f in enumerate(frames) if str(f) in pred]
    if hits:
        boxes = np.array([pred[str(frames[i])] for i in hits], np.float64)
        ious[hits] = elementwise_box_iou(boxes, np.array([gt[frames[i]] for i in hits], np.float64))
    return tube_scores(frames, range(a, b + 1), ious)[1]
