"""SpaceVLLM model core on tiny random checkpoints: token layout, decoder, losses, gradients, save/load."""

import numpy as np
import pytest
import torch

from spacevllm.modeling import SpaceVLLMForConditionalGeneration, SpaceVLLMProcessor
from spacevllm.modeling.configuration import query_token
from spacevllm.modeling.tiny import build_tiny_checkpoint

N = 4


def load(tmp_path, **overrides):
    ckpt = build_tiny_checkpoint(tmp_path / "ckpt", num_frames=N, image_size=32, patch_size=8, **overrides)
    return SpaceVLLMForConditionalGeneration.from_pretrained(ckpt), SpaceVLLMProcessor.from_pretrained(ckpt)


def batch(processor, answers=True):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (N, 40, 48, 3), dtype=np.uint8) for _ in range(2)]
    out = processor(
        videos=frames,
        times=[np.arange(N) * 0.2] * 2,
        durations=[0.8] * 2,
        queries=["the red square that moves left", "a circle"],
        answers=["from 0.2 to 0.4 seconds"] * 2 if answers else None,
        padding_side="right",
    )
    out["target_boxes"] = torch.tensor([[0.5, 0.5, 0.2, 0.2]]).repeat(2, N, 1)
    out["box_mask"] = torch.tensor([[False, True, True, False]] * 2)
    return out


def test_interleaved_layout_and_counts(tmp_path):
    model, processor = load(tmp_path)
    b = batch(processor)
    ids = b["input_ids"][0].tolist()
    s, video = model.config.tokens_per_frame, model.config.video_token_id
    assert sum(i == video for i in ids) == N * s + 1  # + LLaVA-OneVision's newline feature
    qpos = [ids.index(processor.tokenizer.convert_tokens_to_ids(query_token(i))) for i in range(N)]
    first_video = ids.index(video)
    assert qpos == [first_video + (i + 1) * s + i for i in range(N)]  # <r_i> right after frame i's tokens
    caption = processor.tokenizer.decode(b["input_ids"][0][b["caption_mask"][0]])
    assert caption.strip() == "the red square that moves left"
    assert (b["labels"][0] != -100).sum() > 0


@pytest.mark.parametrize("mode", ["appended", "none"])
def test_other_layouts(tmp_path, mode):
    model, processor = load(tmp_path, query_mode=mode)
    ids = batch(processor)["input_ids"][0].tolist()
    qids = [processor.tokenizer.convert_tokens_to_ids(query_token(i)) for i in range(N)]
    present = [i for i in ids if i in qids]
    if mode == "none":
        assert present == []
    else:
        last_video = len(ids) - 1 - ids[::-1].index(model.config.video_token_id)
        assert present == qids and all(ids.index(q) > last_video for q in qids)


def test_losses_and_gradients_reach_head_and_llm(tmp_path):
    model, processor = load(tmp_path)
    out = model(**batch(processor))
    assert set(out.loss_dict) == {"loss_time", "loss_l1", "loss_giou", "loss_space"}
    assert out.pred_boxes.shape == (2, N, 4) and ((out.pred_boxes >= 0) & (out.pred_boxes <= 1)).all()
    d = out.loss_dict
    assert torch.isclose(d["loss_space"], 3 * d["loss_l1"] + d["loss_giou"])
    assert torch.isclose(out.loss, d["loss_time"] + d["loss_space"])
    out.loss.backward()
    assert model.space_decoder.space_head.layers[0].weight.grad.abs().sum() > 0
    assert model.model.language_model.layers[0].mlp.up_proj.weight.grad.abs().sum() > 0
    assert model.model.vision_tower.embeddings.patch_embedding.weight.grad.abs().sum() > 0


def test_space_loss_only_on_masked_frames(tmp_path):
    model, processor = load(tmp_path)
    b = batch(processor)
    base = model(**b).loss_dict["loss_l1"]
    b["target_boxes"][:, 0] = torch.tensor([0.9, 0.9, 0.1, 0.1])  # frame 0 is outside the GT range
    assert torch.isclose(model(**b).loss_dict["loss_l1"], base)


@pytest.mark.parametrize(
    "overrides",
    [
        {"query_mode": "appended"},
        {"dual_cross_attention": False},
        {"motion_input": True, "decoder_residual": True, "box_anchor": True},
        {"motion_input": True, "decoder_residual": True, "box_anchor": True, "pool_stride": 1, "vision_layers": 1},
        {"query_mode": "none"},
    ],
)
def test_ablation_modes_forward_backward(tmp_path, overrides):
    model, processor = load(tmp_path, **overrides)
    out = model(**batch(processor))
    out.loss.backward()
    if overrides.get("query_mode") == "none":
        assert out.pred_boxes is None and out.loss_dict["loss_space"] == 0
    else:
        assert out.pred_boxes.shape == (2, N, 4)


