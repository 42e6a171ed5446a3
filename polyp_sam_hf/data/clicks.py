"""Simulated clicks: where a person would click to correct a mask, for evaluation and for training.

A click is `(x, y, label)` in pixel coordinates of the mask it was chosen on: label 1 on missed
polyp ("this is polyp"), 0 on false polyp ("this is not"). Both simulators look at the error of
the current prediction against the ground truth, over the whole frame (every polyp at once):

- `evaluation_click` (the standard of RITM, SimpleClick and SAM 2's evaluation): the point deepest
  inside the largest error region, so the same masks always give the same click. With nothing
  predicted yet the error is the polyp itself, so the first click is the point deepest inside it.
- `training_click` (SAM's and micro-sam's training): a point drawn uniformly from the error, from a
  seeded generator.

A training run's first click, where it starts from one, comes from `FIRST_CLICKS`: drawn uniformly in
the polyp as SAM trains a point prompt, or only from its central part, where a person clicks and the
evaluation clicker's first click falls. Its correction clicks come from `CORRECTION_CLICKS`: drawn
uniformly from the whole error (SAM's), from the central part of the largest error region, where
a person corrects and the evaluation clicker clicks, or at the evaluation clicker's own point (as RITM
trains its iterative clicks).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
from scipy import ndimage

from polyp_sam_hf.core.registry import by_name
from polyp_sam_hf.data.prompts import label_components

POLYP, NOT_POLYP = 1, 0  # a click's label, as SAM's prompt encoder takes it


@dataclass(frozen=True)
class Click:
    """A click at pixel (x, y): `label` 1 on missed polyp, 0 on false polyp."""

    x: float
    y: float
    label: int


def error_regions(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(missed polyp, false polyp): boolean (H, W) masks of the prediction's two kinds of error."""
    pred, target = np.asarray(pred, bool), np.asarray(target, bool)
    if pred.shape != target.shape:
        raise ValueError(f"Prediction {pred.shape} and ground truth {target.shape} differ in shape.")
    return target & ~pred, pred & ~target


def deepest_point(region: np.ndarray) -> tuple[int, int]:
    """(x, y) of the pixel of a boolean (H, W) region farthest from its border (the frame's edge counts
    as border); ties go to the first in reading order."""
    inside = depth(region)
    y, x = np.unravel_index(int(np.argmax(inside)), inside.shape)
    return int(x), int(y)


def evaluation_click(pred: np.ndarray, target: np.ndarray) -> Click | None:
    """The next click of the evaluation clicker: the point deepest inside the largest 8-connected
    error region, positive on missed polyp, negative on false polyp; None where there is no error.

    Args:
        pred: (H, W) bool, the current prediction (all False before the first click).
        target: (H, W) bool ground truth.
    """
    largest = largest_error_region(pred, target)
    if largest is None:
        return None
    region, label = largest
    x, y = deepest_point(region)
    return Click(float(x), float(y), label)


def largest_error_region(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, int] | None:
    """The largest 8-connected error region of (H, W) bool `pred` against `target`, as an (H, W) bool
    mask, with the label a click in it gets (missed polyp wins a tie); None where there is no error."""
    regions = []
    for label, error in zip((POLYP, NOT_POLYP), error_regions(pred, target)):
        labels, count = label_components(error)
        if count:
            areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
            best = int(np.argmax(areas))
            regions.append((int(areas[best]), label, labels == best + 1))
    if not regions:
        return None
    _, label, region = max(regions, key=lambda r: r[0])
    return region, label


