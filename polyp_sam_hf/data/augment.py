"""Flipped copies of training frames: augmentation that every cache and strategy can use.

A frozen encoder's embedding of a flipped frame is not the flipped embedding, so flips cannot be
applied to cached embeddings after the fact. Instead the training split gains flipped copies of
its rows (frame, mask, `box` and `boxes` flipped together, `image_id` suffixed `~flip-h` /
`~flip-v`); the embedding and pixel caches then hold one entry per view, and an epoch sees every
view once. Validation and test splits are never augmented.
"""

from __future__ import annotations

import datasets
from PIL import Image

from polyp_sam_hf.core.registry import lookup

# axis name -> (PIL transpose, which box coordinates it mirrors: 0 for x, 1 for y)
FLIPS: dict[str, tuple[int, int]] = {
    "h": (Image.Transpose.FLIP_LEFT_RIGHT, 0),
    "v": (Image.Transpose.FLIP_TOP_BOTTOM, 1),
}


def flip_box(box: list[float], axis: str, width: int, height: int) -> list[float]:
    """An inclusive `[x0, y0, x1, y1]` pixel box mirrored like its frame (`h`: left-right)."""
    x0, y0, x1, y1 = box
    if FLIPS[axis][1] == 0:
        return [width - 1 - x1, y0, width - 1 - x0, y1]
    return [x0, height - 1 - y1, x1, height - 1 - y0]


def _flip_row(row: dict, axis: str) -> dict:
    transpose, _ = FLIPS[axis]
    w, h = row["width"], row["height"]
    return {
        "image": row["image"].transpose(transpose),
        "mask": row["mask"].transpose(transpose),
        "image_id": f"{row['image_id']}~flip-{axis}",
        "box": None if row["box"] is None else flip_box(row["box"], axis, w, h),
        "boxes": [flip_box(b, axis, w, h) for b in row["boxes"]],
    }


def add_flips(split: datasets.Dataset, axes: str) -> datasets.Dataset:
    """`split` followed by one flipped copy of every row per axis in `axes` ("h", "v" or "hv").

    Raises:
        ValueError: an axis that is not `h` or `v`.
    """
    copies = [split]
    for axis in axes:
        lookup(FLIPS, axis, "flip axis", "flip axes")
        copies.append(split.map(_flip_row, fn_kwargs={"axis": axis}, desc=f"Flipping training frames ({axis})"))
    return datasets.concatenate_datasets(copies) if len(copies) > 1 else split
