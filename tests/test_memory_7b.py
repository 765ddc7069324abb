"""benchmarks/memory_7b.py: the LLaVA-Video-7B SpaceVLLM architecture on the meta device and its memory plan."""

from __future__ import annotations

import json

import pytest
from helpers import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("memory_7b")


@pytest.fixture(scope="module")
def result(bench):
    return bench.plan(frames=(16, 64), gpus=8)


def test_parameters_by_part_are_llava_video_7b_plus_the_space_head(result):
    p = result["parameters"]
    assert 8.03e9 <= p["total"] <= 8.07e9
    assert 7.0e9 < p["llm"] < 7.1e9 and p["lm_head"] == 152064 * 3584
    assert 3.9e8 < p["vision_tower"] < 4.0e8 and 1.6e7 < p["projector"] < 1.8e7
    assert p["space_decoder"] == 2 * (3584 * 3584 + 3584) + 4 * 3584 + 4  # eq. 4: h -> h -> h -> 4


def test_sequence_counts_the_processor_layout(result):
    seq = {s["frames"]: s for s in result["sequence"]}
    assert seq[64]["visual"] == 64 * 196 + 1 and seq[64]["queries"] == 64  # interleaved, one newline feature
    assert seq[64]["patches"] == 64 * 27 * 27
    assert 400 < seq[64]["time_instruction"] < 500 and 10 <= seq[64]["answer"] <= 16
    assert seq[64]["total"] == seq[64]["visual"] + seq[64]["queries"] + seq[64]["text"] + seq[64]["answer"]
    assert 13_000 < seq[64]["total"] < 13_300 and seq[16]["total"] < seq[64]["total"] / 3


def test_qwen2_token_rule_splits_digits(bench):
    assert bench.count_text_tokens("from 12.3 to 17.8 seconds<|im_end|>") == 14
    assert bench.count_text_tokens("0.28s,19.96s.Please") == 6 + 6 + 2  # ".Please": punctuation + word = 2


def test_memory_ordering(result):
    rows = {(r["frames"], r["strategy"], r["checkpointing"]): r for r in result["memory"]}
    assert len(rows) == 2 * 3 * 2
    for frames in (16, 64):
        for ckpt in (False, True):
            total = [rows[frames, s, ckpt]["total_gib"] for s in ("zero3", "zero2", "ddp")]
            assert total[0] < total[1] < total[2]
        for s in ("ddp", "zero2", "zero3"):
            on, off = rows[frames, s, True], rows[frames, s, False]
            assert on["activations_gib"] < off["activations_gib"] / 5
            assert on["total_gib"] < on["total_full_logits_gib"]
    assert rows[64, "zero3", True]["fits"] and not rows[64, "ddp", True]["fits"]


def test_model_states_formula(bench):
    assert bench.model_state_bytes("ddp", 8, 8, 8) == 128
    assert bench.model_state_bytes("zero2", 8, 8, 8) == 16 + 14
    assert bench.model_state_bytes("zero3", 8, 8, 8) == 16
    assert bench.model_state_bytes("zero3", 8, 0, 8) == 2  # nothing trainable: bf16 weights only


def test_cli_json_and_markdown(bench, capsys):
    assert bench.main(["--frames", "16", "--json", "--freeze-vision"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["freeze_vision"] and [s["frames"] for s in out["sequence"]] == [16]
    assert bench.main(["--frames", "16"]) == 0
    text = capsys.readouterr().out
    assert "| 16 | zero3 | yes |" in text and "| total | 8.056B |" in text
    with pytest.raises(SystemExit):
        bench.main(["--gpus", "0"])
