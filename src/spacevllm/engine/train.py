"""The training loop on accelerate: multi-task mixture, AdamW + cosine + warmup ratio, gradient accumulation,
bf16 where available, atomic resumable checkpoints, a progress bar with the loss terms and a JSONL loss log.

Configuration is a YAML file (``src/spacevllm/configs/train/*.yaml``) read by :func:`load_config` into
:class:`TrainConfig`; only :func:`build_*` functions and :func:`train` read it. The paper's recipe (section 4.1:
AdamW, lr 1e-5, weight decay 0, cosine, warmup ratio 0.03; λ_time, λ_space, λ_L1, λ_giou = 1, 1, 3, 1) is
``configs/train/paper_7b.yaml``.

Determinism and resume: micro-batch ``g`` is drawn by :class:`~spacevllm.data.dataset.MixtureSampler` from
``(seed, g)`` alone, and a checkpoint stores model, optimizer, scheduler, RNG states and the step (hence the
data position), so a run killed and resumed logs the same losses as a straight run (single process, CPU).

Output folder ``OUT``: ``config.yaml`` (the resolved config), ``log.jsonl`` (one line per logged step),
``checkpoints/step-XXXXXXXX/`` (see :mod:`spacevllm.engine.checkpoint`), ``final/`` (model + processor).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from spacevllm.data.collate import Collator
from spacevllm.data.dataset import MixtureSampler, ShardedBatches, UniSTGDataset, corpus_words
from spacevllm.engine import checkpoint as ckpt
from spacevllm.errors import SpaceVLLMError
from spacevllm.io_utils import atomic_dir, read_yaml, write_jsonl_atomic, write_text_atomic


@dataclass
class ModelSection:
    init: str | None = None  # checkpoint dir (e.g. a converted LLaVA-Video) or None = build a tiny one
    tiny: dict = field(default_factory=dict)  # build_tiny_checkpoint(**tiny) when init is None
    vocab_from_data: bool = True  # tiny tokenizer vocabulary = words of the training queries and answers
    overrides: dict = field(default_factory=dict)  # model config fields set at load (e.g. lambda_l1, lambda_pointer)
    gradient_checkpointing: bool = False


@dataclass
class DataSection:
    train: list = field(default_factory=list)  # records.jsonl paths (relative to the config file)
    task_weights: dict = field(default_factory=dict)  # task -> mixture weight (paper Table 1); empty = uniform
    num_frames: int | None = None  # default: the model's config.num_frames
    frame_size: list | int | None = None
    num_workers: int = 0
    cache_frames: bool = False  # keep decoded videos in memory (small worlds; with num_workers 0)
    world: dict | None = None  # generate_world(out_dir=train[0]'s folder, **world) when train[0] is missing


@dataclass
class OptimSection:
    lr: float = 1e-5
    weight_decay: float = 0.0
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    warmup_ratio: float = 0.03
    scheduler: str = "cosine"  # cosine | constant
    max_steps: int = 100  # optimizer steps
    batch_size: int = 1  # per process, per micro-batch
    grad_accum: int = 1
    max_grad_norm: float | None = 1.0


@dataclass
class TrainConfig:
    seed: int = 0
    out_dir: str = "runs/train"
    precision: str = "auto"  # auto (bf16 on a bf16 GPU, else fp32) | bf16 | fp16 | no
    threads: int | None = None
    log_every: int = 10
    save_every: int = 100
    keep_checkpoints: int = 2
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)


def load_config(path, overrides: dict | None = None) -> TrainConfig:
    """Read a YAML config. Relative paths in it (data, model.init, out_dir) are relative to the working directory."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise SpaceVLLMError(f"{path}: a config must be a mapping")
    raw |= overrides or {}
    return config_from_dict(raw)


