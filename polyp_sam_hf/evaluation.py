"""One forward pass, one loss and one score for SAM batches: shared by training, validation and `evaluate`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .metrics import score_logits
from .preprocessing import normalize_pixels
from .postprocess import logits_to_original, upsample_to_input, valid_region


def prompt_logits(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """Low-resolution mask logits (B, K, h, w), one mask per box (SAM's single-mask output).

    Uses `image_embeddings` when the batch has them (cached encoder), `pixel_values` when the
    loader normalised the frames, else normalises the uint8 frames on their device.
    """
    if "image_embeddings" in batch:
        inputs = {"image_embeddings": batch["image_embeddings"]}
    elif "pixel_values" in batch:
        inputs = {"pixel_values": batch["pixel_values"]}
    else:
        pixels = normalize_pixels(batch["pixel_uint8"], batch["reshaped"], batch["pixel_scale"], batch["pixel_shift"])
        inputs = {"pixel_values": pixels}
    out = model(**inputs, input_boxes=batch["input_boxes"], multimask_output=False)
    return out.pred_masks[:, :, 0]


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


def original_size_logits(logits: torch.Tensor, batch: dict) -> list[torch.Tensor | None]:
    """Per frame, its valid prompts' logits at the original size: a list of (K, H, W), or None for
    a frame with no prompt (empty ground truth in `test`)."""
    size = batch["targets"].shape[-1]
    out = []
    for i in range(logits.shape[0]):
        height, width = (int(v) for v in batch["original"][i])
        own = logits[i][batch["box_valid"][i]]
        out.append(logits_to_original(own, size, batch["reshaped"][i].tolist(), (height, width))
                   if own.shape[0] else None)
    return out


def score_batch(logits: torch.Tensor, batch: dict, protocol: str = "paper") -> tuple[torch.Tensor, torch.Tensor]:
    """Dice and IoU per frame (B,) at the original resolution, by `metrics.score_logits`."""
    scores = [score_logits(frame, np.asarray(mask), protocol)
              for frame, mask in zip(original_size_logits(logits, batch), batch["mask"])]
    dice, iou = zip(*scores) if scores else ((), ())
    return (torch.tensor(dice, dtype=torch.float32, device=logits.device),
            torch.tensor(iou, dtype=torch.float32, device=logits.device))


@torch.no_grad()
def evaluate_loader(model: torch.nn.Module, loader, accelerator, desc: str = "Validating") -> dict:
    """Mean Dice and mIoU over a (prepared) loader, gathered across processes.

    Returns:
        `{"dice": float, "miou": float, "n": int}`.
    """
    model.eval()
    dices, ious = [], []
    for batch in tqdm(loader, desc=desc, disable=not accelerator.is_local_main_process, leave=False):
        dice, iou = score_batch(prompt_logits(model, batch), batch)
        dice, iou = accelerator.gather_for_metrics((dice, iou))
        dices.append(dice.cpu())
        ious.append(iou.cpu())
    model.train()
    dice, iou = torch.cat(dices), torch.cat(ious)
    return {
        "dice": float(dice.mean()) if len(dice) else float("nan"),
        "miou": float(iou.mean()) if len(iou) else float("nan"),
        "n": int(len(dice)),
    }
