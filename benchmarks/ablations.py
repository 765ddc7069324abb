"""The paper's ablations (Table 7: the modules; Table 9: the number of queries) in miniature, on the synthetic world.

    python benchmarks/ablations.py --run full --seed 0       # train + score one cell (resumable), write its JSON
    python benchmarks/ablations.py --table                   # the table from the committed cells, paper side by side
    python benchmarks/ablations.py --table --json            # the cells as a JSON list (stable interface)
    python benchmarks/ablations.py --smoke                   # every row, a few steps on a tiny world (CI)

Every cell is ``src/spacevllm/configs/train/world.yaml`` with the same cell overrides (a world of 32-frame clips,
the same budget in optimizer steps, hence samples) and the row's switch on the model (:data:`ROWS`), trained with
``spacevllm train --config CELL.yaml --resume`` and scored with ``spacevllm evaluate run ... --json`` on the STVG
records of three unseen world seeds (:data:`EVAL_SEEDS`), both run in-process through :func:`spacevllm.cli.main`.
Every row is scored with the paper's generated-text time range (``--time-source text``); the rows with queries also
with the temporal pointer. Rows:

    text_coords               Table 7 "w/o queries and decoder": time range and every box as text (query_mode none;
                              no queries, hence neither pointer)
    appended                  Table 7 "w/o interleaved design": the queries after all frames
    no_dual_cross_attention   Table 7 "w/o dual cross attention": the space head reads the query state directly
                              (without eq. 3 there is no attention to anchor the box on, nor to supervise with
                              the spatial pointer ``lambda_cell``)
    full                      SpaceVLLM as world.yaml builds it (16 queries, one per sampled frame)
    queries_<n>               Table 9: n sampled frames and queries (the full model otherwise); queries_16 is the
                              same configuration as full, and reuses its cells

A cell writes ``benchmarks/results/ablations/<row>-seed<k>.json`` atomically once trained and scored: the config
hash, the resolved overrides, samples seen, training and scoring wall time, the load average, the last logged
losses, and every STVG metric per time source (mean over the three evaluation seeds, and per seed). Training
folders live in ``runs/ablations/cells/<config hash>/`` (git-ignored); a rerun resumes training from the newest
checkpoint and evaluation from its prediction files, and a cell whose JSON exists with the same hash is skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BASE_CONFIG = REPO / "src/spacevllm/configs/train/world.yaml"
RESULTS = REPO / "benchmarks/results/ablations"
PAPER = Path(os.environ.get("SPACEVLLM_PAPER", "/work/shared/paper/spacevllm-paper.txt"))
MACHINE = "2-core CPU, 24 GiB, no GPU"
METRICS = ("m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5")
TABLE7 = ("text_coords", "appended", "no_dual_cross_attention", "full")
TABLE9 = ("queries_8", "queries_16", "queries_32")
PAPER_TABLE7 = {  # row -> the paper's Table 7 row name
    "text_coords": "w/o Queries and Decoder",
    "appended": "w/o Interleaved Design",
    "no_dual_cross_attention": "w/o Dual Cross Attention",
    "full": "SpaceVLLM",
}
PAPER_TABLE9 = {8: "32", 16: "64", 32: "96"}  # our n stands for the paper's: fewer, its default, more
ROWS = {
    "text_coords": {"query_mode": "none", "lambda_pointer": 0.0, "lambda_cell": 0.0, "time_source": "text"},
    "appended": {"query_mode": "appended"},
    "no_dual_cross_attention": {"dual_cross_attention": False, "lambda_cell": 0.0},
    "full": {},
}
EVAL_SEEDS = (7, 11, 23)
EVAL_SCENES = 100  # 200 STVG queries per seed
CELL = {  # the same for every cell: the world (32-frame clips, for up to 32 sampled frames) and the budget
    "world": {"n": 4000, "seed": 1, "frames": 32, "tasks": ["stvg", "vtg", "rec"]},
    "max_steps": 1200,
}
SMOKE = {  # a tiny model on a tiny world: every row trains 2 steps and is scored on 2 scenes of one seed
    "world": {"n": 3, "seed": 1, "frames": 32, "size": 32, "tasks": ["stvg", "vtg", "rec"]},
    "max_steps": 2,
    "batch_size": 2,
    "tiny": {"image_size": 32, "patch_size": 16, "hidden": 32, "layers": 1, "vision_layers": 1},
    "eval_seeds": (7,),
    "eval_scenes": 2,
}


def row_overrides(row: str) -> dict:
    """The model.tiny keys a row sets on world.yaml's model (``queries_<n>``: ``num_frames = n``)."""
    if row in ROWS:
        return dict(ROWS[row])
    m = re.fullmatch(r"queries_([1-9][0-9]*)", row)
    if m:
        return {"num_frames": int(m.group(1))}
    raise SystemExit(f"ablations: unknown row {row!r} (rows: {', '.join([*ROWS, 'queries_<n>'])})")


