"""Temporal pointer (CPU-scale auxiliary on the query states): targets, loss, span decoding, model wiring and
``ground`` with ``time_source="pointer"``."""

import math

import numpy as np
import pytest
import torch
from helpers import tiny_video_batch, tiny_video_model
from hypothesis import given
from hypothesis import strategies as st

from spacevllm.losses import pointer_loss, pointer_targets
from spacevllm.modeling.configuration import SpaceVLLMConfig
from spacevllm.modeling.temporal_pointer import best_span

N = 4


def test_targets_are_first_and_last_frame_in_range():
    mask = torch.tensor([[False, True, True, False], [False] * 4, [True, False, False, True]])
    first, last, valid = pointer_targets(mask)
    assert first.tolist()[::2] == [1, 0] and last.tolist()[::2] == [2, 3]
    assert valid.tolist() == [True, False, True]


def test_loss_is_the_mean_start_end_cross_entropy():
    logits = torch.zeros(1, N, 2)
    logits[0, 1, 0] = 2.0  # start logit on frame 1
    mask = torch.tensor([[False, True, True, False]])
    start = -torch.log_softmax(logits[0, :, 0], 0)[1]
    end = -torch.log_softmax(logits[0, :, 1], 0)[2]  # uniform: log 4
    assert torch.isclose(pointer_loss(logits, mask), (start + end) / 2)
    assert torch.isclose(end, torch.log(torch.tensor(4.0)))
    assert pointer_loss(logits, torch.zeros(1, N, dtype=torch.bool)) == 0


@given(
    st.lists(st.floats(-5, 5), min_size=2, max_size=8).flatmap(
        lambda s: st.tuples(st.just(s), st.lists(st.floats(-5, 5), min_size=len(s), max_size=len(s)))
    )
)
def test_best_span_is_the_argmax_over_ordered_pairs(pair):
    s, e = pair
    first, last = best_span(torch.tensor(np.stack([s, e], 1), dtype=torch.float32))
    assert first <= last
    best = max(s[i] + e[j] for i in range(len(s)) for j in range(i, len(s)))
    assert np.isclose(np.float32(s[first]) + np.float32(e[last]), best, atol=1e-4)


def test_config_checks():
    from spacevllm.commands.ground import TIME_SOURCES as CLI_CHOICES
    from spacevllm.modeling.configuration import TIME_SOURCES

    assert CLI_CHOICES == TIME_SOURCES
    with pytest.raises(ValueError, match="time_source"):
        SpaceVLLMConfig(time_source="pointer")
    with pytest.raises(ValueError, match="lambda_pointer"):
        SpaceVLLMConfig(lambda_pointer=1.0, query_mode="none")


def test_pointer_loss_enters_the_total_and_trains_the_queries(tmp_path):
    model, processor = tiny_video_model(tmp_path, lambda_pointer=0.5)
    out = model(**tiny_video_batch(processor))
    d = out.loss_dict
    assert out.time_logits.shape == (2, N, 2) and d["loss_pointer"] > 0
    assert torch.isclose(out.loss, d["loss_time"] + d["loss_space"] + 0.5 * d["loss_pointer"])
    d["loss_pointer"].backward()
    assert model.temporal_pointer.proj.weight.grad.abs().sum() > 0
    assert model.model.language_model.layers[0].mlp.up_proj.weight.grad.abs().sum() > 0


def test_no_pointer_by_default(tmp_path):
    model, processor = tiny_video_model(tmp_path)
    out = model(**tiny_video_batch(processor))
    assert model.temporal_pointer is None and out.time_logits is None and "loss_pointer" not in out.loss_dict


