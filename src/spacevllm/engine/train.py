"""The training loop on accelerate: multi-task mixture, AdamW + cosine + warmup ratio, gradient accumulation,
bf16 where available, atomic resumable checkpoints, a progress bar with the loss terms and a JSONL loss log.

Configuration is a YAML file (``src/spacevllm/configs/train/*.yaml``) read by :func:`load_config` into
:class:`TrainConfig`; only :func:`build_*` functions and :func:`train` read it. The paper's recipe (section 4.1:
AdamW, lr 1e-5, weight decay 0, cosine, warmup ratio 0.03; λ_time, λ_space, λ_L1, λ_giou = 1, 1, 3, 1) is
``configs/train/paper_7b.yaml``.

Backends (:func:`build_accelerator`): plain accelerate (one process, or DDP under ``accelerate launch`` /
``torchrun``) or DeepSpeed ZeRO-2/3 (``train(..., deepspeed="zero3")``, CLI ``--deepspeed``), with accelerate's
gradient accumulation. Per-part freezing and learning rates: ``optim.parts`` (:func:`param_groups`). Launch lines
and what was tested: docs/training-at-scale.md.

Determinism and resume: the samples of optimizer step ``s`` on process ``r`` of ``W`` are the batch ``s*W + r``
drawn by :class:`~spacevllm.data.dataset.MixtureSampler` from ``(seed, s*W + r)`` alone (``batch_size *
grad_accum`` samples, cut into ``grad_accum`` micro-batches), and a checkpoint stores model, optimizer, scheduler,
RNG states and the step (hence the data position), so a run killed and resumed logs the same losses as a straight
run (tested on CPU: plain, ZeRO-2 and ZeRO-3, one and two processes).

Output folder ``OUT``: ``config.yaml`` (the resolved config), ``log.jsonl`` (one line per logged step; its
``train_s`` is the seconds of training up to that step, summed over resumes: the time of steps lost to a kill and
redone counts once, that of setup not at all),
``checkpoints/step-XXXXXXXX/`` (see :mod:`spacevllm.engine.checkpoint`), ``final/`` (model + processor).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import resource
import shutil
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from spacevllm.data.collate import Collator
from spacevllm.data.dataset import MixtureSampler, ShardedBatches, UniSTGDataset, corpus_words
from spacevllm.engine import checkpoint as ckpt
from spacevllm.errors import SpaceVLLMError
from spacevllm.io_utils import read_yaml, write_jsonl_atomic, write_text_atomic
from spacevllm.progress import progress_bar
from spacevllm.schema import Rule, check_flag, field_rule, setting, validate


def _positive_int(**kw) -> dict:
    return {"kind": int, "ge": 1, **kw}


def _known_tasks(weights: dict) -> str | None:
    from spacevllm.data.records import TASKS

    bad = sorted(str(t) for t in weights if t not in TASKS)
    return f"has unknown task {bad[0]!r} (known: {', '.join(TASKS)})" if bad else None


# every field carries its type and range (spacevllm.schema): validate_config checks them all before any work
@dataclass
class ModelSection:
    # checkpoint dir (e.g. a converted LLaVA-Video) or None = build a tiny one
    init: str | None = setting(None, kind=str, optional=True)
    tiny: dict = setting(factory=dict, kind=dict)  # build_tiny_checkpoint(**tiny) when init is None
    # tiny tokenizer vocabulary = words of the training queries and answers
    vocab_from_data: bool = setting(True, kind=bool)
    # model config fields set at load (e.g. lambda_l1, lambda_pointer)
    overrides: dict = setting(factory=dict, kind=dict)
    gradient_checkpointing: bool = setting(False, kind=bool)


@dataclass
class DataSection:
    # records.jsonl paths (relative to the working directory)
    train: list = setting(factory=list, kind=list, each=Rule(kind=str))
    # task -> mixture weight (paper Table 1); empty = uniform
    task_weights: dict = setting(factory=dict, kind=dict, each=Rule(kind=float, ge=0), check=_known_tasks)
    num_frames: int | None = setting(None, optional=True, **_positive_int())  # default: the model's num_frames
    frame_size: list | int | None = setting(None, kind=(int, list), optional=True)
    num_workers: int = setting(0, kind=int, ge=0)
    # keep decoded videos in memory (small worlds; with num_workers 0)
    cache_frames: bool = setting(False, kind=bool)
    # generate_world(out_dir=train[0]'s folder, **world) when train[0] is missing
    world: dict | None = setting(None, kind=dict, optional=True, keys=("n", "seed", "frames", "fps", "size", "tasks"))


@dataclass
class OptimSection:
    lr: float = setting(1e-5, kind=float, gt=0)
    weight_decay: float = setting(0.0, kind=float, ge=0)
    betas: list = setting(factory=lambda: [0.9, 0.999], kind=list, length=2, each=Rule(kind=float, ge=0, lt=1))
    warmup_ratio: float = setting(0.03, kind=float, ge=0, le=1)
    scheduler: str = setting("cosine", kind=str, choices=("cosine", "constant"))
    max_steps: int = setting(100, **_positive_int())  # optimizer steps
    batch_size: int = setting(1, **_positive_int())  # per process, per micro-batch
    grad_accum: int = setting(1, **_positive_int())
    max_grad_norm: float | None = setting(1.0, kind=float, gt=0, optional=True)
    # per-part freezing and learning rates: {part: {lr: float, freeze: bool}}, parts in PARTS; empty = all at lr
    parts: dict = setting(factory=dict, kind=dict)


@dataclass
class TrainConfig:
    seed: int = setting(0, kind=int, ge=0)
    out_dir: str = setting("runs/train", kind=str)
    # auto (bf16 on a bf16 GPU, else fp32) | bf16 | fp16 | no
    precision: str = setting("auto", kind=str, choices=("auto", "bf16", "fp16", "no"))
    threads: int | None = setting(None, optional=True, **_positive_int())
    log_every: int = setting(10, **_positive_int())
    save_every: int = setting(100, **_positive_int())
    keep_checkpoints: int = setting(2, **_positive_int())
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)


# CLI flags of ``spacevllm train`` -> the config key they override (checked with that key's rule, named by flag)
FLAG_KEYS = {"--max-steps": "optim.max_steps", "--seed": "seed", "--threads": "threads"}


def validate_config(cfg: TrainConfig, source: str = "config") -> TrainConfig:
    """Every key's type and range (field metadata, :mod:`spacevllm.schema`) and ``optim.parts``: one line naming
    ``source`` and the key. Called by :func:`load_config`, again by :func:`train` (configs built in code)."""
    validate(cfg, source)
    check_parts(cfg.optim.parts, source)
    return cfg


def apply_flags(cfg: TrainConfig, flags: dict) -> TrainConfig:
    """Set ``{flag: value}`` (``FLAG_KEYS``; None = not given) on ``cfg``, each checked by its key's rule."""
    for flag, value in flags.items():
        if value is None:
            continue
        key = FLAG_KEYS[flag]
        value = check_flag(flag, value, field_rule(TrainConfig, key))
        *path, name = key.split(".")
        target = cfg
        for part in path:
            target = getattr(target, part)
        setattr(target, name, value)
    return cfg


