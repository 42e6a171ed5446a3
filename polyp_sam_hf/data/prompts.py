"""Box prompts made from masks: the whole-mask box the paper uses, and one box per polyp.

All boxes are `[x_min, y_min, x_max, y_max]` in pixel coordinates of the original image, with the
max inclusive: the box of a single foreground pixel at (x=3, y=5) is `[3, 5, 3, 5]`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np
from scipy import ndimage

from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.core.registry import by_name, lookup

if TYPE_CHECKING:
    import torch

Array = TypeVar("Array", np.ndarray, "torch.Tensor")  # numpy or torch, the same in and out

# 8-connectivity: pixels touching by a corner belong to the same polyp.
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
# Pixels: a connected component smaller than this is annotation noise (a JPEG mask's stray speck), not
# a polyp. The default of `polyp-sam prepare --min_polyp_area`, which records the value it used with
# the dataset, so boxes, self-made boxes and detection counts all leave out the same specks.
MIN_POLYP_AREA = 10


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """(int (H, W) labels, count) of the 8-connected components of a boolean (H, W) mask."""
    return ndimage.label(np.asarray(mask, dtype=bool), structure=EIGHT_CONNECTED)


def inside_inscribed_ellipse(edges: Array, xs: Array, ys: Array, min_radius: float = 0.0) -> Array:
    """Which points lie inside the axis-aligned ellipse inscribed in a box: the one ellipse of the
    library (the ellipse baseline draws it in a frame's pixels, the ellipse mask prompt on SAM's
    prompt grid).

    Works on numpy arrays and torch tensors alike.

    Args:
        edges: (..., 4) the box's outer edges `left, top, right, bottom`, continuous coordinates.
        xs: (W,) the x coordinate of each column of points.
        ys: (H,) the y coordinate of each row of points.
        min_radius: the semi-axes are at least this (keeps a degenerate box from dividing by 0).

    Returns:
        (..., H, W) bool: inside or on the ellipse.
    """
    left, top, right, bottom = (edges[..., i, None, None] for i in range(4))
    cx, cy = (left + right) / 2, (top + bottom) / 2
    rx = ((right - left) / 2).clip(min=min_radius)
    ry = ((bottom - top) / 2).clip(min=min_radius)
    return ((xs[None, :] - cx) / rx) ** 2 + ((ys[:, None] - cy) / ry) ** 2 <= 1


def box_iou(a, b) -> float:
    """Intersection over union of two inclusive pixel boxes `[x_min, y_min, x_max, y_max]`."""
    ix = min(a[2], b[2]) - max(a[0], b[0]) + 1
    iy = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inter = max(ix, 0.0) * max(iy, 0.0)
    area = lambda box: (box[2] - box[0] + 1) * (box[3] - box[1] + 1)  # noqa: E731
    return float(inter / (area(a) + area(b) - inter))


def _components(mask: np.ndarray, min_area: int) -> tuple[list[list[float]], int]:
    """(boxes of the 8-connected components of at least `min_area` pixels, largest first; the
    number of all components), from one labelling of the mask."""
    labels, count = label_components(mask)
    if count == 0:
        return [], 0
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    slices = ndimage.find_objects(labels)
    found = []
    for index, (area, (rows, cols)) in enumerate(zip(areas, slices)):
        if area >= min_area:
            box = [float(cols.start), float(rows.start), float(cols.stop - 1), float(rows.stop - 1)]
            found.append((-int(area), index, box))
    return [box for _, _, box in sorted(found)], count


def component_boxes(mask: np.ndarray, min_area: int = MIN_POLYP_AREA) -> list[list[float]]:
    """One box per 8-connected foreground component of at least `min_area` pixels, largest first.

    Args:
        mask: (H, W) boolean array.
        min_area: components with fewer pixels are ignored (annotation specks).

    Returns:
        A list of `[x_min, y_min, x_max, y_max]` boxes, by decreasing component area; ties keep
        reading order (top to bottom, then left to right).
    """
    return _components(mask, min_area)[0]


def polyp_prompts(mask: np.ndarray, min_area: int = MIN_POLYP_AREA
                  ) -> tuple[list[float] | None, list[list[float]], int]:
    """The whole-mask `box`, the per-polyp `boxes`, and how many specks both ignore.

    Both boxes come from the same components: those of at least `min_area` pixels. A speck of
    annotation noise (a JPEG mask's stray pixel in a corner) would otherwise stretch the whole-mask
    box to the corner while `boxes` left it out; a mask of specks only has no box at all.

    Returns:
        (`box`: the extent of all kept components, or None; `boxes`: `component_boxes`; the number
        of components smaller than `min_area`).
    """
    boxes, count = _components(mask, min_area)
    if not boxes:
        return None, [], count
    box = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]
    return box, boxes, count - len(boxes)


def component_masks(mask: np.ndarray, boxes: list[list[float]]) -> list[np.ndarray]:
    """The foreground of `mask` inside each box, one boolean (H, W) mask per box.

    Used to give each per-polyp prompt its own target: the component(s) that lie in its box.
    """
    labels, _ = label_components(mask)
    out = []
    for x0, y0, x1, y1 in boxes:
        window = labels[int(y0) : int(y1) + 1, int(x0) : int(x1) + 1]
        ids = np.unique(window[window > 0])
        out.append(np.isin(labels, ids))
    return out


def jitter_box(
    box: np.ndarray, fraction: float, width: int, height: int, rng: np.random.Generator
) -> np.ndarray:
    """Move each edge of a box by up to `fraction` of the box's size, uniformly, clipped to the image.

    Models a clinician's imperfect box. `fraction=0` returns the box unchanged.

    Args:
        box: (..., 4) array of `[x_min, y_min, x_max, y_max]`.
        fraction: the largest move of an edge, as a fraction of the box's width (x edges) or height
            (y edges).
        width: the image width the box is clipped to.
        height: the image height the box is clipped to.
        rng: the seeded generator that draws the moves.

    Returns:
        An array of the same shape, with x_min <= x_max and y_min <= y_max kept.
    """
    box = np.asarray(box, dtype=np.float32)
    if fraction <= 0:
        return box.copy()
    size = np.stack(
        [box[..., 2] - box[..., 0] + 1, box[..., 3] - box[..., 1] + 1] * 2, axis=-1
    )
    moved = box + rng.uniform(-fraction, fraction, size=box.shape).astype(np.float32) * size
    moved[..., [0, 2]] = np.clip(moved[..., [0, 2]], 0, width - 1)
    moved[..., [1, 3]] = np.clip(moved[..., [1, 3]], 0, height - 1)
    lo = np.minimum(moved[..., :2], moved[..., 2:])
    hi = np.maximum(moved[..., :2], moved[..., 2:])
    return np.concatenate([lo, hi], axis=-1)


def _whole_mask_box(row: dict) -> list[list[float]]:
    return [row["box"]] if row["box"] is not None else []


def _box_per_polyp(row: dict) -> list[list[float]]:
    return row["boxes"] or _whole_mask_box(row)


@dataclass(frozen=True)
class PromptMode:
    """How a frame is prompted: the one definition that training, evaluation, tables, `predict` and
    the app ask (never its name).

    Attributes:
        name: the setting's value (`--prompt_mode`), the same in every command, config and record.
        label: how a table names it.
        description: one line for help texts.
        boxes: the boxes a dataset row gives, or None when the data gives none (no box, or boxes the
            model makes itself). `predict` and the app take the boxes a person gives instead.
        whole_mask_target: every prompt's training target is the whole mask.
        self_prompted: the model's prompt-free mask makes the boxes (evaluation and inference only).
        paper: the paper's protocol (Polyp-SAM prompts each test frame with one box around its mask),
            the mode a published row is compared with.
    """

    name: str
    label: str
    description: str
    boxes: Callable[[dict], list[list[float]]] | None
    whole_mask_target: bool = True
    self_prompted: bool = False
    paper: bool = False

    @property
    def given_true_box(self) -> bool:
        """Prompted with the dataset's true box(es), or a person's: the paper's kind of prompt."""
        return self.boxes is not None

    @property
    def trainable(self) -> bool:
        return not self.self_prompted


PROMPT_MODE_REGISTRY: dict[str, PromptMode] = by_name(
    PromptMode("box", "one box", "one box around the whole mask, the paper's (none for an empty mask)",
               _whole_mask_box, paper=True),
    PromptMode("box-per-polyp", "box per polyp", "one box per polyp (8-connected component), each trained on "
               "the polyp(s) inside it", _box_per_polyp, whole_mask_target=False),
    PromptMode("none", "no box", "no prompt at all: SAM's decoder from the image alone, trained to mark every polyp",
               None),
    PromptMode("auto", "self-made boxes", "boxes made from the prompt-free mask, then box-prompted (a model "
               "trained with --prompt_mode none; not for training)", None, whole_mask_target=False,
               self_prompted=True),
)
TRAINING_PROMPT_MODES = {name: mode for name, mode in PROMPT_MODE_REGISTRY.items() if mode.trainable}
# names of earlier versions, still read from the records they wrote (metrics.json, a run's record)
RENAMED_PROMPT_MODES = {"single": "box", "per-component": "box-per-polyp"}


def current_prompt_mode_name(name: str) -> str:
    """A prompt-mode name as this version calls it (a record of an earlier version may use an old one)."""
    return RENAMED_PROMPT_MODES.get(name, name)


def get_prompt_mode(name: str, training: bool = False) -> PromptMode:
    """The mode called `name` (with `training`, one a model can be trained with); an old name or an
    unknown one is a `ConfigError` naming the valid ones."""
    if name in RENAMED_PROMPT_MODES:
        raise ConfigError(f"Prompt mode {name!r} is now called {RENAMED_PROMPT_MODES[name]!r}.")
    if training:
        return lookup(TRAINING_PROMPT_MODES, name, "training prompt mode")
    return lookup(PROMPT_MODE_REGISTRY, name, "prompt mode")


AUTO_BOX_MARGIN = 0.1  # each self-made box grows by this fraction of its size on every side


def grow_box(box, fraction: float, width: int, height: int) -> list[float]:
    """`box` widened by `fraction` of its width and height on each side, clipped to the frame."""
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0 + 1) * fraction, (y1 - y0 + 1) * fraction
    return [max(0.0, x0 - dx), max(0.0, y0 - dy), min(width - 1.0, x1 + dx), min(height - 1.0, y1 + dy)]


