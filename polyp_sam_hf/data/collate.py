"""From dataset rows to SAM batches: pixels (or cached embeddings), box prompts and targets.

Each item holds K prompts (K = 1 for the paper's whole-mask box, one per polyp with
`prompt_mode="per-component"`); `collate` pads K over the batch and marks the padding.
"""

from __future__ import annotations

from collections.abc import Callable

import datasets
import numpy as np
import torch
from PIL import Image
from transformers import SamProcessor

from ..pixel_cache import processor_settings, resize_pad_uint8
from .prompts import component_masks, jitter_box

PROMPT_MODES = ("single", "per-component")


def resized_shape(height: int, width: int, longest: int) -> tuple[int, int]:
    """The (height, width) SAM resizes a frame to: longest side `longest`, aspect kept."""
    scale = longest / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


class PromptDataset(torch.utils.data.Dataset):
    """Wraps a prepared split for SAM.

    Items:
        `pixel_uint8` (3, S, S) uint8, the frame resized and padded (normalised later, on the
        device, by `normalize_pixels`), read from `pixels` when given; or `image_embeddings`
        (C, h, w) when `embeddings` is given; `pixel_mean`, `pixel_std` (3,);
        `boxes` (K, 4) float in the S x S input frame; `targets` (K, S, S) uint8 0/1 on the same
        grid (zero on the padding); `reshaped` (2,) and `original` (2,) long (height, width);
        `mask` (H, W) bool at the original size; `index` int.

    Box jitter is drawn from a generator seeded by (seed, epoch, index): the same run gives the
    same boxes whatever the worker count, and a resumed run the boxes it would have seen.
    """

    def __init__(
        self,
        split: datasets.Dataset,
        processor: SamProcessor,
        prompt_mode: str = "single",
        box_jitter: float = 0.0,
        seed: int = 0,
        embeddings: Callable[[str], torch.Tensor] | None = None,
        pixels: Callable[[str], torch.Tensor] | None = None,
        original_masks: bool = True,
    ) -> None:
        if prompt_mode not in PROMPT_MODES:
            raise ValueError(f"Unknown prompt mode {prompt_mode!r}. Valid modes: {', '.join(PROMPT_MODES)}.")
        self.split = split
        self.processor = processor
        self.input_size, self.resample, self.mean, self.std = processor_settings(processor)
        self.prompt_mode = prompt_mode
        self.box_jitter = box_jitter
        self.seed = seed
        self.embeddings = embeddings
        self.pixels = pixels
        self.original_masks = original_masks  # for scoring at the original size; training needs none
        # decode the frame only when it is needed (no cache); the mask always
        needs_image = embeddings is None and pixels is None
        self.rows = split if needs_image else split.select_columns([c for c in split.column_names if c != "image"])
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.split)

    def _prompts(self, row: dict, mask: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        if self.prompt_mode == "single" or not row["boxes"]:
            boxes = [row["box"]] if row["box"] is not None else []
            return np.asarray(boxes, np.float32).reshape(-1, 4), [mask] * len(boxes)
        boxes = row["boxes"]
        return np.asarray(boxes, np.float32), component_masks(mask, boxes)

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        mask = np.asarray(row["mask"]) > 127
        height, width = mask.shape
        boxes, targets = self._prompts(row, mask)
        if self.box_jitter > 0 and len(boxes):
            rng = np.random.default_rng((self.seed, self.epoch, index))
            boxes = jitter_box(boxes, self.box_jitter, width, height, rng)
        new_h, new_w = resized_shape(height, width, self.input_size)
        scale = np.array([new_w / width, new_h / height] * 2, np.float32)
        item = {
            "boxes": torch.from_numpy(boxes * scale),
            "targets": self._targets(targets, new_h, new_w),
            "reshaped": torch.tensor([new_h, new_w]),
            "original": torch.tensor([height, width]),
            "index": index,
        }
        if self.original_masks:
            item["mask"] = torch.from_numpy(mask)
        key = f"{row['source']}/{row['image_id']}"
        if self.embeddings is not None:
            item["image_embeddings"] = self.embeddings(key)
            return item
        if self.pixels is not None:
            item["pixel_uint8"] = self.pixels(key)
        else:
            item["pixel_uint8"] = torch.from_numpy(resize_pad_uint8(row["image"], self.input_size, self.resample))
        item["pixel_mean"], item["pixel_std"] = self.mean, self.std
        return item

    def _targets(self, masks: list[np.ndarray], new_h: int, new_w: int) -> torch.Tensor:
        """(K, S, S) uint8: each target resized (nearest) to the frame's resized size, zero-padded."""
        size = self.input_size
        out = np.zeros((len(masks), size, size), dtype=np.uint8)
        for k, mask in enumerate(masks):
            resized = Image.fromarray(mask.astype(np.uint8)).resize((new_w, new_h), Image.NEAREST)
            out[k, :new_h, :new_w] = np.asarray(resized)
        return torch.from_numpy(out)


def collate(items: list[dict]) -> dict:
    """Stack items, padding the prompt count K to the batch's largest.

    Adds `box_valid` (B, K) bool, False for padded prompts (their boxes are copies of a real one
    so the model sees valid coordinates; the loss ignores them). `mask`, when the items carry it,
    stays a list: frames keep their own size.
    """
    k = max(max(len(item["boxes"]) for item in items), 1)
    size = items[0]["targets"].shape[-1]
    boxes, targets, valid = [], [], []
    for item in items:
        n = len(item["boxes"])
        filler = item["boxes"][:1] if n else torch.tensor([[0.0, 0.0, 1.0, 1.0]])
        boxes.append(torch.cat([item["boxes"], filler.expand(k - n, 4)]))
        targets.append(torch.cat([item["targets"], torch.zeros((k - n, size, size), dtype=torch.uint8)]))
        valid.append(torch.arange(k) < n)
    batch = {
        "input_boxes": torch.stack(boxes),
        "targets": torch.stack(targets),
        "box_valid": torch.stack(valid),
        "reshaped": torch.stack([item["reshaped"] for item in items]),
        "original": torch.stack([item["original"] for item in items]),
        "index": torch.tensor([item["index"] for item in items]),
    }
    if "mask" in items[0]:
        batch["mask"] = [item["mask"] for item in items]
    if "image_embeddings" in items[0]:
        batch["image_embeddings"] = torch.stack([item["image_embeddings"] for item in items])
    else:
        batch["pixel_uint8"] = torch.stack([item["pixel_uint8"] for item in items])
        batch["pixel_mean"], batch["pixel_std"] = items[0]["pixel_mean"], items[0]["pixel_std"]
    return batch
