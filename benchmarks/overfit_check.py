"""Can each model fit a handful of world scenes? A check that the text-coordinate baseline's path works end to end.

The baseline (paper Table 7 row 1, the ``text_coords`` row of ``benchmarks/ablations.py``) writes every box as
text, which the inference side must generate and parse back (``spacevllm.text_coords``). When its held-out scores
are no better than one fixed answer for every query, this script tells a broken path from a model that does not
generalize: it trains both models from ``world.yaml`` (the default model as it is; the baseline with the
``text_coords`` row's switches: the same model but ``query_mode``) on ``--scenes`` world scenes (STVG + REC,
seed 1) for ``--steps`` steps of ``--batch`` samples and scores them with ``evaluate run`` on those same training
records. A path that works fits them far above the one-fixed-answer level.

    .venv/bin/python benchmarks/overfit_check.py --out runs/overfit [--scenes 16] [--steps 600] [--batch 8]

Resumable: a model whose ``final/`` exists is not trained again, finished predictions are not recomputed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ablations import ROWS

from spacevllm.data.world import generate_world, world_stats
from spacevllm.engine.evaluate_run import evaluate_run
from spacevllm.engine.train import load_config, train

CONFIG = Path(__file__).resolve().parents[1] / "src" / "spacevllm" / "configs" / "train" / "world.yaml"
MODELS = {"default": {}, "textcoords": ROWS["text_coords"]}  # model.tiny switches on world.yaml


def fit(name: str, records: Path, out: Path, steps: int, batch: int) -> tuple[Path, float | None]:
    """Train world.yaml with ``MODELS[name]`` on ``records`` into ``out/name``; (final checkpoint, seconds spent
    training, None when an earlier run had already trained it)."""
    cfg = load_config(CONFIG)
    cfg.model.tiny = {**cfg.model.tiny, **MODELS[name]}
    cfg.out_dir = str(out / name)
    cfg.data.train, cfg.data.world = [str(records)], None
    cfg.data.task_weights = {"stvg": 1, "rec": 1}
    cfg.optim.max_steps, cfg.optim.batch_size = steps, batch
    cfg.save_every = steps
    final = Path(cfg.out_dir) / "final"
    if final.is_dir():
        return final, None
    t0 = time.perf_counter()
    final = Path(train(cfg, resume=True, progress=False))
    return final, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="work folder (world, runs, predictions)")
    ap.add_argument("--scenes", type=int, default=16, help="world scenes to fit (2 STVG + 1 REC records each)")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    records = generate_world(args.out / "world", n=args.scenes, seed=1, tasks=("stvg", "rec"))
    stats = world_stats(records)
    result = {
        "one_fixed_answer": {
            "m_tIoU": stats["fixed_interval_m_tIoU"],
            "m_vIoU": stats["blind_box_fixed_interval_m_vIoU"],
        }
    }
    for name in MODELS:
        final, seconds = fit(name, records, args.out, args.steps, args.batch)
        scores = evaluate_run(records, final, args.out / f"{name}-train.jsonl", batch_size=16, progress=False)
        result[name] = {"train_s": None if seconds is None else round(seconds, 1), **scores}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
