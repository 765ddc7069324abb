"""REC annotations -> Uni-STG REC records: RefCOCO / RefCOCO+ / RefCOCOg, and the common MLLM REC jsonl.

Every record has ``task = "rec"``, ``query`` = the expression, ``image`` = the image path, ``width`` /
``height`` in pixels (when known) and ``boxes = {"0": [x1, y1, x2, y2]}`` (absolute pixels, xyxy).

RefCOCO family (:func:`read_refcoco`)
-------------------------------------
The ``refer`` release: ``refs(unc).p`` (RefCOCO, RefCOCO+), ``refs(umd).p`` / ``refs(google).p`` (RefCOCOg),
a Python-2 pickle holding a list of refs ``{"ref_id", "ann_id", "image_id", "split", "category_id",
"sentences": [{"sent_id", "sent", "raw", "tokens"}], ...}``, plus the COCO ``instances*.json`` whose
``annotations[*].bbox`` is ``[x, y, w, h]`` pixels and ``images[*]`` has ``width`` / ``height``. One record per
sentence, in pickle order: ``id = str(sent_id)``, ``query = sent`` (``raw`` if ``sent`` is empty), ``image =
{images_dir}/COCO_train2014_{image_id:012d}.jpg`` (all RefCOCO images are COCO train2014), box converted to
``xyxy`` (``x2 = x + w``, no +1). ``split`` selects refs the way ``refer`` does: exact names (``train``,
``val``, ``testA``, ``testB``, ``test``); ``test`` also selects every ``test*`` split.

The refs file is a pickle from the internet, so it is read with :class:`PlainUnpickler`, whose
``find_class`` refuses every global: only dicts, lists, tuples, sets, str, bytes, int, float, bool and None
load; a pickle that names any class or function (e.g. ``os.system`` via ``__reduce__``) is refused with
:class:`~spacevllm.errors.InputFileError` before anything runs.

REC jsonl (:func:`read_rec_jsonl`)
----------------------------------
One JSON object per line (blank lines are skipped; a line's *index* is its 0-based physical line number).
Fields (aliases are tried in the order listed, the first present wins):

=====================  ========  ==========================================================================
field (aliases)        required  meaning
=====================  ========  ==========================================================================
``id``                 no        record id, string or integer; default: the line index as a string
``image`` (``image_path``, ``img_path``, ``file_name``)  yes  image path (kept as written)
``expression`` (``sent``, ``sentence``, ``query``, ``text``)  yes  the referring expression, non-empty
``bbox`` (``box``)     yes       4 numbers, pixels: ``[x1, y1, x2, y2]``; ``[x, y, w, h]`` with
                                 ``bbox_format="xywh"`` (CLI ``--bbox-format xywh``)
``width``, ``height``  no        image size in pixels, positive numbers
=====================  ========  ==========================================================================

Other fields are ignored. A line that has a ``task`` field is read as a Uni-STG record instead
(:func:`spacevllm.data.records.validate_record`); it must be ``task = "rec"`` with exactly one box.
"""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path

import numpy as np

from spacevllm.box_ops import box_xywh_to_xyxy
from spacevllm.data.records import Record, iter_json_lines, validate_record
from spacevllm.errors import InputFileError, SpaceVLLMError
from spacevllm.io_utils import load_json

COCO_IMAGE_NAME = "COCO_train2014_{image_id:012d}.jpg"
REFCOCO_DATASETS = ("refcoco", "refcoco+", "refcocog")
IMAGE_FIELDS = ("image", "image_path", "img_path", "file_name")
EXPRESSION_FIELDS = ("expression", "sent", "sentence", "query", "text")
BBOX_FIELDS = ("bbox", "box")
BBOX_FORMATS = ("xyxy", "xywh")
_PICKLE_ERRORS = (EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, MemoryError, RecursionError)


# --- restricted pickle -----------------------------------------------------------------------------------


class PlainUnpickler(pickle.Unpickler):
    """An unpickler that builds only plain data: every global (class, function) is refused."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refused to load global {module}.{name} (only plain data is allowed)")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refused a persistent id (only plain data is allowed)")


def load_plain_pickle(path: str | Path):
    """Unpickle ``path`` with :class:`PlainUnpickler`; Python-2 ``str`` is decoded as UTF-8 (else Latin-1).

    Raises :class:`InputFileError` naming the file when it is missing, truncated, or asks for any global.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "is a folder, not an annotation file" if path.is_dir() else "no such file")
    data = path.read_bytes()
    for encoding in ("utf-8", "latin-1"):
        try:
            return PlainUnpickler(io.BytesIO(data), encoding=encoding).load()
        except UnicodeDecodeError:
            continue
        except pickle.UnpicklingError as e:
            raise InputFileError(path, f"unsafe or invalid pickle: {e}") from None
        except (
            EOFError,
            ValueError,
            TypeError,
            KeyError,
            IndexError,
            AttributeError,
            MemoryError,
            RecursionError,
        ) as e:
            raise InputFileError(path, f"not a readable pickle ({type(e).__name__}: {e})") from None
    raise InputFileError(path, "pickle strings are neither UTF-8 nor Latin-1")  # unreachable: Latin-1 decodes all


