"""Query-Guided Space Decoder (section 3.1.3): eq. 3 on hand-made tensors against a hand computation, and each
ablation switch changes what the decoder and the model compute (not only shapes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from spacevllm.modeling import SpaceVLLMConfig, SpaceVLLMForConditionalGeneration, SpaceVLLMProcessor
from spacevllm.modeling.space_decoder import QueryGuidedSpaceDecoder, query_guided_space_decoder
from spacevllm.modeling.tiny import build_tiny_checkpoint

N = 4  # frames of the tiny model


def decoder(hidden: int = 2, **switches) -> QueryGuidedSpaceDecoder:
    """A decoder on a config of LLM width ``hidden``; the paper's setting unless ``switches`` say otherwise."""
    text = dict(model_type="qwen2", hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
                num_attention_heads=1, num_key_value_heads=1, vocab_size=16)  # fmt: skip
    vision = dict(model_type="siglip_vision_model", hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                  num_attention_heads=1, image_size=16, patch_size=8)  # fmt: skip
    paper = {"dual_cross_attention": True, "decoder_residual": False, "box_anchor": False, "pool_stride": 1}
    config = SpaceVLLMConfig(text_config=text, vision_config=vision, **{**paper, **switches})
    torch.manual_seed(0)
    return QueryGuidedSpaceDecoder(config).eval()


# --- eq. 3 by hand ------------------------------------------------------------------------------------------------


def test_eq3_paper_setting_on_hand_made_tensors():
    """D = 2, one frame with two visual tokens, two caption tokens, so every softmax can be done by hand.

    First attention: v_1 = (ln 3 / 2, 0) against K_t = V_t = diag(2 sqrt 2) scores (ln 3, 0) after the
    1/sqrt(D) scaling, weights (3/4, 1/4), so V'_eh_1 = (3 sqrt 2 / 2, sqrt 2 / 2); v_2 mirrors it.
    Second attention: q = (ln 2, 0) scores (3 ln 2 / 2, ln 2 / 2), weights (2/3, 1/3), so
    S = 2/3 V'_eh_1 + 1/3 V'_eh_2 = (7 sqrt 2 / 6, 5 sqrt 2 / 6).
    """
    visual = torch.tensor([[[math.log(3) / 2, 0.0], [0.0, math.log(3) / 2]]], dtype=torch.float64)
    caption = torch.tensor([[2 * math.sqrt(2), 0.0], [0.0, 2 * math.sqrt(2)]], dtype=torch.float64)
    query = torch.tensor([[math.log(2), 0.0]], dtype=torch.float64)
    expected = torch.tensor([[7 * math.sqrt(2) / 6, 5 * math.sqrt(2) / 6]], dtype=torch.float64)
    # the function, with an identity MLP so that its output is sigmoid(S_i)
    b = query_guided_space_decoder(visual, query[:, None], caption[None], caption[None], nn.Identity())
    torch.testing.assert_close(torch.logit(b), expected, rtol=0, atol=1e-12)
    dec = decoder()  # and the module in the paper's setting
    dec.space_head = nn.Identity()
    torch.testing.assert_close(torch.logit(dec(visual, query, caption)), expected, rtol=0, atol=1e-12)


def _attend(q, k, v):
    """softmax(q k^T / sqrt(d)) v, written out with einsum: q (M, D), k/v (T, D) -> (M, D)."""
    w = torch.exp(torch.einsum("md,td->mt", q, k) / math.sqrt(q.shape[-1]))
    return torch.einsum("mt,td->md", w / w.sum(-1, keepdim=True), v)


def test_eq3_paper_setting_is_attention_twice_per_frame():
    """Random tensors, three frames: S_i = Attn(q_i, V'_eh_i, V'_eh_i) with V'_eh_i = Attn(V_i, K_t, V_t), frame by
    frame, and the space head reads exactly S_i; the two attentions have no parameters."""
    dec = decoder(hidden=6)
    g = torch.Generator().manual_seed(1)
    visual, caption, queries = (
        torch.randn(3, 5, 6, generator=g),
        torch.randn(4, 6, generator=g),
        torch.randn(3, 6, generator=g),
    )
    s = torch.stack([_attend(queries[i : i + 1], *(2 * [_attend(visual[i], caption, caption)]))[0] for i in range(3)])
    torch.testing.assert_close(dec(visual, queries, caption), dec.space_head(s).sigmoid())
    assert {name.split(".")[0] for name, _ in dec.named_parameters()} == {"space_head"}


# --- each switch changes the output -------------------------------------------------------------------------------


def _inputs(seed: int = 2, hidden: int = 8, tokens: int = 4):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(3, tokens, hidden, generator=g),
        torch.randn(3, hidden, generator=g),
        torch.randn(5, hidden, generator=g),
    )


def test_without_dual_cross_attention_the_head_reads_the_query_alone():
    visual, queries, caption = _inputs()
    off, on = decoder(hidden=8, dual_cross_attention=False), decoder(hidden=8)
    out = off(visual, queries, caption)
    torch.testing.assert_close(out, off.space_head(queries).sigmoid())
    torch.testing.assert_close(off(visual + 1, queries, caption[:2]), out)  # frames and caption are not read
    assert not torch.allclose(on(visual, queries, caption), out)
    assert not torch.allclose(on(visual, queries, caption[:2]), on(visual, queries, caption))


