"""The model's forward pass on a batch from `data.batches`: shared by training and validation."""

from __future__ import annotations

import torch

from polyp_sam_hf.models.mask_prompts import mask_prompt_logits
from polyp_sam_hf.data.preprocessing import normalize_pixels


def prompt_logits(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """Low-resolution mask logits (B, K, h, w), one mask per box (SAM's single-mask output), or
    (B, 1, h, w) for a prompt-free batch (`batch["prompt_free"]`).

    Uses `image_embeddings` when the batch has them (cached encoder), `pixel_values` when the
    loader normalised the frames, else normalises the uint8 frames on their device. A model trained
    with a mask prompt (`mask_prompts`) gets it, made from the batch's boxes.
    """
    if "image_embeddings" in batch:
        inputs = {"image_embeddings": batch["image_embeddings"]}
    elif "pixel_values" in batch:
        inputs = {"pixel_values": batch["pixel_values"]}
    else:
        pixels = normalize_pixels(batch["pixel_uint8"], batch["reshaped"], batch["pixel_scale"], batch["pixel_shift"])
        inputs = {"pixel_values": pixels}
    if batch.get("prompt_free"):  # no prompt at all: (B, 1, h, w), the mask of everything it finds
        out = model(**inputs, multimask_output=False)
    else:
        masks = mask_prompt_logits(model, batch["input_boxes"], batch["box_valid"])  # on the boxes' device
        if masks is not None:
            inputs["input_masks"] = masks
        out = model(**inputs, input_boxes=batch["input_boxes"], multimask_output=False)
    return out.pred_masks[:, :, 0]
