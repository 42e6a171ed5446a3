"""SAM's preprocessing, once, for every path that feeds the image encoder.

A `SamImageProcessor` resizes a frame so its longest side is `size["longest_edge"]` (filter
`resample`), rescales it (`rescale_factor`, when `do_rescale`), normalises it (`image_mean`,
`image_std`, when `do_normalize`) and pads it with zeros at the bottom and right to `pad_size`.
`Preprocessing` reads those settings from the processor, all of them, and does the same in two
halves: the resize, whose result is uint8 and can be cached (`resize_pad_uint8`), and the affine
normalisation, which runs on the device, batched (`normalize_pixels`). `pixel_values` chains them;
training's loaders, the pixel and embedding caches, `PolypSegmenter` and the hub export check all
use it, so validation, `evaluate` and inference see the same pixels. The resize uses the kernels
transformers' processor uses (torchvision's, on the uint8 frame), so the pixels equal the
processor's to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from polyp_sam_hf.core.errors import ConfigError

# PIL filter code -> torchvision mode, as transformers' image processors map them (nearest is
# "nearest-exact"): resizing with the same kernels on the same uint8 tensor gives the processor's
# pixels to float rounding
_RESAMPLE = {0: InterpolationMode.NEAREST_EXACT, 1: InterpolationMode.LANCZOS, 2: InterpolationMode.BILINEAR,
             3: InterpolationMode.BICUBIC, 4: InterpolationMode.BOX, 5: InterpolationMode.HAMMING}


def resized_shape(height: int, width: int, longest: int) -> tuple[int, int]:
    """The (height, width) SAM resizes a frame to: longest side `longest`, aspect kept."""
    scale = longest / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


@dataclass(frozen=True)
class Preprocessing:
    """The image settings of a `SamImageProcessor`, as the library applies them.

    Attributes:
        longest_edge: the resized frame's longest side.
        pad_size: the square the resized frame is padded to (the encoder's input size).
        resample: PIL filter code of the resize (0 nearest, 2 bilinear, 3 bicubic, ...).
        rescale_factor: multiplies the uint8 values (1.0 when the processor does not rescale).
        mean, std: per channel, after rescaling ((0, 0, 0) and (1, 1, 1) when it does not normalise).
    """

    longest_edge: int
    pad_size: int
    resample: int
    rescale_factor: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def of(cls, processor) -> "Preprocessing":
        """Read a `SamProcessor`'s (or `SamImageProcessor`'s) settings, every one that changes the pixels.

        Raises:
            ValueError: the processor pads to a non-square size (SAM's encoder takes squares).
        """
        ip = getattr(processor, "image_processor", processor)
        size, pad = dict(ip.size.items() if hasattr(ip.size, "items") else ip.size), ip.pad_size
        pad_h, pad_w = int(pad["height"]), int(pad["width"])
        if pad_h != pad_w:
            raise ConfigError(f"The processor pads to {pad_h} x {pad_w}; SAM's image encoder takes a square input.")
        longest = size.get("longest_edge") or pad_h
        resample = getattr(ip, "resample", 2)
        normalize = getattr(ip, "do_normalize", True)
        return cls(
            longest_edge=int(longest),
            pad_size=pad_h,
            resample=int(2 if resample is None else resample),  # 0 (nearest) is a filter, not "unset"
            rescale_factor=float(ip.rescale_factor) if getattr(ip, "do_rescale", True) else 1.0,
            mean=tuple(float(v) for v in ip.image_mean) if normalize else (0.0, 0.0, 0.0),
            std=tuple(float(v) for v in ip.image_std) if normalize else (1.0, 1.0, 1.0),
        )

    def key(self) -> dict:
        """Everything that changes the pixels, for cache keys."""
        return asdict(self)

    @property
    def scale(self) -> torch.Tensor:
        """(3,) per-channel factor of the affine normalisation: rescale_factor / std."""
        return torch.tensor([self.rescale_factor / s for s in self.std], dtype=torch.float32)

    @property
    def shift(self) -> torch.Tensor:
        """(3,) per-channel offset of the affine normalisation: mean / std."""
        return torch.tensor([m / s for m, s in zip(self.mean, self.std)], dtype=torch.float32)

    def reshaped(self, height: int, width: int) -> tuple[int, int]:
        return resized_shape(height, width, self.longest_edge)

    def resize_pad_uint8(self, image: Image.Image) -> np.ndarray:
        """(3, P, P) uint8: the frame resized so its longest side is `longest_edge`, zero-padded."""
        new_h, new_w = self.reshaped(image.height, image.width)
        chw = TF.pil_to_tensor(image.convert("RGB"))  # (3, H, W) uint8
        mode = _RESAMPLE.get(self.resample, InterpolationMode.BILINEAR)
        resized = TF.resize(chw, [new_h, new_w], interpolation=mode, antialias=True)
        out = np.zeros((3, self.pad_size, self.pad_size), dtype=np.uint8)
        out[:, :new_h, :new_w] = resized.numpy()
        return out

    def pixel_values(self, images: Sequence[Image.Image], device: torch.device | str = "cpu"
                     ) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """The encoder's input for RGB frames: float (B, 3, P, P) on `device`, and each frame's
        resized (height, width)."""
        uint8 = torch.from_numpy(np.stack([self.resize_pad_uint8(image) for image in images])).to(device)
        reshaped = [self.reshaped(image.height, image.width) for image in images]
        return normalize_pixels(uint8, torch.tensor(reshaped), self.scale, self.shift), reshaped


def scale_boxes(boxes: np.ndarray, original: tuple[int, int], reshaped: tuple[int, int]) -> np.ndarray:
    """(K, 4) boxes `x0, y0, x1, y1` in original pixels -> the same boxes in the resized frame's
    pixels (the model's input), float32: the one box scaling of training, inference and export.

    Args:
        original: the frame's (height, width).
        reshaped: its resized (height, width) (`Preprocessing.reshaped`).
    """
    (height, width), (new_h, new_w) = original, reshaped
    return np.asarray(boxes, np.float32) * np.array([new_w / width, new_h / height] * 2, np.float32)


def scale_points(points: np.ndarray, original: tuple[int, int], reshaped: tuple[int, int]) -> np.ndarray:
    """(..., 2) points `x, y` in original pixels -> the resized frame's pixels (as `scale_boxes`), float32."""
    (height, width), (new_h, new_w) = original, reshaped
    return np.asarray(points, np.float32) * np.array([new_w / width, new_h / height], np.float32)


def resize_pad_mask(mask: np.ndarray, height: int, width: int, size: int) -> np.ndarray:
    """(S, S) uint8 0/1: a boolean (H, W) mask resized (nearest) to (height, width), zero-padded."""
    resized = Image.fromarray(mask.view(np.uint8)).resize((width, height), Image.NEAREST)  # bool as 0/1, no copy
    out = np.zeros((size, size), dtype=np.uint8)
    out[:height, :width] = np.asarray(resized)
    return out


def normalize_pixels(pixels: torch.Tensor | Sequence[torch.Tensor], reshaped: torch.Tensor, scale: torch.Tensor,
                     shift: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 (B, 3, S, S) -> SAM's float pixel values `x * scale - shift`, padding exactly 0.

    Each frame's resized region is converted to float and normalised in place; only the padding is
    written as zeros. Every output byte is written once or twice and the padding never normalised:
    memory passes matter where the "device" is a CPU (a fresh output's pages are faulted in by the
    first write).

    Args:
        pixels: resized, zero-padded uint8 frames, (B, 3, S, S) or B tensors (3, S, S).
        reshaped: (B, 2) resized (height, width) of each frame.
        scale: (3,) from `Preprocessing.scale` (rescale_factor / std).
        shift: (3,) from `Preprocessing.shift` (mean / std).
        out: optional float32 (B, 3, S, S) to write into (e.g. a shared-memory batch).
    """
    device = pixels[0].device
    scale = scale.view(3, 1, 1).to(device)
    shift = shift.view(3, 1, 1).to(device)
    if out is None:
        out = torch.empty((len(pixels), *pixels[0].shape), dtype=torch.float32, device=device)
    for i, (height, width) in enumerate(reshaped.tolist()):
        frame = out[i, :, :height, :width]
        frame.copy_(pixels[i][:, :height, :width]).mul_(scale).sub_(shift)
        out[i, :, height:, :] = 0
        out[i, :, :height, width:] = 0
    return out
