"""Dice and IoU per image, written once for training's validation, `evaluate` and the tests.

Edge cases, by convention (the one most polyp papers' code follows):
- empty ground truth and empty prediction: Dice = IoU = 1 (the model is right that there is none);
- empty ground truth and a non-empty prediction, or the reverse: Dice = IoU = 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def dice_iou(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Dice and IoU of two boolean masks of the same shape (H, W)."""
    if pred.shape != target.shape:
        raise ValueError(f"Prediction shape {pred.shape} differs from ground truth {target.shape}.")
    pred, target = pred.astype(bool), target.astype(bool)
    inter = float(np.logical_and(pred, target).sum())
    total = float(pred.sum() + target.sum())
    if total == 0:
        return 1.0, 1.0
    union = total - inter
    return 2.0 * inter / total, inter / union


def batch_dice_iou(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dice and IoU per item of boolean batches (B, H, W); same edge cases as `dice_iou`.

    Returns:
        Two float tensors of shape (B,).
    """
    pred, target = pred.bool().flatten(1), target.bool().flatten(1)
    inter = (pred & target).sum(1).float()
    total = (pred.sum(1) + target.sum(1)).float()
    union = total - inter
    empty = total == 0
    dice = torch.where(empty, torch.ones_like(total), 2 * inter / total.clamp_min(1))
    iou = torch.where(empty, torch.ones_like(total), inter / union.clamp_min(1))
    return dice, iou


def pranet_dice_iou(prob: np.ndarray, target: np.ndarray, num_thresholds: int = 256) -> tuple[float, float]:
    """PraNet's protocol: Dice and IoU, each averaged over `num_thresholds` thresholds of a probability map.

    Args:
        prob: (H, W) float probabilities in [0, 1].
        target: (H, W) boolean ground truth.

    Thresholds are `linspace(0, 1, num_thresholds)`; a pixel is foreground when its probability is
    at least the threshold.
    """
    target = target.astype(bool)
    thresholds = np.linspace(0.0, 1.0, num_thresholds)
    # one pass: histogram the probabilities of foreground and background pixels per threshold bin
    bins = np.clip(np.searchsorted(thresholds, prob.ravel(), side="right") - 1, 0, num_thresholds - 1)
    fg = np.bincount(bins[target.ravel()], minlength=num_thresholds)
    allp = np.bincount(bins, minlength=num_thresholds)
    # pixels predicted positive at threshold t: those with prob >= t, i.e. bin index >= index of t
    tp = np.cumsum(fg[::-1])[::-1].astype(np.float64)
    pp = np.cumsum(allp[::-1])[::-1].astype(np.float64)
    gt = float(target.sum())
    total = pp + gt
    dice = np.where(total == 0, 1.0, 2.0 * tp / np.maximum(total, 1.0))
    union = total - tp
    iou = np.where(union == 0, 1.0, tp / np.maximum(union, 1.0))
    return float(dice.mean()), float(iou.mean())


# The same metric as an `evaluate` module: `evaluate.load(METRIC_SCRIPT)` works offline.
METRIC_SCRIPT = str(Path(__file__).parent / "metrics_module" / "polyp_dice.py")
