"""Boxes from masks: whole-mask extent, one box per 8-connected polyp, jitter."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import blob_mask

from polyp_sam_hf.data.prompts import component_boxes, component_masks, jitter_box, polyp_prompts


def test_box_is_the_inclusive_extent_of_the_whole_mask():
    mask = blob_mask(20, 30, [(3, 5, 7, 9), (20, 2, 25, 4)])
    assert polyp_prompts(mask, min_area=1)[0] == [3.0, 2.0, 25.0, 9.0]
    single = np.zeros((5, 5), bool)
    single[4, 1] = True
    assert polyp_prompts(single, min_area=1)[0] == [1.0, 4.0, 1.0, 4.0]


def test_empty_mask_has_no_box():
    assert polyp_prompts(np.zeros((4, 4), bool)) == (None, [], 0)
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


def test_box_ignores_specks_as_boxes_do():
    """A JPEG mask's 1-pixel speck at (0, 0) used to stretch `box` to the corner while `boxes`
    left it out (SAM then scored Dice 0.001 with that box); a specks-only mask had a whole-frame box."""
    from polyp_sam_hf.data.prompts import polyp_prompts

    mask = np.zeros((40, 50), bool)
    mask[0, 0] = True  # the speck
    mask[10:20, 15:30] = True  # the polyp: x 15..29, y 10..19
    box, boxes, specks = polyp_prompts(mask, min_area=10)
    assert box == [15.0, 10.0, 29.0, 19.0] and boxes == [[15.0, 10.0, 29.0, 19.0]] and specks == 1
    noise = np.zeros((40, 50), bool)
    noise[0, 0] = noise[39, 49] = noise[5, 40] = True
    assert polyp_prompts(noise, min_area=10) == (None, [], 3)
    two = np.zeros((40, 50), bool)
    two[2:8, 2:8] = two[30:38, 40:48] = True
    assert polyp_prompts(two, min_area=10)[0] == [2.0, 2.0, 47.0, 37.0]  # the extent of both polyps


def test_prepare_reports_specks_and_drops_noise_only_training_masks(tmp_path):
    from PIL import Image

    from polyp_sam_hf.data.prepare import prepare_dataset

    root = tmp_path / "pranet"
    for i in range(6):
        mask = np.zeros((32, 32), np.uint8)
        mask[0, 0] = 255
        if i:  # frame 0 is a speck only
            mask[8:20, 8:20] = 255
        for folder, array in (("images", np.full((32, 32, 3), 90 + i, np.uint8)), ("masks", mask)):
            (root / "TrainDataset" / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(root / "TrainDataset" / folder / f"{30 * (i + 1):03d}.png")
    ds, report = prepare_dataset(root, val_fraction=0.2)
    rows = list(ds["train"]) + list(ds["validation"])
    assert len(rows) == 5 and all(r["box"] == [8.0, 8.0, 19.0, 19.0] for r in rows)
    assert len(report.specks) == 6 and "Ignored 6 specks" in report.format()
    assert sum(len(ids) for ids in report.empty_dropped.values()) == 1


def test_box_iou_of_inclusive_boxes():
    from polyp_sam_hf.data.prompts import box_iou

    assert box_iou([0, 0, 9, 9], [0, 0, 9, 9]) == 1.0
    assert box_iou([0, 0, 9, 9], [10, 0, 19, 9]) == 0.0  # touching edges share no pixel
    assert box_iou([0, 0, 9, 9], [5, 0, 14, 9]) == pytest.approx(50 / 150)  # 5x10 of 10x10 + 10x10 - 5x10
