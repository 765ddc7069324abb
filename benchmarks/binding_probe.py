"""How fast a from-scratch model learns *which* object a caption means: REC alone, the cheapest task that needs it.

    python benchmarks/binding_probe.py --variant cell --steps 1200        # train + score one variant, print one row
    python benchmarks/binding_probe.py --table                            # the rows scored so far
    python benchmarks/binding_probe.py --smoke                            # every variant, 2 steps, tiny world (CI)

Every variant is ``src/spacevllm/configs/train/world.yaml``'s model and optimizer, trained on REC batches only
(single 64 px frames of the ablation cells' 4,000-scene world, ~9x cheaper per sample than an STVG clip) with one
change (:data:`VARIANTS`), and scored on the REC records of an unseen world (seed 7, 300 scenes). Besides Acc@0.5
it reports what separates *binding* (the described object) from *objectness* (any object): the share of boxes whose
best-overlapping object is the described one ("on target"; a random pick among a scene's 2-4 objects gives ~0.34),
the mean IoU and the median centre error in pixels. Training runs in ``runs/binding/<variant>-<steps>/``; a row is
appended to ``runs/binding/rows.jsonl`` once scored.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import statistics
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {  # variant -> model.tiny keys changed on world.yaml's model
    "no_cell": {"lambda_cell": 0.0},  # the box losses alone (L1 + GIoU on the anchored box)
    "cell": {},  # world.yaml as shipped: + the spatial pointer (lambda_cell 1)
    "no_cell_lr3e-3": {"lambda_cell": 0.0, "optim.lr": 3e-3},
    "no_cell_init088": {"lambda_cell": 0.0, "initializer_range": 0.088},
    "cell_fine8": {"patch_size": 8, "pool_stride": 2, "fine_anchor": True},  # 8 px patches, 2x2-pooled + FineAnchor
}
EVAL = {"n": 300, "seed": 7, "frames": 32, "tasks": ["rec"]}
SMOKE_TINY = {"image_size": 32, "patch_size": 16, "hidden": 32, "layers": 1, "vision_layers": 1}


@functools.cache
def _ablations():
    """benchmarks/ablations.py as a module (loaded once): its cell config, world names and in-process CLI."""
    spec = importlib.util.spec_from_file_location("ablations", REPO / "benchmarks" / "ablations.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def variant_config(variant: str, steps: int, world_runs: Path, out_dir: Path, smoke: bool = False) -> dict:
    """The ``full`` ablation cell's config (its world under ``world_runs``) on REC batches only, ``steps`` steps,
    with the variant's change; ``optim.*`` keys go to the optimizer, the others to ``model.tiny``."""
    if variant not in VARIANTS:
        raise SystemExit(f"binding_probe: unknown variant {variant!r} (variants: {', '.join(VARIANTS)})")
    cfg = _ablations().cell_config("full", 0, world_runs, smoke=smoke)
    cfg["data"]["task_weights"] = {"rec": 1}
    cfg["optim"]["max_steps"] = steps
    for key, value in VARIANTS[variant].items():
        if key.startswith("optim."):
            cfg["optim"][key.split(".", 1)[1]] = value
        else:
            cfg["model"]["tiny"][key] = value
    return cfg | {"save_every": 100000, "out_dir": str(out_dir)}


def binding_scores(predictions: Path, eval_dir: Path) -> dict:
    """Acc@0.5-free view of REC predictions: mean IoU, share on the described object, median centre error (px).
    ``predictions``: ``evaluate run``'s JSONL (pixel xyxy ``box``); ``eval_dir``: the world (records, scenes)."""
    import torch

    from spacevllm.box_ops import box_iou

    boxes = {r["id"]: r["box"] for r in map(json.loads, predictions.read_text(encoding="utf-8").splitlines())}
    scenes = {s["index"]: s for s in map(json.loads, (eval_dir / "scenes.jsonl").read_text().splitlines())}
    ious, on_target, errors = [], [], []
    for rec in map(json.loads, (eval_dir / "records.jsonl").read_text(encoding="utf-8").splitlines()):
        pred, gt = boxes[rec["id"]], rec["boxes"]["0"]
        frame = str(rec["meta"]["frame"])
        objects = [o for o in scenes[rec["meta"]["index"]]["objects"] if frame in o["boxes"]]
        overlap = box_iou(torch.tensor([pred], dtype=torch.float64), torch.tensor([o["boxes"][frame] for o in objects]))
        ious.append(float(box_iou(torch.tensor([pred]), torch.tensor([gt]))[0, 0]))
        best = int(overlap[0].argmax())
        on_target.append(float(overlap[0, best]) > 0 and objects[best]["id"] == rec["meta"]["object"])
        dx, dy = (pred[0] + pred[2] - gt[0] - gt[2]) / 2, (pred[1] + pred[3] - gt[1] - gt[3]) / 2
        errors.append((dx * dx + dy * dy) ** 0.5)
    return {
        "mIoU": statistics.mean(ious),
        "on_target": statistics.mean(on_target),
        "median_centre_error_px": statistics.median(errors),
        "n": len(ious),
    }


