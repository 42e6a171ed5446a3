"""Flipped copies of training frames: pixels, masks and boxes mirrored together."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
from PIL import Image

from polyp_sam_hf.data.augment import add_flips, flip_box


def _split() -> datasets.Dataset:
    image = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    mask = np.zeros((6, 8), np.uint8)
    mask[1:3, 1:4] = 255  # a polyp at x 1..3, y 1..2
    mask[4:6, 6:8] = 255  # another at x 6..7, y 4..5
    rows = {"image": [Image.fromarray(image)], "mask": [Image.fromarray(mask)], "source": ["kvasir"],
            "image_id": ["a"], "height": [6], "width": [8], "box": [[1.0, 1.0, 7.0, 5.0]],
            "boxes": [[[1.0, 1.0, 3.0, 2.0], [6.0, 4.0, 7.0, 5.0]]]}
    features = datasets.Features({"image": datasets.Image(), "mask": datasets.Image(),
                                  "source": datasets.Value("string"), "image_id": datasets.Value("string"),
                                  "height": datasets.Value("int32"), "width": datasets.Value("int32"),
                                  "box": datasets.Sequence(datasets.Value("float32"), length=4),
                                  "boxes": datasets.Sequence(datasets.Sequence(datasets.Value("float32"), length=4))})
    return datasets.Dataset.from_dict(rows, features=features)


def test_flips_mirror_frame_mask_and_boxes():
    split = _split()
    out = add_flips(split, "hv")
    assert len(out) == 3 and out["image_id"] == ["a", "a~flip-h", "a~flip-v"]
    image, mask = np.asarray(split[0]["image"]), np.asarray(split[0]["mask"])
    h, v = out[1], out[2]
    assert np.array_equal(np.asarray(h["image"]), image[:, ::-1]) and np.array_equal(np.asarray(h["mask"]), mask[:, ::-1])
    assert np.array_equal(np.asarray(v["image"]), image[::-1]) and np.array_equal(np.asarray(v["mask"]), mask[::-1])
    # written out by hand: in an 8-wide frame x -> 7 - x; in a 6-high frame y -> 5 - y
    assert h["box"] == [0.0, 1.0, 6.0, 5.0] and h["boxes"] == [[4.0, 1.0, 6.0, 2.0], [0.0, 4.0, 1.0, 5.0]]
    assert v["box"] == [1.0, 0.0, 7.0, 4.0] and v["boxes"] == [[1.0, 3.0, 3.0, 4.0], [6.0, 0.0, 7.0, 1.0]]
    for row in (h, v):  # each box is the extent of the flipped mask's polyp
        ys, xs = np.nonzero(np.asarray(row["mask"]))
        assert row["box"] == [xs.min(), ys.min(), xs.max(), ys.max()]


def test_flip_box_round_trip_and_unknown_axis():
    box = [2.0, 3.0, 10.0, 7.0]
    assert flip_box(flip_box(box, "h", 20, 9), "h", 20, 9) == box
    with pytest.raises(ValueError, match="flip axis"):
        add_flips(_split(), "x")
    assert add_flips(_split(), "") is not None and len(add_flips(_split(), "")) == 1
