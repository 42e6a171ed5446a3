"""Boxes from masks: whole-mask extent, one box per 8-connected polyp, jitter."""

from __future__ import annotations

import numpy as np
import pytest

from polyp_sam_hf.data.prompts import component_boxes, component_masks, jitter_box, mask_to_box

from conftest import blob_mask


def test_box_is_the_inclusive_extent_of_the_whole_mask():
    mask = blob_mask(20, 30, [(3, 5, 7, 9), (20, 2, 25, 4)])
    assert mask_to_box(mask) == [3.0, 2.0, 25.0, 9.0]
    single = np.zeros((5, 5), bool)
    single[4, 1] = True
    assert mask_to_box(single) == [1.0, 4.0, 1.0, 4.0]


def test_empty_mask_has_no_box():
    assert mask_to_box(np.zeros((4, 4), bool)) is None
    assert component_boxes(np.zeros((4, 4), bool)) == []


def test_components_largest_first_and_small_ones_dropped():
    mask = blob_mask(40, 40, [(0, 0, 2, 2), (10, 10, 19, 19), (30, 30, 34, 34)])
    mask[38, 38] = True  # a 1-pixel speck
    boxes = component_boxes(mask, min_area=5)
    assert boxes == [[10.0, 10.0, 19.0, 19.0], [30.0, 30.0, 34.0, 34.0], [0.0, 0.0, 2.0, 2.0]]
    assert len(component_boxes(mask, min_area=1)) == 4


def test_diagonal_neighbours_are_one_component():
    mask = np.zeros((10, 10), bool)
    mask[2:5, 2:5] = True
    mask[5:8, 5:8] = True  # touches the first only at a corner
    assert component_boxes(mask, min_area=1) == [[2.0, 2.0, 7.0, 7.0]]


def test_component_masks_give_each_box_its_own_polyp():
    mask = blob_mask(20, 20, [(1, 1, 4, 4), (10, 10, 15, 15)])
    boxes = component_boxes(mask, min_area=1)
    first, second = component_masks(mask, boxes)
    assert first.sum() == 36 and second.sum() == 16
    assert not (first & second).any() and ((first | second) == mask).all()


@pytest.mark.parametrize("fraction", [0.05, 0.2])
def test_jitter_moves_edges_within_fraction_and_stays_in_image(fraction):
    box = np.array([10, 20, 49, 39], dtype=np.float32)  # 40 x 20
    rng = np.random.default_rng(0)
    moved = np.stack([jitter_box(box, fraction, 60, 45, rng) for _ in range(500)])
    delta = np.abs(moved - box)
    assert (delta[:, [0, 2]] <= fraction * 40 + 1e-4).all()
    assert (delta[:, [1, 3]] <= fraction * 20 + 1e-4).all()
    assert delta.max() > 0.5 * fraction * 20  # it does move
    assert (moved[:, 2] <= 59).all() and (moved[:, 3] <= 44).all() and (moved >= 0).all()
    assert (moved[:, 0] <= moved[:, 2]).all() and (moved[:, 1] <= moved[:, 3]).all()


def test_jitter_is_seeded_and_zero_is_identity():
    box = np.array([[1, 2, 30, 40]], dtype=np.float32)
    a = jitter_box(box, 0.1, 64, 64, np.random.default_rng(7))
    b = jitter_box(box, 0.1, 64, 64, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(jitter_box(box, 0.0, 64, 64, np.random.default_rng(7)), box)