def prompt_boxes(row: dict, prompt_mode: str) -> list[list[float]]:
    """The boxes a dataset row is prompted with (`PromptMode.boxes`; none where the data gives none)."""
    mode = get_prompt_mode(prompt_mode)
    return mode.boxes(row) if mode.boxes is not None else []


def prompt_targets(row: dict, mask: np.ndarray, prompt_mode: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """(K, 4) float32 boxes of `prompt_boxes`, and each prompt's training target: the whole mask for a
    whole-mask box, the polyp(s) inside it for a per-polyp box. Prompt-free: one target, the whole
    mask (every polyp, or nothing), with a placeholder box the model never sees."""
    mode = get_prompt_mode(prompt_mode)
    if mode.boxes is None:
        return np.zeros((1, 4), np.float32), [mask]
    boxes = mode.boxes(row)
    array = np.asarray(boxes, np.float32).reshape(-1, 4)
    if not mode.whole_mask_target and boxes is row["boxes"]:
        return array, component_masks(mask, boxes)
    return array, [mask] * len(boxes)


def parse_point(text: str) -> tuple[float, float, int]:
    """`"x,y"` or `"x,y,label"` -> (x, y, label): label 1 on polyp (the default), 0 on what is not; a
    `ConfigError` says the expected form otherwise (in words that read the same on the command line and in
    the app)."""
    parts = text.split(",")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        x, y = float(parts[0]), float(parts[1])
        label = int(parts[2]) if len(parts) == 3 else 1
    except ValueError:
        raise ConfigError(f"Point {text!r}: expected x,y or x,y,label in pixels (label 1 on polyp, 0 on what is not)."
                          ) from None
    if label not in (0, 1):
        raise ConfigError(f"Point {text!r}: the label is 1 (polyp) or 0 (not polyp), not {label}.")
    return x, y, label


def parse_box(text: str) -> list[float]:
    """`"x0,y0,x1,y1"` -> four floats; a `ValueError` says the expected form otherwise (in words that
    read the same on the command line and in the app)."""
    parts = text.split(",")
    try:
        if len(parts) != 4:
            raise ValueError
        return [float(p) for p in parts]
    except ValueError:
        raise ConfigError(f"Box {text!r}: expected four numbers x0,y0,x1,y1 in pixels.") from None