def cell_config(row: str, seed: int, runs: Path, smoke: bool = False) -> dict:
    """world.yaml with the cell overrides and the row's switch, out_dir unset (see :func:`config_hash`)."""
    from spacevllm.io_utils import read_yaml

    cfg = copy.deepcopy(read_yaml(BASE_CONFIG))
    spec = SMOKE if smoke else CELL
    world = dict(spec["world"])
    cfg["seed"] = seed
    cfg["data"]["world"] = world
    cfg["data"]["train"] = [str(runs / world_name(world) / "records.jsonl")]
    cfg["optim"]["max_steps"] = spec["max_steps"]
    if smoke:
        cfg["optim"]["batch_size"] = SMOKE["batch_size"]
        cfg["model"]["tiny"] |= SMOKE["tiny"]
        cfg["save_every"] = cfg["log_every"] = 1
    cfg["model"]["tiny"] |= row_overrides(row)
    cfg.pop("out_dir", None)
    return cfg


def world_name(world: dict) -> str:
    """A folder name for a world's options (the same options, the same folder)."""
    return "world-" + "-".join(f"{k}{','.join(v) if isinstance(v, list) else v}" for k, v in sorted(world.items()))


def config_hash(cfg: dict) -> str:
    """16 hex digits of sha256 over the config as canonical JSON (two rows with one config share one cell).
    Paths are hashed relative to the runs folder, so the hash does not depend on where the repo lives; ``threads``
    (how many CPU threads train the cell) is not hashed: it changes the speed, not the experiment."""
    c = copy.deepcopy(cfg)
    c.pop("threads", None)
    c["data"]["train"] = [Path(p).parent.name + "/" + Path(p).name for p in c["data"]["train"]]
    return hashlib.sha256(json.dumps(c, sort_keys=True).encode()).hexdigest()[:16]


def _cli(argv: list[str]) -> str:
    """Run ``spacevllm <argv>`` in-process; its stdout, or SystemExit with its stderr on failure."""
    from spacevllm.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    if code != 0:
        raise SystemExit(f"ablations: spacevllm {' '.join(argv)} failed ({code}): {err.getvalue().strip()[-800:]}")
    return out.getvalue()


def eval_split(runs: Path, seed: int, scenes: int, world: dict) -> Path:
    """The STVG records of an unseen world seed (same clip length and frame size as the training world)."""
    name = f"eval-seed{seed}-n{scenes}-f{world['frames']}-s{world.get('size', 64)}"
    records = runs / name / "records.jsonl"
    if not records.is_file():
        argv = ["synth-world", "--out", str(records.parent), "--n", str(scenes), "--seed", str(seed)]
        argv += ["--frames", str(world["frames"]), "--size", str(world.get("size", 64)), "--tasks", "stvg"]
        _cli([*argv, "--no-progress", "--json"])
    return records


def train_cell(cfg: dict, cell_dir: Path) -> dict:
    """``spacevllm train --config CELL.yaml --resume`` unless ``final/`` exists; accumulates training wall time
    over attempts in ``timing.json``. Returns the timing dict."""
    timing_path = cell_dir / "timing.json"
    timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {"train_s": 0.0, "attempts": 0}
    if (cell_dir / "final" / "config.json").is_file():
        return timing
    from spacevllm.io_utils import write_json_atomic, write_text_atomic

    cell_dir.mkdir(parents=True, exist_ok=True)
    path = cell_dir / "cell.yaml"
    write_text_atomic(path, yaml.safe_dump(cfg | {"out_dir": str(cell_dir)}, sort_keys=False))
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    _cli(["train", "--config", str(path), "--resume", "--no-progress"])
    timing["train_s"] += time.perf_counter() - t0
    timing["attempts"] += 1
    timing.setdefault("load_avg_1min", []).extend([round(load0, 2), round(os.getloadavg()[0], 2)])
    write_json_atomic(timing_path, timing)
    return timing