def test_text_first_puts_the_caption_before_the_frames(tmp_path):
    model, processor = load(tmp_path, text_first=True)
    b = batch(processor)
    ids = b["input_ids"][0].tolist()
    caption_pos = b["caption_mask"][0].nonzero()[:, 0].tolist()
    assert processor.tokenizer.decode([ids[i] for i in caption_pos]).strip() == "the red square that moves left"
    assert max(caption_pos) < ids.index(model.config.video_token_id)
    assert SpaceVLLMProcessor.from_pretrained(tmp_path / "ckpt").text_first
    out = model(**b)
    assert out.pred_boxes.shape == (2, N, 4) and torch.isfinite(out.loss)


def test_initializer_range_sets_the_llm_and_head_init(tmp_path):
    model, _ = load(tmp_path, initializer_range=0.1, hidden=128)
    llm = model.model.language_model.layers[0].mlp.up_proj.weight
    head = model.space_decoder.space_head.layers[0].weight
    assert abs(llm.std().item() - 0.1) < 0.01 and abs(head.std().item() - 0.1) < 0.01


def test_pool_stride_sets_tokens_per_frame(tmp_path):
    """32 px frames, 8 px patches: a 4x4 patch grid, 2x2 pooled to 4 tokens (upstream) or kept as 16 (stride 1)."""
    pooled, _ = load(tmp_path / "a")
    full, processor = load(tmp_path / "b", pool_stride=1, vision_layers=1)
    assert (pooled.config.tokens_per_frame, full.config.tokens_per_frame) == (4, 16)
    assert full.config.vision_config.num_hidden_layers == 1 and full.config.text_config.num_hidden_layers == 2
    feats = full.model.get_video_features(torch.zeros(1, N, 3, 32, 32)).pooler_output
    assert feats.shape[1] == N * 16 + 1
    ids = batch(processor)["input_ids"][0]
    assert int((ids == full.config.video_token_id).sum()) == N * 16 + 1


def test_image_query(tmp_path):
    model, processor = load(tmp_path)
    img = np.random.default_rng(1).integers(0, 255, (30, 30, 3), dtype=np.uint8)
    b = processor(images=[img], queries=["the blue circle"], task="rec")
    ids = b["input_ids"][0].tolist()
    assert processor.tokenizer.convert_tokens_to_ids(query_token(N)) in ids
    out = model(**b)
    assert out.pred_boxes.shape == (1, 1, 4)


def test_save_load_round_trip(tmp_path):
    model, processor = load(tmp_path)
    model.eval()
    b = batch(processor)
    with torch.no_grad():
        before = model(**b)
    model.save_pretrained(tmp_path / "again")
    processor.save_pretrained(tmp_path / "again")
    again = SpaceVLLMForConditionalGeneration.from_pretrained(tmp_path / "again").eval()
    b2 = SpaceVLLMProcessor.from_pretrained(tmp_path / "again")(
        videos=[np.zeros((N, 8, 8, 3), np.uint8)], times=[np.arange(N) * 0.2], durations=[0.8], queries=["x"]
    )
    assert b2["input_ids"].shape[0] == 1
    with torch.no_grad():
        after = again(**b)
    torch.testing.assert_close(before.logits, after.logits)
    torch.testing.assert_close(before.pred_boxes, after.pred_boxes)


def test_one_step_lowers_the_loss(tmp_path):
    model, processor = load(tmp_path)
    b = batch(processor)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    first = model(**b).loss
    first.backward()
    opt.step()
    with torch.no_grad():
        assert model(**b).loss < first.detach()


def test_count_mismatch_is_an_error(tmp_path):
    model, processor = load(tmp_path)
    b = batch(processor)
    q = processor.tokenizer.convert_tokens_to_ids(query_token(0))
    b["input_ids"][b["input_ids"] == q] = processor.tokenizer.pad_token_id
    with pytest.raises(ValueError, match="query tokens"):
        model(**b)


def test_pixels_match_llava_onevision_image_processor():
    """Frames are preprocessed as LLaVA-OneVision's own (PIL) image processor does its base view."""
    from transformers import LlavaOnevisionImageProcessorPil

    ip = LlavaOnevisionImageProcessorPil(
        size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3, image_grid_pinpoints=[[32, 32]]
    )
    img = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    ref = ip(images=[img], return_tensors="pt")["pixel_values"][0, 0]  # view 0 = the whole image resized
    ours = SpaceVLLMProcessor(None, N, 32, 4, "interleaved").preprocess_frames(img[None])[0]
    torch.testing.assert_close(ours, ref)


ANCHORED = {"motion_input": True, "decoder_residual": True, "box_anchor": True}


