"""Lean logits: training applies ``lm_head`` at the answer positions only, generation at the last position only.

The references are the full-logits formulas this replaced: (B, L, V) logits, shifted by one, cast to float, CE
with -100 ignored; and generation / box decoding from forwards that compute logits at every position."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spacevllm.box_ops import norm_cxcywh_to_pixel_xyxy
from spacevllm.losses import answer_targets, space_losses, time_loss
from spacevllm.modeling import SpaceVLLMForConditionalGeneration, SpaceVLLMProcessor
from spacevllm.modeling.tiny import build_tiny_checkpoint

N = 4


def full_logits_time_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The pre-lean L_time: full (B, L, V) logits, a float copy of all but the last position, CE over all."""
    shift_logits, shift_labels = logits[:, :-1].float(), labels[:, 1:]
    return F.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    ckpt = build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), num_frames=N, image_size=32, patch_size=8)
    model = SpaceVLLMForConditionalGeneration.from_pretrained(ckpt).eval()
    return model, SpaceVLLMProcessor.from_pretrained(ckpt)


def training_batch(processor, answers=("from 0.2 to 0.4 seconds", "from 1.25 to 3.5 seconds")):
    """Two samples with answers of different lengths, right-padded (so the answer positions differ per row)."""
    rng = np.random.default_rng(0)
    out = processor(
        videos=[rng.integers(0, 255, (N, 40, 48, 3), dtype=np.uint8) for _ in range(2)],
        times=[np.arange(N) * 0.2] * 2,
        durations=[0.8] * 2,
        queries=["the red square that moves left", "a circle"],
        answers=list(answers),
        padding_side="right",
    )
    out["target_boxes"] = torch.tensor([[0.5, 0.5, 0.2, 0.2]]).repeat(2, N, 1)
    out["box_mask"] = torch.tensor([[False, True, True, False]] * 2)
    return dict(out)


def grads(model) -> dict[str, torch.Tensor]:
    out = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out


def test_answer_targets_by_hand():
    labels = torch.tensor([[-100, -100, 5, 6, -100], [-100, 7, -100, -100, 8]])
    positions, targets = answer_targets(labels)
    assert positions.tolist() == [[False, True, True, False, False], [True, False, False, True, False]]
    assert targets.tolist() == [5, 6, 7, 8]
    positions, targets = answer_targets(torch.full((2, 3), -100))
    assert not positions.any() and targets.shape == (0,)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_time_loss_on_the_selection_equals_the_full_formula(dtype):
    torch.manual_seed(0)
    logits = torch.randn(2, 7, 11).to(dtype)
    labels = torch.tensor([[-100, -100, 3, 4, 5, -100, -100], [-100, -100, -100, -100, 9, 10, -100]])
    positions, targets = answer_targets(labels)
    lean = time_loss(logits[positions], targets)
    assert lean.dtype == torch.float32
    torch.testing.assert_close(lean, full_logits_time_loss(logits, labels))


