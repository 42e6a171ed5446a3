"""The pixel cache: frames resized and padded to the encoder's input once, as uint8.

Only the resize of SAM's preprocessing (`preprocessing.Preprocessing`) depends on the frame's
pixels in a costly way, and its result is uint8; so the loader hands over uint8 frames (4x
smaller than float) and the normalisation runs on the device, batched. With this cache the
resized frames are computed once and read from a memory-mapped file, so no JPEG is decoded during
training; it also holds each frame's whole mask on the same grid (the training target for a
single box), so no mask PNG is decoded either.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
from accelerate import Accelerator
from transformers import SamProcessor

from polyp_sam_hf.data.array_cache import ArrayCache, cache_keys
from polyp_sam_hf.data.preprocessing import Preprocessing, resize_pad_mask
from polyp_sam_hf.data.reading import stored_mask

CACHE_FORMAT = 2  # bump when the bytes a cache entry holds change for the same settings


def build_pixel_cache(processor: SamProcessor, splits: list[datasets.Dataset], root: str | Path,
                      accelerator: Accelerator, batch_size: int = 16) -> ArrayCache:
    """Open (computing once) the cache of resized frames and masks for these splits under `root`.

    Each entry is (4, S, S) uint8: the frame's three channels as `resize_pad_uint8` gives them,
    then its whole mask (0/1) on the same grid as `resize_pad_mask` gives it. The folder is named
    by everything that changes its bytes: the layout and its version (`CACHE_FORMAT`), the resize
    settings (longest edge, padded size, filter; the normalisation happens after the cache, on the
    device), and the frames' fingerprint.
    """
    prep = Preprocessing.of(processor)
    size = prep.pad_size
    resize = {"longest_edge": prep.longest_edge, "pad_size": prep.pad_size, "resample": prep.resample}
    settings = json.dumps(["rgb+mask", CACHE_FORMAT, resize], sort_keys=True).encode()
    key, reuse_key = cache_keys(settings, splits)
    folder = Path(root) / f"pixels-{key}"

    def resize(rows: list[dict]) -> np.ndarray:
        out = np.empty((len(rows), 4, size, size), dtype=np.uint8)
        for n, row in enumerate(rows):
            out[n, :3] = prep.resize_pad_uint8(row["image"])
            mask = stored_mask(row["mask"])
            out[n, 3] = resize_pad_mask(mask, *prep.reshaped(*mask.shape), size)
        return out

    return ArrayCache.build(folder, splits, resize, (4, size, size), np.uint8, accelerator, batch_size,
                            desc="Caching resized frames", columns=("image", "mask"),
                            reuse_key=reuse_key)
