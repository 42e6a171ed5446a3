"""Second-epoch time of decoder-only training: cached image embeddings against recomputing them.

    python benchmarks/embedding_cache.py [--model_name_or_path random-sam-vit-base] [--images 6] [--quick]

Builds the cache (the first epoch of a cached run), runs one warm-up epoch each way, then times
the second epoch of each, in the same process on the same machine, and records the ratio. How fast
recomputing is depends on the encoder (the fused attention, and denormal floats flushed on the CPU:
core/threads.py), so the ratio falls as the encoder gets faster.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import datasets
import torch
from accelerate import Accelerator
from harness import Benchmark, run_benchmark

from polyp_sam_hf.data.batches import PromptDataset, collate
from polyp_sam_hf.data.prepare import prepare_dataset
from polyp_sam_hf.data.synthetic import write_demo_data
from polyp_sam_hf.models.embedding_cache import build_embedding_cache
from polyp_sam_hf.models.loading import load_model_and_processor
from polyp_sam_hf.models.segmenter import batch_logits
from polyp_sam_hf.training.losses import batch_loss, get_loss
from polyp_sam_hf.training.strategies import get_strategy


def _epoch(model, optimizer, loader) -> float:
    loss_fn = get_loss("dice")
    start = time.perf_counter()
    for batch in loader:
        loss = batch_loss(batch_logits(model, batch), batch, loss_fn)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return time.perf_counter() - start


def measure_cache(model_name: str, images: int, batch_size: int, work: Path, warmup: bool = True) -> dict:
    raw = write_demo_data(work / "raw", num_train=images, num_test=0, seed=1)
    split = prepare_dataset(raw, val_fraction=0.0)[0]["train"]
    model, processor = load_model_and_processor(model_name)
    model = get_strategy("decoder").apply(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    cache = build_embedding_cache(model, processor, [split], work / "cache", Accelerator(cpu=True), batch_size)

    def loader(embeddings):
        ds = PromptDataset(split, processor, embeddings=embeddings)
        return torch.utils.data.DataLoader(ds, batch_size=batch_size, collate_fn=collate)

    times = {}
    for name, embeddings in (("recompute", None), ("cached", cache)):
        if warmup or name == "cached":  # building the cache already ran the encoder's kernels
            _epoch(model, optimizer, loader(embeddings))  # first epoch: warm-up
        times[name] = _epoch(model, optimizer, loader(embeddings))
    return {
        "model": model_name,
        "images": images,
        "second_epoch_recompute_s": round(times["recompute"], 3),
        "second_epoch_cached_s": round(times["cached"], 3),
        "embedding_cache_speedup": round(times["recompute"] / times["cached"], 1),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model_name_or_path", default="random-sam-vit-base")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1, help="a warm-up epoch of recomputing first (1) or not (0)")


def measure(args: argparse.Namespace) -> dict:
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as work:
        return measure_cache(args.model_name_or_path, args.images, args.batch_size, Path(work), bool(args.warmup))


BENCHMARK = Benchmark(__doc__, add_arguments, measure, quick={"images": 2, "warmup": 0})

if __name__ == "__main__":
    run_benchmark(BENCHMARK)
