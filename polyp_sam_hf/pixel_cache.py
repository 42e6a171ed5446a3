"""Frames resized and padded to the encoder's input once, as uint8, normalised on the device.

SAM's preprocessing is: resize so the longest side is S (bilinear), scale to [0, 1], normalise by
the ImageNet mean and std, pad to S x S with zeros. Only the resize depends on the frame's pixels
in a costly way, and its result is uint8; so the loader can hand over uint8 frames (4x smaller
than float) and the normalisation runs on the device, batched. With the pixel cache the resized
frames are computed once and read from a memory-mapped file, so no JPEG is decoded during
training. The result equals `SamImageProcessor`'s up to rounding of the resized pixels (at most
one grey level).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import datasets
import numpy as np
import torch
from accelerate import Accelerator
from PIL import Image
from transformers import SamProcessor

from .array_cache import ArrayCache, frames_fingerprint

_RESAMPLE = {0: Image.NEAREST, 1: Image.LANCZOS, 2: Image.BILINEAR, 3: Image.BICUBIC}


def resize_pad_uint8(image: Image.Image, size: int, resample: int = 2) -> np.ndarray:
    """(3, S, S) uint8: the frame resized so its longest side is `size`, zero-padded bottom/right."""
    scale = size / max(image.width, image.height)
    new_w, new_h = int(image.width * scale + 0.5), int(image.height * scale + 0.5)
    resized = np.asarray(image.convert("RGB").resize((new_w, new_h), _RESAMPLE.get(int(resample), Image.BILINEAR)))
    out = np.zeros((3, size, size), dtype=np.uint8)
    out[:, :new_h, :new_w] = resized.transpose(2, 0, 1)
    return out


def normalize_pixels(pixels: torch.Tensor, reshaped: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, S, S) -> SAM's float pixel values, padding back to exactly 0.

    One float copy, normalised in place (`x * 1/(255 std) - mean/std`), then the padding zeroed by
    slices: a few passes over memory, which matters where the "device" is a CPU.

    Args:
        pixels: resized, zero-padded frames.
        reshaped: (B, 2) resized (height, width) of each frame.
        mean: (3,) per-channel mean in [0, 1] units.
        std: (3,) per-channel standard deviation in [0, 1] units.
    """
    scale = (1.0 / (255.0 * std)).view(1, 3, 1, 1).to(pixels.device)
    shift = (mean / std).view(1, 3, 1, 1).to(pixels.device)
    out = pixels.to(torch.float32)
    out.mul_(scale).sub_(shift)
    for i, (height, width) in enumerate(reshaped.tolist()):
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
    """Open (computing once) the cache of resized uint8 frames for these splits under `root`.

    Its folder is named by the input size, the resize filter and the frames' fingerprint.
    """
    size, resample, _, _ = processor_settings(processor)
    key = hashlib.sha256(json.dumps([size, resample]).encode() + frames_fingerprint(splits).encode())
    folder = Path(root) / f"pixels-{key.hexdigest()[:24]}"

    def resize(images: list) -> np.ndarray:
        return np.stack([resize_pad_uint8(image, size, resample) for image in images])

    return ArrayCache.build(folder, splits, resize, (3, size, size), np.uint8, accelerator, batch_size,
                            desc="Caching resized frames")