# --- RefCOCO / RefCOCO+ / RefCOCOg -----------------------------------------------------------------------


def read_refcoco(
    refs_path: str | Path,
    instances_path: str | Path,
    split: str | None = None,
    images_dir: str | Path | None = None,
    dataset: str | None = None,
) -> list[Record]:
    """One REC record per sentence of the refs in ``split`` (all refs when None); see the module docstring.

    ``dataset`` ("refcoco", "refcoco+", "refcocog") sets ``record.source``; by default it is the refs file's
    folder name when that is one of these (the ``refer`` layout ``data/refcoco+/refs(unc).p``), else "refcoco".
    """
    refs = load_plain_pickle(refs_path)
    if not isinstance(refs, list):
        raise InputFileError(refs_path, f"expected a list of refs, got {type(refs).__name__}")
    boxes, images = load_instances(instances_path)
    source = dataset or (Path(refs_path).parent.name if Path(refs_path).parent.name in REFCOCO_DATASETS else "refcoco")
    selected = [(i, r) for i, r in enumerate(refs) if split is None or _in_split(r, split, refs_path, i)]
    if split is not None and not selected:
        found = sorted({str(r.get("split")) for r in refs if isinstance(r, dict)})
        raise SpaceVLLMError(f"{refs_path}: no refs in split {split!r}; the file has splits {found}")
    out = []
    for i, ref in selected:
        out.extend(_ref_records(ref, i, refs_path, instances_path, boxes, images, images_dir, source))
    return out


def _in_split(ref, split: str, path, index: int) -> bool:
    return split_matches(_ref_field(ref, "split", path, index, str), split)


def split_matches(name: str, split: str) -> bool:
    """Whether a ref of split ``name`` belongs to the selected ``split`` (``test`` also selects ``test*``)."""
    return name == split or (split == "test" and name.startswith("test"))


