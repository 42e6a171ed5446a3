"""Pictures people would rather look at than read: training curves, overlays, best/worst grids, jitter curves."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from scipy import ndimage
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

if TYPE_CHECKING:
    import datasets

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402

from polyp_sam_hf.data.prompts import prompt_boxes
from polyp_sam_hf.data.reading import stored_mask  # noqa: E402
from polyp_sam_hf.data.sources import frame_key  # noqa: E402

PRED_COLOUR, TARGET_COLOUR, BOX_COLOUR = (0, 255, 0), (255, 220, 0), (0, 255, 255)
POSITIVE_COLOUR, NEGATIVE_COLOUR = (0, 200, 0), (230, 0, 0)  # clicks on polyp and on what is not


def plot_training_curves(history: list[dict], path: str | Path) -> Path:
    """Training loss and validation Dice against the optimiser step, one PNG with two panels.

    Args:
        history: records with `step` and `train_loss` (a loss log: the mean over the steps since the
            last one) or `val_dice` (a validation).
    """
    path = Path(path)
    fig = training_figure(history)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def data_limits(values: list[float], floor: float = 0.0, ceiling: float = 1.0, margin: float = 0.15
                ) -> tuple[float, float]:
    """An axis range around `values` with `margin` of their spread on each side (at least 0.005), kept
    within [floor, ceiling]: a climb from 0.927 to 0.940 fills the panel instead of a flat line on 0-1."""
    low, high = min(values), max(values)
    pad = max((high - low) * margin, 0.005)
    return max(floor, low - pad), min(ceiling, high + pad)


def training_figure(history: list[dict]):
    """The figure `plot_training_curves` saves. The best validation step is a star on the curve,
    named in a legend that matplotlib places where it covers no data; the Dice axis spans the data."""
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(10, 4))
    loss = [(h["step"], h["train_loss"]) for h in history if h.get("train_loss") is not None]
    dice = [(h["step"], h["val_dice"]) for h in history if h.get("val_dice") is not None]
    if loss:
        ax_loss.plot(*zip(*loss), color="tab:red", marker="." if len(loss) < 30 else None)
    ax_loss.set(title="Training loss (mean over each logging interval)", xlabel="step", ylabel="loss")
    if dice:
        ax_dice.plot(*zip(*dice), marker="o", color="tab:blue")
        best = max(dice, key=lambda sd: sd[1])
        ax_dice.axhline(best[1], ls=":", color="grey")
        ax_dice.plot([best[0]], [best[1]], marker="*", markersize=14, color="tab:orange", ls="",
                     label=f"best {best[1]:.3f} at step {best[0]} (best/)")
        ax_dice.legend(loc="best", framealpha=0.9)
        ax_dice.set_ylim(*data_limits([d for _, d in dice]))
    ax_dice.set(title="Validation Dice", xlabel="step", ylabel="mean Dice")
    for ax in (ax_loss, ax_dice):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _outline(mask: np.ndarray, thickness: int) -> np.ndarray:
    """The inner border of a boolean (H, W) mask, `thickness` pixels wide, (H, W) bool."""
    edge = mask & ~ndimage.binary_erosion(mask, iterations=1, border_value=0)
    return ndimage.binary_dilation(edge, iterations=thickness - 1) & mask if thickness > 1 else edge


def overlay(
    image: Image.Image,
    pred: np.ndarray | None = None,
    target: np.ndarray | None = None,
    boxes: list | None = None,
    clicks: list | None = None,
    thickness: int = 2,
) -> Image.Image:
    """The frame with the predicted mask tinted and outlined (green), the ground-truth outline
    (yellow) and the box prompts (cyan), drawn with torchvision's `draw_segmentation_masks` and
    `draw_bounding_boxes`.

    Args:
        image: RGB frame, W x H.
        pred: (H, W) bool predicted mask, or None.
        target: (H, W) bool ground truth, or None.
        boxes: iterable of `[x0, y0, x1, y1]` in pixels, or None.
        clicks: iterable of `(x, y, label)` in pixels, drawn as dots (green on polyp, red on what is not).
        thickness: outline width in pixels.
    """
    frame = TF.pil_to_tensor(image.convert("RGB"))  # (3, H, W) uint8
    if pred is not None:
        frame = draw_segmentation_masks(frame, torch.from_numpy(pred), alpha=0.4, colors=PRED_COLOUR)
    for mask, colour in ((pred, PRED_COLOUR), (target, TARGET_COLOUR)):
        if mask is not None:
            frame = draw_segmentation_masks(frame, torch.from_numpy(_outline(mask, thickness)), alpha=1.0, colors=colour)
    if boxes is not None and len(boxes):
        frame = draw_bounding_boxes(frame, torch.as_tensor(np.asarray(boxes, np.float32).reshape(-1, 4)),
                                    colors=BOX_COLOUR, width=thickness)
    if clicks:  # solid dots with a white rim, so they show on the tinted mask and on tissue alike
        radius = max(3, min(frame.shape[1:]) // 80)
        rims, dots = _disks(clicks, radius + 1, frame.shape[1:]), _disks(clicks, radius, frame.shape[1:])
        frame = draw_segmentation_masks(frame, rims.any(0, keepdim=True), alpha=1.0, colors=(255, 255, 255))
        colours = [POSITIVE_COLOUR if label == 1 else NEGATIVE_COLOUR for *_, label in clicks]
        frame = draw_segmentation_masks(frame, dots, alpha=1.0, colors=colours)
    return TF.to_pil_image(frame)


def _disks(clicks: list, radius: int, shape: tuple[int, int]) -> torch.Tensor:
    """(N, H, W) bool: a disk of `radius` pixels around each click's (x, y)."""
    ys, xs = torch.meshgrid(torch.arange(shape[0]), torch.arange(shape[1]), indexing="ij")
    centres = torch.tensor([[x, y] for x, y, _ in clicks], dtype=torch.float32)
    return (xs[None] - centres[:, 0, None, None]) ** 2 + (ys[None] - centres[:, 1, None, None]) ** 2 <= radius ** 2


