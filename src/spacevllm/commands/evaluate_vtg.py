"""``spacevllm evaluate vtg``: video temporal grounding scores (R1@0.3/0.5/0.7, mIoU) of a predictions file.

    spacevllm evaluate vtg --dataset charades-sta --annotations charades_sta_test.txt --predictions PRED.json

PRED.json is one JSON object ``{"<key>": value}``:

* key: the record's 0-based line index in ANN as a string (Charades-STA: ``"0"`` is the first line); with
  ``--dataset unistg`` a record id or a 0-based line index;
* value: ``[start_s, end_s]`` (closed seconds, a reversed pair is swapped; a ranked list ``[[s, e], ...]`` is
  scored by its first pair), or the model's free-text answer
  (read with :func:`spacevllm.time_ops.parse_time_range`; an answer it cannot read is a miss), or null (a miss).
  Parsing: :mod:`spacevllm.metrics.predictions`.

A record without a key in PRED is a miss (IoU 0) and stays in the denominator. ``--json`` prints
``{"R1@0.3", "R1@0.5", "R1@0.7", "mIoU", "n"}`` (fractions); otherwise a table in percent. A malformed file
exits with code 2 and a message naming the file, the record and the field.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from spacevllm.data.readers.charades import read_charades_sta
from spacevllm.data.records import iter_json_lines, validate_record
from spacevllm.errors import InputFileError
from spacevllm.metrics.predictions import align_predictions, load_prediction_map, miss_report, parse_interval
from spacevllm.metrics.table import format_table
from spacevllm.metrics.vtg import KEYS, vtg_metrics

DATASETS = ("charades-sta", "unistg")

EPILOG = """\
PRED.json: {"<key>": [start_s, end_s] | [[start_s, end_s], ...] (ranked; R@1 uses the first) | "answer" | null}
  key: 0-based line index of the record in ANN, as a string ("0" = first line); --dataset unistg: the
  record id or its 0-based line index. Times are closed seconds. Text answers are parsed ("from 2.5 to 7.0
  seconds", "2.5 - 7.0", "00:02.5 to 00:07", ...); an unreadable answer, null, or a record missing from PRED
  scores IoU 0 and stays in the denominator n.
--dataset unistg: ANN is Uni-STG records JSONL; records with task vtg or stvg and start/end are scored.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--dataset", required=True, choices=DATASETS, help="format of --annotations")
    parser.add_argument("--annotations", required=True, help="Charades-STA txt (VID start end##sentence per line)")
    parser.add_argument("--predictions", required=True, help="PRED.json (format below)")
    parser.add_argument("--json", action="store_true", help="print the scores as one JSON object (fractions)")


def run(args) -> int:
    entries, gts = read_vtg_annotations(args.dataset, args.annotations)
    aligned = align_predictions(load_prediction_map(args.predictions), entries, args.predictions, args.annotations)
    preds = [parse_interval(value, key, args.predictions) for key, value in aligned]
    scores = vtg_metrics(preds, gts)
    if misses := miss_report(aligned, preds, "unreadable"):
        print(misses, file=sys.stderr)
    if args.json:
        print(json.dumps(scores))
    else:
        title = f"{'Charades-STA' if args.dataset == 'charades-sta' else 'VTG'}: R@1 at IoU >= m, mIoU (percent)"
        print(format_table([(Path(args.annotations).name, scores)], list(KEYS), title=title))
    return 0


def read_vtg_annotations(dataset: str, path) -> tuple[list[tuple[int, str]], list[tuple[float, float]]]:
    """``([(line index, record id)], [(start, end)])`` of the records to score, in file order."""
    if dataset == "charades-sta":
        records = [(int(r.id), r) for r in read_charades_sta(path)]
    else:
        records = _unistg_vtg_records(path)
    if not records:
        raise InputFileError(path, "no records to score")
    return [(i, r.id) for i, r in records], [(r.start, r.end) for _, r in records]


def _unistg_vtg_records(path) -> list:
    out, seen = [], set()
    for i, d in iter_json_lines(path):
        r = validate_record(d, path, i)
        if r.id in seen:
            raise InputFileError(path, "duplicate id", record=r.id, field="id")
        seen.add(r.id)
        if r.task in ("vtg", "stvg") and r.start is not None and r.end is not None:
            out.append((i, r))
    return out
