"""Segmentation losses on SAM's mask logits, with SAM's padding excluded. A registry by name."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from polyp_sam_hf.core.registry import lookup
from polyp_sam_hf.models.segmenter import upsample_to_input, valid_region

SMOOTH = 1.0  # keeps the loss finite, and near 0, for an empty target predicted empty


def dice_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice of sigmoid probabilities, per mask.

    Args:
        logits: (N, H, W) float mask logits.
        target: (N, H, W) 0/1 ground truth on the same grid.
        valid: (N, H, W) bool, False on padding; those pixels count neither way.

    Returns:
        (N,) losses in [0, 1).
    """
    prob = torch.sigmoid(logits.float()) * valid
    target = target.float() * valid
    inter = (prob * target).flatten(1).sum(1)
    total = prob.flatten(1).sum(1) + target.flatten(1).sum(1)
    return 1.0 - (2.0 * inter + SMOOTH) / (total + SMOOTH)


def bce_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy per mask, averaged over its valid pixels. Shapes as `dice_loss`."""
    per_pixel = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
    valid = valid.float()
    return (per_pixel * valid).flatten(1).sum(1) / valid.flatten(1).sum(1).clamp_min(1.0)


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Dice loss plus binary cross-entropy, per mask."""
    return dice_loss(logits, target, valid) + bce_loss(logits, target, valid)


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "dice": dice_loss,
    "dice+bce": dice_bce_loss,
}


def get_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The per-mask loss called `name`; a `ValueError` lists the valid names otherwise."""
    return lookup(LOSSES, name, "loss", "losses")


def batch_loss(
    logits: torch.Tensor,
    batch: dict,
    loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Mean per-prompt loss, on the S x S input grid with padding and padded prompts excluded.

    Args:
        logits: (B, K, h, w) low-resolution logits.
        batch: holds `targets` (B, K, S, S), `reshaped` (B, 2) and `box_valid` (B, K).
    """
    size = batch["targets"].shape[-1]
    up = upsample_to_input(logits, size)  # (B, K, S, S)
    valid = valid_region(batch["reshaped"], size)[:, None].expand_as(up)
    per_mask = loss_fn(up.flatten(0, 1), batch["targets"].flatten(0, 1), valid.flatten(0, 1))
    keep = batch["box_valid"].flatten().float()
    return (per_mask * keep).sum() / keep.sum().clamp_min(1.0)


def click_region_loss(logits: torch.Tensor, batch: dict, regions: torch.Tensor) -> torch.Tensor:
    """Mean over a batch's clicked items of the binary cross-entropy averaged over the error region each
    item's correction click was drawn in: how much of that whole region the round's mask still leaves
    wrong, however large the region (the whole mask's loss weighs a region by its share of the frame).

    Args:
        logits: (B, 1, h, w) a correction round's low-resolution logits.
        batch: holds `targets` (B, 1, S, S).
        regions: (B, S, S) bool, each item's clicked error region on the S x S input grid (all False
            for an item that got no click).
    """
    size = batch["targets"].shape[-1]
    up = upsample_to_input(logits, size)[:, 0]
    clicked = regions.flatten(1).any(1).float()
    per_item = bce_loss(up, batch["targets"][:, 0], regions)
    return (per_item * clicked).sum() / clicked.sum().clamp_min(1.0)
