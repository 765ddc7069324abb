"""Inference (paper 3.1.5) on tiny random checkpoints: one prefill, cached generation, range -> boxes, batching,
text-coordinate mode, REC and QA."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import torch

from spacevllm.assets import default_checkpoint_path
from spacevllm.box_ops import norm_cxcywh_to_pixel_xyxy
from spacevllm.errors import SpaceVLLMError
from spacevllm.modeling.inference import (
    _generate,
    _model_inputs,
    _video_inputs,
    forced_answer,
    generate_answer,
    ground,
    ground_batch,
    ground_image,
    load_model,
)
from spacevllm.modeling.tiny import build_tiny_checkpoint
from spacevllm.text_coords import format_answer, format_box
from spacevllm.video import sample_frames, write_video

TINY = dict(num_frames=4, image_size=32, patch_size=16)


@pytest.fixture(scope="module")
def model_and_processor(tmp_path_factory):
    ckpt = build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), **TINY)
    return load_model(ckpt, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    ckpt = build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt_text"), query_mode="none", **TINY)
    return load_model(ckpt, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Two videos of different sizes and lengths: 10 frames 40x24 at 5 fps (2 s) and 16 frames 32x48 at 4 fps (4 s)."""
    root, rng = tmp_path_factory.mktemp("videos"), np.random.default_rng(1)
    a = write_video(root / "a.mp4", rng.integers(0, 255, (10, 24, 40, 3), dtype=np.uint8), 5.0)
    b = write_video(root / "b.mp4", rng.integers(0, 255, (16, 48, 32, 3), dtype=np.uint8), 4.0)
    return a, b


def _full_forward_boxes(model, processor, video, query):
    """Reference: the decoder on the hidden states of one plain forward over the whole prompt, (N_q, 4) cxcywh."""
    sample = sample_frames(video, model.config.num_frames)
    inputs = _video_inputs(model, processor, [sample], [query], "stvg")
    with torch.no_grad():
        out = model(**_model_inputs(inputs))
        boxes = model.decode_boxes(out.last_hidden_state, inputs["input_ids"], inputs["caption_mask"])
    return sample, boxes[0].double().numpy()


def test_forced_range_selects_the_frames_and_their_decoder_boxes(model_and_processor, videos):
    model, processor = model_and_processor
    sample, ref = _full_forward_boxes(model, processor, videos[0], "the red square")
    # 10 frames at 5 fps, 4 sampled: indices 0, 3, 6, 9 at 0.0, 0.6, 1.2, 1.8 s
    assert sample.indices.tolist() == [0, 3, 6, 9]
    tube = ground(
        model, processor, videos[0], "the red square", **forced_answer(processor, ["from 0.5 to 1.2 seconds"])
    )
    assert tube.text == "from 0.5 to 1.2 seconds" and (tube.start, tube.end) == (0.5, 1.2)
    assert tube.frames == [3, 6] and tube.times == pytest.approx([0.6, 1.2])
    want = norm_cxcywh_to_pixel_xyxy(ref[[1, 2]], 40, 24)
    np.testing.assert_allclose(tube.boxes, want, atol=1e-3)
    assert all(0 <= b[0] <= b[2] <= 40 and 0 <= b[1] <= b[3] <= 24 for b in tube.boxes)


def test_range_between_sampled_frames_has_no_boxes(model_and_processor, videos):
    model, processor = model_and_processor
    tube = ground(model, processor, videos[0], "a", **forced_answer(processor, ["from 0.7 to 1.1 seconds"]))
    assert (tube.start, tube.end) == (0.7, 1.1) and tube.boxes == []


def test_answer_without_range_warns_and_gives_an_empty_tube(model_and_processor, videos):
    model, processor = model_and_processor
    with pytest.warns(UserWarning, match="no time range"):
        tube = ground(model, processor, videos[0], "a", **forced_answer(processor, ["no idea"]))
    assert tube.to_json() == {"start": None, "end": None, "text": "no idea", "boxes": []}


def test_one_pass_over_the_video(model_and_processor, videos):
    """The vision tower runs once; the LLM sees the prompt once (minus its last token), then one token per step."""
    model, processor = model_and_processor
    vision_calls, llm_lengths = [], []
    tower = model.model.vision_tower
    llm = model.model.language_model
    h1 = tower.register_forward_hook(lambda m, args, kw_out: vision_calls.append(1))
    h2 = llm.register_forward_pre_hook(
        lambda m, args, kwargs: llm_lengths.append(_seq_len(args, kwargs)), with_kwargs=True
    )
    try:
        ground(model, processor, videos[0], "a", **forced_answer(processor, ["from 0.5 to 1.2 seconds"]))
    finally:
        h1.remove(), h2.remove()
    sample = sample_frames(videos[0], model.config.num_frames)
    prompt = _video_inputs(model, processor, [sample], ["a"], "stvg")["input_ids"].shape[1]
    assert len(vision_calls) == 1
    assert llm_lengths[0] == prompt - 1 and set(llm_lengths[1:]) == {1}


