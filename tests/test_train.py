"""The training engine end to end on a tiny generated world: a whole run in-process through the CLI (the loss
goes down, the outputs load), and resume after an interruption reproduces the straight run's loss curve."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

from spacevllm.cli import main
from spacevllm.engine.train import build_model, config_from_dict, read_log
from spacevllm.modeling.tiny import build_tiny_checkpoint

TINY = {"num_frames": 4, "image_size": 32, "patch_size": 16, "hidden": 32, "layers": 1}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from spacevllm.data.world import generate_world

    return generate_world(tmp_path_factory.mktemp("world"), n=6, seed=4242)


def write_config(path, world, out, steps, **optim):
    cfg = {
        "seed": 0,
        "out_dir": str(out),
        "precision": "no",
        "log_every": 1,
        "save_every": 100,
        "model": {"tiny": TINY},
        "data": {"train": [str(world)], "task_weights": {"stvg": 2, "vtg": 1, "rec": 1}},
        "optim": {"lr": 3e-3, "warmup_ratio": 0.1, "max_steps": steps, "batch_size": 4, "grad_accum": 1} | optim,
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_tiny_run_loss_decreases_and_model_loads(world, tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml", world, tmp_path / "run", steps=16)
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 0
    rows = read_log(tmp_path / "run" / "log.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 17))
    assert {"loss", "loss_time", "lr", "samples_per_s"} <= set(rows[0])
    # batches mix tasks (REC has no text target, VTG no boxes), so compare each term over the steps that have it
    for term in ("loss_time", "loss_space"):
        values = [r[term] for r in rows if r[term] > 0]
        assert len(values) >= 6, term
        assert sum(values[-3:]) / 3 < sum(values[:3]) / 3, term
    assert "model saved to" in capsys.readouterr().out
    from spacevllm.modeling import SpaceVLLMForConditionalGeneration, SpaceVLLMProcessor

    SpaceVLLMForConditionalGeneration.from_pretrained(tmp_path / "run" / "final")
    SpaceVLLMProcessor.from_pretrained(tmp_path / "run" / "final")


def test_bf16_autocast_run_on_cpu_keeps_fp32_weights(world, tmp_path):
    """precision bf16 on a CPU: autocast (accelerate) trains with finite losses and saves fp32 weights."""
    from safetensors.torch import load_file

    fp32 = write_config(tmp_path / "a.yaml", world, tmp_path / "fp32", steps=1)
    assert main(["train", "--config", str(fp32), "--no-progress"]) == 0
    cfg = write_config(tmp_path / "c.yaml", world, tmp_path / "run", steps=4)
    cfg.write_text(yaml.safe_dump(yaml.safe_load(cfg.read_text()) | {"precision": "bf16"}))
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 0
    rows = read_log(tmp_path / "run" / "log.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in rows)
    first = read_log(tmp_path / "fp32" / "log.jsonl")[0]["loss"]  # same seed and batch: bf16 rounding, not a new run
    assert rows[0]["loss"] != first and rows[0]["loss"] == pytest.approx(first, rel=0.05)
    weights = load_file(tmp_path / "run" / "final" / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float32}


def test_resume_reproduces_the_straight_loss_curve(world, tmp_path):
    straight = write_config(tmp_path / "a.yaml", world, tmp_path / "a", steps=6, grad_accum=2, batch_size=2)
    assert main(["train", "--config", str(straight), "--no-progress"]) == 0
    split = write_config(tmp_path / "b.yaml", world, tmp_path / "b", steps=6, grad_accum=2, batch_size=2)
    assert main(["train", "--config", str(split), "--no-progress", "--stop-after", "3"]) == 0
    assert not (tmp_path / "b" / "final").exists()
    state = json.loads((tmp_path / "b" / "checkpoints" / "step-00000003" / "state.json").read_text())
    assert state["step"] == 3 and state["samples_seen"] == 12
    with open(tmp_path / "b" / "log.jsonl", "a") as f:  # a kill after logging step 4 but before its checkpoint
        f.write('{"step": 4, "loss": 123.0}\n{"step": 5, "lo')
    assert main(["train", "--config", str(split), "--no-progress", "--resume"]) == 0
    a, b = read_log(tmp_path / "a" / "log.jsonl"), read_log(tmp_path / "b" / "log.jsonl")
    assert [r["step"] for r in b] == list(range(1, 7))
    for ra, rb in zip(a, b):
        assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-6, abs=1e-7)
        assert ra["lr"] == pytest.approx(rb["lr"])
    # seconds of training count on from the checkpoint's across the resume (not from 0, not the killed step 4)
    seconds = [r["train_s"] for r in b]
    assert seconds[2] == state["train_s"] > 0 and seconds == sorted(seconds) and seconds[3] > seconds[2]


def test_bad_config_is_one_line_error(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"train": [str(tmp_path / "missing.jsonl")]}, "out_dir": str(tmp_path)}))
    assert main(["train", "--config", str(cfg)]) == 2
    assert "missing.jsonl" in capsys.readouterr().err


def test_warm_start_with_the_pointer_trains_it_and_logs_its_loss(world, tmp_path):
    """Stage 2 of the default recipe: ``model.init`` + ``model.overrides: {lambda_pointer}`` builds the pointer
    on a checkpoint that had none, trains with it and logs ``loss_pointer``; the final model keeps it."""
    from spacevllm.modeling import SpaceVLLMForConditionalGeneration

    stage1 = write_config(tmp_path / "a.yaml", world, tmp_path / "a", steps=2)
    assert main(["train", "--config", str(stage1), "--no-progress"]) == 0
    cfg = yaml.safe_load(stage1.read_text())
    cfg |= {"out_dir": str(tmp_path / "b"), "log_every": 1}
    cfg["model"] = {"init": str(tmp_path / "a" / "final"), "overrides": {"lambda_pointer": 1.0}}
    cfg["data"]["task_weights"] = {"stvg": 1}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(cfg | {"optim": cfg["optim"] | {"max_steps": 4}}))
    assert main(["train", "--config", str(tmp_path / "b.yaml"), "--no-progress"]) == 0
    rows = read_log(tmp_path / "b" / "log.jsonl")
    assert len(rows) == 4 and all(r["loss_pointer"] > 0 for r in rows)
    model = SpaceVLLMForConditionalGeneration.from_pretrained(tmp_path / "b" / "final")
    assert model.config.lambda_pointer == 1.0 and model.temporal_pointer is not None


def test_unknown_model_override_is_an_error(world, tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml", world, tmp_path / "c", steps=1)
    raw = yaml.safe_load(cfg.read_text())
    raw["model"]["overrides"] = {"lambda_pionter": 1.0}
    cfg.write_text(yaml.safe_dump(raw))
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 2
    assert "lambda_pionter" in capsys.readouterr().err


def test_init_flag_continues_another_model_with_the_configs_recipe(world, tmp_path):
    """``--init DIR`` replaces ``model.init``: the run starts from DIR's weights (no tiny model is built, and its
    first loss differs from a fresh tiny model's on the same seed and batch) and ``--out`` keeps it apart from the
    config's folder."""
    from spacevllm.modeling import SpaceVLLMForConditionalGeneration

    first = write_config(tmp_path / "a.yaml", world, tmp_path / "a", steps=3)
    assert main(["train", "--config", str(first), "--no-progress"]) == 0
    fresh = write_config(tmp_path / "b.yaml", world, tmp_path / "b", steps=1)
    assert main(["train", "--config", str(fresh), "--no-progress", "--seed", "7"]) == 0
    out = tmp_path / "c"
    args = ["--no-progress", "--seed", "7", "--init", str(tmp_path / "a" / "final"), "--out", str(out)]
    assert main(["train", "--config", str(fresh), *args]) == 0
    assert not (out / "init").exists() and (out / "final" / "model.safetensors").is_file()
    a = SpaceVLLMForConditionalGeneration.from_pretrained(tmp_path / "a" / "final")
    c = SpaceVLLMForConditionalGeneration.from_pretrained(out / "final")
    assert c.config.to_dict()["text_config"] == a.config.to_dict()["text_config"]
    assert read_log(out / "log.jsonl")[0]["loss"] != read_log(tmp_path / "b" / "log.jsonl")[0]["loss"]