def config_from_dict(raw: dict) -> TrainConfig:
    """Build a :class:`TrainConfig` from a dict; unknown keys are errors naming the key."""
    sections = {"model": ModelSection, "data": DataSection, "optim": OptimSection}
    kwargs = {}
    for key, value in raw.items():
        if key in sections:
            kwargs[key] = _section(sections[key], value or {}, key)
        elif key in {f.name for f in dataclasses.fields(TrainConfig)}:
            kwargs[key] = value
        else:
            raise SpaceVLLMError(f"config: unknown key {key!r}")
    cfg = TrainConfig(**kwargs)
    cfg.data.train = [_expand(p) for p in cfg.data.train]
    cfg.model.init = _expand(cfg.model.init) if cfg.model.init else None
    cfg.out_dir = _expand(cfg.out_dir)
    return cfg


def _section(cls, value: dict, name: str):
    known = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(value) - known)
    if bad:
        raise SpaceVLLMError(f"config: unknown key '{name}.{bad[0]}'")
    return cls(**value)


def _expand(p) -> str:
    return str(Path(os.path.expandvars(str(p))).expanduser())


# --- builders ------------------------------------------------------------------------------------------------


def build_data(cfg: TrainConfig) -> None:
    """Generate the world into ``data.train[0]``'s folder when ``data.world`` is set and the file is missing."""
    if not cfg.data.train:
        raise SpaceVLLMError("config: data.train lists no records file")
    first = Path(cfg.data.train[0])
    if cfg.data.world is not None and not first.exists():
        from spacevllm.data.world import generate_world

        generate_world(first.parent, **cfg.data.world)
    for p in cfg.data.train:
        if not Path(p).is_file():
            raise SpaceVLLMError(f"config: data.train file not found: {p}")


def build_model(cfg: TrainConfig, init_dir: Path | None = None):
    """(model, processor): from ``init_dir`` (a resume), ``model.init``, or a new tiny checkpoint in OUT/init."""
    from spacevllm.modeling import SpaceVLLMConfig, SpaceVLLMForConditionalGeneration, SpaceVLLMProcessor

    source = init_dir or (Path(cfg.model.init) if cfg.model.init else _build_tiny(cfg))
    if not Path(source).is_dir():
        raise SpaceVLLMError(f"model.init: checkpoint folder not found: {source}")
    unknown = sorted(set(cfg.model.overrides) - set(SpaceVLLMConfig().to_dict()))
    if unknown:
        raise SpaceVLLMError(f"model.overrides: not SpaceVLLM config fields: {', '.join(unknown)}")
    # passed to the config before the model is built, so that a structural field (lambda_pointer) builds its module
    model = SpaceVLLMForConditionalGeneration.from_pretrained(source, **cfg.model.overrides)
    processor = SpaceVLLMProcessor.from_pretrained(source)
    if cfg.model.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return model, processor


def _build_tiny(cfg: TrainConfig) -> Path:
    from spacevllm.data.records import read_records
    from spacevllm.modeling.tiny import build_tiny_checkpoint

    out = Path(cfg.out_dir) / "init"
    if (out / "config.json").is_file():
        return out
    words = None
    if cfg.model.vocab_from_data:
        words = corpus_words(r for p in cfg.data.train for r in read_records(p))
    return Path(build_tiny_checkpoint(out, vocab_words=words, **cfg.model.tiny))


def build_optimizer(cfg: TrainConfig, model):
    """AdamW (paper 4.1) and the cosine schedule with ``warmup_ratio * max_steps`` warmup steps."""
    from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

    o = cfg.optim
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay, betas=tuple(o.betas))
    warmup = math.ceil(o.warmup_ratio * o.max_steps)
    if o.scheduler == "cosine":
        return optimizer, get_cosine_schedule_with_warmup(optimizer, warmup, o.max_steps)
    if o.scheduler == "constant":
        return optimizer, get_constant_schedule_with_warmup(optimizer, warmup)
    raise SpaceVLLMError(f"config: optim.scheduler must be cosine or constant, got {o.scheduler!r}")


def mixed_precision(precision: str) -> str:
    """accelerate's mixed_precision for ``precision`` ("auto": bf16 on a GPU that supports it, else "no")."""
    if precision == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    if precision not in ("bf16", "fp16", "no"):
        raise SpaceVLLMError(f"config: precision must be auto, bf16, fp16 or no, got {precision!r}")
    return precision


