"""`spacevllm convert` on a tiny random LLaVA-OneVision saved by transformers itself."""

import numpy as np
import torch
from transformers import LlavaOnevisionForConditionalGeneration

from spacevllm.cli import main
from spacevllm.modeling import SpaceVLLMForConditionalGeneration, SpaceVLLMProcessor
from spacevllm.modeling.tiny import build_tiny_checkpoint


def test_convert_without_queries_keeps_text_logits(tmp_path):
    src = build_tiny_checkpoint(tmp_path / "src", spacevllm=False, image_size=32, patch_size=8)
    dst = tmp_path / "dst"
    assert (
        main(["convert", "--llava-onevision", str(src), "--out", str(dst), "--num-frames", "4", "--query-mode", "none"])
        == 0
    )
    source = LlavaOnevisionForConditionalGeneration.from_pretrained(src).eval()
    model = SpaceVLLMForConditionalGeneration.from_pretrained(dst).eval()
    processor = SpaceVLLMProcessor.from_pretrained(dst)
    frames = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    b = processor(videos=[frames], times=[np.arange(4) * 0.5], durations=[2.0], queries=["the red square"])
    inputs = {k: b[k] for k in ("input_ids", "attention_mask", "pixel_values_videos")}
    with torch.no_grad():
        ref = source(**inputs).logits
        got = model(**inputs).logits
    torch.testing.assert_close(got[..., : ref.shape[-1]], ref)


def test_convert_adds_queries_and_runs(tmp_path):
    src = build_tiny_checkpoint(tmp_path / "src", spacevllm=False, image_size=32, patch_size=8)
    assert main(["convert", "--llava-onevision", str(src), "--out", str(tmp_path / "dst"), "--num-frames", "4"]) == 0
    model = SpaceVLLMForConditionalGeneration.from_pretrained(tmp_path / "dst")
    processor = SpaceVLLMProcessor.from_pretrained(tmp_path / "dst")
    assert len(model.config.query_token_ids) == 5
    b = processor(videos=[np.zeros((4, 32, 32, 3), np.uint8)], times=[np.arange(4.0)], durations=[4.0], queries=["x"])
    assert model(**b).pred_boxes.shape == (1, 4, 4)


def test_convert_errors(tmp_path, capsys):
    assert main(["convert", "--llava-onevision", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    spacevllm_ckpt = build_tiny_checkpoint(tmp_path / "already")
    assert main(["convert", "--llava-onevision", str(spacevllm_ckpt), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "expected 'llava_onevision'" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
