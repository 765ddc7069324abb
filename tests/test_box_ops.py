"""Box math (spacevllm.box_ops): round trips, IoU/GIoU properties, numpy/torch agreement, hand cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spacevllm import box_ops as B

coord = st.floats(min_value=0, max_value=1000, allow_nan=False, allow_infinity=False)
size = st.floats(min_value=0.01, max_value=500, allow_nan=False, allow_infinity=False)
frame_size = st.tuples(st.integers(1, 4000), st.integers(1, 4000)).map(lambda wh: (float(wh[0]), float(wh[1])))


@st.composite
def xyxy_boxes(draw, min_size=1, max_size=8, positive=True):
    """(N, 4) float64 pixel xyxy boxes with x1 <= x2, y1 <= y2 (positive area when ``positive``)."""
    n = draw(st.integers(min_size, max_size))
    rows = []
    for _ in range(n):
        x, y = draw(coord), draw(coord)
        w, h = (draw(size), draw(size)) if positive else (draw(coord), draw(coord))
        rows.append([x, y, x + w, y + h])
    return np.array(rows, dtype=np.float64)


@st.composite
def box_pairs(draw):
    n = draw(st.integers(1, 8))
    return draw(xyxy_boxes(n, n)), draw(xyxy_boxes(n, n))


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a)


def close(a, b, atol=1e-6):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=atol)


# --- round trips ---------------------------------------------------------------------------------------


@given(xyxy_boxes(positive=False))
def test_xyxy_cxcywh_round_trip(b):
    close(B.box_cxcywh_to_xyxy(B.box_xyxy_to_cxcywh(b)), b)
    close(B.box_xyxy_to_cxcywh(B.box_cxcywh_to_xyxy(B.box_xyxy_to_cxcywh(b))), B.box_xyxy_to_cxcywh(b))


@given(xyxy_boxes(positive=False))
def test_xyxy_xywh_round_trip(b):
    close(B.box_xywh_to_xyxy(B.box_xyxy_to_xywh(b)), b)
    xywh = B.box_xyxy_to_xywh(b)
    close(B.box_xyxy_to_cxcywh(b)[:, 2:], xywh[:, 2:])  # both formats carry the same size


@given(xyxy_boxes(positive=False), frame_size)
def test_normalize_round_trip(b, wh):
    w, h = wh
    close(B.denormalize_xyxy(B.normalize_xyxy(b, w, h), w, h), b)


@given(xyxy_boxes(positive=False), frame_size)
def test_pixel_to_model_and_back_inside_the_frame(b, wh):
    w, h = wh
    inside = B.clamp_xyxy(b, w, h)
    norm = B.pixel_xyxy_to_norm_cxcywh(inside, w, h)
    assert np.all(norm >= -1e-12) and np.all(norm <= 1 + 1e-12)
    close(B.norm_cxcywh_to_pixel_xyxy(norm, w, h), inside)


@given(xyxy_boxes(positive=False), frame_size)
@settings(max_examples=50)
def test_torch_and_numpy_agree(b, wh):
    w, h = wh
    fns = [
        B.box_xyxy_to_cxcywh,
        B.box_cxcywh_to_xyxy,
        B.box_xyxy_to_xywh,
        B.box_xywh_to_xyxy,
        B.box_area,
        lambda x: B.normalize_xyxy(x, w, h),
        lambda x: B.denormalize_xyxy(x, w, h),
        lambda x: B.pixel_xyxy_to_norm_cxcywh(x, w, h),
        lambda x: B.norm_cxcywh_to_pixel_xyxy(x, w, h),
        lambda x: B.clamp_xyxy(x, w, h),
    ]
    for fn in fns:
        out = fn(t(b))
        assert isinstance(out, torch.Tensor)
        close(out.numpy(), fn(b))


@given(xyxy_boxes(), xyxy_boxes())
def test_torch_and_numpy_agree_on_iou(a, b):
    """Boxes of positive area (>= 1e-4 px^2); unions below 1e-12 px^2 are clamped differently by the two."""
    b = b[: len(a)] if len(b) >= len(a) else np.resize(b, a.shape)
    for fn in [B.elementwise_box_iou, B.box_iou, B.elementwise_generalized_box_iou, B.generalized_box_iou]:
        close(fn(t(a), t(b)).numpy(), fn(a, b), atol=1e-12)


# --- IoU / GIoU ----------------------------------------------------------------------------------------


@given(box_pairs())
def test_iou_properties(pair):
    a, b = pair
    iou = B.elementwise_box_iou(a, b)
    assert np.all(iou >= 0) and np.all(iou <= 1 + 1e-12)
    close(iou, B.elementwise_box_iou(b, a), atol=1e-12)
    close(B.elementwise_box_iou(a, a), np.ones(len(a)))


@given(box_pairs())
def test_giou_properties(pair):
    a, b = pair
    iou, giou = B.elementwise_box_iou(a, b), B.elementwise_generalized_box_iou(a, b)
    assert np.all(giou >= -1 - 1e-9) and np.all(giou <= 1 + 1e-9)
    assert np.all(giou <= iou + 1e-9)
    close(giou, B.elementwise_generalized_box_iou(b, a), atol=1e-9)
    close(B.elementwise_generalized_box_iou(a, a), np.ones(len(a)))


@given(xyxy_boxes(), xyxy_boxes())
def test_pairwise_matches_elementwise(a, b):
    iou, giou = B.box_iou(a, b), B.generalized_box_iou(a, b)
    assert iou.shape == giou.shape == (len(a), len(b))
    for i in range(len(a)):
        close(iou[i], B.elementwise_box_iou(np.repeat(a[i : i + 1], len(b), 0), b), atol=1e-12)
        close(giou[i], B.elementwise_generalized_box_iou(np.repeat(a[i : i + 1], len(b), 0), b), atol=1e-12)


@given(xyxy_boxes(positive=False), frame_size)
def test_clamp_keeps_boxes_inside_the_frame(b, wh):
    w, h = wh
    shifted = b - 500.0  # some corners outside on every side
    c = B.clamp_xyxy(shifted, w, h)
    assert np.all(c[:, [0, 2]] >= 0) and np.all(c[:, [0, 2]] <= w)
    assert np.all(c[:, [1, 3]] >= 0) and np.all(c[:, [1, 3]] <= h)
    assert np.all(c[:, 0] <= c[:, 2]) and np.all(c[:, 1] <= c[:, 3])
    close(B.clamp_xyxy(c, w, h), c, atol=0)  # idempotent


# --- hand-computed cases -------------------------------------------------------------------------------


def test_conversions_by_hand():
    xyxy = np.array([10.0, 20.0, 50.0, 80.0])
    close(B.box_xyxy_to_cxcywh(xyxy), [30, 50, 40, 60])
    close(B.box_xyxy_to_xywh(xyxy), [10, 20, 40, 60])
    close(B.normalize_xyxy(xyxy, 100, 200), [0.1, 0.1, 0.5, 0.4])
    close(B.pixel_xyxy_to_norm_cxcywh(xyxy, 100, 200), [0.3, 0.25, 0.4, 0.3])
    close(B.norm_cxcywh_to_pixel_xyxy(np.array([0.5, 0.5, 2.0, 0.2]), 100, 200), [0, 80, 100, 120])  # clamped
    close(B.box_area(np.array([[0, 0, 2, 3], [5, 5, 4, 4]])), [6, 0])  # inverted box -> area 0


def test_iou_and_giou_by_hand():
    a = np.array([[0.0, 0, 2, 2], [0, 0, 1, 1], [0, 0, 4, 4], [0, 0, 2, 2]])
    b = np.array([[1.0, 1, 3, 3], [2, 2, 3, 3], [1, 1, 2, 2], [0, 0, 2, 2]])
    close(B.elementwise_box_iou(a, b), [1 / 7, 0, 1 / 16, 1], atol=1e-12)
    # GIoU = IoU - (hull - union) / hull: hulls 9, 9, 16, 4; unions 7, 2, 16, 4
    close(B.elementwise_generalized_box_iou(a, b), [1 / 7 - 2 / 9, -7 / 9, 1 / 16, 1], atol=1e-12)


def test_no_plus_one_pixel_and_empty_union():
    close(B.elementwise_box_iou(np.array([0.0, 0, 10, 10]), np.array([0.0, 0, 10, 5])), 0.5)
    zero = np.zeros(4)
    assert B.elementwise_box_iou(zero, zero) == 0
    assert B.elementwise_box_iou(t(zero), t(zero)).item() == 0


def test_torch_gradients_flow_through_giou():
    a = torch.tensor([[0.2, 0.2, 0.3, 0.3]], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[0.25, 0.25, 0.3, 0.3]], dtype=torch.float64)
    loss = (1 - B.elementwise_generalized_box_iou(B.box_cxcywh_to_xyxy(a), B.box_cxcywh_to_xyxy(b))).sum()
    loss.backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


@pytest.mark.parametrize("shape", [(4,), (3, 4), (2, 5, 4)])
def test_leading_dims_are_kept(shape):
    b = np.abs(np.random.default_rng(0).normal(size=shape)) + np.array([0, 0, 1, 1])
    assert B.box_xyxy_to_cxcywh(b).shape == shape
    assert B.elementwise_box_iou(b, b).shape == shape[:-1]
    assert B.box_xyxy_to_cxcywh(t(b)).shape == shape