# --- the loop --------------------------------------------------------------------------------------------------


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, stop_after: int | None = None) -> Path:
    """Run training; returns ``OUT/final`` (or the last checkpoint when stopped early).

    ``resume``: continue from the newest checkpoint in OUT (if any). ``stop_after``: save a checkpoint and stop
    after this optimizer step (a planned interruption: time-sliced runs, the resume test); the schedule still
    spans ``optim.max_steps``.
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    # single-task batches leave parts of the model unused (e.g. the space head on QA): DDP must allow it
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    precision = mixed_precision(cfg.precision)
    _forget_other_precision(precision)
    acc = Accelerator(mixed_precision=precision, cpu=not torch.cuda.is_available(), kwargs_handlers=[ddp])
    last = ckpt.latest_checkpoint(out) if resume else None
    if acc.is_main_process:
        build_data(cfg)
        if last is None:
            set_seed(cfg.seed)
            _build_model_dir(cfg)
    acc.wait_for_everyone()
    set_seed(cfg.seed)
    model, processor = build_model(cfg, init_dir=last / "model" if last else None)
    optimizer, scheduler = build_optimizer(cfg, model)
    step = 0
    if last is not None:
        state = ckpt.load_training_state(last)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = state["step"]
    model, optimizer = acc.prepare(model, optimizer)
    batches = iter(_loader(cfg, processor, acc.unwrap_model(model).config, step, acc))  # iter() draws a seed
    if last is not None:
        ckpt.set_rng_state(state["rng"])  # after all setup: exactly where the straight run stood
    if acc.is_main_process:
        _start_log(cfg, out, step)
    step = _loop(cfg, acc, model, processor, optimizer, scheduler, batches, step, progress, stop_after)
    if step < cfg.optim.max_steps:
        return ckpt.checkpoint_dir(out, step)
    final = out / "final"
    if acc.is_main_process:
        _save_final(acc.unwrap_model(model), processor, final)
    acc.wait_for_everyone()
    return final


def _forget_other_precision(precision: str) -> None:
    """accelerate keeps one process-wide AcceleratorState and refuses a second Accelerator with another
    mixed_precision; a second in-process run (tests, notebooks) with another precision drops the old state (the
    process group, PartialState, is kept)."""
    from accelerate.state import AcceleratorState

    if AcceleratorState._shared_state and AcceleratorState().mixed_precision != precision:
        AcceleratorState._reset_state()


def _build_model_dir(cfg: TrainConfig) -> None:
    if not cfg.model.init:
        _build_tiny(cfg)


def _loader(cfg: TrainConfig, processor, model_config, step: int, acc):
    n = cfg.data.num_frames or int(model_config.num_frames)
    text_coords = getattr(model_config, "query_mode", "interleaved") == "none"
    d = cfg.data
    ds = UniSTGDataset(d.train, n, frame_size=d.frame_size, text_coords=text_coords, cache_frames=d.cache_frames)
    sampler = MixtureSampler(ds.tasks, cfg.data.task_weights, cfg.optim.batch_size, cfg.seed)
    ga = cfg.optim.grad_accum
    count = (cfg.optim.max_steps - step) * ga
    batches = ShardedBatches(sampler, step * ga, count, acc.process_index, acc.num_processes)
    workers = cfg.data.num_workers
    return torch.utils.data.DataLoader(
        ds, batch_sampler=batches, collate_fn=Collator(processor), num_workers=workers, persistent_workers=False
    )


def _loop(cfg, acc, model, processor, optimizer, scheduler, batches, step, progress, stop_after=None) -> int:
    """Optimizer steps until ``max_steps`` (or ``stop_after``); returns the last step done."""
    from tqdm.auto import tqdm

    o, ga = cfg.optim, cfg.optim.grad_accum
    bar = tqdm(total=o.max_steps, initial=step, disable=not (progress and acc.is_main_process), dynamic_ncols=True)
    terms: dict[str, float] = {}
    t0, seen0 = time.perf_counter(), step
    model.train()
    for k, batch in enumerate(batches):
        last_micro = (k + 1) % ga == 0
        _micro_step(acc, model, batch, ga, terms, sync=last_micro)
        if not last_micro:
            continue
        _optimizer_step(acc, model, optimizer, scheduler, o.max_grad_norm)
        step += 1
        logged = _reduce_terms(acc, terms, ga)
        terms.clear()
        bar.update(1)
        bar.set_postfix({k_.removeprefix("loss_"): f"{v:.3f}" for k_, v in logged.items()}, refresh=False)
        rate = (step - seen0) * o.batch_size * ga * acc.num_processes / (time.perf_counter() - t0)
        if acc.is_main_process and (step % cfg.log_every == 0 or step == o.max_steps):
            _log(cfg, step, scheduler.get_last_lr()[0], logged, rate)
        if step % cfg.save_every == 0 or step in (o.max_steps, stop_after):
            _checkpoint(cfg, acc, model, processor, optimizer, scheduler, step, logged)
        if step == stop_after:
            break
    bar.close()
    return step


def _micro_step(acc, model, batch, ga: int, terms: dict, sync: bool) -> None:
    ctx = acc.no_sync(model) if not sync and acc.num_processes > 1 else _null()
    with ctx, acc.autocast():
        output = model(**batch)
        acc.backward(output.loss / ga)
    terms["loss"] = terms.get("loss", 0.0) + float(output.loss.detach())
    for name, value in (getattr(output, "loss_dict", None) or {}).items():
        terms[name] = terms.get(name, 0.0) + float(value.detach() if torch.is_tensor(value) else value)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _optimizer_step(acc, model, optimizer, scheduler, max_grad_norm) -> None:
    if max_grad_norm:
        acc.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


# eq. 5-6 (+ the CPU-scale pointer); a term a batch lacks counts 0
LOSS_TERMS = ("loss", "loss_time", "loss_space", "loss_l1", "loss_giou", "loss_pointer")


def _reduce_terms(acc, terms: dict, ga: int) -> dict[str, float]:
    """Mean of each loss term over the micro-batches of this step and over processes (fixed names, so every
    process contributes a tensor of the same shape)."""
    names = [n for n in LOSS_TERMS if n in terms] if acc.num_processes == 1 else list(LOSS_TERMS)
    local = torch.tensor([terms.get(n, 0.0) / ga for n in names], dtype=torch.float64, device=acc.device)
    mean = acc.reduce(local, reduction="mean") if acc.num_processes > 1 else local
    return dict(zip(names, mean.tolist()))


def _log(cfg, step: int, lr: float, logged: dict, rate: float) -> None:
    row = {"step": step, "lr": lr, **logged, "samples_per_s": round(rate, 3), "peak_rss_mb": peak_rss_mb()}
    with open(Path(cfg.out_dir) / "log.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MB; Linux ru_maxrss is in KB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _start_log(cfg: TrainConfig, out: Path, step: int) -> None:
    """Write the resolved config; on resume drop log lines past the checkpoint step (they will be redone)."""
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "config.yaml", yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
    log = out / "log.jsonl"
    rows = read_log(log) if log.exists() else []
    write_jsonl_atomic(log, [r for r in rows if r["step"] <= step])


def read_log(path) -> list[dict]:
    """The rows of a ``log.jsonl`` (a torn last line from a kill is ignored)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _checkpoint(cfg, acc, model, processor, optimizer, scheduler, step, logged) -> None:
    acc.wait_for_everyone()
    if acc.is_main_process:
        samples = step * cfg.optim.grad_accum * cfg.optim.batch_size * acc.num_processes
        kw = dict(model=acc.unwrap_model(model), processor=processor, optimizer=optimizer, scheduler=scheduler)
        ckpt.save_checkpoint(cfg.out_dir, step, samples_seen=samples, extra={"losses": logged}, **kw)
        ckpt.prune_checkpoints(cfg.out_dir, cfg.keep_checkpoints)
    acc.wait_for_everyone()


def _save_final(model, processor, final: Path) -> None:
    with atomic_dir(final) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