def load_config(path, overrides: dict | None = None) -> TrainConfig:
    """Read a YAML config, every key checked (:func:`validate_config`; errors name the file and the key). Relative
    paths in it (data, model.init, out_dir) are relative to the working directory."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise SpaceVLLMError(f"{path}: a config must be a mapping")
    raw |= overrides or {}
    return config_from_dict(raw, source=str(path))


def config_from_dict(raw: dict, source: str = "config") -> TrainConfig:
    """Build a checked :class:`TrainConfig` from a dict; unknown keys and bad values are errors naming the key."""
    sections = {"model": ModelSection, "data": DataSection, "optim": OptimSection}
    kwargs = {}
    for key, value in raw.items():
        if key in sections:
            kwargs[key] = _section(sections[key], value or {}, key, source)
        elif key in {f.name for f in dataclasses.fields(TrainConfig)}:
            kwargs[key] = value
        else:
            raise SpaceVLLMError(f"{source}: unknown key {key!r}")
    cfg = validate_config(TrainConfig(**kwargs), source)
    cfg.data.train = [_expand(p) for p in cfg.data.train]
    cfg.model.init = _expand(cfg.model.init) if cfg.model.init else None
    cfg.out_dir = _expand(cfg.out_dir)
    return cfg


def _section(cls, value: dict, name: str, source: str = "config"):
    if not isinstance(value, dict):
        raise SpaceVLLMError(f"{source}: {name} must be a mapping, got {value!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(value) - known)
    if bad:
        raise SpaceVLLMError(f"{source}: unknown key '{name}.{bad[0]}'")
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


def check_world(cfg: TrainConfig) -> None:
    """With ``data.world``, a ``data.train[0]`` already on disk must be that world (its world.json): else the
    config would silently train on other data."""
    if cfg.data.world is None or not cfg.data.train or not Path(cfg.data.train[0]).exists():
        return
    from spacevllm.data.world import world_mismatch

    folder = Path(cfg.data.train[0]).parent
    differ = world_mismatch(folder, cfg.data.world)
    if differ:
        raise SpaceVLLMError(
            f"data.world: {folder} holds another world ({differ}; see its world.json): remove that folder to "
            "generate the configured one, or point data.train elsewhere"
        )


def check_inputs(cfg: TrainConfig) -> None:
    """The files the run reads exist before anything is built: ``model.init`` (a folder) and every ``data.train``
    file (the first may be missing when ``data.world`` generates it)."""
    if cfg.model.init and not Path(cfg.model.init).is_dir():
        what = "is a file; a checkpoint is a model folder" if Path(cfg.model.init).exists() else "folder not found"
        raise SpaceVLLMError(f"model.init: checkpoint {what}: {cfg.model.init}")
    if not cfg.data.train:
        raise SpaceVLLMError("config: data.train lists no records file")
    for i, p in enumerate(cfg.data.train):
        if not Path(p).is_file() and not (i == 0 and cfg.data.world is not None and not Path(p).exists()):
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
    # passed to the config before the model is built, so that a structural field (lambda_pointer) builds its module;
    # fp32 whatever the folder holds (convert writes the source's bf16): the optimizer keeps fp32 weights and
    # `precision` (autocast, or DeepSpeed's bf16/fp16) sets the compute dtype
    model = SpaceVLLMForConditionalGeneration.from_pretrained(source, dtype=torch.float32, **cfg.model.overrides)
    processor = SpaceVLLMProcessor.from_pretrained(source)
    bad = processor.mismatches(model.config)
    if bad:
        raise SpaceVLLMError(f"{source}: the processor does not match the model config ({'; '.join(bad)})")
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


# parts of the model (``optim.parts``); a parameter belongs to the first part whose name test matches
PARTS = ("vision_tower", "projector", "llm", "space_decoder", "new_tokens")
PART_SETTINGS = ("lr", "freeze")


def part_of(name: str) -> str:
    """The part of parameter ``name``: vision_tower, projector (the MLP and LLaVA's ``image_newline``), space_decoder
    (space decoder and temporal pointer) or llm (language model and lm_head, including the ``<r_i>`` rows of their
    embeddings, and anything else)."""
    if ".vision_tower." in f".{name}":
        return "vision_tower"
    if "multi_modal_projector." in name or name.endswith("image_newline"):
        return "projector"
    if name.startswith(("space_decoder.", "temporal_pointer.")):
        return "space_decoder"
    return "llm"


def check_parts(parts: dict, source: str = "config") -> dict[str, dict]:
    """``optim.parts`` validated: {part: {"lr": float | None, "freeze": bool}}; a bad name is a one-line error."""
    if not isinstance(parts, dict):
        raise SpaceVLLMError(f"{source}: optim.parts must be a mapping {{part: {{lr, freeze}}}}")
    out = {}
    for part, part_setting in parts.items():
        if part not in PARTS:
            raise SpaceVLLMError(f"{source}: optim.parts: unknown part {part!r} (known: {', '.join(PARTS)})")
        part_setting = part_setting or {}
        if not isinstance(part_setting, dict):
            raise SpaceVLLMError(f"{source}: optim.parts.{part} must be a mapping {{lr, freeze}}, got {part_setting!r}")
        bad = sorted(set(part_setting) - set(PART_SETTINGS))
        if bad:
            raise SpaceVLLMError(f"{source}: optim.parts.{part}: unknown key {bad[0]!r} (known: lr, freeze)")
        lr = _positive(part_setting.get("lr"), f"optim.parts.{part}.lr", source)
        out[part] = {"lr": lr, "freeze": bool(part_setting.get("freeze", False))}
    new = out.get("new_tokens")
    if new and not out.get("llm", {}).get("freeze"):
        raise SpaceVLLMError(
            f"{source}: optim.parts.new_tokens: the <r_i> rows are rows of the LLM's embedding matrices and train with "
            "the llm part; give them their own setting only with llm: {freeze: true}"
        )
    return out


def _positive(value, key: str, source: str = "config") -> float | None:
    """``value`` as a positive float (YAML reads ``1e-5`` without a dot as a string: accepted), None stays None."""
    if value is None:
        return None
    try:
        number = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        number = -1.0
    if not number > 0 or not math.isfinite(number):
        raise SpaceVLLMError(f"{source}: {key} must be a positive number, got {value!r}")
    return number


def param_groups(cfg: TrainConfig, model) -> list[dict]:
    """AdamW parameter groups, one per part that trains: ``{"params", "lr", "weight_decay", "part"}``.

    Frozen parts get ``requires_grad = False``. With ``llm`` frozen and ``new_tokens`` not frozen, the input and
    output embedding matrices stay trainable in a ``new_tokens`` group (weight decay 0) whose gradient is masked
    to the ``<r_i>`` rows (:func:`_mask_to_rows`), so every other LLM weight stays exactly as loaded.
    """
    parts, o = check_parts(cfg.optim.parts), cfg.optim
    by_part: dict[str, list] = {}
    for name, p in model.named_parameters():
        part = part_of(name)
        if parts.get(part, {}).get("freeze"):
            p.requires_grad_(False)
        if p.requires_grad:
            by_part.setdefault(part, []).append(p)
    new = parts.get("new_tokens")
    if parts.get("llm", {}).get("freeze") and new is not None and not new["freeze"]:
        by_part["new_tokens"] = _new_token_params(model)
    groups = []
    for part, params in by_part.items():
        lr = parts.get(part, {}).get("lr") or o.lr  # check_parts: None or > 0
        group = {"params": params, "lr": lr, "weight_decay": o.weight_decay, "part": part}
        if part == "new_tokens":  # weight decay would move the masked rows
            group |= {"weight_decay": 0.0, "rows": len(model.config.query_token_ids)}
        groups.append(group)
    return groups


def _new_token_params(model) -> list:
    """The input and output embedding weights, made trainable with gradients masked to the query-token rows."""
    ids = list(model.config.query_token_ids or [])
    if not ids:
        raise SpaceVLLMError("config: optim.parts.new_tokens: this model has no query tokens (query_token_ids)")
    params = []
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        w = module.weight
        if any(w is q for q in params):
            continue  # tied embeddings
        w.requires_grad_(True)
        w.register_hook(_mask_to_rows(ids))
        params.append(w)
    return params


def _mask_to_rows(rows: list[int]):
    """A gradient hook keeping only ``rows`` of a (V, D) weight's gradient (others 0)."""

    def hook(grad):
        mask = torch.zeros(grad.shape[0], 1, dtype=grad.dtype, device=grad.device)
        mask[rows] = 1
        return grad * mask

    return hook


def build_optimizer(cfg: TrainConfig, model):
    """AdamW (paper 4.1) over :func:`param_groups` and the cosine schedule with ``warmup_ratio * max_steps``
    warmup steps (each group decays from its own lr)."""
    from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

    o = cfg.optim
    groups = param_groups(cfg, model)
    if not groups:
        raise SpaceVLLMError("config: optim.parts freezes every part: nothing to train")
    optimizer = torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay, betas=tuple(o.betas))
    warmup = math.ceil(o.warmup_ratio * o.max_steps)
    if o.scheduler == "cosine":
        return optimizer, get_cosine_schedule_with_warmup(optimizer, warmup, o.max_steps)
    if o.scheduler == "constant":
        return optimizer, get_constant_schedule_with_warmup(optimizer, warmup)
    raise SpaceVLLMError(f"config: optim.scheduler must be cosine or constant, got {o.scheduler!r}")


