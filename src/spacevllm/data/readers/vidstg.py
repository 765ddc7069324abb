"""VidSTG sentence annotations + VidOR per-video trajectories -> Uni-STG records.

Inputs
------
* ``{train,val,test}_annotations.json`` (the official VidSTG release): a JSON list, one entry per video
  segment with ``vid``, ``fps``, ``frame_count``, ``width``, ``height``, ``used_segment`` and ``temporal_gt``
  (``{"begin_fid", "end_fid"}``, frames), ``questions`` (interrogative sentences) and ``captions``
  (declarative sentences), each ``{"description", "type", "target_id"}``.
* a folder holding VidOR per-video JSON files ``<vid>.json`` (searched recursively), each with
  ``trajectories``: one list per frame of ``{"tid", "bbox": {"xmin", "ymin", "xmax", "ymax"}}``.

Sentence numbering (the key of prediction files) is the one TubeDETR's ``preproc_vidstg.py`` assigns:
0-based, entries in file order, each entry's ``questions`` first, then its ``captions``. Every sentence is
one record: ``id = f"{id_prefix}{number}"``, ``meta["qtype"]`` is ``"interrogative"`` or ``"declarative"``.

Frames and times: ``temporal_gt`` is half-open in frames, ``[begin_fid, end_fid)`` (TubeDETR); the record's
``start`` / ``end`` are ``begin_fid / fps`` and ``end_fid / fps`` (closed seconds) and ``boxes`` holds the
target's pixel ``xyxy`` box on every frame of ``[begin_fid, end_fid)`` that VidOR annotates. ``meta`` keeps
``sentence``, ``vid``, ``qtype``, ``target_id``, ``type``, ``frame_count``, ``used_segment`` and
``temporal_gt`` (``[begin, end]`` frames as in the file) and ``end_box`` (the box on frame ``end_fid``, or
null; the CG-STVG protocol reads the end frame as inclusive).
"""

from __future__ import annotations

import math
from pathlib import Path

from spacevllm.data.records import Record
from spacevllm.errors import InputFileError, SpaceVLLMError
from spacevllm.io_utils import load_json

SENTENCE_KINDS = (("questions", "interrogative"), ("captions", "declarative"))  # TubeDETR's order


class MissingVidORError(SpaceVLLMError):
    """Some sentences' videos have no VidOR file; ``videos`` lists their ids (sorted)."""

    def __init__(self, message: str, videos: list[str]):
        super().__init__(message)
        self.videos = videos


def index_vidor(vidor_dir: str | Path) -> dict[str, Path]:
    """``{video id: path}`` of every ``<video id>.json`` under ``vidor_dir`` (recursive)."""
    vidor_dir = Path(vidor_dir)
    if not vidor_dir.is_dir():
        raise SpaceVLLMError(f"{vidor_dir}: VidOR annotation folder not found")
    return {p.stem: p for p in sorted(vidor_dir.rglob("*.json"))}


def read_vidstg(
    path: str | Path,
    vidor_dir: str | Path,
    skip_missing: bool = False,
    id_prefix: str = "",
    video_dir: str | None = None,
) -> list[Record]:
    """Records of every sentence of a VidSTG annotation file, numbered as TubeDETR numbers them.

    A sentence whose video has no VidOR file under ``vidor_dir`` raises :class:`SpaceVLLMError` naming the
    video ids, unless ``skip_missing`` (then those sentences are left out; numbering is unchanged).
    ``video_dir`` is prefixed to VidOR's ``video_path`` to form ``record.video``.
    """
    entries = load_json(path)
    if not isinstance(entries, list):
        raise InputFileError(path, "expected a JSON list of VidSTG entries")
    found = index_vidor(vidor_dir)
    _check_found(entries, found, path, skip_missing)
    records, number, cache = [], 0, {}
    for i, entry in enumerate(entries):
        sentences = _sentences(entry, path, i)
        vid = entry["vid"]
        if vid in found:
            vidor = cache.get(vid) or cache.setdefault(vid, _read_vidor(found[vid]))
            records += [
                _record(entry, s, number + k, vidor, path, i, id_prefix, video_dir) for k, s in enumerate(sentences)
            ]
        number += len(sentences)
    return records


def sentence_count(path: str | Path) -> int:
    """Number of sentences (questions + captions) in a VidSTG annotation file, i.e. the next sentence number."""
    entries = load_json(path)
    if not isinstance(entries, list):
        raise InputFileError(path, "expected a JSON list of VidSTG entries")
    return sum(len(_sentences(e, path, i)) for i, e in enumerate(entries) if isinstance(e, dict))


