"""Back to the original frame, and the box-only baselines on known shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polyp_sam_hf.data.preprocessing import resized_shape
from polyp_sam_hf.evaluation.baselines import baseline_prediction, box_mask, ellipse_mask
from polyp_sam_hf.models.segmenter import to_original


def test_corner_prediction_lands_in_that_corner_of_a_non_square_frame():
    height, width, size = 1070, 1348, 1024
    reshaped = resized_shape(height, width, size)
    assert reshaped == (813, 1024)
    # top-right corner of the frame: x in [1200, 1347], y in [0, 150] -> low-res (S / 4) grid
    scale = size / width
    low = torch.full((1, 256, 256), -10.0)
    x0, x1 = int(1200 * scale / 4), int(1347 * scale / 4)
    y1 = int(150 * scale / 4)
    low[0, 0 : y1 + 1, x0 : x1 + 1] = 10.0
    mask = (to_original(low, size, reshaped, (height, width)) > 0)[0].numpy()
    assert mask.shape == (height, width)
    ys, xs = np.nonzero(mask)
    assert xs.min() >= 1180 and xs.max() == width - 1 and ys.min() == 0 and ys.max() <= 170
    assert mask[: height // 2, width // 2 :].sum() == mask.sum()  # nothing anywhere else


def test_padding_rows_never_reach_the_frame():
    height, width, size = 500, 1000, 64
    reshaped = resized_shape(height, width, size)  # (32, 64): rows 32..63 are padding
    low = torch.full((1, 16, 16), -10.0)
    low[0, 8:, :] = 10.0  # positive only on the padding
    assert not (to_original(low, size, reshaped, (height, width)) > 0).any()


def test_box_baseline_is_the_inclusive_box():
    mask = box_mask([2, 3, 5, 7], 10, 10)
    assert mask.sum() == 4 * 5 and mask[3, 2] and mask[7, 5] and not mask[8, 5]


def test_ellipse_touches_the_box_edges_and_stays_inside():
    box = [10, 20, 49, 39]  # 40 x 20
    ellipse = ellipse_mask(box, 60, 70)
    inside = box_mask(box, 60, 70)
    assert not (ellipse & ~inside).any()
    ys, xs = np.nonzero(ellipse)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (10, 49, 20, 39)
    assert ellipse.sum() == pytest.approx(np.pi * 20 * 10, rel=0.03)


def test_baselines_take_the_union_of_several_boxes_and_nothing_without_one():
    both = baseline_prediction("box", [[0, 0, 1, 1], [5, 5, 6, 6]], 8, 8)
    assert both.sum() == 8
    assert not baseline_prediction("ellipse", [], 8, 8).any()
    with pytest.raises(ValueError, match="box, ellipse"):
        baseline_prediction("circle", [[0, 0, 1, 1]], 8, 8)