def test_training_loss_logits_and_gradients_equal_the_full_logits_path(tiny):
    model, processor = tiny
    b = training_batch(processor)
    calls = []
    hook = model.lm_head.register_forward_hook(lambda m, args, out: calls.append(tuple(args[0].shape)))
    try:
        torch.manual_seed(0)
        lean = model(**b)
    finally:
        hook.remove()
    labels = b["labels"]
    n_answer = int((labels[:, 1:] != -100).sum())
    assert n_answer > 0 and calls == [(n_answer, model.config.text_config.hidden_size)]  # never (B, L, D)
    assert lean.logits.shape == (n_answer, model.config.text_config.vocab_size)
    lean.loss_dict["loss_time"].backward()
    lean_grads = grads(model)

    torch.manual_seed(0)
    full = model(**{k: v for k, v in b.items() if k not in ("labels", "target_boxes", "box_mask")})
    assert full.logits.shape[:2] == labels.shape
    torch.testing.assert_close(lean.logits, full.logits[:, :-1][labels[:, 1:] != -100])
    old_time = full_logits_time_loss(full.logits, labels)
    torch.testing.assert_close(lean.loss_dict["loss_time"], old_time)
    space = space_losses(full.pred_boxes, b["target_boxes"], b["box_mask"])
    c = model.config
    old_total = c.lambda_time * old_time + c.lambda_space * (
        c.lambda_l1 * space["loss_l1"] + c.lambda_giou * space["loss_giou"]
    )
    torch.testing.assert_close(lean.loss, old_total)
    old_time.backward()
    full_grads = grads(model)
    assert set(lean_grads) == set(full_grads) and "lm_head.weight" in lean_grads
    for name, g in full_grads.items():
        torch.testing.assert_close(lean_grads[name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_no_answer_tokens_give_a_zero_time_loss_that_backprops(tiny):
    model, processor = tiny
    b = training_batch(processor)
    b["labels"] = torch.full_like(b["labels"], -100)
    out = model(**b)
    assert out.logits.shape == (0, model.config.text_config.vocab_size)
    assert out.loss_dict["loss_time"] == 0 and out.loss_dict["loss_time"].requires_grad
    out.loss.backward()
    g = grads(model)
    assert torch.count_nonzero(g["lm_head.weight"]) == 0
    assert any(torch.count_nonzero(v) for k, v in g.items() if k.startswith("space_decoder."))  # boxes still train


def test_boxes_without_answer_text_build_no_vocabulary_logits(tiny):
    """A loss on boxes alone (no labels) is also a training call: no (B, L, V) logits, loss_time a backprop 0."""
    model, processor = tiny
    b = training_batch(processor)
    del b["labels"]
    out = model(**b)
    assert out.logits.shape == (0, model.config.text_config.vocab_size)
    assert set(out.loss_dict) == {"loss_time", "loss_l1", "loss_giou", "loss_space"}
    assert out.loss_dict["loss_time"] == 0 and out.loss_dict["loss_space"] > 0
    out.loss.backward()
    assert grads(model)["lm_head.weight"].abs().sum() == 0


def test_logits_to_keep_is_the_last_positions_of_the_full_logits(tiny):
    model, processor = tiny
    b = {k: v for k, v in training_batch(processor).items() if k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        full = model(**b).logits
        last = model(**b, logits_to_keep=1).logits
    assert last.shape == (2, 1, full.shape[-1])
    torch.testing.assert_close(last, full[:, -1:])


# --- generation on the embedded default model and its bundled sample ----------------------------------------------


@pytest.fixture(scope="module")
def default_model():
    from spacevllm import assets
    from spacevllm.modeling.inference import load_model

    model, processor = load_model(assets.ASSETS / "default_model", device="cpu", dtype="float32")
    info = json.loads((assets.ASSETS / "sample" / "sample.json").read_text())
    return model, processor, assets.ASSETS / "sample" / "sample.mp4", info["query"]


def lm_head_inputs(model, fn):
    """Run ``fn()`` and return (its result, the shapes of every input ``lm_head`` saw)."""
    shapes = []
    hook = model.lm_head.register_forward_hook(lambda m, args, out: shapes.append(tuple(args[0].shape)))
    try:
        return fn(), shapes
    finally:
        hook.remove()


@pytest.mark.parametrize("time_source", ["text", "pointer"])
def test_lean_grounding_equals_full_logits_generation_and_decoding(default_model, time_source):
    """The sample grounded with logits at the last position only (prefill, every decode step) gives the answer of
    a plain generate with logits at every prompt position, and the boxes of the decoder on a full forward."""
    from spacevllm.modeling.inference import _generate, _model_inputs, _video_inputs, ground
    from spacevllm.video import sample_frames

    model, processor, video, query = default_model
    shipped, model.config.time_source = model.config.time_source, time_source
    try:
        tube, shapes = lm_head_inputs(model, lambda: ground(model, processor, video, query))
    finally:
        model.config.time_source = shipped
    assert shapes and all(s[:2] == (1, 1) for s in shapes)  # one position per call, from the prefill on
    assert len(shapes) == 1 if time_source == "pointer" else len(shapes) > 1  # the prefill (+ the decode steps)

    sample = sample_frames(video, model.config.num_frames)
    inputs = _video_inputs(model, processor, [sample], [query], "stvg")
    prompt = inputs["input_ids"].shape[1]
    with torch.no_grad():
        full = model(**_model_inputs(inputs))
        ref = model.decode_boxes(
            full.last_hidden_state, inputs["input_ids"], inputs["caption_mask"], full.patch_features
        )
    assert full.logits.shape[1] == prompt
    assert tube.start is not None and len(tube.frames) > 0
    j = [int(np.flatnonzero(sample.indices == f)[0]) for f in tube.frames]
    want = norm_cxcywh_to_pixel_xyxy(ref[0, j].double().numpy(), sample.info.width, sample.info.height)
    np.testing.assert_allclose(tube.boxes, want, atol=1e-3)
    if time_source == "text":
        text, ref_shapes = lm_head_inputs(model, lambda: _generate(model, processor, inputs, 32, logits_to_keep=0))
        assert ref_shapes[0][1] == prompt  # the reference really computed logits at every prompt position
        assert tube.text == text[0]


def test_ground_image_computes_one_position_of_logits(default_model):
    from spacevllm.modeling.inference import _model_inputs, ground_image

    model, processor, _, _ = default_model
    image = np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    box, shapes = lm_head_inputs(model, lambda: ground_image(model, processor, image, "the red square"))
    assert shapes == [(1, 1, model.config.text_config.hidden_size)]
    inputs = processor(images=[image], queries=["the red square"], task="rec", return_tensors="pt")
    with torch.no_grad():
        out = model(**_model_inputs(dict(inputs)))
        ref = model.decode_boxes(out.last_hidden_state, inputs["input_ids"], inputs["caption_mask"], out.patch_features)
    np.testing.assert_allclose(box, norm_cxcywh_to_pixel_xyxy(ref[0, -1].double().numpy(), 64, 64), atol=1e-3)