def test_every_shipped_train_config_still_loads():
    """New config keys are optional: every config in configs/train/ loads unchanged and its parts check."""
    from pathlib import Path

    from spacevllm.engine.train import check_parts, load_config

    folder = Path(__file__).parent.parent / "src" / "spacevllm" / "configs" / "train"
    configs = sorted(folder.glob("*.yaml"))
    assert {p.name for p in configs} >= {"world.yaml", "tiny_ci.yaml", "paper_7b.yaml"}
    for path in configs:
        check_parts(load_config(path).optim.parts)


def test_parts_freeze_and_own_lr_and_the_query_rows(world, tmp_path, capsys):
    """``optim.parts``: llm frozen (its weights end exactly as loaded), vision tower at its own lr, new_tokens
    trained alone in the shared embedding matrices (only the ``<r_i>`` rows move), the start lines name each part."""
    from safetensors.torch import load_file

    parts = {"vision_tower": {"lr": 1e-4}, "llm": {"freeze": True}, "new_tokens": {"lr": 3e-3}}
    cfg = write_config(tmp_path / "c.yaml", world, tmp_path / "run", steps=3, parts=parts)
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "global batch 4 = 1 processes x 4 micro-batch x 1 accumulation" in out and "frozen llm" in out
    assert "trainable vision_tower" in out and "lr 0.0001" in out
    assert "trainable new_tokens: 320 parameters" in out  # 5 query rows x 32 wide x (input, output) embeddings
    init = load_file(tmp_path / "run" / "init" / "model.safetensors")
    final = load_file(tmp_path / "run" / "final" / "model.safetensors")
    ids = yaml.safe_load((tmp_path / "run" / "init" / "config.json").read_text())["query_token_ids"]
    others = [i for i in range(init["lm_head.weight"].shape[0]) if i not in ids]
    for name in ("model.language_model.embed_tokens.weight", "lm_head.weight"):
        assert torch.equal(final[name][others], init[name][others]), name
        assert not torch.equal(final[name][ids], init[name][ids]), name
    llm = [n for n in init if ".language_model." in n and "embed_tokens" not in n]
    assert llm and all(torch.equal(final[n], init[n]) for n in llm)
    assert not torch.equal(
        final["model.vision_tower.embeddings.patch_embedding.weight"],
        init["model.vision_tower.embeddings.patch_embedding.weight"],
    )
    assert not torch.equal(
        final["space_decoder.space_head.layers.2.bias"], init["space_decoder.space_head.layers.2.bias"]
    )


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ({"visual": {"lr": 1e-4}}, "unknown part 'visual'"),
        ({"llm": {"rate": 1e-4}}, "optim.parts.llm: unknown key 'rate'"),
        ({"llm": {"lr": "fast"}}, "optim.parts.llm.lr must be a positive number, got 'fast'"),
        ({"new_tokens": {"lr": 1e-4}}, "optim.parts.new_tokens"),
    ],
)
def test_bad_parts_are_one_line_errors(world, tmp_path, capsys, parts, message):
    cfg = write_config(tmp_path / "c.yaml", world, tmp_path / "run", steps=1, parts=parts)
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_bf16_init_folder_trains_in_fp32(world, tmp_path):
    """convert writes the source's dtype (bf16 at 7B); training loads fp32 master weights whatever the folder holds."""
    cfg = config_from_dict({"data": {"train": [str(world)]}})
    init = build_tiny_checkpoint(tmp_path / "init", num_frames=4, image_size=32, patch_size=16, hidden=32, layers=1)
    model, processor = build_model(cfg, init_dir=init)
    model.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    processor.save_pretrained(tmp_path / "bf16")
    trained, _ = build_model(cfg, init_dir=tmp_path / "bf16")
    assert {p.dtype for p in trained.parameters()} == {torch.float32}
