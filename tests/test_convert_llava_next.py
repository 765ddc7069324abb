"""`spacevllm convert` on a tiny random checkpoint written in LLaVA-NeXT's own `llava_qwen` format.

The checkpoint is written here from a tiny random transformers LLaVA-OneVision model: its weights under LLaVA-NeXT's
module names (the inverse of the converter's key map, written out independently below) in two safetensors shards
with an index, a config.json with the llava_qwen / mm_* fields, and a tokenizer without <image>/<video> tokens
(LLaVA-NeXT marks images with a -200 id). The converted model is compared with the model it was written from.
"""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, PreTrainedTokenizerFast

from spacevllm.cli import main
from spacevllm.modeling import SpaceVLLMForConditionalGeneration, SpaceVLLMProcessor
from spacevllm.modeling.tiny import BASE_CORPUS, tiny_llava_config

SPARE = 12  # spare embedding rows: <image>, <video> and 5 query tokens fit without a resize
FRAMES = 4
TO_LLAVA_NEXT = {  # transformers / SpaceVLLM name prefix -> LLaVA-NeXT's
    "model.language_model.embed_tokens.": "model.embed_tokens.",
    "model.language_model.layers.": "model.layers.",
    "model.language_model.norm.": "model.norm.",
    "model.vision_tower.": "model.vision_tower.vision_tower.vision_model.",
    "model.multi_modal_projector.linear_1.": "model.mm_projector.0.",
    "model.multi_modal_projector.linear_2.": "model.mm_projector.2.",
    "model.image_newline": "model.image_newline",
    "lm_head.": "lm_head.",
}
# LLaVA-NeXT scripts/video/train/SO400M_Qwen2_7B_ov_to_video_am9.sh (pool mode: llava/train/train.py's default)
LLAVA_VIDEO_7B = dict(mm_spatial_pool_mode="bilinear", mm_newline_position="grid", mm_patch_merge_type="spatial_unpad")


