"""Predictions from the box alone: what a box-prompted model must beat to have read the image.

Both take boxes in the dataset's convention, `[x_min, y_min, x_max, y_max]` with inclusive max.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from polyp_sam_hf.core.registry import lookup
from polyp_sam_hf.data.prompts import inside_inscribed_ellipse


def box_mask(box: Sequence[float], height: int, width: int) -> np.ndarray:
    """The filled box as a boolean (H, W) mask."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    out = np.zeros((height, width), dtype=bool)
    out[max(y0, 0) : y1 + 1, max(x0, 0) : x1 + 1] = True
    return out


def ellipse_mask(box: Sequence[float], height: int, width: int) -> np.ndarray:
    """The axis-aligned ellipse inscribed in the box, as a boolean (H, W) mask.

    The ellipse touches the box's outer pixel edges: centre `((x0 + x1) / 2, (y0 + y1) / 2)`,
    semi-axes `((x1 - x0 + 1) / 2, (y1 - y0 + 1) / 2)`; a pixel is inside when its centre is.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    edges = np.array([x0 - 0.5, y0 - 0.5, x1 + 0.5, y1 + 0.5])  # pixel x spans [x - 0.5, x + 0.5]
    return inside_inscribed_ellipse(edges, np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))


BASELINES: dict[str, Callable[[Sequence[float], int, int], np.ndarray]] = {
    "box": box_mask,
    "ellipse": ellipse_mask,
}


def baseline_prediction(
    name: str, boxes: Sequence[Sequence[float]], height: int, width: int
) -> np.ndarray:
    """The union of a baseline's masks over `boxes` (empty for no box), boolean (H, W)."""
    draw = lookup(BASELINES, name, "baseline")
    out = np.zeros((height, width), dtype=bool)
    for box in boxes:
        out |= draw(box, height, width)
    return out