def trainable_by_part(optimizer) -> dict[str, int]:
    """Trainable parameter count of each part in the optimizer's groups (ZeRO-3: the full, not the local, size)."""
    counts: dict[str, int] = {}
    for group in optimizer.param_groups:
        rows = group.get("rows")  # new_tokens: only these rows of each (V, D) matrix train
        n = sum(_numel(p) // _shape(p)[0] * rows if rows else _numel(p) for p in group["params"])
        counts[group.get("part", "all")] = counts.get(group.get("part", "all"), 0) + n
    return counts


def _numel(p) -> int:
    return int(getattr(p, "ds_numel", p.numel()))


def _shape(p) -> tuple:
    return tuple(getattr(p, "ds_shape", p.shape))  # ZeRO-3 keeps the full shape in ds_shape


# --- DeepSpeed --------------------------------------------------------------------------------------------------

DEEPSPEED_PRESETS = ("zero2", "zero3")


def load_deepspeed_config(spec: str, cfg: TrainConfig, precision: str) -> dict:
    """The DeepSpeed JSON named by ``spec`` (zero2 | zero3 = the shipped files, or a path), with the ``"auto"``
    values accelerate cannot fill without a prepared DataLoader filled from the train config: micro-batch
    (optim.batch_size), accumulation (optim.grad_accum), clipping (optim.max_grad_norm; 0 = none) and bf16/fp16
    (precision); under ZeRO-3 the weights are gathered at each save. A value the file sets explicitly must agree
    with the train config."""
    path = Path(__file__).parent.parent / "configs" / "deepspeed" / f"{spec}.json"
    path = path if spec in DEEPSPEED_PRESETS else Path(spec)
    if not path.is_file():
        raise SpaceVLLMError(f"--deepspeed: not zero2, zero3 or a JSON file: {spec}")
    try:
        ds = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise SpaceVLLMError(f"{path}: not a valid JSON file ({err})") from None
    if not isinstance(ds, dict) or not isinstance(ds.get("zero_optimization"), dict):
        raise SpaceVLLMError(f"{path}: a DeepSpeed config needs a zero_optimization section")
    o = cfg.optim
    _fill(ds, "train_micro_batch_size_per_gpu", o.batch_size, path, "optim.batch_size")
    _fill(ds, "gradient_accumulation_steps", o.grad_accum, path, "optim.grad_accum")
    _fill(ds, "gradient_clipping", float(o.max_grad_norm or 0.0), path, "optim.max_grad_norm")
    zero = ds["zero_optimization"]
    if zero.get("stage") == 3:  # final/ and checkpoints hold gathered weights (accelerator.get_state_dict)
        if zero.get("stage3_gather_16bit_weights_on_model_save", "auto") is False:
            raise SpaceVLLMError(f"{path}: ZeRO-3 saves need stage3_gather_16bit_weights_on_model_save: true")
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    for kind in ("bf16", "fp16"):
        section = ds.get(kind) if isinstance(ds.get(kind), dict) else {}
        if kind in ds and section.get("enabled", "auto") not in ("auto", precision == kind):
            raise SpaceVLLMError(
                f"{path}: {kind}.enabled is {section['enabled']} but the train config's precision is {precision}"
            )
        if kind in ds:
            ds[kind] = section | {"enabled": precision == kind}
    return ds


def _fill(ds: dict, key: str, value, path: Path, source: str) -> None:
    if ds.get(key, "auto") == "auto":
        ds[key] = value
    elif ds[key] != value:
        raise SpaceVLLMError(f"{path}: {key} is {ds[key]} but the train config's {source} is {value}")


def fill_model_sizes(ds: dict, text_hidden: int, world: int) -> None:
    """Fill the ``"auto"`` bucket sizes from the LLM's hidden size (LLaVA-OneVision's config has no top-level
    ``hidden_size``; same values as accelerate's) and ``train_batch_size`` = micro-batch x accumulation x
    processes, in place."""
    zero, h = ds["zero_optimization"], int(text_hidden)
    sizes = {
        "reduce_bucket_size": h * h,
        "stage3_prefetch_bucket_size": int(0.9 * h * h),
        "stage3_param_persistence_threshold": 10 * h,
    }
    for key, value in sizes.items():
        if zero.get(key) == "auto":
            zero[key] = value
    batch = ds["train_micro_batch_size_per_gpu"] * ds["gradient_accumulation_steps"] * world
    if ds.get("train_batch_size", "auto") == "auto":
        ds["train_batch_size"] = batch


def build_accelerator(cfg: TrainConfig, deepspeed: str | None = None):
    """The Accelerator of a run: plain (DDP when launched with several processes) or, with ``deepspeed``
    (zero2 | zero3 | a JSON path), DeepSpeed through accelerate's DeepSpeedPlugin, in the process group it was
    launched in (``accelerate launch``, ``torchrun``) or, in one plain process, a group of one. Without CUDA,
    DeepSpeed runs on its CPU accelerator (``DS_ACCELERATOR=cpu``) with the gloo backend. Gradient accumulation is
    accelerate's (DeepSpeed's inside its engine): ``optim.grad_accum`` micro-batches per optimizer step."""
    from accelerate import Accelerator
    from accelerate.utils import DeepSpeedPlugin, DistributedDataParallelKwargs, InitProcessGroupKwargs

    precision = mixed_precision(cfg.precision)
    _reset_accelerate_state()
    # single-task batches leave parts of the model unused (e.g. the space head on QA): DDP must allow it
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)]
    if deepspeed is None:
        cpu, ga = not torch.cuda.is_available(), cfg.optim.grad_accum
        return Accelerator(mixed_precision=precision, cpu=cpu, kwargs_handlers=handlers, gradient_accumulation_steps=ga)
    plugin = DeepSpeedPlugin(hf_ds_config=load_deepspeed_config(deepspeed, cfg, precision))
    if not torch.cuda.is_available():  # accelerate names no process-group backend on a CPU machine
        handlers.append(InitProcessGroupKwargs(backend="gloo"))
    ga = cfg.optim.grad_accum  # the same as the JSON's (load_deepspeed_config)
    return Accelerator(
        mixed_precision=precision, deepspeed_plugin=plugin, kwargs_handlers=handlers, gradient_accumulation_steps=ga
    )


