"""Whether `polyp-sam prepare` holds memory flat as the frames grow: its peak memory on a few frames
and on all of them, in one run on the same machine.

    python benchmarks/prepare_memory.py --data_root DATA_ROOT [--few 200] --output_file benchmarks/results-prepare-memory.json
    PYTHONPATH=OLD_CHECKOUT python benchmarks/prepare_memory.py --data_root DATA_ROOT --cli polyp_sam_hf.cli \
        --output_file benchmarks/results-prepare-memory-before.json       # the same on an earlier checkout
    python benchmarks/prepare_memory.py --quick      # 400 synthetic frames, no data root needed

DATA_ROOT holds the original releases (`Kvasir-SEG/`, `CVC-ClinicDB/PNG/`); without it, synthetic
frames in the PraNet layout are drawn. The few frames are the first of each image folder (with their
masks), linked into a temporary copy of the layout. Each run is a separate process; its resident
memory is sampled every 20 ms from /proc (Linux): `anonymous` is what the process itself holds,
`file` the pages of mapped files (the data it reads and writes, which the system can drop).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import Benchmark, run_benchmark

from polyp_sam_hf.data.synthetic import SYNTHETIC_MARKER, write_demo_data

# (image folder, mask folder) relative to the data root: the two releases, or drawn frames
RELEASES = (("Kvasir-SEG/images", "Kvasir-SEG/masks"), ("CVC-ClinicDB/PNG/Original", "CVC-ClinicDB/PNG/Ground Truth"))
SYNTHETIC = (("TrainDataset/images", "TrainDataset/masks"),)


def peak_memory(argv: list[str]) -> dict:
    """Run `argv`; its peak resident memory in GiB (total, anonymous, file-backed) and wall seconds."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
    while proc.poll() is None:
        try:
            for line in open(f"/proc/{proc.pid}/status"):
                key = line.split(":")[0]
                if key in peak:
                    peak[key] = max(peak[key], int(line.split()[1]))
        except FileNotFoundError:
            break
        time.sleep(0.02)
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr.read()[-2000:]}")
    return {"seconds": round(time.perf_counter() - start, 1), "peak_gib": round(peak["VmRSS"] / 2**20, 3),
            "anonymous_gib": round(peak["RssAnon"] / 2**20, 3), "file_gib": round(peak["RssFile"] / 2**20, 3)}


def few_frames(root: Path, out: Path, count: int, folders) -> int:
    """Link the first `count / len(folders)` frames of each image folder (and their masks) under `out`."""
    linked = 0
    for images, masks in folders:
        frames = sorted((root / images).iterdir())[: count // len(folders)]
        for folder in (images, masks):
            (out / folder).mkdir(parents=True, exist_ok=True)
        for frame in frames:
            mask = next((root / masks).glob(frame.stem + ".*"))
            (out / images / frame.name).symlink_to(frame)
            (out / masks / mask.name).symlink_to(mask)
            linked += 1
    return linked


def add_arguments(parser) -> None:
    parser.add_argument("--data_root", type=Path, help="the original releases (default: draw synthetic frames)")
    parser.add_argument("--synthetic_frames", type=int, default=1000, help="frames drawn without --data_root")
    parser.add_argument("--few", type=int, default=200)
    parser.add_argument("--cli", default="polyp_sam_hf",
                        help="the module that runs `prepare` (polyp_sam_hf.cli in checkouts before 0.1.0's redesign)")


def measure(args) -> dict:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root, folders = args.data_root, RELEASES
        if root is None:
            root, folders = write_demo_data(Path(tmp) / "drawn", num_train=args.synthetic_frames, num_test=0), SYNTHETIC
        few = Path(tmp) / "few"
        if folders is SYNTHETIC:  # drawn frames are marked so: prepare splits them without video sequences
            few.mkdir(parents=True)
            (few / SYNTHETIC_MARKER).write_text((root / SYNTHETIC_MARKER).read_text())
        sizes = {"few": (few, few_frames(root, few, args.few, folders)),
                 "all": (root, sum(len(list((root / i).iterdir())) for i, _ in folders))}
        for name, (data, frames) in sizes.items():
            out = Path(tmp) / f"prepared-{name}"
            results[name] = {"frames": frames, **peak_memory([sys.executable, "-m", args.cli, "prepare",
                                                              "--data_root", str(data), "--output_dir", str(out)])}
            print(name, results[name])
    few, all_ = results["few"], results["all"]
    results["anonymous_growth_mib_per_1000_frames"] = round(
        (all_["anonymous_gib"] - few["anonymous_gib"]) * 1024 / (all_["frames"] - few["frames"]) * 1000, 1)
    return results


BENCHMARK = Benchmark(__doc__, add_arguments, measure, quick={"synthetic_frames": 400, "few": 100})

if __name__ == "__main__":
    run_benchmark(BENCHMARK)