def test_ground_reads_the_range_from_the_pointer(tmp_path):
    from spacevllm.modeling.inference import ground
    from spacevllm.video import SampledFrames, VideoInfo

    model, processor = tiny_video_model(tmp_path, lambda_pointer=1.0, time_source="pointer")
    model.eval()
    with torch.no_grad():  # make frame 1 the start and frame 2 the end, whatever the query states are
        model.temporal_pointer.proj.weight.zero_()
        model.temporal_pointer.proj.bias.zero_()
    times = np.arange(N) * 0.25
    frames = np.random.default_rng(0).integers(0, 255, (N, 32, 32, 3), dtype=np.uint8)
    sample = SampledFrames(frames, times, np.arange(N) * 5, VideoInfo(tmp_path / "v.mp4", 1.0, 20.0, 20, 32, 32))
    calls = []
    original = model.point_time

    def rigged(hidden, ids):
        logits = original(hidden, ids)
        calls.append(logits.shape)
        bias = torch.tensor([[-9.0, -9.0], [9.0, -9.0], [-9.0, 9.0], [-9.0, -9.0]])
        return logits + bias

    model.point_time = rigged
    tube = ground(model, processor, sample, "the red square")
    assert calls == [(1, N, 2)]
    assert (tube.start, tube.end) == (0.25, 0.5) and tube.text == "from 0.2 to 0.5 seconds"
    assert list(tube.times) == [0.25, 0.5] and np.asarray(tube.boxes).shape == (2, 4)


def test_end_is_read_one_query_later(tmp_path):
    """Causal LLM: <r_i> cannot see frame i + 1, so frame i's end logit comes from <r_{i+1}> (the last frame's from
    the token after <r_{N-1}>); the start logit from <r_i> itself."""
    from spacevllm.modeling.temporal_pointer import next_positions

    assert next_positions(torch.tensor([3, 7, 11])).tolist() == [7, 11, 12]
    model, processor = tiny_video_model(tmp_path, lambda_pointer=1.0)
    b = tiny_video_batch(processor)
    hidden = torch.randn(*b["input_ids"].shape, model.config.text_config.hidden_size)
    logits = model.point_time(hidden, b["input_ids"])
    qids = torch.tensor(model.config.query_token_ids[:N])
    pos = torch.isin(b["input_ids"][0], qids).nonzero()[:, 0]
    w, bias = model.temporal_pointer.proj.weight, model.temporal_pointer.proj.bias
    after = torch.cat([pos[1:], pos[-1:] + 1])
    torch.testing.assert_close(logits[0, :, 0], hidden[0, pos] @ w[0] + bias[0])
    torch.testing.assert_close(logits[0, :, 1], hidden[0, after] @ w[1] + bias[1])


def test_inside_loss_by_hand():
    from spacevllm.losses import inside_loss

    logits = torch.tensor([[0.0, 2.0, -1.0, float("-inf")], [1.0, 1.0, 1.0, 1.0]])  # row 0: 3 frames + padding
    mask = torch.tensor([[False, True, False, False], [False] * 4])  # row 1 has no range: not counted
    expected = (math.log(2) + math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(-1.0))) / 3
    assert math.isclose(float(inside_loss(logits, mask)), expected, rel_tol=1e-6)
    assert float(inside_loss(logits, torch.zeros(2, 4, dtype=torch.bool))) == 0


def test_inside_term_trains_and_leaves_the_span_to_start_and_end(tmp_path):
    model, processor = tiny_video_model(tmp_path, lambda_pointer=1.0, lambda_inside=0.5)
    batch = tiny_video_batch(processor)
    out = model(**batch)
    d = out.loss_dict
    assert out.time_logits.shape == (2, N, 3) and d["loss_inside"] > 0
    assert torch.isclose(out.loss, d["loss_time"] + d["loss_space"] + d["loss_pointer"] + 0.5 * d["loss_inside"])
    d["loss_inside"].backward()
    assert model.temporal_pointer.inside.weight.grad.abs().sum() > 0
    assert not model.temporal_pointer.proj.weight.grad.any()  # start/end are not trained by it
    with pytest.raises(ValueError, match="lambda_inside"):
        SpaceVLLMConfig(lambda_inside=1.0)  # needs the pointer
