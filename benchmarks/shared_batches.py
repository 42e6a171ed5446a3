"""Worker batches written straight into shared memory, against the public path.

`data.batches.collate` normalises float batches inside DataLoader workers (the CPU-device path).
It can allocate the output in shared memory first (torch's storage `_new_shared`, a private API)
so handing the batch to the main process moves no bytes; or allocate a plain tensor and let the
DataLoader move it into shared memory when the worker sends it (public, one more copy of every
float batch). This measures both in one run on the same machine, three rounds each, best kept.

    python benchmarks/shared_batches.py [--images 32] [--size 1024] [--workers 2] [--output FILE]
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch
from report import best_of, emit

from polyp_sam_hf.data import batches
from polyp_sam_hf.data.preprocessing import Preprocessing, normalize_pixels

PREP = Preprocessing(1024, 1024, 2, 1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


class Frames(torch.utils.data.Dataset):
    def __init__(self, count: int, size: int) -> None:
        self.frames = torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.frames[index]


def shared_output(items):
    out = batches._empty((len(items), *items[0].shape), torch.float32)  # shared memory in a worker
    size = items[0].shape[-1]
    return normalize_pixels(items, torch.tensor([[size, size]] * len(items)), PREP.scale, PREP.shift, out=out)


def plain_output(items):
    size = items[0].shape[-1]
    return normalize_pixels(items, torch.tensor([[size, size]] * len(items)), PREP.scale, PREP.shift)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    dataset = Frames(args.images, args.size)
    loaders = {name: torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers,
                                                 collate_fn=fn, persistent_workers=True)
               for name, fn in (("shared_output", shared_output), ("plain_output", plain_output))}
    for loader in loaders.values():  # start the workers
        next(iter(loader))

    def read_all(loader):
        for batch in loader:
            batch.sum()  # the main process reads every byte, as training does

    best = best_of({name: (lambda loader=loader: read_all(loader)) for name, loader in loaders.items()})
    result = {
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        "images": args.images, "size": args.size, "workers": args.workers,
        "seconds": best,
        "shared_over_plain_speedup": best["plain_output"] / best["shared_output"],
    }
    emit(result, args.output)
    return result


if __name__ == "__main__":
    main()
