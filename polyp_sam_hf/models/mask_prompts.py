"""Dense mask prompts made from the box prompts: the box given to SAM a second time, as a shape.

SAM's prompt encoder also takes a mask (logits on a grid four times finer than the image
embedding: 256 x 256 for a 64 x 64 embedding). With `ellipse`, every box prompt is accompanied by
the ellipse inscribed in it, as logits of +`ELLIPSE_LOGIT` inside and -`ELLIPSE_LOGIT` outside
(the union over a frame's boxes: SAM takes one mask per frame). Nothing but the box goes in: the
ellipse is a function of the box, so a model prompted this way is still given only a box.

The setting belongs to a model, not to a run: training writes it into the model's config
(`config.polyp_sam_mask_prompt`), so its `best/` folder, `evaluate`, `predict`, the app and the
validation all prompt the model the way it was trained.
"""

from __future__ import annotations

from typing import Callable

import torch

from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.core.registry import lookup
from polyp_sam_hf.core.wrappers import unwrap
from polyp_sam_hf.data.prompts import inside_inscribed_ellipse

CONFIG_KEY = "polyp_sam_mask_prompt"
# Strength of the prompt: a confident mask (sigmoid 0.993) that the decoder can still overrule.
ELLIPSE_LOGIT = 5.0

MaskPromptFn = Callable[[torch.Tensor, torch.Tensor, int, int], "torch.Tensor | None"]


def no_mask_prompt(boxes, valid, input_size, grid):
    return None


def ellipse_mask_prompt(boxes: torch.Tensor, valid: torch.Tensor, input_size: int, grid: int) -> torch.Tensor:
    """The ellipses inscribed in the boxes, as mask-prompt logits.

    Args:
        boxes: (B, K, 4) boxes `x0, y0, x1, y1` in the model's input pixels (the resized frame).
        valid: (B, K) bool, False for padding boxes.
        input_size: the model's input side (1024 for SAM, 256 for LiteMedSAM).
        grid: the mask prompt's side (4 x the embedding side).

    Returns:
        (B, 1, grid, grid) float logits: +ELLIPSE_LOGIT inside any valid box's ellipse, else -ELLIPSE_LOGIT.
    """
    centres = (torch.arange(grid, device=boxes.device, dtype=torch.float32) + 0.5) * (input_size / grid)
    inside = inside_inscribed_ellipse(boxes.float(), centres, centres, min_radius=1.0)  # (B, K, grid, grid)
    inside = (inside & valid[..., None, None].bool()).any(1, keepdim=True)  # (B, 1, grid, grid)
    return torch.where(inside, ELLIPSE_LOGIT, -ELLIPSE_LOGIT)


MASK_PROMPTS: dict[str, MaskPromptFn] = {"none": no_mask_prompt, "ellipse": ellipse_mask_prompt}


def unwrap_config(model: torch.nn.Module):
    """The `SamConfig` of a model, also when Accelerate or DDP wrapped it (`.module`)."""
    return unwrap(model, "config").config


def mask_prompt_name(model: torch.nn.Module) -> str:
    """The mask prompt the model was trained with ("none" for any other SAM)."""
    name = getattr(unwrap_config(model), CONFIG_KEY, None) or "none"
    if name not in MASK_PROMPTS:
        raise ConfigError(f"The model's config.json asks for mask prompt {name!r}; this library knows "
                          f"{', '.join(MASK_PROMPTS)}. Upgrade polyp-sam-hf or set {CONFIG_KEY} to one of them.")
    return name


def set_mask_prompt(model: torch.nn.Module, name: str) -> None:
    """Record the mask prompt in the model's config, so that it is saved with its weights."""
    lookup(MASK_PROMPTS, name, "mask prompt")  # unknown names fail here, with the choices
    setattr(unwrap_config(model), CONFIG_KEY, name)


def mask_prompt_logits(model: torch.nn.Module, boxes: torch.Tensor, valid: torch.Tensor,
                       name: str | None = None) -> torch.Tensor | None:
    """The (B, 1, grid, grid) mask prompt for (B, K, 4) boxes in input pixels, or None for "none".

    `name` overrides the model's own setting (to evaluate a plain SAM with the ellipse, say).
    """
    config = unwrap_config(model)
    prompt = config.prompt_encoder_config
    grid = 4 * (prompt.image_size // prompt.patch_size)
    return lookup(MASK_PROMPTS, name or mask_prompt_name(model), "mask prompt")(boxes, valid, prompt.image_size, grid)