def best_worst_grid(split: "datasets.Dataset", masks: dict, dice: dict, folder: str | Path, per_side: int = 3,
                    prompt_mode: str = "box") -> list[Path]:
    """For each source, the `per_side` best and worst frames by Dice as overlays in one figure,
    like the paper's Figures 2-4. Returns the PNG paths (`folder/<source>.png`).

    Args:
        split: the evaluated dataset split.
        masks: `source/image_id` -> predicted (H, W) bool mask.
        dice: `source/image_id` -> the model's Dice on that frame.
        per_side: frames in each of the best and the worst rows.
        prompt_mode: the prompts the masks were made with, drawn as boxes.
    """

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keys = [frame_key(s, i) for s, i in zip(split["source"], split["image_id"])]
    row_of = {key: n for n, key in enumerate(keys)}
    written = []
    for source in sorted({k.split("/")[0] for k in keys}):
        ranked = sorted((k for k in keys if k.startswith(source + "/") and k in dice), key=lambda k: dice[k])
        worst, best = ranked[:per_side], ranked[::-1][:per_side]
        fig, axes = plt.subplots(2, per_side, figsize=(3.2 * per_side, 6.6), squeeze=False)
        for r, (label, chosen) in enumerate((("best", best), ("worst", worst))):
            for c in range(per_side):
                ax = axes[r][c]
                ax.axis("off")
                if c >= len(chosen):
                    continue
                row = split[row_of[chosen[c]]]
                target = stored_mask(row["mask"])
                ax.imshow(overlay(row["image"], masks[chosen[c]], target, prompt_boxes(row, prompt_mode)))
                ax.set_title(f"{label}: {row['image_id']}\nDice {dice[chosen[c]]:.3f}", fontsize=9)
        fig.suptitle(f"{source}: green prediction, yellow ground truth, cyan box")
        fig.tight_layout()
        path = folder / f"{source}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def plot_click_curves(summary: dict, path: str | Path) -> Path:
    """Mean IoU against the number of clicks, per start and dataset (`evaluation.clicks.summarise_clicks`),
    with the IoU thresholds of NoC@85 and NoC@90 as lines."""
    path = Path(path)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for start, per in summary.items():
        for source, entry in per.items():
            curve = [(k, v) for k, v in enumerate(entry["iou"]) if v is not None]
            ax.plot(*zip(*curve), marker=".", ls="-" if start == "box" else "--", label=f"{source}, {start}")
    for threshold in (0.85, 0.90):
        ax.axhline(threshold, ls=":", color="grey")
    ax.set(xlabel="clicks (from the box: corrections after it)", ylabel="mean IoU", title="IoU against clicks")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_jitter_curves(summary: dict, prompt_mode: str, path: str | Path) -> Path:  # summary: record.Results
    """Mean Dice (all frames) against box jitter, for the model and each box-only baseline."""
    path = Path(path)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for method, modes in summary.items():
        levels = sorted(modes[prompt_mode], key=float)
        ax.plot([float(v) for v in levels], [modes[prompt_mode][v]["all"].dice for v in levels],
                marker="o", label=method)
    ax.set(xlabel="box jitter (fraction of box size)", ylabel="mean Dice", ylim=(0, 1),
           title="Dice against an imperfect box")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