def qwen_like_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE with Qwen2's chat tokens only (no <image>/<video>)."""
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator([" ".join(BASE_CORPUS + ["0123456789 . , :"])] * 2, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")


def reference_model(tokenizer, tied=False) -> LlavaOnevisionForConditionalGeneration:
    """Tiny random LLaVA-OneVision: 40 px frames, 8 px patches (a 5x5 grid: ceil and floor pooling differ), SigLIP
    with LLaVA-NeXT's fixed 16 heads, <image>/<video> ids where the converter will add them."""
    kw = tiny_llava_config(tokenizer, image_size=40, patch_size=8)
    kw["vision_config"]["num_attention_heads"] = 16
    kw["text_config"] |= {"vocab_size": len(tokenizer) + SPARE, "tie_word_embeddings": tied, "num_key_value_heads": 2}
    kw |= {"image_token_index": len(tokenizer), "video_token_index": len(tokenizer) + 1, "tie_word_embeddings": tied}
    torch.manual_seed(0)
    model = LlavaOnevisionForConditionalGeneration(LlavaOnevisionConfig(**kw)).eval()
    with torch.no_grad():  # spare rows unlike the trained ones, so their mean would differ
        model.get_input_embeddings().weight[len(tokenizer) :] = 50.0
    return model


def to_llava_next_name(name: str) -> str:
    prefix = next(p for p in TO_LLAVA_NEXT if name.startswith(p))
    return TO_LLAVA_NEXT[prefix] + name[len(prefix) :]


def write_llava_next(path, model, tokenizer, layout: dict, tied=False):
    """Save ``model`` as LLaVA-NeXT's LlavaQwenForCausalLM would: two shards + index, llava_qwen config.json."""
    path.mkdir(parents=True)
    state = {to_llava_next_name(k): v.contiguous() for k, v in model.state_dict().items()}
    if "unpad" not in layout.get("mm_patch_merge_type", "flat"):
        del state["model.image_newline"]  # LlavaMetaModel creates it only for "unpad"
    if tied:
        del state["lm_head.weight"]
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, keys in shards.items():
        save_file({k: state[k] for k in keys}, path / file, metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {k: f for f, keys in shards.items() for k in keys}}
    (path / "model.safetensors.index.json").write_text(json.dumps(index))
    text, vision = model.config.text_config, model.config.vision_config
    config = {
        "architectures": ["LlavaQwenForCausalLM"],
        "model_type": "llava_qwen",
        "hidden_size": text.hidden_size,
        "intermediate_size": text.intermediate_size,
        "num_hidden_layers": text.num_hidden_layers,
        "num_attention_heads": text.num_attention_heads,
        "num_key_value_heads": text.num_key_value_heads,
        "vocab_size": text.vocab_size,
        "max_position_embeddings": 4096,
        "rms_norm_eps": text.rms_norm_eps,
        "rope_theta": text.rope_parameters["rope_theta"],
        "tie_word_embeddings": tied,
        "torch_dtype": "float32",
        "mm_vision_tower": "google/siglip-so400m-patch14-384",
        "mm_hidden_size": vision.hidden_size,
        "mm_projector_type": "mlp2x_gelu",
        "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "patch",
        "image_aspect_ratio": "anyres_max_9",
        "mm_spatial_pool_stride": 2,
        "add_faster_video": False,
        **layout,
    }
    (path / "config.json").write_text(json.dumps(config))
    tokenizer.save_pretrained(path)
    return path


def convert(tmp_path, layout=LLAVA_VIDEO_7B, tied=False, query_mode="interleaved"):
    """(reference LLaVA-OneVision, converted SpaceVLLM, its processor, source tokenizer length)."""
    tokenizer = qwen_like_tokenizer()
    ref = reference_model(tokenizer, tied)
    src = write_llava_next(tmp_path / "src", ref, tokenizer, layout, tied)
    dst = tmp_path / "dst"
    args = ["--num-frames", str(FRAMES), "--query-mode", query_mode]
    assert main(["convert", "--source", str(src), "--out", str(dst), *args]) == 0
    model = SpaceVLLMForConditionalGeneration.from_pretrained(dst).eval()
    return ref, model, SpaceVLLMProcessor.from_pretrained(dst), len(tokenizer)


def batch(processor, frames=FRAMES):
    video = np.random.default_rng(0).integers(0, 255, (frames, 40, 40, 3), dtype=np.uint8)
    b = processor(videos=[video], times=[np.arange(frames) * 0.5], durations=[2.0], queries=["the red square"])
    return {k: b[k] for k in ("input_ids", "attention_mask", "pixel_values_videos", "caption_mask")}


def test_weights_land_where_they_belong_and_new_rows_are_the_tokenizer_mean(tmp_path):
    ref, model, _, n_tok = convert(tmp_path)
    state, ref_state = model.state_dict(), ref.state_dict()
    for name, value in ref_state.items():
        rows = slice(0, n_tok) if "embed_tokens" in name or "lm_head" in name else slice(None)
        assert torch.equal(state[name][rows], value[rows]), name
    assert sorted(set(state) - set(ref_state)) == sorted(k for k in state if k.startswith("space_decoder."))
    new = list(range(n_tok, n_tok + 2 + FRAMES + 1))  # <image>, <video>, <r_0>..<r_4>
    assert [model.config.image_token_id, model.config.video_token_id] == new[:2]
    assert model.config.query_token_ids == new[2:]
    for get in ("get_input_embeddings", "get_output_embeddings"):
        old = getattr(ref, get)().weight
        torch.testing.assert_close(getattr(model, get)().weight[new], old[:n_tok].mean(0).expand(len(new), -1))
    assert model.config.vision_config.num_hidden_layers == ref.config.vision_config.num_hidden_layers
    assert model.config.text_config.num_key_value_heads == 2


def test_transformers_layout_source_gives_the_reference_logits(tmp_path):
    """bilinear + one newline per video ("one_token" with "unpad") is transformers' own layout: same logits."""
    layout = LLAVA_VIDEO_7B | {"mm_newline_position": "one_token"}
    ref, model, processor, n_tok = convert(tmp_path, layout, query_mode="none")
    assert (model.config.frame_pool_mode, model.config.newline_position) == ("bilinear", "one_token")
    inputs = batch(processor)
    inputs.pop("caption_mask")
    with torch.no_grad():
        want, got = ref(**inputs).logits, model(**inputs).logits
    torch.testing.assert_close(got[..., :n_tok], want[..., :n_tok])


def test_llava_video_layout_rows_end_with_a_newline(tmp_path, capsys):
    """LLaVA-Video-7B's training layout ("grid"): each frame pooled (here "average": 5x5 -> 2x2, floor) and a newline
    after every row, as LLaVA-NeXT's get_2dPool + add_token_per_grid; no newline after the video."""
    layout = LLAVA_VIDEO_7B | {"mm_spatial_pool_mode": "average"}
    _, model, processor, _ = convert(tmp_path, layout)
    assert "average pooling, stride 2 -> 4 patch tokens per frame, newline_position grid -> 6 tokens per frame\n" in (
        capsys.readouterr().out
    )
    cfg = model.config
    assert (cfg.frame_pool_mode, cfg.newline_position, cfg.pool_stride, cfg.pooled_grid) == ("average", "grid", 2, 2)
    assert cfg.frame_placeholders == 6 and cfg.video_newlines == 0
    inputs = batch(processor)
    ids = inputs["input_ids"][0]
    assert int((ids == cfg.video_token_id).sum()) == FRAMES * 6
    first_query = int((ids == cfg.query_token_ids[0]).nonzero())
    assert (ids[first_query - 6 : first_query] == cfg.video_token_id).all()  # frame 0's 2 x (2 + newline), then <r_0>
    pixels = inputs["pixel_values_videos"]
    with torch.no_grad():
        got = model.model.get_video_features(pixels).pooler_output[0]
        patches = model.model.vision_tower(pixels[0], output_hidden_states=True).hidden_states[-1]
        feats = model.model.multi_modal_projector(patches)  # (F, 25, D)
        grid = torch.nn.functional.avg_pool2d(feats.transpose(1, 2).reshape(FRAMES, -1, 5, 5), 2)  # (F, D, 2, 2)
        rows = grid.permute(0, 2, 3, 1)  # (F, 2, 2, D)
        newline = model.model.image_newline.expand(FRAMES, 2, 1, -1)
        want = torch.cat([rows, newline], dim=2).reshape(FRAMES * 6, -1)
        torch.testing.assert_close(got, want)
        out = model(**inputs)
    assert out.pred_boxes.shape == (1, FRAMES, 4) and torch.isfinite(out.pred_boxes).all()


@pytest.mark.parametrize(
    ("layout", "mode", "position", "per_frame", "after_video"),
    [
        ({"mm_newline_position": "frame", "mm_patch_merge_type": "spatial_unpad"}, "bilinear", "frame", 10, 0),
        ({"mm_newline_position": "no_token", "mm_patch_merge_type": "spatial_unpad"}, "bilinear", "no_token", 9, 0),
        ({"mm_spatial_pool_mode": "max", "mm_patch_merge_type": "spatial"}, "max", "no_token", 4, 0),
        ({"mm_spatial_pool_mode": "average", "mm_patch_merge_type": "flat"}, "average", "no_token", 4, 0),
    ],
)
def test_other_llava_next_layouts_run(tmp_path, layout, mode, position, per_frame, after_video):
    """mm_newline_position absent = "one_token", which adds nothing without "unpad"; "flat" adds no newline."""
    _, model, processor, _ = convert(tmp_path, layout)
    cfg = model.config
    assert (cfg.frame_pool_mode, cfg.newline_position) == (mode, position)
    assert (cfg.frame_placeholders, cfg.video_newlines) == (per_frame, after_video)
    inputs = batch(processor)
    assert int((inputs["input_ids"][0] == cfg.video_token_id).sum()) == FRAMES * per_frame + after_video
    with torch.no_grad():
        boxes = model(**inputs).pred_boxes
    assert boxes.shape == (1, FRAMES, 4) and torch.isfinite(boxes).all()


def test_frame_patch_states_leave_the_newlines_out(tmp_path):
    """The space decoder reads each frame's S patch states; the layout's newline positions are skipped."""
    _, model, _, _ = convert(tmp_path)  # bilinear grid: 3x3 patches + a newline per row = 12 per frame
    states = torch.arange(FRAMES * 12, dtype=torch.float32)[:, None]
    got = model.model.frame_patch_states(states)[..., 0]
    want = torch.tensor([[f * 12 + r * 4 + c for r in range(3) for c in range(3)] for f in range(FRAMES)])
    assert torch.equal(got, want.float())


def test_tied_embeddings_without_lm_head(tmp_path):
    """LLaVA-OneVision-0.5B style: tied embeddings, no lm_head in the weights."""
    ref, model, processor, n_tok = convert(tmp_path, tied=True)
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    torch.testing.assert_close(model.get_input_embeddings().weight[:n_tok], ref.get_input_embeddings().weight[:n_tok])
    with torch.no_grad():
        assert model(**batch(processor)).pred_boxes.shape == (1, FRAMES, 4)


def test_llava_next_errors_are_one_line(tmp_path, capsys):
    tokenizer = qwen_like_tokenizer()
    ref = reference_model(tokenizer)
    faster = write_llava_next(tmp_path / "faster", ref, tokenizer, LLAVA_VIDEO_7B | {"add_faster_video": True})
    linear = write_llava_next(tmp_path / "linear", ref, tokenizer, LLAVA_VIDEO_7B | {"mm_projector_type": "linear"})
    broken = write_llava_next(tmp_path / "broken", ref, tokenizer, LLAVA_VIDEO_7B)
    (broken / "model-00002-of-00002.safetensors").unlink()
    for src in (faster, linear, broken):
        assert main(["convert", "--source", str(src), "--out", str(tmp_path / "o")]) == 2
    onevision = tmp_path / "onevision"
    ref.save_pretrained(onevision)
    tokenizer.save_pretrained(onevision)
    args = ["--source-format", "llava_qwen"]
    assert main(["convert", "--source", str(onevision), "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 4, err
    assert "faster/config.json: add_faster_video" in err and "linear/config.json: mm_projector_type 'linear'" in err
    assert "broken/model.safetensors.index.json: shard model-00002-of-00002.safetensors not found" in err
    assert "onevision/config.json: mm_projector_type None" in err
    assert not (tmp_path / "o").exists()
