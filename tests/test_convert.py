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


SPARE = 16  # spare embedding rows beyond the tokenizer, as Qwen2's (152,064 rows for ~151,650 tokens at 7B)


def _source_with_spare_rows(path, dtype=torch.float32):
    """Tiny LLaVA-OneVision whose embeddings have SPARE rows beyond its tokenizer, those rows filled with 100."""
    from transformers import LlavaOnevisionConfig

    from spacevllm.modeling.tiny import build_tokenizer, tiny_llava_config

    tokenizer = build_tokenizer()
    kw = tiny_llava_config(tokenizer)
    kw["text_config"]["vocab_size"] = len(tokenizer) + SPARE
    model = LlavaOnevisionForConditionalGeneration(LlavaOnevisionConfig(**kw)).to(dtype)
    with torch.no_grad():
        for emb in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
            emb[len(tokenizer) :] = 100.0
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path, len(tokenizer)


def test_query_rows_are_the_mean_of_the_tokenizer_rows_not_of_the_spare_rows(tmp_path):
    src, n_tok = _source_with_spare_rows(tmp_path / "src")
    assert main(["convert", "--source", str(src), "--out", str(tmp_path / "dst"), "--num-frames", "4"]) == 0
    source = LlavaOnevisionForConditionalGeneration.from_pretrained(src)
    model = SpaceVLLMForConditionalGeneration.from_pretrained(tmp_path / "dst")
    ids = model.config.query_token_ids
    assert ids == list(range(n_tok, n_tok + 5))  # inside the spare rows: no resize
    for get in ("get_input_embeddings", "get_output_embeddings"):
        old, new = getattr(source, get)().weight, getattr(model, get)().weight
        assert new.shape == old.shape
        mean = old[:n_tok].mean(0)
        assert not torch.allclose(old.mean(0), mean)  # the spare rows would change the mean
        torch.testing.assert_close(new[ids], mean.expand(5, -1))
        torch.testing.assert_close(new[:n_tok], old[:n_tok], rtol=0, atol=0)
        assert (new[n_tok + 5 :] == 100.0).all()  # spare rows no token uses are left alone


def test_query_rows_are_the_mean_when_the_embeddings_must_grow(tmp_path):
    src = build_tiny_checkpoint(tmp_path / "src", spacevllm=False, image_size=32, patch_size=8)
    assert main(["convert", "--source", str(src), "--out", str(tmp_path / "dst"), "--num-frames", "4"]) == 0
    old = LlavaOnevisionForConditionalGeneration.from_pretrained(src).get_output_embeddings().weight
    new = SpaceVLLMForConditionalGeneration.from_pretrained(tmp_path / "dst").get_output_embeddings().weight
    assert new.shape[0] == old.shape[0] + 5
    torch.testing.assert_close(new[old.shape[0] :], old.mean(0).expand(5, -1))


def test_convert_keeps_the_dtype_and_initialises_only_the_space_head(tmp_path, monkeypatch):
    """bf16 in, bf16 out; every source weight bit-identical; the only random initialisation is the space head's."""
    from safetensors import safe_open

    src, n_tok = _source_with_spare_rows(tmp_path / "src", torch.bfloat16)
    drawn = []  # elements of real (not meta-device) tensors filled by a random initialiser during the conversion
    for name in ("normal_", "uniform_"):
        original = getattr(torch.Tensor, name)

        def record(self, *args, _original=original, **kwargs):
            drawn.append(0 if self.is_meta else self.numel())
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, record)
    assert main(["convert", "--source", str(src), "--out", str(tmp_path / "dst"), "--num-frames", "4"]) == 0
    monkeypatch.undo()
    with safe_open(tmp_path / "dst" / "model.safetensors", framework="pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
    source = LlavaOnevisionForConditionalGeneration.from_pretrained(src).state_dict()
    model = SpaceVLLMForConditionalGeneration.from_pretrained(tmp_path / "dst")
    assert model.dtype == torch.bfloat16
    state = model.state_dict()
    for name, value in source.items():
        rows = slice(0, n_tok) if "embed_tokens" in name or "lm_head" in name else slice(None)
        assert torch.equal(state[name][rows], value[rows]), name
    head = {k: v for k, v in state.items() if k.startswith("space_decoder.")}
    assert head and all(v.float().abs().sum() > 0 for k, v in head.items() if k.endswith("weight"))
    assert 0 < sum(drawn) <= sum(v.numel() for v in head.values())


def test_convert_reads_the_vision_model_prefix_of_older_transformers_folders(tmp_path):
    """Folders saved by transformers 4.x (the llava-hf releases) name the SigLIP weights vision_tower.vision_model.*."""
    from safetensors.torch import load_file, save_file

    src = build_tiny_checkpoint(tmp_path / "src", spacevllm=False, image_size=32, patch_size=8)
    state = load_file(src / "model.safetensors")
    old = {k.replace("vision_tower.", "vision_tower.vision_model.", 1): v for k, v in state.items()}
    assert old.keys() != state.keys()
    save_file(old, src / "model.safetensors", metadata={"format": "pt"})
    assert main(["convert", "--source", str(src), "--out", str(tmp_path / "dst"), "--num-frames", "4"]) == 0
    source = LlavaOnevisionForConditionalGeneration.from_pretrained(src).state_dict()
    model = SpaceVLLMForConditionalGeneration.from_pretrained(tmp_path / "dst").state_dict()
    for name, value in source.items():
        assert torch.equal(model[name][: value.shape[0]], value), name
