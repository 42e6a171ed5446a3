"""Peak memory of a decoder-only epoch does not grow with the dataset: peak RSS at two sizes.

    python benchmarks/memory.py [--sizes 200,2000] [--quick]

For each size a fresh process loads the prepared dataset from disk (memory-mapped Arrow), builds
the embedding cache (memory-mapped `.npy`) and trains one decoder-only epoch of the tiny model
reading from it; its peak resident memory is reported. Preparing the data is done beforehand in
another process and not measured. Peak RSS counts the pages of the memory-mapped files that were
read (shared, file-backed, dropped by the kernel under pressure); the anonymous resident memory at
the end of the epoch is what the process itself holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import Benchmark, run_benchmark


def _prepare(work: Path, size: int) -> Path:
    from polyp_sam_hf.data.prepare import prepare_dataset
    from polyp_sam_hf.data.synthetic import write_demo_data

    raw = write_demo_data(work / f"raw-{size}", num_train=size, num_test=0, seed=3)
    dataset, _ = prepare_dataset(raw, val_fraction=0.0)
    out = work / f"prepared-{size}"
    dataset.save_to_disk(str(out))
    return out


def _epoch(prepared: Path, cache_root: Path) -> dict:
    import datasets
    import torch
    from accelerate import Accelerator

    from polyp_sam_hf.data.batches import PromptDataset, collate
    from polyp_sam_hf.models.embedding_cache import build_embedding_cache
    from polyp_sam_hf.models.loading import load_model_and_processor
    from polyp_sam_hf.models.segmenter import batch_logits
    from polyp_sam_hf.training.losses import batch_loss, get_loss
    from polyp_sam_hf.training.strategies import get_strategy

    datasets.disable_progress_bars()
    split = datasets.load_from_disk(str(prepared))["train"]
    model, processor = load_model_and_processor("tiny-sam")
    model = get_strategy("decoder").apply(model)
    cache = build_embedding_cache(model, processor, [split], cache_root, Accelerator(cpu=True), batch_size=16)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    loader = torch.utils.data.DataLoader(PromptDataset(split, processor, embeddings=cache), batch_size=8,
                                         shuffle=True, collate_fn=collate)
    loss_fn = get_loss("dice")
    for batch in loader:
        loss = batch_loss(batch_logits(model, batch), batch, loss_fn)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    anon = status.get("RssAnon", "0 kB").split()[0]
    # VmHWM, not getrusage's ru_maxrss: the latter survives exec and would report the parent's peak
    peak = status.get("VmHWM", "0 kB").split()[0]
    return {
        "frames": len(split),
        "peak_rss_mb": round(int(peak) / 1024, 1),
        # resident memory not backed by a file: what the process itself holds, without the pages
        # of the memory-mapped dataset and cache that the kernel can drop at will
        "anon_rss_mb_at_end": round(int(anon) / 1024, 1),
    }


def measure_sizes(sizes: list[int], work: Path) -> dict:
    rows = []
    for size in sizes:
        prep = subprocess.run([sys.executable, __file__, CHILD_PREPARE, str(size), str(work)],
                              capture_output=True, text=True, check=True)
        prepared = prep.stdout.strip().splitlines()[-1]
        run = subprocess.run([sys.executable, __file__, CHILD_EPOCH, prepared, str(work)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(run.stdout.strip().splitlines()[-1]))
    return {
        "epochs": rows,
        "peak_rss_ratio_largest_to_smallest": round(rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"], 3),
        "anon_rss_ratio_largest_to_smallest": round(rows[-1]["anon_rss_mb_at_end"] / rows[0]["anon_rss_mb_at_end"], 3),
    }


CHILD_PREPARE, CHILD_EPOCH = "child-prepare", "child-epoch"  # how the measuring process calls its children


def add_arguments(parser) -> None:
    parser.add_argument("--sizes", default="200,2000", help="comma-separated frame counts, smallest first")


def measure(args) -> dict:
    with tempfile.TemporaryDirectory() as work:
        return measure_sizes([int(s) for s in args.sizes.split(",")], Path(work))


BENCHMARK = Benchmark(__doc__, add_arguments, measure, quick={"sizes": "200,1000"})

if __name__ == "__main__":
    if sys.argv[1:2] == [CHILD_PREPARE]:
        print(_prepare(Path(sys.argv[3]), int(sys.argv[2])))
    elif sys.argv[1:2] == [CHILD_EPOCH]:
        print(json.dumps(_epoch(Path(sys.argv[2]), Path(sys.argv[3]) / "cache")))
    else:
        run_benchmark(BENCHMARK)
