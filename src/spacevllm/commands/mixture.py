"""``spacevllm mixture {build,convert}``: the Table 1 training mixture and source-dataset conversion.

- ``build --config CONFIG.yaml --out DIR``: read every source of a mixture config, sample each task's count over
  its sources, write ``DIR/records.jsonl`` (instruction records, atomically) and ``DIR/mixture.json`` (report).
- ``convert --format FMT --in FILE --out OUT.jsonl``: one source dataset (Charades-STA, DiDeMo, TACoS, RefCOCO,
  REC jsonl) -> Uni-STG records, e.g. the input of ``spacevllm unistg run``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from spacevllm.data.mixture import (
    FORMATS,
    Source,
    build_mixture,
    check_mixture_memory,
    format_report,
    load_mixture_config,
    read_source,
    rebase_media,
)
from spacevllm.data.records import write_records
from spacevllm.errors import SpaceVLLMError
from spacevllm.io_utils import check_output, write_json_atomic
from spacevllm.schema import Rule, check_flag


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="mixture_command", metavar="STEP")
    b = sub.add_parser("build", help="sample the sources of a mixture config into one instruction records file")
    b.add_argument("--config", required=True, help="mixture YAML (see spacevllm/configs/mixture/)")
    b.add_argument("--out", required=True, help="output folder (records.jsonl, mixture.json)")
    b.add_argument("--root", help="folder that relative source paths start from (default: the config's folder)")
    b.add_argument("--seed", type=int, help="overrides the config's seed")
    b.add_argument("--scale", type=float, help="overrides the config's scale (e.g. 0.01 for a 1%% build)")
    b.add_argument("--skip-missing", action="store_true", help="leave out sources whose file does not exist")
    b.add_argument("--json", action="store_true", help="print the report as JSON")
    c = sub.add_parser("convert", help="one source dataset -> Uni-STG records (no sampling, no prompts)")
    c.add_argument("--format", required=True, choices=sorted(f for f in FORMATS if f != "records"))
    c.add_argument("--in", dest="input", required=True, help="the dataset's annotation file")
    c.add_argument("--out", required=True, metavar="OUT.jsonl", help="records file (written atomically)")
    c.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="reader option, repeatable: videos_dir, durations, video_ext, consensus (didemo), fps, unit "
        "(tacos), instances, split, images_dir, dataset (refcoco), bbox_format (rec-jsonl)",
    )
    parser.set_defaults(_mixture_parser=parser)


def run(args) -> int:
    step = getattr(args, "mixture_command", None)
    if step is None:
        args._mixture_parser.print_help()
        return 0
    return {"build": run_build, "convert": run_convert}[step](args)


def run_build(args) -> int:
    config = load_mixture_config(args.config, args.root)
    if args.seed is not None:
        config.seed = check_flag("--seed", args.seed, Rule(kind=int, ge=0))
    if args.scale is not None:
        config.scale = check_flag("--scale", args.scale, Rule(kind=float, gt=0))
    check_mixture_memory(config)  # before any source is read
    out = check_output(args.out, "folder")
    records, report = build_mixture(config, skip_missing=args.skip_missing)
    write_records(out / "records.jsonl", rebase_media(records, out))
    write_json_atomic(out / "mixture.json", report)
    print(json.dumps(report) if args.json else format_report(report))
    if not args.json:
        print(f"wrote {len(records)} records to {out / 'records.jsonl'}")
    return 0


def run_convert(args) -> int:
    check_output(args.out, "file")
    options = dict(_option(o) for o in args.option)
    for key in FORMATS[args.format][1]:
        if key in options:
            options[key] = Path(options[key])
    records = read_source(Source(args.format, args.format, Path(args.input), options=options))
    write_records(args.out, rebase_media(records, Path(args.out).resolve().parent))
    tasks = sorted({r.task for r in records})
    print(f"wrote {len(records)} {'/'.join(tasks) or 'no'} records to {args.out}")
    return 0


def _option(text: str) -> tuple[str, object]:
    """``"fps=29.4"`` -> ``("fps", 29.4)`` (the value parsed as YAML: numbers, booleans, strings)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise SpaceVLLMError(f"--option must be KEY=VALUE, got {text!r}")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        parsed = value
    return key.strip(), value if parsed is None or isinstance(parsed, (dict, list)) else parsed
