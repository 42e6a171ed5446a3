"""Whether `polyp-sam prepare` holds memory flat as the frames grow: its peak memory on a few frames
and on all of them, in one run on the same machine.

    python benchmarks/prepare_memory.py --data-root DATA_ROOT [--few 200]
    PYTHONPATH=OLD_CHECKOUT python benchmarks/prepare_memory.py --data-root DATA_ROOT --cli polyp_sam_hf.cli \
        --output benchmarks/results-prepare-memory-before.json       # the same on an earlier checkout

DATA_ROOT holds the original releases (`Kvasir-SEG/`, `CVC-ClinicDB/PNG/`). The few frames are the
first of each release's image folder (with their masks), linked into a temporary copy of the layout.
Each run is a separate process; its resident memory is sampled every 20 ms from /proc (Linux):
`anonymous` is what the process itself holds, `file` the pages of mapped files (the data it reads
and writes, which the system can drop). Writes results-prepare-memory.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import emit

# release layout: (image folder, mask folder) relative to the data root
RELEASES = (("Kvasir-SEG/images", "Kvasir-SEG/masks"), ("CVC-ClinicDB/PNG/Original", "CVC-ClinicDB/PNG/Ground Truth"))


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


def few_frames(root: Path, out: Path, count: int) -> int:
    """Link the first `count / len(RELEASES)` frames of each release (and their masks) under `out`."""
    linked = 0
    for images, masks in RELEASES:
        frames = sorted((root / images).iterdir())[: count // len(RELEASES)]
        for folder in (images, masks):
            (out / folder).mkdir(parents=True, exist_ok=True)
        for frame in frames:
            mask = next((root / masks).glob(frame.stem + ".*"))
            (out / images / frame.name).symlink_to(frame)
            (out / masks / mask.name).symlink_to(mask)
            linked += 1
    return linked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--few", type=int, default=200)
    parser.add_argument("--cli", default="polyp_sam_hf",
                        help="the module that runs `prepare` (polyp_sam_hf.cli in checkouts before 0.1.0's redesign)")
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "results-prepare-memory.json")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        few = Path(tmp) / "few"
        sizes = {"few": (few, few_frames(args.data_root, few, args.few)),
                 "all": (args.data_root, sum(len(list((args.data_root / i).iterdir())) for i, _ in RELEASES))}
        for name, (root, frames) in sizes.items():
            out = Path(tmp) / f"prepared-{name}"
            results[name] = {"frames": frames, **peak_memory([sys.executable, "-m", args.cli, "prepare",
                                                              "--data-root", str(root), "--output", str(out)])}
            print(name, results[name])
    few, all_ = results["few"], results["all"]
    results["anonymous_growth_mib_per_1000_frames"] = round(
        (all_["anonymous_gib"] - few["anonymous_gib"]) * 1024 / (all_["frames"] - few["frames"]) * 1000, 1)
    emit(results, args.output)


if __name__ == "__main__":
    main()
