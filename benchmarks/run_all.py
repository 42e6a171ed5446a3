"""Every benchmark in one run on this machine, written to benchmarks/results.json.

    python benchmarks/run_all.py --quick     # every benchmark's quick sizes: minutes on a 2-core CPU (CI runs it)
    python benchmarks/run_all.py             # the full sizes of the CPU benchmarks

Each figure is a ratio of two times measured in this one run on this one machine, kept beside the
two times it divides, in the harness's record layout (the command that gives it, the machine, torch,
the date). The GPU benchmarks (`train_throughput`, `step_profile`) run here as their quick CPU
checks only; `benchmarks/gpu.sh` runs them on a GPU.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import machine, measure_benchmark  # noqa: E402

# every kept benchmark: its module in benchmarks/, and whether it is a CPU measurement (full sizes
# without --quick) or a GPU benchmark checked on the CPU (always its quick sizes here)
BENCHMARKS = {
    "embedding_cache": "cpu", "input_pipeline": "cpu", "multi_box_inference": "cpu", "memory": "cpu",
    "attention": "cpu", "shared_cpu": "cpu", "tinyvit": "cpu", "train_loop": "cpu", "prepare_memory": "cpu",
    "clicks": "cpu", "onnx_runtime": "cpu",
    "train_throughput": "gpu", "step_profile": "gpu",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--output_file", type=Path, default=HERE / "results.json")
    args = parser.parse_args(argv)
    started = time.time()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    results: dict = {"command": "python benchmarks/run_all.py" + (" --quick" if args.quick else ""),
                     "machine": machine(), "torch": torch.__version__, "date": datetime.date.today().isoformat(),
                     "benchmarks": {}}
    for name in names:
        module = importlib.import_module(name)
        quick = args.quick or BENCHMARKS[name] == "gpu"
        start = time.time()
        results["benchmarks"][name] = {**measure_benchmark(module.BENCHMARK, name, ["--quick"] if quick else []),
                                       "seconds": round(time.time() - start, 1)}
        print(json.dumps({name: results["benchmarks"][name]["result"]})[:600], flush=True)
        args.output_file.write_text(json.dumps(results, indent=1) + "\n")  # a run cut short keeps what it measured
    results["seconds"] = round(time.time() - started, 1)
    args.output_file.write_text(json.dumps(results, indent=1) + "\n")
    print(f"Wrote {args.output_file} in {results['seconds']} s")


if __name__ == "__main__":
    main()
