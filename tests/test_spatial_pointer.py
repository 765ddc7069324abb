"""Spatial pointer (CPU-scale auxiliary, ``lambda_cell``): the cell holding a box centre, the loss on eq. 3's second
attention against a hand computation, the decoder's attention weights, and the model wiring."""

import math

import pytest
import torch
from helpers import tiny_video_batch, tiny_video_model
from hypothesis import given
from hypothesis import strategies as st

from spacevllm.losses import cell_loss, target_cells
from spacevllm.modeling.configuration import SpaceVLLMConfig

N = 4  # frames of the tiny model


def test_target_cell_by_hand():
    boxes = torch.tensor([[0.30, 0.60, 0.1, 0.1], [1.0, 0.0, 0.2, 0.2], [0.0, 1.0, 0.2, 0.2], [0.25, 0.75, 0.1, 0.1]])
    # grid 4: (col 1, row 2) -> 9; the right edge stays in column 3, the bottom in row 3; 0.25 starts column 1
    assert target_cells(boxes, 4).tolist() == [9, 3, 12, 13]


@given(st.floats(0, 1), st.floats(0, 1), st.integers(1, 8))
def test_the_target_cell_holds_the_centre(cx, cy, grid):
    cell = int(target_cells(torch.tensor([cx, cy, 0.1, 0.1], dtype=torch.float64), grid))
    row, col = divmod(cell, grid)
    assert 0 <= cell < grid * grid
    assert col / grid <= cx <= (col + 1) / grid and row / grid <= cy <= (row + 1) / grid


def test_cell_loss_by_hand():
    cells = torch.tensor([[[0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25], [0.7, 0.1, 0.1, 0.1]]])  # (1, 3, S=4)
    boxes = torch.tensor([[[0.8, 0.2, 0.1, 0.1], [0.2, 0.8, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1]]])  # cells 1, 2, 0
    mask = torch.tensor([[True, True, False]])  # the third box is outside the GT range: not counted
    expected = -(math.log(0.2) + math.log(0.25)) / 2
    assert math.isclose(float(cell_loss(cells, boxes, mask, grid=2)), expected, rel_tol=1e-6)
    assert float(cell_loss(cells, boxes, torch.zeros(1, 3, dtype=torch.bool), grid=2)) == 0


def test_config_needs_the_second_attention():
    with pytest.raises(ValueError, match="lambda_cell"):
        SpaceVLLMConfig(lambda_cell=1.0, dual_cross_attention=False)
    with pytest.raises(ValueError, match="lambda_cell"):
        SpaceVLLMConfig(lambda_cell=1.0, query_mode="none")
    with pytest.raises(ValueError, match="lambda_cell"):
        SpaceVLLMConfig(lambda_cell=-1.0)


@pytest.mark.parametrize("switches", [{}, {"decoder_residual": True, "box_anchor": True}])
def test_cell_loss_enters_the_total_and_reaches_the_llm(tmp_path, switches):
    # 4 x 4 patches of 8 px, pooled 2 x 2 -> 2 x 2 cells
    model, processor = tiny_video_model(tmp_path, lambda_cell=0.5, pool_stride=2, **switches)
    batch = tiny_video_batch(processor)
    batch["target_boxes"][:] = torch.tensor([0.2, 0.7, 0.1, 0.1])
    out = model(**batch)
    d = out.loss_dict
    assert torch.isclose(out.loss, d["loss_time"] + d["loss_space"] + 0.5 * d["loss_cell"])
    args = (out.last_hidden_state, batch["input_ids"], batch["caption_mask"], None)
    boxes, cells = model.decode_boxes(*args, return_cells=True)
    assert torch.allclose(boxes, model.decode_boxes(*args), atol=1e-6)  # asking for the weights keeps the boxes
    assert cells.shape == (2, N, 4) and torch.allclose(cells.sum(-1), torch.ones(2, N))
    expected = -cells[:, 1:3, 2].log().mean()  # (0.2, 0.7) is in cell (col 0, row 1) = 2 of the 2 x 2 grid
    assert torch.isclose(d["loss_cell"], expected, rtol=1e-5)
    d["loss_cell"].backward()
    assert model.model.language_model.layers[0].mlp.up_proj.weight.grad.abs().sum() > 0


def test_no_cell_loss_by_default(tmp_path):
    model, processor = tiny_video_model(tmp_path)
    assert "loss_cell" not in model(**tiny_video_batch(processor)).loss_dict