def _launcher_deepspeed() -> str | None:
    """The DeepSpeed config of ``accelerate launch --use_deepspeed --deepspeed_config_file F`` (None otherwise)."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() != "true":
        return None
    path = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
    if not path or path == "none":
        raise SpaceVLLMError("accelerate launch --use_deepspeed: pass --deepspeed zero2|zero3|JSON to spacevllm train")
    return path


@contextmanager
def deepspeed_env(deepspeed: str | None):
    """The environment of a DeepSpeed run, restored after: DS_ACCELERATOR=cpu without CUDA and, in a plain process
    (no launcher), the rank variables of a group of one, as a launcher would set them (DeepSpeed reads LOCAL_RANK
    whenever it builds a ZeRO-3 model). accelerate's own ``ACCELERATE_USE_DEEPSPEED`` flag is restored too, so
    that a later run in this process is not taken for a DeepSpeed one, and transformers' ZeRO-3 flag is dropped at
    the end, so that models loaded later in this process are whole."""
    keys = ("ACCELERATE_USE_DEEPSPEED", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    saved = {k: os.environ.get(k) for k in keys}
    if deepspeed is not None:
        if not torch.cuda.is_available():
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        if "LOCAL_RANK" not in os.environ:
            port = os.environ.get("MASTER_PORT") or str(_free_port())
            os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_PORT=port)
            os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    try:
        yield
    finally:
        if deepspeed is not None:
            _unset_zero3_flag()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reset_accelerate_state() -> None:
    """accelerate keeps process-wide states (process group settings, precision, DeepSpeed plugin, accumulation); a
    second in-process run (tests, notebooks) with other settings starts from fresh ones (an initialized
    torch.distributed group is reused). transformers' global ZeRO-3 flag of an earlier DeepSpeed run is dropped."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    _unset_zero3_flag()