def training_click(pred: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> Click | None:
    """A correction click drawn uniformly from the whole error (missed and false polyp together),
    labelled by which it fell in; None where there is no error.

    Args:
        pred: (H, W) bool, the current prediction.
        target: (H, W) bool ground truth.
        rng: the seeded generator that draws it.
    """
    missed, false = error_regions(pred, target)
    ys, xs = np.nonzero(missed | false)
    if not len(xs):
        return None
    i = int(rng.integers(len(xs)))
    return Click(float(xs[i]), float(ys[i]), POLYP if missed[ys[i], xs[i]] else NOT_POLYP)


def depth(region: np.ndarray) -> np.ndarray:
    """(H, W) float: each pixel's distance to the border of a boolean (H, W) region (0 outside it;
    the frame's edge counts as border)."""
    return ndimage.distance_transform_edt(np.pad(np.asarray(region, bool), 1))[1:-1, 1:-1]


def first_training_click(target: np.ndarray, rng: np.random.Generator) -> Click | None:
    """A first click drawn uniformly from the polyp (as SAM trains a point prompt); None for an empty mask."""
    return training_click(np.zeros_like(np.asarray(target, bool)), target, rng)


CENTRAL_DEPTH = 0.5  # a central click lies at least this fraction of the polyp's greatest depth inside it


def central_training_click(target: np.ndarray, rng: np.random.Generator) -> Click | None:
    """A first click drawn uniformly from the polyp's central part: its pixels at least `CENTRAL_DEPTH`
    of the deepest pixel's distance from the border (with several polyps, the deepest pixel of them
    all sets the bar for each), so the deepest point, the evaluation clicker's first click on a frame
    of one polyp, is always among them; None for an empty mask."""
    central = central_part(target)
    return training_click(np.zeros_like(central), central, rng)  # all of it missed: a positive click in it


def central_part(region: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of a boolean (H, W) region at least `CENTRAL_DEPTH` of its deepest pixel's
    distance from its border (none for an empty region)."""
    inside = depth(region)
    return inside >= CENTRAL_DEPTH * inside.max() if inside.any() else np.zeros(inside.shape, bool)


def central_correction_click(pred: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> Click | None:
    """A correction click drawn uniformly from the central part of the largest error region (its pixels
    at least `CENTRAL_DEPTH` of its deepest pixel's distance from its border, so the evaluation
    clicker's click is always among them), labelled by the region's kind; None where there is no error.

    Args:
        pred: (H, W) bool, the current prediction.
        target: (H, W) bool ground truth.
        rng: the seeded generator that draws it.
    """
    largest = largest_error_region(pred, target)
    if largest is None:
        return None
    region, label = largest
    central = central_part(region)
    # the same uniform draw as a central first click, labelled by the region's kind
    return replace(training_click(np.zeros_like(central), central, rng), label=label)


def deepest_correction_click(pred: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> Click | None:
    """The evaluation clicker's click (`evaluation_click`) as a training draw: the same masks always give
    the same click, so `rng` is taken for the registry's signature and left unused."""
    return evaluation_click(pred, target)


# how a training run draws its first click (data.batches): name -> (target, rng) -> Click | None
FIRST_CLICKS: dict[str, Callable[[np.ndarray, np.random.Generator], Click | None]] = {
    "uniform": first_training_click,
    "central": central_training_click,
}

# how a training run draws its correction clicks (training.interactive): name -> (pred, target, rng) -> Click | None
CORRECTION_CLICKS: dict[str, Callable[[np.ndarray, np.ndarray, np.random.Generator], Click | None]] = {
    "uniform": training_click,
    "central": central_correction_click,
    "deepest": deepest_correction_click,
}


def clicked_region(pred: np.ndarray, target: np.ndarray, click: Click) -> np.ndarray:
    """(H, W) bool: the 8-connected error region a correction click lies in (missed polyp for a
    positive click, false polyp for a negative one), the region a person means to fix with it; all
    False where the click lies in no error of its kind.

    Args:
        pred: (H, W) bool, the prediction the click corrects.
        target: (H, W) bool ground truth.
        click: the click, in `pred`'s pixels.
    """
    missed, false = error_regions(pred, target)
    labels, _ = label_components(missed if click.label == POLYP else false)
    which = labels[int(round(click.y)), int(round(click.x))]
    return labels == which if which else np.zeros(labels.shape, bool)


def nearest_box(x: float, y: float, boxes: np.ndarray) -> int:
    """Which of a frame's boxes a click at (x, y) corrects: the one it falls in (the smallest where it
    falls in several), else the one whose edge is nearest.

    Args:
        boxes: (K, 4) `[x0, y0, x1, y1]` in the click's pixels, K >= 1.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    dx = np.maximum.reduce([boxes[:, 0] - x, np.zeros(len(boxes)), x - boxes[:, 2]])
    dy = np.maximum.reduce([boxes[:, 1] - y, np.zeros(len(boxes)), y - boxes[:, 3]])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return int(np.lexsort((area, np.hypot(dx, dy)))[0])


@dataclass(frozen=True)
class ClickStart:
    """Where a click session starts (the evaluation clicker's, `evaluation.clicks`; a per_image.csv row's
    prompt_mode): `box`, the frame's box (then corrections beside it), or none."""

    name: str
    label: str
    box: bool


CLICK_STARTS: dict[str, ClickStart] = by_name(ClickStart("clicks", "clicks alone", False),
                                               ClickStart("box", "box, then clicks", True))
