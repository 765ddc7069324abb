"""`spacevllm convert` on a tiny random LLaVA-OneVision saved by transformers itself."""

import os

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


def _frames(n=4, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (n, size, size, 3), dtype=np.uint8)


def test_finer_patches_start_from_the_coarse_patch_embedding(tmp_path):
    """A fine patch's embedding is the coarse model's embedding of that patch upsampled 2x (nearest)."""
    src = build_tiny_checkpoint(tmp_path / "coarse", image_size=32, patch_size=8, motion_input=True)
    assert main(["convert", "--finer-patches", str(src), "--out", str(tmp_path / "fine")]) == 0
    coarse = SpaceVLLMForConditionalGeneration.from_pretrained(src).eval()
    fine = SpaceVLLMForConditionalGeneration.from_pretrained(tmp_path / "fine").eval()
    assert fine.config.vision_config.patch_size == 4 and fine.config.pooled_grid == 4  # tiny default: pool 2
    x = torch.randn(2, 6, 32, 32)
    with torch.no_grad():
        got = fine.model.vision_tower.embeddings.patch_embedding(x)
        ref = coarse.model.vision_tower.embeddings.patch_embedding(torch.nn.functional.interpolate(x, scale_factor=2))
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
    pos = fine.model.vision_tower.embeddings.position_embedding.weight
    assert pos.shape == (64, coarse.config.vision_config.hidden_size)
    # every weight apart from the two embeddings is copied unchanged
    fine_state = fine.state_dict()
    for name, value in coarse.state_dict().items():
        if "patch_embedding.weight" not in name and "position_embedding" not in name:
            torch.testing.assert_close(fine_state[name], value, msg=name)


def test_finer_patches_pool_stride_sets_the_llm_tokens_per_frame(tmp_path):
    src = build_tiny_checkpoint(tmp_path / "coarse", image_size=32, patch_size=8, pool_stride=1)
    for stride, grid in ((1, 8), (2, 4), (4, 2)):
        out = tmp_path / f"fine{stride}"
        assert main(["convert", "--finer-patches", str(src), "--out", str(out), "--pool-stride", str(stride)]) == 0
        model = SpaceVLLMForConditionalGeneration.from_pretrained(out).eval()
        processor = SpaceVLLMProcessor.from_pretrained(out)
        assert model.config.pooled_grid == grid and processor.tokens_per_frame == grid * grid
        b = processor(videos=[_frames()], times=[np.arange(4) * 0.5], durations=[2.0], queries=["the red square"])
        with torch.no_grad():
            boxes = model(**b).pred_boxes
        assert boxes.shape == (1, 4, 4) and torch.isfinite(boxes).all()


def test_finer_patches_errors(tmp_path, capsys):
    src = build_tiny_checkpoint(tmp_path / "coarse", image_size=32, patch_size=8)
    assert main(["convert", "--finer-patches", str(src), "--out", str(tmp_path / "o"), "--factor", "3"]) == 2
    assert main(["convert", "--finer-patches", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["convert", "--finer-patches", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    llava = build_tiny_checkpoint(tmp_path / "llava", spacevllm=False, image_size=32, patch_size=8)
    assert main(["convert", "--finer-patches", str(llava), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--factor 3" in err and "no config.json" in err and "Traceback" not in err
    assert "checkpoint folder not found" in err and "not 'spacevllm'" in err
    assert not (tmp_path / "o").exists()


def test_converted_files_get_the_usual_permissions(tmp_path):
    """transformers writes model.safetensors through a 0600 temporary; the output folder's files follow the umask."""
    src = build_tiny_checkpoint(tmp_path / "coarse", image_size=32, patch_size=8)
    assert main(["convert", "--finer-patches", str(src), "--out", str(tmp_path / "fine")]) == 0
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "fine").iterdir()}
    assert modes["model.safetensors"] == 0o666 & ~umask, modes


def test_pool_stride_4_averages_4x4_blocks(tmp_path):
    ckpt = build_tiny_checkpoint(tmp_path / "c", image_size=32, patch_size=4, pool_stride=4)
    model = SpaceVLLMForConditionalGeneration.from_pretrained(ckpt)
    features = torch.randn(3, 64, 5)  # 3 frames, an 8x8 row-major grid, 5 channels
    pooled = model.model.apply_pooling(features)
    assert pooled.shape == (3, 4, 5) and model.config.tokens_per_frame == 4
    grid = features.reshape(3, 8, 8, 5)
    torch.testing.assert_close(pooled[:, 1], grid[:, 0:4, 4:8].mean(dim=(1, 2)))  # row 0, column 1
    torch.testing.assert_close(pooled[:, 2], grid[:, 4:8, 0:4].mean(dim=(1, 2)))  # row 1, column 0
