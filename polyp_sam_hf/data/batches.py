"""From dataset rows to SAM batches: pixels (or cached embeddings), box prompts and targets.

Each item holds K prompts (K = 1 for the paper's whole-mask box, one per polyp with
`prompt_mode="box-per-polyp"`); `collate` pads K over the batch and marks the padding.
"""

from __future__ import annotations

from collections.abc import Callable

import datasets
import numpy as np
import torch
from transformers import SamProcessor

from polyp_sam_hf.core.registry import lookup
from polyp_sam_hf.data.clicks import FIRST_CLICKS
from polyp_sam_hf.data.preprocessing import Preprocessing, normalize_pixels, resize_pad_mask, scale_boxes
from polyp_sam_hf.data.prompts import TRAINING_PROMPT_MODES, jitter_box, prompt_boxes, prompt_targets
from polyp_sam_hf.data.reading import stored_mask
from polyp_sam_hf.data.sources import frame_key

FIRST_CLICK_STREAM = 1  # the first click's generator is seeded apart from the box jitter's: (seed, epoch, index, 1)


class PromptDataset(torch.utils.data.Dataset):
    """Wraps a prepared split for SAM.

    Items:
        `pixel_uint8` (3, S, S) uint8, the frame resized and padded (normalised later, on the
        device, by `normalize_pixels`), a view of the pixel cache `pixels` when given (its entries
        are (4, S, S): frame, then whole mask; that plane is the target for a single whole-mask
        box when no original-size mask is asked for, so no mask is decoded); or `image_embeddings`
        (C, h, w) when `embeddings` is given; `pixel_scale`, `pixel_shift` (3,) (`Preprocessing`);
        `boxes` (K, 4) float in the S x S input frame; `targets` (K, S, S) uint8 0/1 on the same
        grid (zero on the padding); `reshaped` (2,) and `original` (2,) long (height, width);
        `mask` (H, W) bool numpy array at the original size (never moved to the device: scoring
        runs on the CPU); `index` int; `first_point` (2,) float in the S x S input frame and
        `point_first` bool: a click drawn in the polyp (`first_click`: a `data.clicks.FIRST_CLICKS`
        name), the step's first prompt instead of the box for a `point_share` of the items
        (interactive training).

    Box jitter and the first click are drawn from generators seeded by (seed, epoch, index): the same
    run gives the same prompts whatever the worker count, and a resumed run the prompts it would have
    seen.
    """

    def __init__(
        self,
        split: datasets.Dataset,
        processor: SamProcessor,
        prompt_mode: str = "box",
        box_jitter: float = 0.0,
        seed: int = 0,
        embeddings: Callable[[str], torch.Tensor] | None = None,
        pixels: Callable[[str], torch.Tensor] | None = None,
        original_masks: bool = True,
        point_share: float = 0.0,
        first_click: str = "uniform",
    ) -> None:
        mode = lookup(TRAINING_PROMPT_MODES, prompt_mode, "training prompt mode")
        self.split = split
        self.processor = processor
        self.prep = Preprocessing.of(processor)
        self.input_size = self.prep.pad_size
        self.prompt_mode = prompt_mode
        self.box_jitter = box_jitter
        self.seed = seed
        self.embeddings = embeddings
        self.pixels = pixels
        self.original_masks = original_masks  # for scoring at the original size; training needs none
        self.point_share = point_share
        self.first_click = lookup(FIRST_CLICKS, first_click, "first click")
        # decode only what is needed: the frame when no cache holds it; the mask unless the pixel
        # cache's mask plane is the target (one whole-mask box) and no original-size mask is asked for
        self.cached_targets = pixels is not None and mode.whole_mask_target and not original_masks
        self.prompt_free = mode.boxes is None
        skip = set() if embeddings is None and pixels is None else {"image"}
        if self.cached_targets:
            skip.add("mask")
        self.rows = split.select_columns([c for c in split.column_names if c not in skip]) if skip else split
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        key = frame_key(row["source"], row["image_id"])
        height, width = row["height"], row["width"]
        new_h, new_w = self.prep.reshaped(height, width)
        cached = self.pixels(key) if self.pixels is not None else None  # (4, S, S): frame, mask
        if self.cached_targets:  # the whole mask is the target of the one prompt (box or none)
            boxes = (np.zeros((1, 4), np.float32) if self.prompt_free
                     else np.asarray(prompt_boxes(row, self.prompt_mode), np.float32).reshape(-1, 4))
            targets = cached[3:4][: len(boxes)]
        else:
            mask = stored_mask(row["mask"])
            boxes, masks = prompt_targets(row, mask, self.prompt_mode)
            targets = torch.from_numpy(np.stack([resize_pad_mask(m, new_h, new_w, self.input_size) for m in masks])
                                       if masks else np.zeros((0, self.input_size, self.input_size), np.uint8))
        if self.box_jitter > 0 and len(boxes) and not self.prompt_free:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            boxes = jitter_box(boxes, self.box_jitter, width, height, rng)
        point_first, first_point = False, np.zeros(2, np.float32)
        if self.point_share > 0 and len(targets):
            rng = np.random.default_rng((self.seed, self.epoch, index, FIRST_CLICK_STREAM))
            click = self.first_click(np.asarray(targets[0], bool), rng) if rng.random() < self.point_share else None
            if click is not None:
                point_first, first_point = True, np.array([click.x, click.y], np.float32)
        item = {
            "boxes": torch.from_numpy(scale_boxes(boxes, (height, width), (new_h, new_w))),
            "targets": targets,
            "reshaped": torch.tensor([new_h, new_w]),
            "original": torch.tensor([height, width]),
            "index": index,
            "prompt_free": self.prompt_free,
            "point_first": point_first,
            "first_point": torch.from_numpy(first_point),
        }
        if self.original_masks:
            item["mask"] = mask  # numpy: device placement leaves it on the CPU, where frames are scored
        if self.embeddings is not None:
            item["image_embeddings"] = self.embeddings(key)
            return item
        if cached is not None:
            item["pixel_uint8"] = cached[:3]
        else:
            item["pixel_uint8"] = torch.from_numpy(self.prep.resize_pad_uint8(row["image"]))
        item["pixel_scale"], item["pixel_shift"] = self.prep.scale, self.prep.shift
        return item