def test_fine_anchor_starts_at_the_coarse_anchor_and_then_learns(tmp_path):
    """A coarse checkpoint loaded with fine_anchor on predicts the same boxes (W_q, W_v start at zero); after one
    step on the box loss the fine anchor's query map has moved and the boxes differ."""
    ckpt = build_tiny_checkpoint(tmp_path / "c", num_frames=N, image_size=32, patch_size=4, pool_stride=4, **ANCHORED)
    coarse = SpaceVLLMForConditionalGeneration.from_pretrained(ckpt).eval()
    fine = SpaceVLLMForConditionalGeneration.from_pretrained(ckpt, fine_anchor=True).eval()
    fa = fine.space_decoder.fine_anchor
    assert fa.query.weight.abs().max() == 0 and fa.value.weight.abs().max() == 0 and fa.key.weight.std() > 0
    processor = SpaceVLLMProcessor.from_pretrained(ckpt)
    b = batch(processor)
    with torch.no_grad():
        torch.testing.assert_close(coarse(**b).pred_boxes, fine(**b).pred_boxes, atol=1e-6, rtol=0)
    fine.train()
    opt = torch.optim.AdamW(fine.parameters(), lr=1e-2)
    fine(**b).loss.backward()
    assert fa.query.weight.grad.abs().max() > 0 and fa.value.weight.grad.abs().max() > 0
    opt.step()
    fine.eval()
    with torch.no_grad():
        assert (coarse(**b).pred_boxes - fine(**b).pred_boxes).abs().max() > 1e-4


def test_fine_anchor_points_inside_the_chosen_cell():
    """All coarse weight on pooled cell 1 (top row, second column of a 2x2 grid over 4x4 patches): whatever the
    patches say, the fine anchor stays inside that cell; with W_q = 0 it is the cell's centre."""
    from spacevllm.modeling.space_decoder import FineAnchor, cell_of_patch

    assert cell_of_patch(4, 2, 2).tolist() == [0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3]
    torch.manual_seed(0)
    fa = FineAnchor(8, grid=2, stride=2)
    coarse = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    s, patches = torch.randn(1, 8), torch.randn(1, 16, 8)
    with torch.no_grad():
        fa.query.weight.zero_()
        anchor, _ = fa(s, coarse, patches)
        torch.testing.assert_close(anchor, torch.tensor([[0.75, 0.25]]))
        fa.query.weight.normal_(std=3.0)
        anchor, _ = fa(s, coarse, patches)
    x, y = anchor[0].tolist()
    assert 0.5 <= x <= 1.0 and 0.0 <= y <= 0.5 and (x, y) != (0.75, 0.25)


def test_fine_anchor_needs_the_anchored_decoder(tmp_path):
    with pytest.raises(ValueError, match="fine_anchor"):
        build_tiny_checkpoint(tmp_path / "x", num_frames=N, image_size=32, patch_size=8, fine_anchor=True)


def test_video_features_are_transformers_own_plus_the_unpooled_patches(tmp_path):
    """The default layout's video features are exactly what transformers' LLaVA-OneVision computes; with
    fine_anchor the same call also returns the projected patches it pooled, and the forward hands them out."""
    from transformers.models.llava_onevision.modeling_llava_onevision import LlavaOnevisionModel

    model, processor = load(tmp_path / "fine", box_anchor=True, fine_anchor=True)
    plain, _ = load(tmp_path / "plain")
    pixels = torch.randn(2, N, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model.model.get_video_features(pixels)
        ref = LlavaOnevisionModel.get_video_features(model.model, pixels)
        assert torch.equal(ours.pooler_output, ref.pooler_output)
        assert ours.patch_features.shape == (2, N, 16, model.config.text_config.hidden_size)  # 4x4 patches
        pooled = model.model.apply_pooling(ours.patch_features.flatten(0, 1)).reshape(2, N * 4, -1)
        assert torch.equal(pooled, ours.pooler_output[:, :-1])
        assert torch.equal(model.model.get_video_features(pixels, return_dict=False)[1], ours.pooler_output)
        assert plain.model.get_video_features(pixels).patch_features is None
        b = batch(processor)
        out = model(**b)
        assert torch.equal(out.patch_features, model.model.get_video_features(b["pixel_values_videos"]).patch_features)
        assert plain(**b).patch_features is None


def test_motion_frames_append_the_difference_to_the_previous_frame():
    from spacevllm.modeling.processing import motion_frames

    x = torch.tensor([1.0, 4.0, 9.0]).reshape(3, 1, 1, 1)
    assert motion_frames(x).reshape(3, 2).tolist() == [[1.0, 0.0], [4.0, 3.0], [9.0, 5.0]]
    frames = np.random.default_rng(1).integers(0, 255, (N, 40, 48, 3), dtype=np.uint8)
    plain = SpaceVLLMProcessor(None, N, 32, 4, "interleaved")
    motion = SpaceVLLMProcessor(None, N, 32, 4, "interleaved", motion_input=True)
    assert torch.equal(motion.preprocess_frames(frames), motion_frames(plain.preprocess_frames(frames)))


@pytest.mark.parametrize("text_first", [False, True])
def test_prompt_order_keeps_the_query_span(text_first):
    from spacevllm.modeling.processing import user_turn

    user, at = user_turn("[frames]\n", "Find the cat.", text_first)
    assert user == ("Find the cat.\n[frames]" if text_first else "[frames]\nFind the cat.")
    assert user[at:].startswith("Find the cat.")
    processor = SpaceVLLMProcessor(None, N, 32, 4, "interleaved", text_first=text_first)
    prompt, (start, end) = processor.build_prompt("stvg", "the red square", N, np.arange(N) * 0.2, 0.8)
    assert prompt[start:end] == "the red square"
    assert (prompt.index("the red square") < prompt.index("<video>")) == text_first
