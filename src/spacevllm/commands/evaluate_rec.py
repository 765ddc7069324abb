"""``spacevllm evaluate rec``: referring expression comprehension Acc@0.5 of a predictions file.

    spacevllm evaluate rec --annotations REC.jsonl --predictions PRED.json [--json]

ANN is a REC jsonl file or Uni-STG REC records (fields: :mod:`spacevllm.data.readers.refcoco`, README "REC
evaluation"); ``--bbox-format xywh`` reads REC jsonl boxes as ``[x, y, w, h]``. A RefCOCO-family ``refs(*).p``
is accepted too, with ``--instances`` (COCO instances JSON) and optionally ``--split``.

PRED.json is one JSON object ``{"<key>": value}``:

* key: the record's ``id``, or its 0-based line index in ANN (ids are matched first); RefCOCO: the sent_id;
* value: ``[x1, y1, x2, y2]`` pixels, or free text containing a box ``[x1, y1, x2, y2]`` / ``(x1, y1, x2, y2)``
  (the first one is read, :func:`spacevllm.text_coords.find_box`; text without a box is a miss), or null (a
  miss). ``--pred-units normalized`` / ``1000`` read predicted coordinates as fractions of the image size /
  integers in [0, 1000] (Qwen2-VL style); they need ``width`` and ``height`` in ANN. Parsing:
  :mod:`spacevllm.metrics.predictions`.

A record without a key in PRED is a miss. ``--json`` prints ``{"Acc@0.5", "n"}`` (fraction); otherwise a table
in percent. A malformed file exits with code 2 and a message naming the file, the record and the field.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from spacevllm.data.readers.refcoco import BBOX_FORMATS, read_rec_jsonl, read_refcoco, split_matches
from spacevllm.errors import InputFileError, SpaceVLLMError
from spacevllm.metrics.predictions import (
    PRED_UNITS,
    align_predictions,
    load_prediction_map,
    miss_report,
    parse_rec_box,
    units_warning,
)
from spacevllm.metrics.rec import rec_accuracy
from spacevllm.metrics.table import format_table

EPILOG = """\
REC.jsonl: one JSON object per line: image (or image_path, img_path, file_name): path; expression (or sent,
  sentence, query, text): the expression; bbox (or box): [x1, y1, x2, y2] pixels ([x, y, w, h] with
  --bbox-format xywh); optional id (default: the 0-based line index), width, height. A line with a "task" field
  is a Uni-STG record (task "rec", one box in "boxes").
PRED.json: {"<id or 0-based line index>": [x1, y1, x2, y2] | "text with [x1, y1, x2, y2]" | null}, pixels
  unless --pred-units says otherwise. Absent, null or box-less answers score IoU 0 and stay in n.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--annotations", required=True, help="REC jsonl, Uni-STG REC records, or refs(*).p")
    parser.add_argument("--predictions", required=True, help="PRED.json (format below)")
    parser.add_argument("--bbox-format", default="xyxy", choices=BBOX_FORMATS, help="REC jsonl box format (pixels)")
    parser.add_argument("--pred-units", default="pixel", choices=list(PRED_UNITS), help="units of predicted boxes")
    parser.add_argument("--instances", help="refs(*).p only: the COCO instances JSON with the boxes")
    parser.add_argument("--split", help="refs(*).p only: split to score (e.g. val, testA, testB, test)")
    parser.add_argument("--json", action="store_true", help="print the scores as one JSON object (fractions)")


def run(args) -> int:
    entries, other_splits = read_rec_annotations(args)
    if args.pred_units != "pixel":
        _check_sizes(entries, args.annotations, args.pred_units)
    keys = [(i, r.id) for i, r in entries]
    pred = load_prediction_map(args.predictions)
    aligned = align_predictions(pred, keys, args.predictions, args.annotations, ignore=other_splits)
    if warning := units_warning([value for _, value in aligned], args.pred_units, args.predictions):
        print(warning, file=sys.stderr)
    preds = [
        parse_rec_box(value, key, args.predictions, args.pred_units, r.width, r.height)
        for (key, value), (_, r) in zip(aligned, entries)
    ]
    scores = rec_accuracy(preds, [next(iter(r.boxes.values())) for _, r in entries])
    if misses := miss_report(aligned, preds, "without a box"):
        print(misses, file=sys.stderr)
    if args.json:
        print(json.dumps(scores))
    else:
        title = "REC: Acc@0.5 (percent)"
        print(format_table([(_row_name(args), scores)], ["Acc@0.5", "n"], title=title))
    return 0


def _row_name(args) -> str:
    name = Path(args.annotations).name
    return f"{name} {args.split}" if args.split else name


def read_rec_annotations(args) -> tuple[list, frozenset]:
    """``([(0-based line index or position, Record)], ids of other splits)`` of ANN.

    ANN is a REC jsonl / Uni-STG records file, or a refs(*).p with ``--instances`` (and ``--split``: the
    sentence ids of the other splits are returned so that predictions for them are skipped, not refused).
    """
    other = frozenset()
    if str(args.annotations).endswith(".p"):
        if not args.instances:
            raise SpaceVLLMError(f"{args.annotations}: a RefCOCO refs pickle needs --instances (COCO instances JSON)")
        records = read_refcoco(args.annotations, args.instances)
        if args.split:
            records, other = _select_split(records, args.split, args.annotations)
        entries = list(enumerate(records))
    else:
        for flag, given in (("--instances", args.instances), ("--split", args.split)):
            if given:
                raise SpaceVLLMError(f"{flag} applies to a RefCOCO refs(*).p file only")
        entries = read_rec_jsonl(args.annotations, bbox_format=args.bbox_format)
    if not entries:
        raise InputFileError(args.annotations, "no records to score")
    return entries, other


def _check_sizes(entries: list, path, units: str) -> None:
    for _, r in entries:
        for name in ("width", "height"):
            if not getattr(r, name):
                raise InputFileError(path, f"needed by --pred-units {units}", record=r.id, field=name)


def _select_split(records: list, split: str, path) -> tuple[list, frozenset]:
    selected = [r for r in records if split_matches(r.meta["split"], split)]
    if not selected:
        found = sorted({r.meta["split"] for r in records})
        raise SpaceVLLMError(f"{path}: no refs in split {split!r}; the file has splits {found}")
    return selected, frozenset(r.id for r in records if not split_matches(r.meta["split"], split))
