"""Input pipeline: frames per second ready for the encoder, this library's loader against
`SamProcessor` called per sample in `__getitem__` (the Hugging Face SAM fine-tuning tutorial's way).

    python benchmarks/input_pipeline.py [--images 48] [--workers 2] [--rounds 3] [--quick]

Frames are synthetic, JPEG, 1000 x 860 (Kvasir-like sizes), prepared as the library prepares
them. Both loaders produce 1024 x 1024 normalised float pixel batches and the training targets.
Ours is what training does with the CPU as its device: the workers read the resized frame and its
mask plane from the pixel cache (built once, not timed; no JPEG or PNG decoded) and normalise into
shared memory. For context it also times the GPU layout run on the CPU (uint8 batches, normalised
in the main process), our loader alone (uint8 batches, as a GPU receives them), and our loader
with its float batches allocated as plain tensors that the DataLoader then moves into shared memory
(the public path, one more copy of every batch, against the private allocation `data.batches._empty`
uses: the reason that one private call stays). After a
warm-up epoch, the loaders take turns for `--rounds` epochs and each keeps its best epoch, so a
busy moment on the machine does not decide a ratio.
"""

from __future__ import annotations

import argparse
import functools
import math
import tempfile
import time
from pathlib import Path

import datasets
import torch
from accelerate import Accelerator
from harness import Benchmark, run_benchmark
from PIL import Image
from transformers import SamConfig

from polyp_sam_hf.data.batches import PromptDataset, collate
from polyp_sam_hf.data.pixel_cache import build_pixel_cache
from polyp_sam_hf.data.prepare import prepare_dataset
from polyp_sam_hf.data.preprocessing import normalize_pixels
from polyp_sam_hf.data.reading import stored_mask
from polyp_sam_hf.data.synthetic import write_demo_data
from polyp_sam_hf.models.loading import processor_for


class PerSampleProcessor(torch.utils.data.Dataset):
    """The tutorial's way: `SamProcessor` on every sample, in the worker."""

    def __init__(self, split, processor):
        self.split, self.processor = split, processor

    def __len__(self):
        return len(self.split)

    def __getitem__(self, index):
        row = self.split[index]
        inputs = self.processor(row["image"], input_boxes=[[row["box"]]], return_tensors="pt")
        return {"pixel_values": inputs["pixel_values"][0], "input_boxes": inputs["input_boxes"][0],
                "mask": torch.from_numpy(stored_mask(row["mask"]))}


def _collate_tutorial(items):
    return {"pixel_values": torch.stack([i["pixel_values"] for i in items]),
            "input_boxes": torch.stack([i["input_boxes"] for i in items]),
            "mask": [i["mask"] for i in items]}


def make_split(work: Path, images: int) -> datasets.Dataset:
    raw = write_demo_data(work / "raw", num_train=images, num_test=0, seed=2)
    for path in (raw / "TrainDataset" / "images").glob("*.png"):
        Image.open(path).resize((1000, 860), Image.BICUBIC).save(path.with_suffix(".jpg"), quality=92)
        path.unlink()
        mask = raw / "TrainDataset" / "masks" / path.name
        Image.open(mask).resize((1000, 860), Image.NEAREST).save(mask)
    return prepare_dataset(raw, val_fraction=0.0)[0]["train"]


def _epoch_seconds(loader, finish=lambda batch: batch) -> float:
    start = time.perf_counter()
    for batch in loader:
        finish(batch)
    return time.perf_counter() - start


def _public_output_collate(items: list[dict]) -> dict:
    """Our collate with the float batch as a plain tensor, moved into shared memory by the DataLoader."""
    batch = collate(items)
    batch["pixel_values"] = normalize_pixels(batch.pop("pixel_uint8"), batch["reshaped"], batch.pop("pixel_scale"),
                                             batch.pop("pixel_shift"))
    return batch


def measure_pipeline(images: int, workers: int, batch_size: int, work: Path, rounds: int = 3) -> dict:
    split = make_split(work, images)
    processor = processor_for(SamConfig())  # ViT-B's 1024 px preprocessing
    # what training uses: targets on the input grid, no original-size mask
    ours = PromptDataset(split, processor, pixels=build_pixel_cache(processor, [split], work / "cache", Accelerator(cpu=True)),
                         original_masks=False)
    cpu_collate = functools.partial(collate, normalize=True)
    loaders = {
        "per_sample_processor": (torch.utils.data.DataLoader(PerSampleProcessor(split, processor), batch_size=batch_size,
                                                             num_workers=workers, collate_fn=_collate_tutorial,
                                                             persistent_workers=workers > 0), lambda b: b),
        "pixel_cache": (torch.utils.data.DataLoader(ours, batch_size=batch_size, num_workers=workers,
                                                    collate_fn=cpu_collate, persistent_workers=workers > 0), lambda b: b),
        "pixel_cache_main_normalize": (
            torch.utils.data.DataLoader(ours, batch_size=batch_size, num_workers=workers, collate_fn=collate,
                                        persistent_workers=workers > 0),
            lambda b: normalize_pixels(b["pixel_uint8"], b["reshaped"], b["pixel_scale"], b["pixel_shift"])),
    }
    # for context: the loader alone, uint8 batches ready to go to a GPU that normalises them
    loaders["pixel_cache_loader_only"] = (loaders["pixel_cache_main_normalize"][0], lambda b: b)
    loaders["pixel_cache_public_output"] = (
        torch.utils.data.DataLoader(ours, batch_size=batch_size, num_workers=workers, collate_fn=_public_output_collate,
                                    persistent_workers=workers > 0), lambda b: b)
    seconds = {name: math.inf for name in loaders}
    for name, (loader, finish) in loaders.items():
        _epoch_seconds(loader, finish)  # warm-up: worker start (workers persist), page cache
    for _ in range(rounds):  # interleaved, best of `rounds`: a busy moment hurts one loader, not a ratio
        for name, (loader, finish) in loaders.items():
            seconds[name] = min(seconds[name], _epoch_seconds(loader, finish))
    return {
        "images": images,
        "workers": workers,
        "rounds": rounds,
        "per_sample_processor_images_per_s": round(images / seconds["per_sample_processor"], 2),
        "pixel_cache_images_per_s": round(images / seconds["pixel_cache"], 2),
        "per_sample_processor_s": round(seconds["per_sample_processor"], 3),
        "pixel_cache_s": round(seconds["pixel_cache"], 3),
        "input_pipeline_speedup": round(seconds["per_sample_processor"] / seconds["pixel_cache"], 2),
        "main_process_normalize_s": round(seconds["pixel_cache_main_normalize"], 3),
        "main_process_normalize_speedup": round(seconds["per_sample_processor"] / seconds["pixel_cache_main_normalize"], 2),
        "loader_only_images_per_s": round(images / seconds["pixel_cache_loader_only"], 2),
        "loader_only_s": round(seconds["pixel_cache_loader_only"], 3),
        "loader_only_speedup": round(seconds["per_sample_processor"] / seconds["pixel_cache_loader_only"], 2),
        "public_output_s": round(seconds["pixel_cache_public_output"], 3),
        "shared_output_speedup": round(seconds["pixel_cache_public_output"] / seconds["pixel_cache"], 2),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)


def measure(args: argparse.Namespace) -> dict:
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as work:
        return measure_pipeline(args.images, args.workers, args.batch_size, Path(work), args.rounds)


BENCHMARK = Benchmark(__doc__, add_arguments, measure, quick={"images": 64})

if __name__ == "__main__":
    run_benchmark(BENCHMARK)