def _seq_len(args, kwargs):
    x = kwargs.get("inputs_embeds")
    if x is None:
        x = kwargs.get("input_ids", args[0] if args else None)
    return x.shape[1]


def test_cached_generation_equals_plain_generate(model_and_processor, videos):
    model, processor = model_and_processor
    sample = sample_frames(videos[1], model.config.num_frames)
    inputs = _video_inputs(model, processor, [sample], ["the blue circle"], "stvg")
    plain = _generate(model, processor, inputs, 12)  # one plain generate over the whole prompt with the pixels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tube = ground(model, processor, videos[1], "the blue circle", max_new_tokens=12)
    assert tube.text == plain[0]


def test_batched_equals_unbatched(model_and_processor, videos):
    model, processor = model_and_processor
    queries = ["the red square moving to the left of the frame", "a"]  # different lengths -> left padding
    answers = ["from 0.5 to 1.9 seconds", "from 1.0 to 4.0 seconds"]
    batch = ground_batch(model, processor, list(videos), queries, **forced_answer(processor, answers))
    for video, query, answer, tube in zip(videos, queries, answers, batch):
        single = ground(model, processor, video, query, **forced_answer(processor, [answer]))
        assert tube.text == single.text == answer and tube.frames == single.frames and tube.frames
        np.testing.assert_allclose(tube.boxes, single.boxes, atol=1e-3)


def test_unforced_batched_text_equals_unbatched(model_and_processor, videos):
    model, processor = model_and_processor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = ground_batch(model, processor, list(videos), ["x y z", "a"], max_new_tokens=8)
        singles = [ground(model, processor, v, q, max_new_tokens=8) for v, q in zip(videos, ["x y z", "a"])]
    assert [t.text for t in batch] == [t.text for t in singles]


def test_num_frames_override(model_and_processor, videos):
    model, processor = model_and_processor
    tube = ground(model, processor, videos[1], "a", num_frames=2, **forced_answer(processor, ["from 0 to 4 seconds"]))
    assert tube.frames == [0, 15]


