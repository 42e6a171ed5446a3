"""Frames resized and padded to the encoder's input once, as uint8, normalised on the device.

SAM's preprocessing is: resize so the longest side is S (bilinear), scale to [0, 1], normalise by
the ImageNet mean and std, pad to S x S with zeros. Only the resize depends on the frame's pixels
in a costly way, and its result is uint8; so the loader can hand over uint8 frames (4x smaller
than float) and the normalisation runs on the device, batched. With the pixel cache the resized
frames are computed once and read from a memory-mapped file, so no JPEG is decoded during
training; the cache also holds each frame's whole mask on the same grid (the training target for
a single box), so no mask PNG is decoded either. The pixels equal `SamImageProcessor`'s up to
rounding of the resized pixels (at most one grey level).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
import torch
from accelerate import Accelerator
from PIL import Image
from transformers import SamProcessor

from .array_cache import ArrayCache, frames_fingerprint

_RESAMPLE = {0: Image.NEAREST, 1: Image.LANCZOS, 2: Image.BILINEAR, 3: Image.BICUBIC}


def resized_shape(height: int, width: int, longest: int) -> tuple[int, int]:
    """The (height, width) SAM resizes a frame to: longest side `longest`, aspect kept."""
    scale = longest / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def resize_pad_uint8(image: Image.Image, size: int, resample: int = 2) -> np.ndarray:
    """(3, S, S) uint8: the frame resized so its longest side is `size`, zero-padded bottom/right."""
    new_h, new_w = resized_shape(image.height, image.width, size)
    resized = np.asarray(image.convert("RGB").resize((new_w, new_h), _RESAMPLE.get(int(resample), Image.BILINEAR)))
    out = np.zeros((3, size, size), dtype=np.uint8)
    out[:, :new_h, :new_w] = resized.transpose(2, 0, 1)
    return out


def resize_pad_mask(mask: np.ndarray, height: int, width: int, size: int) -> np.ndarray:
    """(S, S) uint8 0/1: a boolean (H, W) mask resized (nearest) to (height, width), zero-padded."""
    resized = Image.fromarray(mask.view(np.uint8)).resize((width, height), Image.NEAREST)  # bool as 0/1, no copy
    out = np.zeros((size, size), dtype=np.uint8)
    out[:height, :width] = np.asarray(resized)
    return out


def normalize_pixels(pixels: torch.Tensor | Sequence[torch.Tensor], reshaped: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                     out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 (B, 3, S, S) -> SAM's float pixel values, padding back to exactly 0.

    Each frame's resized region is converted to float and normalised in place
    (`x * 1/(255 std) - mean/std`); only the padding is written as zeros. Every output byte is
    written once or twice and the padding never normalised: memory passes matter where the
    "device" is a CPU (a fresh output's pages are faulted in by the first write).

    Args:
        pixels: resized, zero-padded uint8 frames, (B, 3, S, S) or B tensors (3, S, S).
        reshaped: (B, 2) resized (height, width) of each frame.
        mean: (3,) per-channel mean in [0, 1] units.
        std: (3,) per-channel standard deviation in [0, 1] units.
        out: optional float32 (B, 3, S, S) to write into (e.g. a shared-memory batch).
    """
    device = pixels[0].device
    scale = (1.0 / (255.0 * std)).view(3, 1, 1).to(device)
    shift = (mean / std).view(3, 1, 1).to(device)
    if out is None:
        out = torch.empty((len(pixels), *pixels[0].shape), dtype=torch.float32, device=device)
    for i, (height, width) in enumerate(reshaped.tolist()):
        frame = out[i, :, :height, :width]
        frame.copy_(pixels[i][:, :height, :width]).mul_(scale).sub_(shift)
        out[i, :, height:, :] = 0
        out[i, :, :height, width:] = 0
    return out


def processor_settings(processor: SamProcessor) -> tuple[int, int, torch.Tensor, torch.Tensor]:
    """(input size S, resample filter, mean (3,), std (3,)) of a SamProcessor."""
    ip = processor.image_processor
    return (int(ip.pad_size["height"]), int(getattr(ip, "resample", 2) or 2),
            torch.tensor(ip.image_mean, dtype=torch.float32), torch.tensor(ip.image_std, dtype=torch.float32))


def build_pixel_cache(processor: SamProcessor, splits: list[datasets.Dataset], root: str | Path,
                      accelerator: Accelerator, batch_size: int = 16) -> ArrayCache:
    """Open (computing once) the cache of resized frames and masks for these splits under `root`.

    Each entry is (4, S, S) uint8: the frame's three channels as `resize_pad_uint8` gives them,
    then its whole mask (0/1) on the same grid as `resize_pad_mask` gives it. The folder is named
    by the layout, the input size, the resize filter and the frames' fingerprint.
    """
    size, resample, _, _ = processor_settings(processor)
    key = hashlib.sha256(json.dumps(["rgb+mask", size, resample]).encode() + frames_fingerprint(splits).encode())
    folder = Path(root) / f"pixels-{key.hexdigest()[:24]}"

    def resize(rows: list[dict]) -> np.ndarray:
        out = np.empty((len(rows), 4, size, size), dtype=np.uint8)
        for n, row in enumerate(rows):
            out[n, :3] = resize_pad_uint8(row["image"], size, resample)
            mask = np.asarray(row["mask"]) > 127
            out[n, 3] = resize_pad_mask(mask, *resized_shape(*mask.shape, size), size)
        return out

    return ArrayCache.build(folder, splits, resize, (4, size, size), np.uint8, accelerator, batch_size,
                            desc="Caching resized frames", columns=("image", "mask"))