def score_cell(cell_dir: Path, has_queries: bool, seeds, splits: dict, batch_size: int) -> tuple[dict, float]:
    """``evaluate run --json`` of ``cell_dir/final`` on every split, text time (and the pointer when the row has
    queries): ({time_source: {"mean": {metric}, "per_seed": {seed: {metric, "n"}}}}, wall seconds)."""
    t0 = time.perf_counter()
    metrics = {}
    for source in ("text", "pointer") if has_queries else ("text",):
        per_seed = {}
        for seed in seeds:
            out = cell_dir / "eval" / f"seed{seed}-{source}.jsonl"
            out.parent.mkdir(parents=True, exist_ok=True)
            argv = ["evaluate", "run", "--annotations", str(splits[seed]), "--checkpoint", str(cell_dir / "final")]
            argv += ["--out", str(out), "--time-source", source, "--json", "--batch-size", str(batch_size)]
            per_seed[str(seed)] = json.loads(_cli(argv).strip().splitlines()[-1])["stvg"]
        mean = {m: sum(s[m] for s in per_seed.values()) / len(per_seed) for m in METRICS}
        metrics[source] = {"mean": mean, "per_seed": per_seed}
    return metrics, time.perf_counter() - t0


def run_cell(row: str, seed: int, runs: Path, results: Path, smoke: bool = False, threads: int | None = None) -> Path:
    """Train and score one cell; write ``results/<row>-seed<seed>.json`` atomically; returns its path.
    ``threads`` overrides world.yaml's CPU threads (two 1-thread cells side by side train ~1.2x the samples per
    second of one 2-thread cell on a 2-core CPU)."""
    from spacevllm.engine.train import read_log
    from spacevllm.io_utils import write_json_atomic

    cfg = cell_config(row, seed, runs, smoke)
    digest = config_hash(cfg)
    dest = results / f"{row}-seed{seed}.json"
    if dest.is_file() and json.loads(dest.read_text()).get("config_hash") == digest:
        print(f"{dest}: done (config {digest})")
        return dest
    cell_dir = runs / "cells" / digest
    if threads is not None:
        cfg["threads"] = threads
    timing = train_cell(cfg, cell_dir)
    spec = SMOKE if smoke else CELL
    seeds = SMOKE["eval_seeds"] if smoke else EVAL_SEEDS
    scenes = SMOKE["eval_scenes"] if smoke else EVAL_SCENES
    splits = {s: eval_split(runs, s, scenes, spec["world"]) for s in seeds}
    has_queries = cfg["model"]["tiny"].get("query_mode", "interleaved") != "none"
    metrics, eval_s = score_cell(cell_dir, has_queries, seeds, splits, 16)
    log = read_log(cell_dir / "log.jsonl") if (cell_dir / "log.jsonl").is_file() else []
    # the log's train_s sums every attempt's training; timing's only those that ended without a kill
    train_s = log[-1]["train_s"] if log and "train_s" in log[-1] else timing["train_s"]
    result = {
        "row": row,
        "seed": seed,
        "config_hash": digest,
        "row_overrides": row_overrides(row),
        "model": cfg["model"]["tiny"],
        "data": cfg["data"] | {"train": [Path(p).parent.name for p in cfg["data"]["train"]]},
        "optim": cfg["optim"],
        "samples": cfg["optim"]["max_steps"] * cfg["optim"]["batch_size"] * cfg["optim"]["grad_accum"],
        "wall_s": round(train_s, 1),
        "train_attempts": timing["attempts"],
        "threads": cfg.get("threads"),
        "load_avg_1min": timing.get("load_avg_1min", []),
        "eval_wall_s": round(eval_s, 1),
        "eval_seeds": list(seeds),
        "eval_scenes_per_seed": scenes,
        "last_log": log[-1] if log else None,
        "machine": MACHINE,
        "metrics": metrics,
    }
    results.mkdir(parents=True, exist_ok=True)
    write_json_atomic(dest, result)
    print(f"{dest}: " + json.dumps({s: m["mean"] for s, m in metrics.items()}))
    return dest


# --- the table ---------------------------------------------------------------------------------------------------


def paper_tables(path: Path = PAPER) -> dict:
    """{"table7": {paper row name: {metric: %}}, "table9": {queries: {metric: %}}} read from the paper's text."""
    if not path.is_file():
        return {"table7": {}, "table9": {}}
    lines = path.read_text(encoding="utf-8").splitlines()
    return {
        "table7": _paper_rows(lines, "Methods\tm_tIoU", "Table 7."),
        "table9": _paper_rows(lines, "Number of queries\tm_tIoU", "Table 9."),
    }


def _paper_rows(lines: list[str], header: str, caption: str) -> dict:
    """Tab-separated rows between ``header`` and ``caption``: {first cell (tags stripped): {metric: float}}."""
    start = next((i for i, line in enumerate(lines) if line.startswith(header)), None)
    rows = {}
    for line in lines[start + 1 :] if start is not None else []:
        if line.startswith(caption):
            break
        cells = line.split("\t")
        if len(cells) == 1 + len(METRICS):
            name = re.sub(r"<[^>]+>", "", cells[0]).strip(" *")
            rows[name] = dict(zip(METRICS, map(float, cells[1:])))
    return rows


