"""Short diagnostics of what blocks learning per sample in the ``full`` ablation cell (issue 17).

    python benchmarks/diagnose_learning.py --write VARIANT     # runs/diag/<variant>/cell.yaml (prints the command)
    python benchmarks/diagnose_learning.py --table --full-log L  # losses at steps 50/100/150 per variant vs L

Every variant is the ``full`` cell of ``benchmarks/ablations.py`` (world.yaml + the cell settings: 4,000-scene world
of 32-frame clips, lr 1e-3, seed 0) on the 600-step schedule the diagnostics were measured on (:data:`SCHEDULE`;
the cells now run 1,200) with ONE change (:data:`VARIANTS`) and ``log_every: 1``; it is
trained with ``spacevllm train --config runs/diag/<variant>/cell.yaml --stop-after 150`` (the schedule still spans
600 steps, so the lr at each step is the full cell's). The sampler draws the same task per step as the full cell
(same seed, same task weights), so a loss at step k compares the same batch.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TERMS = ("loss_pointer", "loss_time", "loss_l1", "loss_giou")
STEPS = (50, 100, 150)
SCHEDULE = 600  # optimizer steps the cosine schedule spans (the 19,200-sample cell of RESULTS' diagnostics)
VARIANTS = {  # variant -> (dotted config key, value)
    "init088": ("model.tiny.initializer_range", 0.088),  # 1/sqrt(hidden 128); Qwen2's default is 0.02
    "stvg_only": ("data.task_weights", {"stvg": 1}),
    "lambda_time01": ("model.overrides", {"lambda_time": 0.1}),
    "lr3e-3": ("optim.lr", 3e-3),
    "inside": ("model.tiny.lambda_inside", 1.0),  # the pointer's per-frame inside-the-range term
}


def _ablations():
    spec = importlib.util.spec_from_file_location("ablations", REPO / "benchmarks" / "ablations.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def variant_config(variant: str, world_runs: Path, out_dir: Path) -> dict:
    """The full cell's config (its world under ``world_runs``) with the variant's one change, logged every step."""
    if variant not in VARIANTS:
        raise SystemExit(f"diagnose_learning: unknown variant {variant!r} (variants: {', '.join(VARIANTS)})")
    cfg = _ablations().cell_config("full", 0, world_runs)
    cfg["optim"]["max_steps"] = SCHEDULE
    key, value = VARIANTS[variant]
    *parents, leaf = key.split(".")
    node = cfg
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value
    return cfg | {"log_every": 1, "save_every": 1000, "out_dir": str(out_dir)}


def losses_at(log: list[dict], step: int, window: int = 50) -> dict:
    """{term: loss at ``step``} and {term+"_mean": mean over the steps in (step - window, step] that are multiples
    of 10 (the full cell logs every 10th step, so both runs average the same batches) and have the term (a batch
    without the task logs 0)}; missing steps give None."""
    rows = {r["step"]: r for r in log}
    out = {t: rows[step][t] if step in rows else None for t in TERMS}
    for t in TERMS:
        steps = range(step - window + 10, step + 1, 10)
        vals = [rows[s][t] for s in steps if s in rows and rows[s][t] > 0]
        out[t + "_mean"] = sum(vals) / len(vals) if vals and step in rows else None
    return out


def format_table(logs: dict[str, list[dict]]) -> str:
    """Markdown: per run and step, each term at that step / its mean over the 10th steps of the last 50 (non-zero)."""
    lines = ["| run | step | " + " | ".join(TERMS) + " |", "|" + "---|" * (2 + len(TERMS))]
    for name, log in logs.items():
        for step in STEPS:
            v = losses_at(log, step)
            if v["loss_l1_mean"] is None and v["loss_pointer_mean"] is None:
                continue
            cells = [_fmt(v[t]) + " / " + _fmt(v[t + "_mean"]) for t in TERMS]
            lines.append(f"| {name} | {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def window_means(log: list[dict], term: str = "loss_pointer") -> list[float | None]:
    """Mean of ``term`` over every logged step with the term in (0, 50], (50, 100], (100, 150] (None if none)."""
    out = []
    for lo, hi in zip((0, *STEPS[:-1]), STEPS):
        vals = [r[term] for r in log if lo < r["step"] <= hi and r[term] > 0]
        out.append(sum(vals) / len(vals) if vals else None)
    return out


def format_window_table(logs: dict[str, list[dict]]) -> str:
    """Markdown: per run, the pointer loss averaged over every logged step of each 50-step window."""
    lines = ["| run | logged steps | pointer 1-50 | pointer 51-100 | pointer 101-150 | samples/s to step 150 |"]
    lines.append("|---|---|---|---|---|---|")
    for name, log in logs.items():
        means = " | ".join(_fmt(m) for m in window_means(log))
        upto = [r for r in log if r["step"] <= STEPS[-1]]
        rate = upto[-1].get("samples_per_s") if upto else None
        lines.append(f"| {name} | {len(log)} | {means} | {_fmt(rate)} |")
    return "\n".join(lines)


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def _read_log(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--write", metavar="VARIANT", help="write runs/diag/<variant>/cell.yaml")
    p.add_argument("--table", action="store_true", help="print the losses of every variant run found")
    p.add_argument("--full-log", help="the full cell's log.jsonl (the reference row)")
    p.add_argument("--world-runs", default=str(REPO / "runs/ablations"), help="the folder holding the cell world")
    p.add_argument("--runs", default=str(REPO / "runs/diag"))
    args = p.parse_args(argv)
    runs = Path(args.runs).resolve()
    if args.write:
        folder = runs / args.write
        cfg = variant_config(args.write, Path(args.world_runs).resolve(), folder / "run")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "cell.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
        print(f"spacevllm train --config {folder / 'cell.yaml'} --stop-after 150")
    if args.table:
        logs = {"full": _read_log(Path(args.full_log))} if args.full_log else {}
        logs |= {v: _read_log(runs / v / "run/log.jsonl") for v in VARIANTS if (runs / v / "run/log.jsonl").is_file()}
        print(format_table(logs) + "\n\n" + format_window_table(logs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