def _unset_zero3_flag() -> None:
    """Drop transformers' global DeepSpeed config (while set, every model it builds is partitioned by ZeRO-3)."""
    from transformers.integrations import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()


def mixed_precision(precision: str) -> str:
    """accelerate's mixed_precision for ``precision`` ("auto": bf16 on a GPU that supports it, else "no")."""
    if precision == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    if precision not in ("bf16", "fp16", "no"):
        raise SpaceVLLMError(f"config: precision must be auto, bf16, fp16 or no, got {precision!r}")
    return precision


# --- the output folder: one run per folder ------------------------------------------------------------------

RUN_FILE = "run.json"  # OUT/run.json: {"run": hash, "config": the identity below}
# keys that do not change what a run computes (a resume may change them); every other key is the run's identity
NOT_IDENTITY = ("out_dir", "threads", "log_every", "save_every", "keep_checkpoints", "data.num_workers")
# what a run writes into OUT (removed by --overwrite, and before a fresh start)
RUN_OUTPUTS = ("checkpoints", "final", "init", "log.jsonl", "config.yaml", RUN_FILE)


def run_identity(cfg: TrainConfig) -> dict:
    """The resolved config without ``NOT_IDENTITY``: two runs with the same identity compute the same thing."""
    config = dataclasses.asdict(cfg)
    for key in NOT_IDENTITY:
        *path, name = key.split(".")
        target = config
        for part in path:
            target = target[part]
        target.pop(name, None)
    return config