def eval_world(runs: Path, smoke: bool = False) -> Path:
    """The unseen REC world (:data:`EVAL`; 2 scenes of 32 px in the smoke), generated on first use."""
    world = dict(EVAL) | ({"n": 2, "size": 32} if smoke else {})
    folder = runs / _ablations().world_name(world)
    if not (folder / "records.jsonl").is_file():
        argv = ["synth-world", "--out", str(folder), "--n", str(world["n"]), "--seed", str(world["seed"])]
        argv += ["--frames", str(world["frames"]), "--size", str(world.get("size", 64)), "--tasks", "rec"]
        _ablations()._cli([*argv, "--no-progress", "--json"])
    return folder


def run(variant: str, steps: int, runs: Path, world_runs: Path, smoke: bool = False) -> dict:
    """Train (resumable) and score one variant; append its row to ``runs/rows.jsonl`` and return it."""
    out = runs / f"{variant}-{steps}"
    cfg = variant_config(variant, steps, world_runs, out / "run", smoke=smoke)
    eval_dir = eval_world(runs, smoke)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    resume = ["--resume"] if (out / "run" / "run.json").is_file() else []
    _ablations()._cli(["train", "--config", str(out / "config.yaml"), *resume])
    pred = out / "rec.predictions.jsonl"
    scores = json.loads(_ablations()._cli(["evaluate", "run", "--annotations", str(eval_dir / "records.jsonl"),
                              "--checkpoint", str(out / "run" / "final"), "--out", str(pred), "--json",
                              "--no-progress", "--batch-size", "32"]))  # fmt: skip
    log = [json.loads(line) for line in (out / "run" / "log.jsonl").read_text().splitlines()]
    row = {"variant": variant, "steps": steps, "samples": steps * cfg["optim"]["batch_size"],
           "Acc@0.5": scores["rec"]["Acc@0.5"], **binding_scores(pred, eval_dir),
           "last_losses": {k: v for k, v in log[-1].items() if k.startswith("loss")}}  # fmt: skip
    with open(runs / "rows.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    return row


def format_rows(rows: list[dict]) -> str:
    head = "| variant | samples | Acc@0.5 | mean IoU | on target | median centre error (px) |\n" + "|---" * 6 + "|"
    body = [f"| {r['variant']} | {r['samples']:,} | {r['Acc@0.5']:.3f} | {r['mIoU']:.3f} | {r['on_target']:.2f} | "
            f"{r['median_centre_error_px']:.1f} |" for r in rows]  # fmt: skip
    return "\n".join([head, *body])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", choices=sorted(VARIANTS))
    p.add_argument("--steps", type=int, default=1200, help="optimizer steps of 32 REC samples (default 1200)")
    p.add_argument("--table", action="store_true", help="print the rows scored so far")
    p.add_argument("--smoke", action="store_true", help="every variant, 2 steps, on a tiny world")
    p.add_argument("--runs", default=str(REPO / "runs/binding"))
    p.add_argument("--world-runs", default=str(REPO / "runs/ablations"), help="the folder holding the cell world")
    args = p.parse_args(argv)
    runs = Path(args.runs).resolve()
    runs.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        for variant in VARIANTS:
            print(format_rows([run(variant, 2, runs, runs, smoke=True)]).splitlines()[-1])
    elif args.variant:
        print(format_rows([run(args.variant, args.steps, runs, Path(args.world_runs).resolve())]))
    if args.table:
        rows_file = runs / "rows.jsonl"
        rows = [json.loads(line) for line in rows_file.read_text().splitlines()] if rows_file.is_file() else []
        print(format_rows(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