def test_text_coordinate_mode_reads_boxes_from_the_answer(text_model, videos):
    model, processor = text_model
    assert model.config.query_mode == "none"
    # sampled at 0.0, 0.6, 1.2, 1.8 s; the answer names three of them, one twice, one far from any frame
    answer = format_answer(
        0.5, 1.8, [0.6, 1.2, 1.8], [[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [0.25, 0.5, 0.75, 1.0]]
    )
    tube = ground(model, processor, videos[0], "a", **forced_answer(processor, [answer]))
    assert tube.text == answer and (tube.start, tube.end) == (0.5, 1.8)
    assert tube.frames == [3, 6, 9]
    np.testing.assert_allclose(tube.boxes, [[4, 4.8, 20, 14.4], [0, 0, 40, 24], [10, 12, 30, 24]], atol=1e-6)


def test_text_coordinate_mode_garbled_answer(text_model, videos):
    model, processor = text_model
    tube = ground(
        model, processor, videos[0], "a", **forced_answer(processor, ["from 0.0 to 1.8 seconds. 0.60s: [1, 2"])
    )
    assert tube.start == 0.0 and tube.frames == []


def test_ground_image_is_the_decoder_box_of_the_image_query(model_and_processor):
    model, processor = model_and_processor
    image = np.random.default_rng(2).integers(0, 255, (30, 50, 3), dtype=np.uint8)
    box = ground_image(model, processor, image, "the left cat")
    inputs = processor(images=[image], queries=["the left cat"], task="rec", return_tensors="pt")
    with torch.no_grad():
        out = model(**_model_inputs(dict(inputs)))
        ref = model.decode_boxes(out.last_hidden_state, inputs["input_ids"], inputs["caption_mask"])
    assert ref.shape[1] == 1
    np.testing.assert_allclose(box, norm_cxcywh_to_pixel_xyxy(ref[0, 0].double().numpy(), 50, 30), atol=1e-3)
    assert 0 <= box[0] <= box[2] <= 50 and 0 <= box[1] <= box[3] <= 30


def test_ground_image_text_mode(text_model):
    model, processor = text_model
    image = np.zeros((30, 50, 3), np.uint8)
    box = ground_image(model, processor, image, "x", **forced_answer(processor, [format_box([0.1, 0.2, 0.5, 1.0])]))
    np.testing.assert_allclose(box, [5, 6, 25, 30], atol=1e-6)
    with pytest.warns(UserWarning, match="no box"):
        assert ground_image(model, processor, image, "x", **forced_answer(processor, ["nothing"])).tolist() == [0] * 4


def test_generate_answer(model_and_processor, videos):
    model, processor = model_and_processor
    text = generate_answer(model, processor, videos[0], "what happens?", max_new_tokens=6)
    assert isinstance(text, str)
    sample = sample_frames(videos[0], model.config.num_frames)
    assert text == _generate(model, processor, _video_inputs(model, processor, [sample], ["what happens?"], "qa"), 6)[0]


def test_bfloat16_runs(model_and_processor, tmp_path, videos):
    ckpt = build_tiny_checkpoint(tmp_path / "ckpt", **TINY)
    model, processor = load_model(ckpt, device="cpu", dtype="bfloat16")
    assert model.dtype == torch.bfloat16
    tube = ground(model, processor, videos[0], "a", **forced_answer(processor, ["from 0.0 to 2.0 seconds"]))
    assert len(tube.boxes) == 4


@pytest.fixture(scope="module")
def fine_model(tmp_path_factory):
    """A fine_anchor model (4 px patches averaged 4x4 to 4 tokens per 32 px frame), its zero-started maps randomized."""
    ckpt = build_tiny_checkpoint(
        tmp_path_factory.mktemp("ckpt_fine"), **{**TINY, "patch_size": 4}, pool_stride=4, motion_input=True,
        decoder_residual=True, box_anchor=True, fine_anchor=True,
    )  # fmt: skip
    model, processor = load_model(ckpt, device="cpu", dtype="float32")
    torch.manual_seed(3)
    with torch.no_grad():
        for layer in (model.space_decoder.fine_anchor.query, model.space_decoder.fine_anchor.value):
            layer.weight.normal_(std=0.5)
    return model, processor


def test_fine_anchor_boxes_from_the_prefill_equal_the_training_forward(fine_model, videos):
    """ground / ground_image decode the boxes after the prefill, with the prefill's unpooled patches: the same boxes
    as the training forward (caption mask given) over the whole prompt."""
    model, processor = fine_model
    sample = sample_frames(videos[1], model.config.num_frames)
    inputs = _video_inputs(model, processor, [sample], ["the red square"], "stvg")
    with torch.no_grad():
        ref = model(**inputs).pred_boxes[0].double().numpy()
    tube = ground(
        model, processor, videos[1], "the red square", **forced_answer(processor, ["from 0.0 to 4.0 seconds"])
    )
    np.testing.assert_allclose(tube.boxes, norm_cxcywh_to_pixel_xyxy(ref, 32, 48), atol=1e-3)
    image = np.random.default_rng(4).integers(0, 255, (30, 50, 3), dtype=np.uint8)
    inputs = processor(images=[image], queries=["the left cat"], task="rec", return_tensors="pt")
    with torch.no_grad():
        ref = model(**inputs).pred_boxes[0, 0].double().numpy()
    box = ground_image(model, processor, image, "the left cat")
    np.testing.assert_allclose(box, norm_cxcywh_to_pixel_xyxy(ref, 50, 30), atol=1e-3)


def test_processor_that_disagrees_with_the_model_config_is_a_one_line_error(tmp_path):
    ckpt = shutil.copytree(default_checkpoint_path(), tmp_path / "m")
    meta = json.loads((ckpt / "spacevllm_processor.json").read_text())
    (ckpt / "spacevllm_processor.json").write_text(json.dumps(meta | {"num_frames": meta["num_frames"] + 1}))
    with pytest.raises(SpaceVLLMError, match=r"spacevllm_processor.json does not match config.json \(num_frames"):
        load_model(ckpt)


@pytest.mark.parametrize("query", ["", "   ", None])
def test_an_empty_query_is_a_one_line_error_from_python(query):
    model, processor = load_model(default_checkpoint_path())
    video = default_checkpoint_path().parent / "sample" / "sample.mp4"
    with pytest.raises(SpaceVLLMError, match="query is empty"):
        ground(model, processor, str(video), query)
    with pytest.raises(SpaceVLLMError, match="expression is empty"):
        ground_image(model, processor, np.zeros((32, 32, 3), np.uint8), query)
