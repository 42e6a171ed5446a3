"""uint8 frames normalised on the device: same pixels as SamImageProcessor, cached once."""

from __future__ import annotations

import functools

import datasets
import numpy as np
import pytest
import torch
from accelerate import Accelerator
from conftest import train_args
from PIL import Image
from safetensors.torch import load_file
from transformers import SamConfig

from polyp_sam_hf.data.batches import PromptDataset, collate
from polyp_sam_hf.data.pixel_cache import build_pixel_cache
from polyp_sam_hf.data.preprocessing import Preprocessing, normalize_pixels, resize_pad_mask, resized_shape
from polyp_sam_hf.models.loading import processor_for
from polyp_sam_hf.training.config import parse_config
from polyp_sam_hf.training.loop import train


def _processor(**settings):
    processor = processor_for(SamConfig())  # 1024 px, bilinear, ImageNet mean/std
    for name, value in settings.items():
        setattr(processor.image_processor, name, value)
    return processor


PROCESSORS = {
    "SAM's default": {},
    # nearest-neighbour resize (filter 0, once read as "unset" and replaced by bilinear), smaller
    # longest side than the padded square (the size once came from pad_size alone)
    "nearest, 800 in 1024": {"resample": 0, "size": {"longest_edge": 800}},
    # no ImageNet normalisation, another rescale factor (both once ignored)
    "no normalisation, rescale 1/127.5": {"do_normalize": False, "rescale_factor": 1 / 127.5},
    "bicubic, own mean and std": {"resample": 3, "image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.3, 0.25]},
}


@pytest.mark.parametrize("name", list(PROCESSORS))
def test_library_pixels_equal_the_processors_for_every_setting(name):
    """`Preprocessing.pixel_values` (training, caches, inference, export check) equals what the
    processor itself gives, for SAM's settings and for settings that differ in each field it reads."""
    processor = _processor(**PROCESSORS[name])
    frame = Image.fromarray(np.random.default_rng(0).integers(0, 255, (1070, 1348, 3), dtype=np.uint8))
    expected = processor.image_processor(frame, return_tensors="pt")["pixel_values"]
    got, [(height, width)] = Preprocessing.of(processor).pixel_values([frame])
    assert got.shape == expected.shape == (1, 3, 1024, 1024)
    # the resized size, written out: longest side 1348 -> L, height 1070 * L / 1348 rounded
    longest = PROCESSORS[name].get("size", {}).get("longest_edge", 1024)
    assert (height, width) == (int(1070 * longest / 1348 + 0.5), longest)
    assert (got - expected).abs().max() <= 1e-5  # the processor's own kernels: float rounding only
    assert (got[0, :, height:, :] == 0).all() and (got[0, :, :, width:] == 0).all()  # padding exactly zero


def test_device_normalisation_is_the_affine_map():
    uint8 = torch.full((1, 3, 4, 4), 200, dtype=torch.uint8)
    prep = Preprocessing(4, 4, 2, 1 / 255, (0.5, 0.5, 0.5), (0.25, 0.5, 1.0))
    got = normalize_pixels(uint8, torch.tensor([[2, 3]]), prep.scale, prep.shift)
    expected = torch.tensor([(200 / 255 - 0.5) / s for s in (0.25, 0.5, 1.0)])
    torch.testing.assert_close(got[0, :, 0, 0], expected)
    assert (got[0, :, 2:, :] == 0).all() and (got[0, :, :, 3:] == 0).all()


def test_pixel_cache_holds_the_resized_frames(prepared_demo, tmp_path):
    ds = datasets.load_from_disk(str(prepared_demo))
    processor = processor_for(SamConfig(vision_config={"image_size": 64}))
    processor.image_processor.size = {"longest_edge": 64}
    processor.image_processor.pad_size = {"height": 64, "width": 64}
    cache = build_pixel_cache(processor, [ds["train"]], tmp_path, Accelerator(cpu=True))
    row = ds["train"][3]
    stored = cache(f"{row['source']}/{row['image_id']}")
    assert stored.dtype == torch.uint8 and stored.shape == (4, 64, 64)
    # the stored frame is what the processor itself gives, before its normalisation (undone here)
    expected = processor.image_processor(row["image"], return_tensors="pt")["pixel_values"][0]
    ip = processor.image_processor
    mean, std = torch.tensor(ip.image_mean).view(3, 1, 1), torch.tensor(ip.image_std).view(3, 1, 1)
    height, width = resized_shape(row["height"], row["width"], 64)
    undone = (expected * std + mean) / ip.rescale_factor
    torch.testing.assert_close(stored[:3, :height, :width].float(), undone[:, :height, :width], atol=1e-3, rtol=0)
    assert stored[:3, height:].sum() == 0 and stored[:3, :, width:].sum() == 0
    mask = np.asarray(row["mask"]) > 127
    height, width = resized_shape(*mask.shape, 64)
    np.testing.assert_array_equal(stored[3].numpy(), resize_pad_mask(mask, height, width, 64))
    assert stored[3, :height, :width].sum() > 0 and stored[3, height:].sum() == 0 and stored[3, :, width:].sum() == 0
    again = build_pixel_cache(processor, [ds["train"]], tmp_path, Accelerator(cpu=True))
    assert again.folder == cache.folder and [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == [cache.folder.name]


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
                                                                       second["pixel_scale"], second["pixel_shift"]))
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
    common = ("--max_train_steps", "2", "--cache_dir", str(tmp_path / "cache"))
    train(*parse_config(train_args(prepared_demo, tmp_path / "cached", *common, "--pixel_cache", "true")))
    train(*parse_config(train_args(prepared_demo, tmp_path / "plain", *common)))
    a = load_file(str(tmp_path / "cached" / "checkpoints" / "step-0000002" / "model.safetensors"))
    b = load_file(str(tmp_path / "plain" / "checkpoints" / "step-0000002" / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0, msg=key)
    assert any(p.name.startswith("pixels-") for p in (tmp_path / "cache").iterdir())