def load_cells(results: Path = RESULTS) -> list[dict]:
    """Every cell JSON in ``results``, sorted by row order then seed."""
    cells = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(results.glob("*-seed*.json"))]
    return sorted(cells, key=lambda c: (_row_order(c["row"]), c["seed"]))


def _row_order(row: str) -> tuple:
    if row in TABLE7:
        return (0, TABLE7.index(row))
    return (1, int(row.split("_")[1]) if row.startswith("queries_") else 0)


def cells_json(cells: list[dict]) -> list[dict]:
    """The stable interface: one entry per cell and time source."""
    out = []
    for c in cells:
        for source, m in c["metrics"].items():
            entry = {"row": c["row"], "seed": c["seed"], "time_source": source}
            entry |= {k: m["mean"][k] for k in METRICS} | {"samples": c["samples"], "wall_s": c["wall_s"]}
            out.append(entry)
    return out


def paper_numbers(row: str, paper: dict) -> dict | None:
    """The paper's numbers (in %) that a row stands for, or None."""
    if row in PAPER_TABLE7:
        return paper["table7"].get(PAPER_TABLE7[row])
    n = int(row.split("_")[1]) if row.startswith("queries_") else None
    return paper["table9"].get(PAPER_TABLE9.get(n, ""))


def format_table(cells: list[dict], paper: dict) -> str:
    """Markdown: per row and time source, mean [min-max] over seeds (in %), seeds, samples, training minutes,
    and the paper's numbers for the row."""
    groups: dict[tuple, list[dict]] = {}
    for e in cells_json(cells):
        groups.setdefault((e["row"], e["time_source"]), []).append(e)
    names = " | ".join(METRICS)
    head = f"| row | time from | seeds | {names} | samples | train min | paper ({', '.join(METRICS)}) |"
    lines = [head, "|" + "---|" * (6 + len(METRICS))]
    for (row, source), es in groups.items():
        stats = [_mean_range([100 * e[m] for e in es]) for m in METRICS]
        p = paper_numbers(row, paper)
        paper_cell = " / ".join(f"{p[m]:.1f}" for m in METRICS) if p else "-"
        wall = sum(e["wall_s"] for e in es) / len(es) / 60
        lines.append(
            f"| {row} | {source} | {','.join(str(e['seed']) for e in es)} | " + " | ".join(stats)
            + f" | {es[0]['samples']:,} | {wall:.0f} | {paper_cell} |"
        )  # fmt: skip
    return "\n".join(lines)


def _mean_range(values: list[float]) -> str:
    mean = sum(values) / len(values)
    return f"{mean:.1f}" if len(values) == 1 else f"{mean:.1f} [{min(values):.1f}-{max(values):.1f}]"


# --- smoke -------------------------------------------------------------------------------------------------------


def smoke(runs: Path | None = None) -> list[dict]:
    """Every Table 7 and Table 9 row, 2 steps on a tiny world, scored on 2 scenes; returns the cells (written to a
    temporary results folder, never to benchmarks/results)."""
    tmp = Path(tempfile.mkdtemp(prefix="ablations-smoke-")) if runs is None else Path(runs)
    try:
        results = tmp / "results"
        for row in (*TABLE7, *TABLE9):
            run_cell(row, 0, tmp, results, smoke=True)
        return load_cells(results)
    finally:
        if runs is None:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--run", metavar="ROW", help="train and score one cell of this row")
    mode.add_argument("--table", action="store_true", help="print the table of the committed cells")
    mode.add_argument("--smoke", action="store_true", help="every row, a few steps on a tiny world (CI)")
    p.add_argument("--seed", type=int, default=0, help="training seed of the cell (--run)")
    p.add_argument("--json", action="store_true", help="with --table: the cells as a JSON list")
    p.add_argument("--threads", type=int, help="CPU threads for the cell's training (default: world.yaml's)")
    p.add_argument("--runs", default=str(REPO / "runs/ablations"), help="training/evaluation folder")
    p.add_argument("--results", default=str(RESULTS), help="folder of the cell JSONs")
    args = p.parse_args(argv)
    if args.run:
        run_cell(args.run, args.seed, Path(args.runs).resolve(), Path(args.results), threads=args.threads)
    elif args.table:
        cells = load_cells(Path(args.results))
        print(json.dumps(cells_json(cells), indent=1) if args.json else format_table(cells, paper_tables()))
    else:
        cells = smoke()
        print(format_table(cells, paper_tables()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
