"""uint8 frames normalised on the device: same pixels as SamImageProcessor, cached once."""

from __future__ import annotations

import functools

import datasets
import numpy as np
import torch
from accelerate import Accelerator
from PIL import Image
from safetensors.torch import load_file

from polyp_sam_hf.config import parse_config
from polyp_sam_hf.data.collate import PromptDataset, collate, resized_shape
from polyp_sam_hf.modeling import processor_for
from polyp_sam_hf.pixel_cache import (build_pixel_cache, normalize_pixels, processor_settings, resize_pad_mask,
                                      resize_pad_uint8)
from polyp_sam_hf.training import train
from transformers import SamConfig

from conftest import train_args


def test_device_normalisation_matches_the_processor():
    processor = processor_for(SamConfig())  # 1024 px, ImageNet mean/std
    frame = Image.fromarray(np.random.default_rng(0).integers(0, 255, (1070, 1348, 3), dtype=np.uint8))
    expected = processor.image_processor(frame, return_tensors="pt")["pixel_values"]
    size, resample, mean, std = processor_settings(processor)
    uint8 = torch.from_numpy(resize_pad_uint8(frame, size, resample))[None]
    got = normalize_pixels(uint8, torch.tensor([resized_shape(1070, 1348, size)]), mean, std)
    assert got.shape == expected.shape == (1, 3, 1024, 1024)
    diff = (got - expected).abs()
    assert diff.max() <= 1.0 / 255 / min(processor.image_processor.image_std) + 1e-5  # one grey level at most
    assert diff.mean() < 1e-3
    assert (got[0, :, 813:, :] == 0).all()  # padding is exactly zero, as SAM pads after normalising


def test_pixel_cache_holds_the_resized_frames(prepared_demo, tmp_path):
    ds = datasets.load_from_disk(str(prepared_demo))
    processor = processor_for(SamConfig(vision_config={"image_size": 64}))
    processor.image_processor.size = {"longest_edge": 64}
    processor.image_processor.pad_size = {"height": 64, "width": 64}
    cache = build_pixel_cache(processor, [ds["train"]], tmp_path, Accelerator(cpu=True))
    row = ds["train"][3]
    stored = cache(f"{row['source']}/{row['image_id']}")
    assert stored.dtype == torch.uint8 and stored.shape == (4, 64, 64)
    np.testing.assert_array_equal(stored[:3].numpy(), resize_pad_uint8(row["image"], 64))
    mask = np.asarray(row["mask"]) > 127
    height, width = resized_shape(*mask.shape, 64)
    np.testing.assert_array_equal(stored[3].numpy(), resize_pad_mask(mask, height, width, 64))
    assert stored[3, :height, :width].sum() > 0 and stored[3, height:].sum() == 0 and stored[3, :, width:].sum() == 0
    again = build_pixel_cache(processor, [ds["train"]], tmp_path, Accelerator(cpu=True))
    assert again.folder == cache.folder and len(list(tmp_path.iterdir())) == 1


def test_cached_items_equal_decoded_items(prepared_demo, tmp_path):
    """Training items from the cache (mask plane as target, nothing decoded) equal those built
    from the decoded frame and mask, with box jitter, and collate to the same batch either way."""
    ds = datasets.load_from_disk(str(prepared_demo))
    processor = processor_for(SamConfig(vision_config={"image_size": 64}))
    processor.image_processor.size = {"longest_edge": 64}
    processor.image_processor.pad_size = {"height": 64, "width": 64}
    cache = build_pixel_cache(processor, [ds["train"]], tmp_path, Accelerator(cpu=True))
    common = dict(box_jitter=0.1, seed=3, original_masks=False)
    cached = PromptDataset(ds["train"], processor, pixels=cache, **common)
    decoded = PromptDataset(ds["train"], processor, **common)
    assert cached.cached_targets and "mask" not in cached.rows.column_names
    for index in range(len(ds["train"])):
        a, b = cached[index], decoded[index]
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(torch.as_tensor(a[key]), torch.as_tensor(b[key]), atol=0, rtol=0, msg=key)
    first, second = collate([cached[0], cached[1]], normalize=True), collate([decoded[0], decoded[1]])
    torch.testing.assert_close(first["pixel_values"], normalize_pixels(second["pixel_uint8"], second["reshaped"],
                                                                       second["pixel_mean"], second["pixel_std"]))
    # batches built in worker processes (shared-memory outputs) equal those built in this one
    batcher = functools.partial(collate, normalize=True)
    here = list(torch.utils.data.DataLoader(cached, batch_size=4, collate_fn=batcher))
    there = list(torch.utils.data.DataLoader(cached, batch_size=4, collate_fn=batcher, num_workers=2))
    assert len(here) == len(there) > 1
    for a, b in zip(here, there):
        assert b["pixel_values"].is_shared() and b["targets"].is_shared()
        for key in ("pixel_values", "targets", "input_boxes", "reshaped"):
            torch.testing.assert_close(a[key], b[key], atol=0, rtol=0, msg=key)


def test_training_with_pixel_cache_is_identical(prepared_demo, tmp_path):
    common = ("--max_steps", "2", "--cache_dir", str(tmp_path / "cache"))
    train(*parse_config(train_args(prepared_demo, tmp_path / "cached", *common, "--pixel_cache", "true")))
    train(*parse_config(train_args(prepared_demo, tmp_path / "plain", *common)))
    a = load_file(str(tmp_path / "cached" / "checkpoints" / "step-0000002" / "model.safetensors"))
    b = load_file(str(tmp_path / "plain" / "checkpoints" / "step-0000002" / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0, msg=key)
    assert any(p.name.startswith("pixels-") for p in (tmp_path / "cache").iterdir())
