"""``spacevllm evaluate vtg``: video temporal grounding scores (R1@0.3/0.5/0.7, mIoU) of a predictions file.

    spacevllm evaluate vtg --dataset charades-sta --annotations charades_sta_test.txt --predictions PRED.json

PRED.json is one JSON object ``{"<key>": value}``:

* key: the record's 0-based line index in ANN as a string (Charades-STA: ``"0"`` is the first line); with
  ``--dataset unistg`` a record id or a 0-based line index;
* value: ``[start_s, end_s]`` (closed seconds, a reversed pair is swapped; a ranked list ``[[s, e], ...]`` is
  scored by its first pair), or the model's free-text answer
  (read with :func:`spacevllm.time_ops.parse_time_range`; an answer it cannot read is a miss), or null (a miss).

A record without a key in PRED is a miss (IoU 0) and stays in the denominator. ``--json`` prints
``{"R1@0.3", "R1@0.5", "R1@0.7", "mIoU", "n"}`` (fractions); otherwise a table in percent. A malformed file
exits with code 2 and a message naming the file, the record and the field.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from spacevllm.errors import InputFileError

DATASETS = ("charades-sta", "unistg")
MISSING = object()  # a record with no key in PRED

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
    from spacevllm.metrics.vtg import KEYS, vtg_metrics

    entries, gts = read_vtg_annotations(args.dataset, args.annotations)
    aligned = align_predictions(load_prediction_map(args.predictions), entries, args.predictions, args.annotations)
    preds = [parse_interval(value, key, args.predictions) for key, value in aligned]
    scores = vtg_metrics(preds, gts)
    report_misses(aligned, preds, "unreadable")
    if args.json:
        print(json.dumps(scores))
    else:
        from spacevllm.metrics.table import format_table

        title = f"{'Charades-STA' if args.dataset == 'charades-sta' else 'VTG'}: R@1 at IoU >= m, mIoU (percent)"
        print(format_table([(Path(args.annotations).name, scores)], list(KEYS), title=title))
    return 0


def read_vtg_annotations(dataset: str, path) -> tuple[list[tuple[int, str]], list[tuple[float, float]]]:
    """``([(line index, record id)], [(start, end)])`` of the records to score, in file order."""
    if dataset == "charades-sta":
        from spacevllm.data.readers.charades import read_charades_sta

        records = [(int(r.id), r) for r in read_charades_sta(path)]
    else:
        records = _unistg_vtg_records(path)
    if not records:
        raise InputFileError(path, "no records to score")
    return [(i, r.id) for i, r in records], [(r.start, r.end) for _, r in records]


def _unistg_vtg_records(path) -> list:
    from spacevllm.data.readers.refcoco import read_json_lines
    from spacevllm.data.records import validate_record

    out, seen = [], set()
    for i, d in read_json_lines(path):
        r = validate_record(d, path, i)
        if r.id in seen:
            raise InputFileError(path, "duplicate id", record=r.id, field="id")
        seen.add(r.id)
        if r.task in ("vtg", "stvg") and r.start is not None and r.end is not None:
            out.append((i, r))
    return out


# --- predictions (shared with evaluate rec) --------------------------------------------------------------


def load_prediction_map(path) -> dict:
    """PRED.json -> its top-level object ``{key: value}``; one-line errors naming the file."""
    from spacevllm.data.readers.hcstvg import load_json

    data = load_json(path)
    if not isinstance(data, dict):
        raise InputFileError(path, f"expected a JSON object {{key: prediction}}, got {type(data).__name__}")
    return data


def align_predictions(
    pred: dict, entries: Sequence[tuple[int, str]], pred_path, ann_path, ignore: frozenset = frozenset()
) -> list[tuple]:
    """``[(PRED key, value)]`` aligned with ``entries`` = [(0-based line index, record id)].

    A record without a key gets ``(None, MISSING)``. A key is matched first against record ids, then against
    line indexes; keys in ``ignore`` (records of ANN that are not scored, e.g. other splits) are skipped. A key
    matching nothing, or two keys naming the same record, raises :class:`InputFileError` naming the predictions
    file and the key.
    """
    by_id = {rid: pos for pos, (_, rid) in enumerate(entries)}
    by_index = {str(index): pos for pos, (index, _) in enumerate(entries)}
    aligned, owner = [(None, MISSING)] * len(entries), {}
    for key, value in pred.items():
        pos = by_id.get(key, by_index.get(key))
        if pos is None and key in ignore:
            continue
        if pos is None:
            msg = f"no record in {ann_path} has this id or 0-based line index"
            raise InputFileError(pred_path, msg, record=key, field="key")
        if pos in owner:
            msg = f"names the same record as key {owner[pos]!r} (its id and its line index)"
            raise InputFileError(pred_path, msg, record=key, field="key")
        owner[pos], aligned[pos] = key, (key, value)
    return aligned


def report_misses(aligned: list[tuple], parsed: list, what: str) -> None:
    """One stderr line counting the misses: records without a prediction, and answers that gave nothing."""
    absent = sum(v is MISSING for _, v in aligned)
    unread = sum(p is None for p in parsed) - absent
    if absent or unread:
        print(f"spacevllm evaluate: scored as misses: {absent} without a prediction, {unread} {what}", file=sys.stderr)


# --- VTG values ------------------------------------------------------------------------------------------


def parse_interval(value, key: str, path, parse: Callable | None = None) -> tuple[float, float] | None:
    """One PRED value -> closed ``(start, end)`` seconds, or None for a miss (absent, null, unreadable text)."""
    if value is MISSING or value is None:
        return None
    if isinstance(value, str):
        if parse is None:
            from spacevllm.time_ops import parse_time_range as parse
        return parse(value)
    if isinstance(value, list) and value and isinstance(value[0], list):
        value = value[0]  # ranked candidates [[s, e], ...]: R@1 scores the first
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_time(v) for v in value)
    if not ok:
        msg = f"must be [start_s, end_s] (numbers >= 0), the answer text, or null; got {json.dumps(value)[:80]}"
        raise InputFileError(path, msg, record=key, field="prediction")
    start, end = float(value[0]), float(value[1])
    return (start, end) if start <= end else (end, start)


def _is_time(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
