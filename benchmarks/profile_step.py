"""Where one training step of a world config goes: data, vision tower, projector, LLM, space decoder, pointer,
LM head + loss, backward, optimizer; and what one sample's tokens are.

    python benchmarks/profile_step.py --config src/spacevllm/configs/train/world.yaml --steps 6

Builds the config's model (a fresh tiny one, or ``model.init``) with the config's ``model.overrides``, draws
batches from the config's mixture (STVG batches only with ``--task stvg``) on a small world generated into
``--world`` (the config's world options with ``--scenes`` scenes), and times each part with forward hooks on the
model's submodules (wall time, ``torch.set_num_threads(config threads)``). The first step is a warm-up and is not
counted. Prints one JSON object: seconds per step for each part, samples/s, and the token split of one STVG sample.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import torch

PARTS = {
    "vision_tower": "model.vision_tower",
    "projector": "model.multi_modal_projector",
    "llm": "model.language_model",
    "space_decoder": "space_decoder",
    "pointer": "temporal_pointer",
    "lm_head": "lm_head",
}


_clock = time.perf_counter  # --clock cpu: time.process_time (this process's CPU seconds, less inflated by load)


def _hook_times(model, acc: dict) -> list:
    """Forward (and, where the module's input needs a gradient, backward) pre/post hooks adding each part's time to
    ``acc[name]`` / ``acc[name + "_backward"]``; returns the handles."""
    handles = []
    for name, path in PARTS.items():
        module = model.get_submodule(path) if _has(model, path) else None
        if module is None:
            continue
        start, back = {}, {}
        handles.append(module.register_forward_pre_hook(lambda m, a, s=start: s.__setitem__("t", _clock())))
        handles.append(
            module.register_forward_hook(
                lambda m, a, o, s=start, n=name: acc.__setitem__(n, acc[n] + _clock() - s["t"])
            )
        )
        handles.append(module.register_full_backward_pre_hook(lambda m, g, s=back: s.__setitem__("t", _clock())))
        handles.append(
            module.register_full_backward_hook(
                lambda m, gi, go, s=back, n=name + "_backward": acc.__setitem__(n, acc[n] + _clock() - s["t"])
            )
        )
    return handles


def _has(model, path: str) -> bool:
    try:
        return model.get_submodule(path) is not None
    except AttributeError:
        return False


def token_split(batch, processor, model_config) -> dict:
    """Token counts of the first sample of a batch: video placeholders, query tokens, answer, other text."""
    ids = batch["input_ids"][0][batch["attention_mask"][0].bool()]
    video = int((ids == model_config.video_token_id).sum())
    queries = int(torch.isin(ids, torch.tensor(model_config.query_token_ids or [])).sum())
    answer = int((batch["labels"][0] != -100).sum()) if "labels" in batch else 0
    text = int(ids.numel()) - video - queries - answer
    prompt = processor.tokenizer.decode(ids[ids != model_config.video_token_id])
    return {"total": int(ids.numel()), "video": video, "queries": queries, "answer": answer, "text": text,
            "text_without_video": prompt}  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--world", default="runs/profile_world", help="folder for the small world")
    p.add_argument("--scenes", type=int, default=32)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--task", choices=["mix", "stvg"], default="mix")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override model.tiny.KEY")
    p.add_argument("--grad-norms", action="store_true", help="also: gradient norm of each weighted loss term")
    p.add_argument("--llm-lengths", default="", help="also: LLM fwd+bwd seconds at lengths, e.g. 280,501")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="part times: wall or process CPU time")
    args = p.parse_args(argv)
    global _clock
    _clock = time.process_time if args.clock == "cpu" else time.perf_counter

    from spacevllm.data.collate import Collator
    from spacevllm.data.dataset import MixtureSampler, UniSTGDataset
    from spacevllm.engine.train import build_data, build_model, build_optimizer, load_config

    cfg = load_config(args.config)
    world = dict(cfg.data.world or {}) | {"n": args.scenes}
    cfg.data.world = world
    cfg.data.train = [str(Path(args.world) / _world_name(world) / "records.jsonl")]
    cfg.out_dir = str(Path(args.world) / ("model-" + _world_name(world)))
    for kv in args.set:
        key, value = kv.split("=", 1)
        cfg.model.tiny[key] = json.loads(value)
    torch.set_num_threads(cfg.threads or torch.get_num_threads())
    build_data(cfg)
    torch.manual_seed(cfg.seed)
    if not cfg.model.init:
        import shutil

        shutil.rmtree(Path(cfg.out_dir) / "init", ignore_errors=True)
    model, processor = build_model(cfg)
    optimizer, scheduler = build_optimizer(cfg, model)
    mc = model.config
    n = cfg.data.num_frames or int(mc.num_frames)
    ds = UniSTGDataset(cfg.data.train, n, text_coords=mc.query_mode == "none", cache_frames=True)
    weights = {"stvg": 1} if args.task == "stvg" else cfg.data.task_weights
    sampler = MixtureSampler(ds.tasks, weights, cfg.optim.batch_size, cfg.seed)
    collate = Collator(processor)
    acc: dict = defaultdict(float)
    handles = _hook_times(model, acc)
    model.train()
    split = None
    for step in range(args.steps + 1):
        if step == 1:  # the first step warms caches and allocators; the counted steps start here
            acc.clear()
            t_all = time.perf_counter()
        t = _clock()
        items = [ds[i] for i in sampler.batch(step)]
        acc["data_items"] += _clock() - t
        t = _clock()
        batch = collate(items)
        acc["collate"] += _clock() - t
        if split is None and items[0]["task"] == "stvg":
            split = token_split(batch, processor, mc)
        acc["seq_len"] += batch["input_ids"].shape[1]
        t = _clock()
        out = model(**batch)
        acc["forward"] += _clock() - t
        t = _clock()
        out.loss.backward()
        acc["backward"] += _clock() - t
        t = _clock()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step(), scheduler.step(), optimizer.zero_grad(set_to_none=True)
        acc["optimizer"] += _clock() - t
    total = time.perf_counter() - t_all
    for h in handles:
        h.remove()
    steps = args.steps
    per_step = {k: round(v / steps, 4) for k, v in acc.items()}
    known = sum(per_step.get(k, 0.0) for k in PARTS)
    per_step["forward_other (embedding, pooling, loss)"] = round(per_step["forward"] - known, 4)
    params = sum(p.numel() for p in model.parameters())
    report = {"config": args.config, "task": args.task, "batch_size": cfg.optim.batch_size, "params": params,
              "threads": torch.get_num_threads(), "seconds_per_step": per_step,
              "samples_per_s": round(steps * cfg.optim.batch_size / total, 2), "stvg_sample_tokens": split}  # fmt: skip
    if args.grad_norms:
        report["grad_norms_stvg_batch"] = grad_norms(model, collate([ds[i] for i in _stvg_batch(ds, cfg)]))
    if args.llm_lengths:
        lengths = [int(x) for x in args.llm_lengths.split(",")]
        report["llm_fwd_bwd_s"] = llm_seconds(model, cfg.optim.batch_size, lengths)
    print(json.dumps(report, indent=1))
    return 0


def _stvg_batch(ds, cfg) -> list[int]:
    return [i for i, t in enumerate(ds.tasks) if t == "stvg"][: cfg.optim.batch_size]


WEIGHTS = {
    "loss_time": "lambda_time",
    "loss_l1": "lambda_l1",
    "loss_giou": "lambda_giou",
    "loss_pointer": "lambda_pointer",
}


def grad_norms(model, batch) -> dict:
    """L2 norm of the gradient of each weighted loss term (and of their sum) over all parameters, on one batch,
    and the term's value: how the terms share the clipped (max_grad_norm) update."""
    out = model(**batch)
    params = [p for p in model.parameters() if p.requires_grad]
    result = {}
    terms = {k: v for k, v in out.loss_dict.items() if k in WEIGHTS}
    for name, value in [*terms.items(), ("total", out.loss)]:
        weight = 1.0 if name == "total" else float(getattr(model.config, WEIGHTS[name]))
        if weight == 0 or not value.requires_grad:
            continue
        grads = torch.autograd.grad(weight * value, params, retain_graph=True, allow_unused=True)
        norm = torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None))
        result[name] = {"value": round(float(value), 4), "weighted_grad_norm": round(float(norm), 4)}
    return result


def llm_seconds(model, batch_size: int, lengths: list[int], repeats: int = 2) -> dict:
    """Seconds of one forward + backward of the language model alone on random embeddings (B, L, D)."""
    llm = model.get_submodule("model.language_model")
    hidden = model.config.text_config.hidden_size
    result = {}
    for length in lengths:
        x = torch.randn(batch_size, length, hidden, requires_grad=True)
        best = float("inf")
        for _ in range(repeats):
            t = _clock()
            llm(inputs_embeds=x).last_hidden_state.square().mean().backward()
            best = min(best, _clock() - t)
        result[str(length)] = round(best, 3)
    return result


def _world_name(world: dict) -> str:
    return "w" + "-".join(f"{k}{v}" for k, v in sorted(world.items()))


if __name__ == "__main__":
    raise SystemExit(main())