def test_decoder_residual_adds_the_visual_states_back():
    visual, queries, caption = _inputs()
    plain, residual = decoder(hidden=8), decoder(hidden=8, decoder_residual=True)
    enhanced = torch.stack([visual[i] + _attend(visual[i], caption, caption) for i in range(3)])
    s = torch.stack([_attend(queries[i : i + 1], enhanced[i], enhanced[i])[0] for i in range(3)])
    torch.testing.assert_close(residual(visual, queries, caption), residual.space_head(s).sigmoid())
    assert not torch.allclose(residual(visual, queries, caption), plain(visual, queries, caption))


def test_box_anchor_moves_the_centre_to_where_the_query_attends():
    """pool_stride 1 on 16 px frames of 8 px patches: a 2x2 grid of cells centred at 0.25 / 0.75."""
    visual, queries, caption = _inputs()
    plain, anchored = decoder(hidden=8), decoder(hidden=8, box_anchor=True)
    out = anchored(visual, queries, caption)
    enhanced = torch.stack([_attend(visual[i], caption, caption) for i in range(3)])
    weights = torch.softmax(torch.einsum("nd,ntd->nt", queries, enhanced) / math.sqrt(8), dim=-1)
    anchor = weights @ torch.tensor([[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])
    s = torch.einsum("nt,ntd->nd", weights, enhanced)
    raw = anchored.space_head(s)
    torch.testing.assert_close(out[:, :2], (torch.logit(anchor) + raw[:, :2]).sigmoid())
    torch.testing.assert_close(out[:, 2:], raw[:, 2:].sigmoid())
    assert not torch.allclose(out, plain(visual, queries, caption))


def test_fine_anchor_starts_at_the_coarse_anchor_and_reads_the_patches():
    """fine_anchor on the 2x2 pooled grid of the test config (pool_stride 1: each cell is one patch): with its
    zero-started maps it gives box_anchor's boxes; with non-zero maps the unpooled patches move the boxes."""
    visual, queries, caption = _inputs()
    patches = torch.randn(3, 4, 8, generator=torch.Generator().manual_seed(5))
    coarse = decoder(hidden=8, box_anchor=True)
    fine = decoder(hidden=8, box_anchor=True, fine_anchor=True)
    fine.space_head.load_state_dict(coarse.space_head.state_dict())
    with torch.no_grad():
        fine.fine_anchor.query.weight.zero_()
        fine.fine_anchor.value.weight.zero_()
        torch.testing.assert_close(fine(visual, queries, caption, patches), coarse(visual, queries, caption))
        fine.fine_anchor.query.weight.normal_(std=2.0)
        fine.fine_anchor.value.weight.normal_(std=2.0)
        assert (fine(visual, queries, caption, patches) - coarse(visual, queries, caption)).abs().max() > 1e-2
        with pytest.raises(ValueError, match="unpooled patch features"):
            fine(visual, queries, caption)


def test_a_caption_without_tokens_is_an_error_not_a_guess():
    visual, queries, caption = _inputs()
    for dec in (decoder(hidden=8), decoder(hidden=8, decoder_residual=True, box_anchor=True)):
        with pytest.raises(ValueError, match="caption"):
            dec(visual, queries, caption[:0])


# --- the switches in the whole model ------------------------------------------------------------------------------


def _video_batch(processor):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (N, 40, 48, 3), dtype=np.uint8)]
    return processor(videos=frames, times=[np.arange(N) * 0.2], durations=[0.8], queries=["the red square"],
                     answers=["from 0.2 to 0.4 seconds"], padding_side="right")  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("switches")
    # initializer_range 0.2: a random model whose boxes are not all ~0.5, so that a change in what the decoder reads
    # shows in them (with the default 0.02 every box is 0.5 +- 1e-3)
    return {
        mode: build_tiny_checkpoint(root / mode, num_frames=N, query_mode=mode, initializer_range=0.2)
        for mode in ("interleaved", "appended")
    }


def _boxes(ckpt, **config) -> torch.Tensor:
    model = SpaceVLLMForConditionalGeneration.from_pretrained(ckpt, **config).eval()
    with torch.no_grad():
        return model(**_video_batch(SpaceVLLMProcessor.from_pretrained(ckpt))).pred_boxes


@pytest.mark.parametrize("switch", [{"dual_cross_attention": False}, {"decoder_residual": True}, {"box_anchor": True}])
def test_each_decoder_switch_changes_the_models_boxes(tiny, switch):
    base = _boxes(tiny["interleaved"])
    assert base.shape == (1, N, 4)
    assert (_boxes(tiny["interleaved"], **switch) - base).abs().max() > 1e-2


def test_appended_queries_change_the_boxes_of_the_same_weights(tiny):
    a = SpaceVLLMForConditionalGeneration.from_pretrained(tiny["interleaved"]).state_dict()
    b = SpaceVLLMForConditionalGeneration.from_pretrained(tiny["appended"]).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # only the token layout differs
    assert (_boxes(tiny["appended"]) - _boxes(tiny["interleaved"])).abs().max() > 1e-2
