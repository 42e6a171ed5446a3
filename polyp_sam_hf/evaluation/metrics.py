"""Dice and IoU per image, written once: `score_logits` scores every frame of training's
validation, the test report and `evaluate`.

Edge cases, by convention (the one most polyp papers' code follows):
- empty ground truth and empty prediction: Dice = IoU = 1 (the model is right that there is none);
- empty ground truth and a non-empty prediction, or the reverse: Dice = IoU = 0.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from polyp_sam_hf.core.registry import lookup
from polyp_sam_hf.data.prompts import MIN_POLYP_AREA, label_components
from polyp_sam_hf.models.segmenter import to_mask


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


DETECTION_IOU = 0.5  # a predicted component finds a polyp when their IoU reaches this


def detection_counts(pred: np.ndarray, target: np.ndarray, iou: float = DETECTION_IOU,
                     min_area: int = MIN_POLYP_AREA) -> tuple[int, int, int]:
    """Polyps found and false alarms in one frame, from 8-connected components.

    Each ground-truth component of at least `min_area` pixels is a polyp; it is found when some
    predicted component (of at least `min_area`) overlaps it with IoU >= `iou`. A predicted
    component that finds no polyp is a false positive.

    Returns:
        (polyps, found, false_positives).
    """
    truth, n_truth = label_components(target)
    guess, n_guess = label_components(pred)
    truth_area = np.bincount(truth.ravel(), minlength=n_truth + 1)
    guess_area = np.bincount(guess.ravel(), minlength=n_guess + 1)
    # overlap of every (truth, guess) pair of labels in one pass
    pairs = np.bincount((truth.astype(np.int64) * (n_guess + 1) + guess).ravel(),
                        minlength=(n_truth + 1) * (n_guess + 1)).reshape(n_truth + 1, n_guess + 1)
    polyps = [t for t in range(1, n_truth + 1) if truth_area[t] >= min_area]
    guesses = [g for g in range(1, n_guess + 1) if guess_area[g] >= min_area]
    matched: set[int] = set()
    found = 0
    for t in polyps:
        ious = {g: pairs[t, g] / (truth_area[t] + guess_area[g] - pairs[t, g]) for g in guesses if pairs[t, g]}
        hits = [g for g, value in ious.items() if value >= iou]
        if hits:
            found += 1
            matched.update(hits)
    return len(polyps), found, len([g for g in guesses if g not in matched])


def _paper(logits: torch.Tensor, target: np.ndarray) -> tuple[float, float]:
    # SAM's own threshold (`segmenter.to_mask`: probability 0.5), on the union of the frame's prompts
    return dice_iou(to_mask(logits).any(0).cpu().numpy(), target)


def _pranet(logits: torch.Tensor, target: np.ndarray) -> tuple[float, float]:
    return pranet_dice_iou(torch.sigmoid(logits.float()).amax(0).cpu().numpy(), target)


Protocol = Callable[[torch.Tensor, np.ndarray], tuple[float, float]]
PROTOCOLS: dict[str, Protocol] = {
    # Polyp-SAM's code: one threshold at probability 0.5
    "paper": _paper,
    # PraNet's evaluation (Polyp-PVT, HSNet): mean over 256 thresholds of the probability map
    "pranet": _pranet,
}


def get_protocol(name: str) -> Protocol:
    """The scoring protocol called `name`; a `ConfigError` lists the valid names otherwise."""
    return lookup(PROTOCOLS, name, "protocol")


def score_logits(logits: torch.Tensor | None, target: np.ndarray, protocol: str = "paper") -> tuple[float, float]:
    """Dice and IoU of one frame: the one scoring that validation, the test report and `evaluate` use.

    Args:
        logits: (K, H, W) mask logits of the frame's K prompts at the original size (their union is
            the prediction), or None when the frame had no prompt (nothing is predicted).
        target: (H, W) boolean ground truth.
        protocol: a `PROTOCOLS` key.
    """
    if logits is None or len(logits) == 0:
        logits = torch.full((1, *target.shape), -torch.inf)
    return get_protocol(protocol)(logits, np.asarray(target, dtype=bool))


def logits_from_mask(mask: np.ndarray) -> torch.Tensor:
    """A binary prediction (H, W) as (1, H, W) logits, +inf inside and -inf outside (probability
    exactly 1 and 0), so box-only baselines are scored by `score_logits` like the model."""
    return torch.where(torch.from_numpy(np.asarray(mask, dtype=bool))[None], torch.inf, -torch.inf)


# The same scoring as a Hugging Face `evaluate` metric: `evaluate.load(METRIC_SCRIPT)` works offline.
METRIC_SCRIPT = str(Path(__file__).parent / "hub_metric" / "polyp_dice.py")