def _empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised tensor; in a DataLoader worker, allocated in shared memory so that handing
    the batch to the main process moves no bytes (a plain tensor would be copied there first).

    This uses torch's storage `_new_shared` (what `default_collate` itself uses to stack in
    workers), because the output of `normalize_pixels` is written in place, which no public call
    allocates: `python benchmarks/input_pipeline.py` measures float batches written this way
    against plain tensors the DataLoader then moves (1.7x faster, docs/performance.md).
    """
    if torch.utils.data.get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    numel = int(np.prod(shape))
    storage = torch.empty(0, dtype=dtype)._typed_storage()._new_shared(numel)
    return torch.empty(0, dtype=dtype).set_(storage).view(shape)


_stack = torch.utils.data.default_collate  # stacks into shared memory in a worker, on its own


def collate(items: list[dict], normalize: bool = False) -> dict:
    """Stack items, padding the prompt count K to the batch's largest.

    Adds `box_valid` (B, K) bool, False for padded prompts (their boxes are copies of a real one
    so the model sees valid coordinates; the loss ignores them). `mask`, when the items carry it,
    stays a list: frames keep their own size.

    Frames leave as `pixel_uint8` (B, 3, S, S), to be normalised on the device; with `normalize`
    (for a CPU device, where the loader's worker processes are the parallel hardware) they leave
    as SAM's float `pixel_values` (B, 3, S, S) instead, normalised here in the worker.
    """
    k = max(max(len(item["boxes"]) for item in items), 1)
    size = items[0]["targets"].shape[-1]
    boxes, targets, valid = [], [], []
    for item in items:
        n = len(item["boxes"])
        filler = item["boxes"][:1] if n else torch.tensor([[0.0, 0.0, 1.0, 1.0]])
        boxes.append(torch.cat([item["boxes"], filler.expand(k - n, 4)]))
        targets.append(item["targets"] if n == k else
                       torch.cat([item["targets"], torch.zeros((k - n, size, size), dtype=torch.uint8)]))
        valid.append(torch.arange(k) < n)
    batch = {
        "input_boxes": torch.stack(boxes),
        "targets": _stack(targets),
        "box_valid": torch.stack(valid),
        "reshaped": torch.stack([item["reshaped"] for item in items]),
        "original": torch.stack([item["original"] for item in items]),
        "index": torch.tensor([item["index"] for item in items]),
        "prompt_free": bool(items[0]["prompt_free"]),
        "point_first": torch.tensor([bool(item["point_first"]) for item in items]),
        "first_point": torch.stack([item["first_point"] for item in items]),
    }
    if "mask" in items[0]:
        batch["mask"] = [item["mask"] for item in items]
    if "image_embeddings" in items[0]:
        batch["image_embeddings"] = _stack([item["image_embeddings"] for item in items])
        return batch
    scale, shift = items[0]["pixel_scale"], items[0]["pixel_shift"]
    if normalize:
        pixels = [item["pixel_uint8"] for item in items]  # straight from the cache's pages, no uint8 copy
        out = _empty((len(pixels), *pixels[0].shape), torch.float32)
        batch["pixel_values"] = normalize_pixels(pixels, batch["reshaped"], scale, shift, out=out)
    else:
        batch["pixel_uint8"] = _stack([item["pixel_uint8"] for item in items])
        batch["pixel_scale"], batch["pixel_shift"] = scale, shift
    return batch
