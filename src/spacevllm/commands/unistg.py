"""``spacevllm unistg {run,filter,analyze}``: Uni-STG data synthesis (paper section 3.2.1).

- ``run --config CONFIG.yaml``: Analyzer -> Annotator -> Refiner -> Filter over a Uni-STG records file
  (resumable, ``--workers N`` processes, progress bar, report per stage and reason).
- ``filter --in DETS.jsonl --out KEPT.jsonl``: Refiner + Filter alone on detection files.
- ``analyze "caption" ...``: print the groundable objects the Analyzer finds (subject first).
"""

from __future__ import annotations

import argparse
import json
import sys

from spacevllm.data.records import write_records
from spacevllm.data.unistg import BoxFilter, Refiner, read_samples, refine_and_filter
from spacevllm.data.unistg import sample as paper
from spacevllm.data.unistg.analyzer import build_analyzer
from spacevllm.data.unistg.config import SCHEMA, load_config
from spacevllm.data.unistg.pipeline import run_pipeline
from spacevllm.errors import InputFileError, SpaceVLLMError
from spacevllm.io_utils import check_output, write_json_atomic
from spacevllm.schema import check_flag

DETS_EPILOG = """\
DETS.jsonl, one object per line:
  {"id", "video", "fps", "caption", "object", "start", "end",
   "detections": {"<frame index>": [{"box": [x1, y1, x2, y2], "score": s}]}}
  (seconds = frame / fps; boxes in pixels). KEPT.jsonl: Uni-STG STVG records with the same id, the refined
  start/end and "boxes": {"<frame>": [x1, y1, x2, y2]} for the kept frames; dropped samples are absent and the
  report says why.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="unistg_command", metavar="STEP")
    _add_run(sub.add_parser("run", help="the whole pipeline over a records file, from a YAML config"))
    _add_filter(sub.add_parser("filter", help="Refiner + Filter on detection files", epilog=DETS_EPILOG,
                               formatter_class=argparse.RawDescriptionHelpFormatter))  # fmt: skip
    _add_analyze(sub.add_parser("analyze", help="print the groundable objects of captions (subject first)"))
    parser.set_defaults(_unistg_parser=parser)


def run(args) -> int:
    step = getattr(args, "unistg_command", None)
    if step is None:
        args._unistg_parser.print_help()
        return 0
    return {"run": run_pipeline_command, "filter": run_filter, "analyze": run_analyze}[step](args)


# --- filter ----------------------------------------------------------------------------------------------------


def _add_paper_thresholds(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("thresholds (paper section 3.2.1 defaults)")
    g.add_argument("--min-duration", type=float, default=paper.MIN_DURATION, help="seconds (default %(default)s)")
    g.add_argument("--max-duration", type=float, default=paper.MAX_DURATION, help="seconds (default %(default)s)")
    g.add_argument("--score-threshold", type=float, default=paper.BOX_THRESHOLD, help="default %(default)s")
    g.add_argument("--max-boxes", type=int, default=paper.MAX_BOXES, help="complex scene above (default %(default)s)")
    g.add_argument("--min-area-ratio", type=float, default=paper.MIN_AREA_RATIO, help="default %(default)s")
    g.add_argument("--max-area-ratio", type=float, default=paper.MAX_AREA_RATIO, help="default %(default)s")


def _add_filter(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in", dest="input", required=True, metavar="DETS.jsonl", help="detections, one sample a line")
    p.add_argument("--out", required=True, metavar="KEPT.jsonl", help="kept STVG records (written atomically)")
    p.add_argument("--report", metavar="FILE", help="also write the report as JSON")
    _add_paper_thresholds(p)


def _stages_from_args(args):
    try:
        refiner = Refiner(args.min_duration, args.max_duration, args.score_threshold)
        box_filter = BoxFilter(args.max_boxes, args.min_area_ratio, args.max_area_ratio, args.score_threshold)
    except ValueError as e:
        raise SpaceVLLMError(str(e)) from None
    return refiner, box_filter


def run_filter(args) -> int:
    refiner, box_filter = _stages_from_args(args)
    check_output(args.out, "file")
    if args.report:
        check_output(args.report, "file")
    samples = list(read_samples(args.input))  # validate the whole file before writing anything
    _check_unique([s.id for s in samples], args.input)
    kept, report = refine_and_filter(samples, refiner, box_filter)
    write_records(args.out, kept)
    if args.report:
        write_json_atomic(args.report, report.to_dict())
    print(report.format())
    print(f"wrote {len(kept)} records to {args.out}")
    return 0


def _check_unique(ids: list[str], path) -> None:
    seen = set()
    for i in ids:
        if i in seen:
            raise InputFileError(path, "duplicate id", record=i, field="id")
        seen.add(i)


# --- run -------------------------------------------------------------------------------------------------------


def _add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="pipeline YAML (see spacevllm/configs/unistg/)")
    p.add_argument("--input", help="records file (overrides the config's input)")
    p.add_argument("--out", help="output folder (overrides the config's out)")
    p.add_argument("--workers", type=int, help="processes (overrides the config's workers)")
    p.add_argument("--limit", type=int, help="process only the first N input samples")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run_pipeline_command(args) -> int:
    overrides = {k: getattr(args, k) for k in ("input", "out", "workers", "limit") if getattr(args, k) is not None}
    config = load_config(args.config, **overrides)
    result = run_pipeline(config, progress=not args.no_progress)
    if args.json:
        print(json.dumps(result.summary()))
    else:
        print(result.report.format())
        for key, value in result.summary().get("quality", {}).items():
            print(f"  {key}: {value}")
        print(f"wrote {result.report.kept} records to {result.records_path}")
    return 0


# --- analyze ---------------------------------------------------------------------------------------------------


def _add_analyze(p: argparse.ArgumentParser) -> None:
    p.add_argument("captions", nargs="*", help="captions (default: one per line on stdin)")
    p.add_argument("--backend", choices=("rules", "llm"), default="rules", help="default %(default)s")
    p.add_argument("--model", help="local instruction-tuned causal LM directory (backend llm)")
    p.add_argument("--max-objects", type=int, default=4, help="default %(default)s")


def run_analyze(args) -> int:
    limit = check_flag("--max-objects", args.max_objects, SCHEMA["analyzer"]["max_objects"])
    analyzer = build_analyzer({"backend": args.backend, "model": args.model, "max_objects": limit})
    captions = args.captions or [line.strip() for line in sys.stdin if line.strip()]
    for caption in captions:
        print(json.dumps({"caption": caption, "objects": analyzer.objects(caption)[:limit]}))
    return 0