def run_hash(identity: dict) -> str:
    """A short hash of a run identity (sorted JSON)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_out_dir(cfg: TrainConfig, resume: bool, overwrite: bool) -> str:
    """What to do with ``cfg.out_dir``: "resume" (continue its run), "fresh" (no run there: start; leftovers of
    a run that never checkpointed are replaced) or "overwrite". A folder holding a run (a checkpoint or final/)
    is refused without ``resume`` or ``overwrite``, and with ``resume`` when that run's identity
    (:func:`run_identity`, recorded in OUT/run.json) differs from ``cfg``'s. Reads only (every process calls it)."""
    out = Path(cfg.out_dir)
    if resume and overwrite:
        raise SpaceVLLMError("--resume and --overwrite exclude each other")
    finished, last = (out / "final").is_dir(), ckpt.latest_checkpoint(out)
    if not (finished or last):
        return "fresh"
    if overwrite:
        return "overwrite"
    held = "a finished run (final/ exists)" if finished else f"a run stopped at step {ckpt.read_step(last)}"
    if not resume:
        raise SpaceVLLMError(
            f"{out}: holds {held}: pass --resume to continue it, --overwrite to replace it, or choose another --out"
        )
    theirs = _recorded_identity(out)
    if theirs is None:
        raise SpaceVLLMError(f"{out}: holds {held} without {RUN_FILE} (an older version): --overwrite to replace it")
    differ = _differing_keys(theirs, run_identity(cfg))
    if differ:
        raise SpaceVLLMError(
            f"{out}: holds another run ({held}; its config differs in {', '.join(differ[:4])}): resume it with its "
            "own config, or pass --overwrite to replace it, or choose another --out"
        )
    return "resume"


def _recorded_identity(out: Path) -> dict | None:
    path = out / RUN_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _differing_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    keys = []
    for key in sorted(set(a) | set(b), key=str):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict) and key in ("model", "data", "optim"):
            keys += _differing_keys(x, y, f"{prefix}{key}.")
        elif x != y:
            keys.append(f"{prefix}{key}")
    return keys


def clear_run(out: Path) -> None:
    """Remove a run's outputs (``RUN_OUTPUTS``) from ``out``; anything else in the folder stays."""
    for name in RUN_OUTPUTS:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


# --- the loop --------------------------------------------------------------------------------------------------


