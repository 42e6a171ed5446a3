"""The quick-start demo on a CPU that another PyTorch process shares: how much slower than alone.

    python benchmarks/shared_cpu.py                 # 4 demo epochs, alone and beside a matrix-product loop
    python benchmarks/shared_cpu.py --epochs 2 --output_file benchmarks/results-shared-cpu.json
    python benchmarks/shared_cpu.py --quick         # 1 epoch, the library's policy only

The neighbour is what a laptop meets: another PyTorch process multiplying matrices with its default
threads, for as long as the demo runs. A fair share of 2 cores is half, so a slowdown near 2x is
proportional; many threads contending for few cores (intra-op threads spinning at their barriers
while the other process holds the core) make it far worse. Each thread policy of the library
(`POLYP_SAM_THREADS`: `auto`, the default, against `torch`, PyTorch's own defaults) is timed alone
and beside the neighbour, in one run on one machine. Target: at most 3x beside it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import HERE, Benchmark, run_benchmark

REPO = HERE.parent

# what each compared setting puts in the demo's environment
POLICIES = {
    "auto": {"POLYP_SAM_THREADS": "auto"},                              # the library's settings
    "torch": {"POLYP_SAM_THREADS": "torch"},                            # PyTorch's defaults (before)
    "auto-active": {"POLYP_SAM_THREADS": "auto", "OMP_WAIT_POLICY": "ACTIVE"},  # shares, but threads spin
    "one-thread": {"OMP_NUM_THREADS": "1"},                             # one intra-op thread
}

NEIGHBOUR = """
import time, torch
a = torch.randn(1024, 1024)
end = time.time() + 3600
while time.time() < end:
    a = torch.tanh(a @ a)
"""


def demo_seconds(epochs: int, work: Path, policy: str) -> float:
    """Wall time of the README's demo command, shortened to `epochs` epochs."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env.update(POLICIES[policy])
    start = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "train.py"), "--config", "configs/demo.yaml", "--num_train_epochs",
                    str(epochs), "--data", str(work / "data"), "--output_dir", str(work / "run"),
                    "--evaluate_test", "false"], cwd=REPO, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--policies", default="auto,torch", help=f"comma-separated, of {', '.join(POLICIES)}")


def measure(args: argparse.Namespace) -> dict:
    result: dict = {"epochs": args.epochs}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        demo_seconds(1, work, "auto")  # writes the demo data once, warms the file cache
        for policy in args.policies.split(","):
            alone = demo_seconds(args.epochs, work, policy)
            neighbour = subprocess.Popen([sys.executable, "-c", NEIGHBOUR])
            try:
                time.sleep(2)  # the neighbour is up and multiplying
                beside = demo_seconds(args.epochs, work, policy)
            finally:
                neighbour.kill()
                neighbour.wait()
            result[policy] = {"alone_s": round(alone, 2), "beside_s": round(beside, 2),
                              "slowdown": round(beside / alone, 2)}
            print(policy, result[policy], flush=True)
    return result


BENCHMARK = Benchmark(__doc__, add_arguments, measure, quick={"epochs": 1, "policies": "auto"})

if __name__ == "__main__":
    run_benchmark(BENCHMARK)