def _check_found(entries: list, found: dict, path, skip_missing: bool) -> None:
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("vid"), str):
            raise InputFileError(path, "must be an object with a string 'vid'", record=i, field="vid")
    missing = sorted({e["vid"] for e in entries} - set(found))
    if missing and not skip_missing:
        shown = ", ".join(missing[:5]) + (f", ... ({len(missing)} videos)" if len(missing) > 5 else "")
        raise MissingVidORError(f"{path}: no VidOR annotation file <video id>.json found for video {shown}", missing)


def _sentences(entry: dict, path, i: int) -> list[tuple[str, dict]]:
    out = []
    for field, qtype in SENTENCE_KINDS:
        items = entry.get(field)
        if not isinstance(items, list):
            raise InputFileError(path, "missing or not a list", record=i, field=field)
        for j, s in enumerate(items):
            ok = isinstance(s, dict) and isinstance(s.get("description"), str) and s["description"].strip()
            if not ok or not _is_int(s.get("target_id")):
                raise InputFileError(
                    path, "needs 'description' (text) and 'target_id' (int)", record=i, field=f"{field}[{j}]"
                )
            out.append((qtype, s))
    return out


def _record(entry, sentence, number, vidor, path, i, id_prefix, video_dir) -> Record:
    qtype, s = sentence
    fps, (tb, te), used = (
        _positive(entry, "fps", path, i),
        _segment(entry, "temporal_gt", path, i),
        _segment(entry, "used_segment", path, i),
    )
    track = vidor["tracks"].get(int(s["target_id"]))
    if track is None:
        raise InputFileError(
            path, f"target {s['target_id']} has no trajectory in {vidor['path']}", record=i, field="target_id"
        )
    video = vidor["video_path"]
    return Record(
        id=f"{id_prefix}{number}",
        task="stvg",
        query=s["description"].strip(),
        video=str(Path(video_dir) / video) if video_dir else video,
        duration=_positive(entry, "frame_count", path, i) / fps,
        fps=fps,
        width=int(_positive(entry, "width", path, i)),
        height=int(_positive(entry, "height", path, i)),
        start=tb / fps,
        end=te / fps,
        boxes={str(f): track[f] for f in range(tb, te) if f in track},
        source="vidstg",
        meta={
            "sentence": number,
            "vid": entry["vid"],
            "qtype": qtype,
            "target_id": int(s["target_id"]),
            "type": s.get("type"),
            "frame_count": int(entry["frame_count"]),
            "used_segment": list(used),
            "temporal_gt": [tb, te],
            "end_box": track.get(te),
        },
    )


def _is_int(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v == int(v)


def _positive(entry: dict, name: str, path, i: int) -> float:
    v = entry.get(name)
    if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0):
        raise InputFileError(path, f"must be a positive number, got {v!r}", record=i, field=name)
    return float(v)


def _segment(entry: dict, name: str, path, i: int) -> tuple[int, int]:
    seg = entry.get(name)
    ok = isinstance(seg, dict) and _is_int(seg.get("begin_fid")) and _is_int(seg.get("end_fid"))
    if not ok or not 0 <= seg["begin_fid"] <= seg["end_fid"]:
        raise InputFileError(
            path,
            f"must be {{'begin_fid': int, 'end_fid': int}} with 0 <= begin <= end, got {seg!r}",
            record=i,
            field=name,
        )
    return int(seg["begin_fid"]), int(seg["end_fid"])


def _read_vidor(path: Path) -> dict:
    """One VidOR file -> ``{"path", "video_path", "tracks": {tid: {frame: [x1, y1, x2, y2]}}}``."""
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("trajectories"), list):
        raise InputFileError(path, "missing or not a list", field="trajectories")
    tracks: dict[int, dict[int, list[float]]] = {}
    for frame, boxes in enumerate(data["trajectories"]):
        for k, b in enumerate(boxes if isinstance(boxes, list) else [None]):
            tid, box = _vidor_box(b, path, frame, k)
            tracks.setdefault(tid, {})[frame] = box
    video_path = data.get("video_path") if isinstance(data.get("video_path"), str) else f"{path.stem}.mp4"
    return {"path": path, "video_path": video_path, "tracks": tracks}


def _vidor_box(b, path, frame: int, k: int) -> tuple[int, list[float]]:
    try:
        tid, bb = b["tid"], b["bbox"]
        box = [float(bb["xmin"]), float(bb["ymin"]), float(bb["xmax"]), float(bb["ymax"])]
        if not _is_int(tid) or not all(math.isfinite(v) for v in box) or box[2] < box[0] or box[3] < box[1]:
            raise ValueError
    except (TypeError, KeyError, ValueError):
        raise InputFileError(
            path,
            f"needs 'tid' and 'bbox' {{xmin, ymin, xmax >= xmin, ymax >= ymin}}, got {b!r}",
            record=f"frame {frame}",
            field=f"trajectories[{frame}][{k}]",
        ) from None
    return int(tid), box
