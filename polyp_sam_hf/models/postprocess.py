"""From SAM's low-resolution mask logits back to the grids the loss and the metrics compare on.

SAM resizes a frame so its longest side is the encoder's input size S, pads it at the bottom and
right to S x S, and predicts masks at S / 4. Going back: upsample to S, crop the padding away
(the `reshaped` size), then resize to the original frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def upsample_to_input(low_res: torch.Tensor, input_size: int) -> torch.Tensor:
    """(B, K, h, w) logits -> (B, K, S, S), bilinear, as SAM's post-processing does."""
    return F.interpolate(low_res.float(), (input_size, input_size), mode="bilinear", align_corners=False)


def valid_region(reshaped: torch.Tensor, input_size: int) -> torch.Tensor:
    """(B, S, S) bool: True inside each image's resized frame, False on the padding.

    Args:
        reshaped: (B, 2) resized (height, width) of each frame.
    """
    rows = torch.arange(input_size, device=reshaped.device)
    inside_h = rows[None, :] < reshaped[:, 0:1]
    inside_w = rows[None, :] < reshaped[:, 1:2]
    return inside_h[:, :, None] & inside_w[:, None, :]


def logits_to_original(
    low_res: torch.Tensor, input_size: int, reshaped: tuple[int, int], original: tuple[int, int]
) -> torch.Tensor:
    """One frame's (K, h, w) low-resolution logits -> (K, H, W) logits at the original size."""
    full = upsample_to_input(low_res[None], input_size)[0]
    cropped = full[:, : int(reshaped[0]), : int(reshaped[1])]
    return F.interpolate(cropped[None], tuple(int(v) for v in original), mode="bilinear",
                         align_corners=False)[0]
