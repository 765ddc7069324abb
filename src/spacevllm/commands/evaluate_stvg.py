"""``spacevllm evaluate stvg``: spatio-temporal video grounding scores of a predictions file.

    spacevllm evaluate stvg --dataset hcstvg --annotations test_v2.json --predictions PRED.json

``--json`` prints, for HC-STVG, ``{"m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5", "gt_vIoU", "n"}`` and, for
VidSTG, ``{"declarative": {...}, "interrogative": {...}}`` with those keys (fractions in [0, 1]). Without
``--json`` it prints the paper's table (percent). Protocols: :mod:`spacevllm.metrics.stvg`; the predictions
format: :mod:`spacevllm.metrics.predictions`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from spacevllm.data.readers.hcstvg import read_hcstvg
from spacevllm.data.readers.vidstg import MissingVidORError, read_vidstg, sentence_count
from spacevllm.errors import SpaceVLLMError
from spacevllm.metrics.predictions import load_predictions
from spacevllm.metrics.stvg import PROTOCOLS, evaluate_stvg
from spacevllm.metrics.table import format_table

STVG_COLUMNS = ["m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5", "gt_vIoU", "n"]
PAPER_COLUMNS = ["m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5"]

EPILOG = """\
PRED.json: {"<key>": {"sted": [start_frame, end_frame_exclusive], "boxes": {"<frame>": [x1, y1, x2, y2]}}}
  key: HC-STVG video key as in ANN; VidSTG sentence number as TubeDETR assigns it (0-based, entries in file
  order, each entry's questions first, then its captions). Frames: the annotation's own numbering (HC-STVG
  st_frame as is under tubedetr, st_frame - 1 under cgstvg; VidSTG source-video frames). Boxes in pixels.

Missing predictions: a video/sentence without a prediction, or a frame in both the predicted and the GT
interval without a box, is an error (exit 2) naming it; with --allow-missing it scores 0 (IoU 0).
VidSTG needs the VidOR per-video <video id>.json files (searched recursively under --vidor-dir); a sentence
whose file is absent is an error naming the video, or, with --subset-found, left out (the count left out is
printed on stderr) so only the videos found are scored.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--dataset", required=True, choices=["hcstvg", "vidstg"], help="benchmark of --annotations")
    parser.add_argument("--annotations", required=True, help="raw HC-STVG JSON (v1 or v2) or VidSTG *_annotations.json")
    parser.add_argument("--predictions", required=True, help="PRED.json (format below)")
    parser.add_argument("--vidor-dir", help="VidSTG: folder of VidOR per-video JSON files (searched recursively)")
    parser.add_argument(
        "--protocol", default="tubedetr", choices=PROTOCOLS, help="frames that count (default tubedetr: 5 fps sampling)"
    )
    parser.add_argument("--allow-missing", action="store_true", help="score missing predictions/boxes as 0")
    parser.add_argument("--subset-found", action="store_true", help="VidSTG: score only videos with a VidOR file")
    parser.add_argument("--json", action="store_true", help="print the scores as one JSON object (fractions)")


def run(args) -> int:
    records = _read_stvg_records(args)
    predictions = load_predictions(args.predictions)
    vidstg = args.dataset == "vidstg"
    scores = evaluate_stvg(
        records, predictions, args.protocol, args.allow_missing, by_qtype=vidstg, source=args.predictions
    )
    if args.json:
        print(json.dumps(scores))
    elif vidstg:
        print(format_vidstg_table(scores, Path(args.annotations).name, args.protocol))
    else:
        print(format_hcstvg_table(scores, Path(args.annotations).name, args.protocol))
    return 0


def _read_stvg_records(args) -> list:
    if args.dataset == "hcstvg":
        for flag, given in (("--vidor-dir", args.vidor_dir), ("--subset-found", args.subset_found)):
            if given:
                raise SpaceVLLMError(f"{flag} applies to --dataset vidstg only")
        return read_hcstvg(args.annotations)
    if not args.vidor_dir:
        raise SpaceVLLMError("--dataset vidstg needs --vidor-dir (the folder of VidOR per-video JSON files)")
    try:
        records = read_vidstg(args.annotations, args.vidor_dir, skip_missing=args.subset_found)
    except MissingVidORError as e:
        raise SpaceVLLMError(
            f"{e} under {args.vidor_dir}; pass --subset-found to score only the videos found"
        ) from None
    total = sentence_count(args.annotations)
    if len(records) < total:
        print(
            f"spacevllm evaluate stvg: --subset-found: scoring {len(records)} of {total} sentences "
            f"(the others' VidOR files are not under {args.vidor_dir})",
            file=sys.stderr,
        )
    return records


def format_hcstvg_table(scores: dict, name: str, protocol: str) -> str:
    """HC-STVG table (paper Tables 2-3 columns plus gt_vIoU and n), percent."""
    return format_table([(name, scores)], STVG_COLUMNS, title=f"HC-STVG, {protocol} protocol")


def format_vidstg_table(scores: dict, name: str, protocol: str) -> str:
    """VidSTG table in the paper's Table 4 layout: declarative | interrogative, four metrics each, percent."""
    w = max(len(name), len("split"))
    cells = {c: max(len(c), 6) for c in PAPER_COLUMNS}
    group_w = sum(cells.values()) + 2 * (len(PAPER_COLUMNS) - 1)
    groups = "   ".join(g.center(group_w) for g in ("Declarative Sentences", "Interrogative Sentences"))
    head = "   ".join("  ".join(c.rjust(cells[c]) for c in PAPER_COLUMNS) for _ in range(2))
    row = "   ".join(
        "  ".join(f"{100 * scores[q][c]:.1f}".rjust(cells[c]) for c in PAPER_COLUMNS)
        for q in ("declarative", "interrogative")
    )
    extra = ", ".join(
        f"{q}: gt_vIoU {100 * scores[q]['gt_vIoU']:.1f}, n {scores[q]['n']}" for q in ("declarative", "interrogative")
    )
    lines = [f"VidSTG, {protocol} protocol", " " * (w + 2) + groups, "split".ljust(w) + "  " + head]
    return "\n".join(lines + ["-" * (w + 2 + len(head)), name.ljust(w) + "  " + row, extra])