def _ref_field(ref, name: str, path, index: int, kind):
    if not isinstance(ref, dict):
        raise InputFileError(path, "a ref must be a dict", record=index)
    if name not in ref:
        raise InputFileError(path, "missing required field", record=_ref_name(ref, index), field=name)
    value = ref[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InputFileError(path, f"must be {kind.__name__}, got {value!r}", record=_ref_name(ref, index), field=name)
    return value


def _ref_name(ref: dict, index: int) -> str:
    return f"ref_id {ref['ref_id']}" if "ref_id" in ref else f"ref {index}"


def _ref_records(ref, index, refs_path, instances_path, boxes, images, images_dir, source) -> list[Record]:
    ann_id = _ref_field(ref, "ann_id", refs_path, index, int)
    image_id = _ref_field(ref, "image_id", refs_path, index, int)
    sentences = _ref_field(ref, "sentences", refs_path, index, list)
    _ref_field(ref, "split", refs_path, index, str)
    if ann_id not in boxes:
        msg = f"ann_id {ann_id} is not in {instances_path}"
        raise InputFileError(refs_path, msg, record=_ref_name(ref, index), field="ann_id")
    width, height = images.get(image_id, (None, None))
    name = COCO_IMAGE_NAME.format(image_id=image_id)
    meta = {k: ref.get(k) for k in ("ref_id", "ann_id", "image_id", "category_id", "split")}
    return [
        Record(
            id=str(sent_id),
            task="rec",
            query=query,
            image=str(Path(images_dir) / name) if images_dir else name,
            width=width,
            height=height,
            boxes={"0": boxes[ann_id]},
            source=source,
            meta={**meta, "sent_id": sent_id},
        )
        for sent_id, query in (_sentence(s, ref, index, j, refs_path) for j, s in enumerate(sentences))
    ]


def _sentence(sent, ref, index: int, j: int, path) -> tuple[int, str]:
    where = f"{_ref_name(ref, index)} sentence {j}"
    if not isinstance(sent, dict) or not isinstance(sent.get("sent_id"), int):
        raise InputFileError(path, "needs an integer sent_id", record=where, field="sent_id")
    text = sent.get("sent") or sent.get("raw")
    if not isinstance(text, str) or not text.strip():
        raise InputFileError(path, "needs a non-empty 'sent' or 'raw'", record=where, field="sent")
    return sent["sent_id"], text.strip()


def load_instances(path: str | Path) -> tuple[dict[int, list[float]], dict[int, tuple[int, int]]]:
    """COCO instances JSON -> ({annotation id: pixel xyxy}, {image id: (width, height)})."""
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise InputFileError(path, "expected a COCO instances object with an 'annotations' list", field="annotations")
    boxes = {}
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or not isinstance(ann.get("id"), int):
            raise InputFileError(path, "needs an integer id", record=f"annotations[{i}]", field="id")
        boxes[ann["id"]] = _box(ann.get("bbox"), "xywh", path, f"annotation {ann['id']}", "bbox")
    images = {}
    for img in data.get("images") or []:
        if isinstance(img, dict) and isinstance(img.get("id"), int):
            images[img["id"]] = (_size(img, "width"), _size(img, "height"))
    return boxes, images


def _size(d: dict, name: str):
    v = d.get(name)
    return int(v) if _is_num(v) and v > 0 and v == int(v) else None


# --- REC jsonl -------------------------------------------------------------------------------------------


def read_rec_jsonl(path: str | Path, bbox_format: str = "xyxy") -> list[tuple[int, Record]]:
    """``[(line index, record)]`` of a REC jsonl file (the module docstring's fields), in file order.

    ``bbox_format`` ("xyxy" or "xywh", pixels) applies to REC jsonl lines; Uni-STG record lines are always
    xyxy. Ids must be unique. Raises :class:`InputFileError` naming the file, the record and the field.
    """
    if bbox_format not in BBOX_FORMATS:
        raise ValueError(f"bbox_format must be one of {BBOX_FORMATS}, got {bbox_format!r}")
    out, seen = [], set()
    for i, d in iter_json_lines(path):
        record = _unistg_rec(d, path, i) if "task" in d else rec_jsonl_record(d, i, path, bbox_format)
        if record.id in seen:
            raise InputFileError(path, "duplicate id", record=record.id, field="id")
        seen.add(record.id)
        out.append((i, record))
    return out


def _unistg_rec(d: dict, path, index: int) -> Record:
    record = validate_record(d, path, index)
    if record.task != "rec":
        raise InputFileError(path, f"must be 'rec' here, got {record.task!r}", record=record.id, field="task")
    if not record.boxes or len(record.boxes) != 1:
        raise InputFileError(path, "a REC record needs exactly one box", record=record.id, field="boxes")
    return record


def rec_jsonl_record(d: dict, index: int, path, bbox_format: str = "xyxy") -> Record:
    """One REC jsonl object (0-based line ``index``) -> a REC :class:`Record`."""
    rid = d.get("id", index)
    if not (isinstance(rid, str) and rid) and not (isinstance(rid, int) and not isinstance(rid, bool)):
        raise InputFileError(path, f"must be a non-empty string or an integer, got {rid!r}", record=index, field="id")
    rec = str(rid)
    image_field, image = _first(d, IMAGE_FIELDS, path, rec)
    if not isinstance(image, str) or not image:
        raise InputFileError(path, "must be a non-empty string (image path)", record=rec, field=image_field)
    text_field, text = _first(d, EXPRESSION_FIELDS, path, rec)
    if not isinstance(text, str) or not text.strip():
        raise InputFileError(path, "must be a non-empty string", record=rec, field=text_field)
    box_field, box = _first(d, BBOX_FIELDS, path, rec)
    width, height = (_optional_size(d, name, path, rec) for name in ("width", "height"))
    return Record(
        id=rec,
        task="rec",
        query=text.strip(),
        image=image,
        width=width,
        height=height,
        boxes={"0": _box(box, bbox_format, path, rec, box_field)},
        source=str(d.get("source") or "rec-jsonl"),
        meta={"line": index + 1},
    )


def _first(d: dict, names: tuple[str, ...], path, rec):
    for name in names:
        if name in d:
            return name, d[name]
    raise InputFileError(path, f"missing required field (one of {', '.join(names)})", record=rec, field=names[0])


def _optional_size(d: dict, name: str, path, rec) -> int | float | None:
    v = d.get(name)
    if v is None:
        return None
    if not _is_num(v) or v <= 0:
        raise InputFileError(path, f"must be a positive number, got {v!r}", record=rec, field=name)
    return int(v) if v == int(v) else float(v)


def _box(box, fmt: str, path, rec, field: str) -> list[float]:
    """4 pixel numbers in ``fmt`` ("xyxy" or "xywh") -> [x1, y1, x2, y2] floats, checked."""
    if not (isinstance(box, (list, tuple)) and len(box) == 4 and all(_is_num(v) for v in box)):
        raise InputFileError(path, f"must be 4 numbers [{_names(fmt)}], got {box!r}", record=rec, field=field)
    xyxy = box_xywh_to_xyxy(np.asarray(box, np.float64)) if fmt == "xywh" else np.asarray(box, np.float64)
    if xyxy[2] < xyxy[0] or xyxy[3] < xyxy[1]:
        msg = "needs w >= 0 and h >= 0" if fmt == "xywh" else "needs x2 >= x1 and y2 >= y1"
        raise InputFileError(path, f"{msg}, got {list(box)!r}", record=rec, field=field)
    return [float(v) for v in xyxy]


def _names(fmt: str) -> str:
    return "x, y, w, h" if fmt == "xywh" else "x1, y1, x2, y2"


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