def train(
    cfg: TrainConfig,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    deepspeed: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Run training; returns ``OUT/final`` (or the last checkpoint when stopped early).

    ``resume``: continue the run in OUT from its newest checkpoint; ``overwrite``: replace the run in OUT; with
    neither, a folder holding a run is refused (:func:`check_out_dir`). ``stop_after``: save a checkpoint and stop
    after this optimizer step (a planned interruption: time-sliced runs, the resume test); the schedule still
    spans ``optim.max_steps``. ``deepspeed``: zero2 | zero3 | a DeepSpeed JSON path (see :func:`build_accelerator`);
    None = plain accelerate (one process, or DDP under ``accelerate launch`` / ``torchrun``).
    """
    validate_config(cfg)  # configs built in code; load_config already checked a file's
    if stop_after is not None:
        check_flag("--stop-after", stop_after, Rule(kind=int, ge=1))
    mode = check_out_dir(cfg, resume, overwrite)
    check_world(cfg)
    check_inputs(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    deepspeed = deepspeed or _launcher_deepspeed()
    with deepspeed_env(deepspeed):
        return _train(cfg, build_accelerator(cfg, deepspeed), mode, progress, stop_after)


def _train(cfg: TrainConfig, acc, mode: str, progress: bool, stop_after: int | None) -> Path:
    from accelerate.utils import set_seed

    out, identity = Path(cfg.out_dir), run_identity(cfg)
    run = run_hash(identity)
    last = ckpt.latest_checkpoint(out, run) if mode == "resume" else None
    if last is not None:
        _check_same_launch(last, acc)
    if acc.is_main_process:
        if mode != "resume":
            clear_run(out)  # no other run's log, init model or checkpoints mix into this one
        build_data(cfg)
        if last is None:
            set_seed(cfg.seed)
            with _no_zero3_init(acc):  # the tiny checkpoint is built whole, then loaded (partitioned) by all
                _build_model_dir(cfg)
    acc.wait_for_everyone()
    set_seed(cfg.seed)
    model, processor, optimizer, scheduler, counts = _prepared(cfg, acc, last)
    state = ckpt.read_state(last) if last is not None else {"step": 0}
    step = int(state["step"])
    loader = _loader(cfg, processor, acc.unwrap_model(model).config, step, acc)
    batches = iter(loader)  # iter() draws a seed
    if last is not None:  # after all setup: exactly where the straight run stood
        _restore(acc, last)
    if acc.is_main_process:
        _start_log(cfg, out, step, {"run": run, "config": identity})
        print(describe_run(cfg, acc, len(loader.dataset), counts))
    start = (step, state.get("train_s", 0.0))
    step = _loop(cfg, acc, model, processor, optimizer, scheduler, batches, start, progress, stop_after, run)
    if step < cfg.optim.max_steps:
        return ckpt.checkpoint_dir(out, step)
    final = out / "final"
    ckpt.save_model(acc, model, processor, final)
    return final


def _prepared(cfg: TrainConfig, acc, last: Path | None):
    """(model, processor, optimizer, scheduler, trainable counts by part): built (from ``last/model`` on resume),
    the DeepSpeed sizes filled, model and optimizer prepared by accelerate, the scheduler registered for
    save_state. A checkpoint of the older ``training.pt`` format loads its optimizer and scheduler here."""
    model, processor = build_model(cfg, init_dir=last / "model" if last else None)
    optimizer, scheduler = build_optimizer(cfg, model)
    counts = trainable_by_part(optimizer)
    plugin = acc.state.deepspeed_plugin
    if plugin is not None:
        fill_model_sizes(plugin.deepspeed_config, model.config.text_config.hidden_size, acc.num_processes)
    if last is not None and not ckpt.has_accelerate_state(last):
        state = ckpt.load_training_state(last)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    model, optimizer = acc.prepare(model, optimizer)
    ckpt.register_state(acc, scheduler)
    return model, processor, optimizer, scheduler, counts


def _restore(acc, last: Path) -> None:
    """RNG states (and optimizer, scheduler, DeepSpeed engine) of checkpoint ``last``."""
    if ckpt.has_accelerate_state(last):
        ckpt.load_state(acc, last)
    else:  # the older format
        ckpt.set_rng_state(ckpt.load_training_state(last)["rng"])


def backend_name(acc) -> str:
    """ "plain" (one process or DDP) or "zeroN" (DeepSpeed ZeRO stage N)."""
    plugin = acc.state.deepspeed_plugin
    return f"zero{plugin.zero_stage}" if plugin is not None else "plain"


def _check_same_launch(last: Path, acc) -> None:
    """A checkpoint's optimizer state is per backend and per process (ZeRO shards, RNG states): resume it with the
    launch that wrote it."""
    state = json.loads((last / "state.json").read_text(encoding="utf-8"))
    written = (state.get("backend", "plain"), state.get("processes", acc.num_processes))
    if written != (backend_name(acc), acc.num_processes):
        raise SpaceVLLMError(
            f"{last}: written by a {written[0]} run of {written[1]} processes, resumed as {backend_name(acc)} with "
            f"{acc.num_processes}: resume with the same --deepspeed and process count (or start from its model/ "
            "with --init)"
        )


def describe_run(cfg: TrainConfig, acc, records: int, counts: dict[str, int]) -> str:
    """Lines printed at the start: global batch (processes x micro-batch x accumulation), steps per epoch
    (records / global batch), the backend and the trainable parameters of each part."""
    o, w = cfg.optim, acc.num_processes
    batch = w * o.batch_size * o.grad_accum
    backend = f"DeepSpeed ZeRO-{acc.state.deepspeed_plugin.zero_stage}" if acc.state.deepspeed_plugin else "plain"
    lines = [
        f"global batch {batch} = {w} processes x {o.batch_size} micro-batch x {o.grad_accum} accumulation ({backend})",
        f"steps per epoch {records / batch:.1f} = {records} records / {batch}; max_steps {o.max_steps}",
    ]
    parts = check_parts(o.parts)
    for part, n in counts.items():
        lr = parts.get(part, {}).get("lr") or o.lr
        lines.append(f"trainable {part}: {n:,} parameters, lr {lr:g}")
    lines += [f"frozen {part}" for part, s in parts.items() if s["freeze"]]
    return "\n".join(lines)


@contextmanager
def _no_zero3_init(acc):
    """A context in which transformers builds models whole, also under ZeRO-3 (it partitions every model it builds
    while accelerate's ZeRO-3 config is registered)."""
    plugin = acc.state.deepspeed_plugin
    if plugin is None or not plugin.is_zero3_init_enabled():
        yield
        return
    _unset_zero3_flag()
    try:
        yield
    finally:
        plugin.set_deepspeed_weakref()


def _build_model_dir(cfg: TrainConfig) -> None:
    if not cfg.model.init:
        _build_tiny(cfg)


class StepBatches:
    """Batch sampler: each of ``batches`` (one optimizer step's samples of this process, ``k * b`` indices) cut into
    ``k`` micro-batches of ``b``. So (micro-batch b, accumulation k) sees exactly the samples of (b*k, 1)."""

    def __init__(self, batches, k: int):
        self.batches, self.k = batches, k

    def __len__(self) -> int:
        return len(self.batches) * self.k

    def __iter__(self):
        for batch in self.batches:
            b = len(batch) // self.k
            for j in range(self.k):
                yield batch[j * b : (j + 1) * b]


def _loader(cfg: TrainConfig, processor, model_config, step: int, acc):
    """DataLoader of this process's micro-batches from optimizer step ``step`` to ``max_steps`` (not prepared by
    accelerate: the sampler already shards by process)."""
    n = cfg.data.num_frames or int(model_config.num_frames)
    text_coords = getattr(model_config, "query_mode", "interleaved") == "none"
    d, o = cfg.data, cfg.optim
    ds = UniSTGDataset(d.train, n, frame_size=d.frame_size, text_coords=text_coords, cache_frames=d.cache_frames)
    sampler = MixtureSampler(ds.tasks, cfg.data.task_weights, o.batch_size * o.grad_accum, cfg.seed)
    steps = ShardedBatches(sampler, step, o.max_steps - step, acc.process_index, acc.num_processes)
    return torch.utils.data.DataLoader(
        ds,
        batch_sampler=StepBatches(steps, o.grad_accum),
        collate_fn=Collator(processor),
        num_workers=d.num_workers,
        persistent_workers=False,
    )


def _loop(cfg, acc, model, processor, optimizer, scheduler, batches, start, progress, stop_after=None, run=None) -> int:
    """Optimizer steps from ``start = (step, seconds of training up to it)`` until ``max_steps`` (or
    ``stop_after``); returns the last step done.

    accelerate counts the micro-batches (``accelerator.accumulate``): gradients are synchronized, the optimizer
    steps and the loss is scaled by 1/k (DeepSpeed: inside its engine) once every ``optim.grad_accum``. The
    DataLoader is not prepared, so accelerate never learns where it ends (GradientState.end_of_dataloader stays
    False): the sampler yields whole steps (k micro-batches each) and every step ends on a synchronizing one."""
    o, ga = cfg.optim, cfg.optim.grad_accum
    step, train_s0 = start
    bar = progress_bar(total=o.max_steps, initial=step, enabled=progress and acc.is_main_process, desc="train")
    terms: dict[str, float] = {}
    t0, seen0 = time.perf_counter(), step
    model.train()
    for batch in batches:
        grad_norm = _micro_step(acc, model, optimizer, batch, terms, o.max_grad_norm)
        if not acc.sync_gradients:
            continue
        scheduler.step()
        step += 1
        logged = _reduce_terms(acc, terms, ga)
        if grad_norm is not None:
            logged["grad_norm"] = float(grad_norm)
        terms.clear()
        bar.update(1)
        bar.set_postfix({k_.removeprefix("loss_"): f"{v:.3f}" for k_, v in logged.items()}, refresh=False)
        elapsed = time.perf_counter() - t0
        rate = (step - seen0) * o.batch_size * ga * acc.num_processes / elapsed
        if acc.is_main_process and (step % cfg.log_every == 0 or step == o.max_steps):
            _log(cfg, step, scheduler.get_last_lr()[0], logged, rate, train_s0 + elapsed)
        if step % cfg.save_every == 0 or step in (o.max_steps, stop_after):
            _checkpoint(cfg, acc, model, processor, step, logged, run, train_s0 + elapsed)
        if step == stop_after:
            break
    bar.close()
    return step


def _micro_step(acc, model, optimizer, batch, terms: dict, max_grad_norm):
    """Forward and backward of one micro-batch; at the last micro-batch of a step, clip and step the optimizer.
    Returns the gradient norm before clipping at a step (None between steps or when not measured)."""
    from accelerate.utils import send_to_device

    grad_norm = None
    with acc.accumulate(model):
        with acc.autocast():
            output = model(**send_to_device(batch, acc.device))
        acc.backward(output.loss)
        if acc.sync_gradients:
            # DeepSpeed clips inside its step (gradient_clipping) and reports the norm it measured
            grad_norm = acc.clip_grad_norm_(model.parameters(), max_grad_norm or float("inf"))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    terms["loss"] = terms.get("loss", 0.0) + float(output.loss.detach())
    for name, value in (getattr(output, "loss_dict", None) or {}).items():
        terms[name] = terms.get(name, 0.0) + float(value.detach() if torch.is_tensor(value) else value)
    return grad_norm


# eq. 5-6 (+ the CPU-scale pointer); a term a batch lacks counts 0
LOSS_TERMS = ("loss", "loss_time", "loss_space", "loss_l1", "loss_giou", "loss_pointer", "loss_cell", "loss_inside")


def _reduce_terms(acc, terms: dict, ga: int) -> dict[str, float]:
    """Mean of each loss term over the micro-batches of this step and over processes (fixed names, so every
    process contributes a tensor of the same shape)."""
    names = [n for n in LOSS_TERMS if n in terms] if acc.num_processes == 1 else list(LOSS_TERMS)
    local = torch.tensor([terms.get(n, 0.0) / ga for n in names], dtype=torch.float64, device=acc.device)
    mean = acc.reduce(local, reduction="mean") if acc.num_processes > 1 else local
    return dict(zip(names, mean.tolist()))


def _log(cfg, step: int, lr: float, logged: dict, rate: float, train_s: float) -> None:
    """Append one row to ``OUT/log.jsonl``: ``samples_per_s`` since this process started training, ``train_s``
    since step 0 (across resumes)."""
    row = {"step": step, "lr": lr, **logged, "samples_per_s": round(rate, 3), "train_s": round(train_s, 3)}
    row["peak_rss_mb"] = peak_rss_mb()
    with open(Path(cfg.out_dir) / "log.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MB; Linux ru_maxrss is in KB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _start_log(cfg: TrainConfig, out: Path, step: int, run: dict) -> None:
    """Write the run identity (``run.json``) and the resolved config; on resume drop log lines past the
    checkpoint step (they will be redone)."""
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / RUN_FILE, json.dumps(run, indent=2, default=str) + "\n")
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


def _checkpoint(cfg, acc, model, processor, step, logged, run=None, train_s: float = 0.0) -> None:
    samples = step * cfg.optim.grad_accum * cfg.optim.batch_size * acc.num_processes
    ckpt.save_run_checkpoint(
        acc,
        cfg.out_dir,
        step,
        model=model,
        processor=processor,
        samples_seen=samples,
        extra={
            "train_s": round(train_s, 3),
            "losses": logged,
            "backend": backend_name(acc),
            "processes": acc.num_processes,
            "run": run,
        },
    )
    if acc.is_main_process:
        ckpt.prune_checkpoints(cfg.out_dir, cfg.keep_checkpoints, run)
    acc.wait_for_everyone()
