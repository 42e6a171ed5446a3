"""Where one training step's time goes: the kernels that take it, and how busy the device is.

    python benchmarks/step_profile.py --model_name_or_path random-sam-vit-base --variant full --precision bf16 --batch 8
    python benchmarks/step_profile.py --quick      # tiny-sam: a check on a CPU

Profiles `--steps` training steps (after warm-up) of the same step `train_throughput.py` times and
records the step's wall time, the summed device time of its kernels (their ratio says how much of
the step the device was busy), and, as text, the operators with the most self time.
"""

from __future__ import annotations

import argparse
import time

import torch
from harness import Benchmark, run_benchmark
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile
from train_throughput import make_step, sync


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model_name_or_path", default="random-sam-vit-base")
    parser.add_argument("--variant", default="full")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rows", type=int, default=30, help="operators listed")


def measure(args: argparse.Namespace) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    step = make_step(args.model_name_or_path, args.variant, args.precision, False, args.batch, device, False)
    for _ in range(args.warmup):
        step()
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        sync(device)
        wall = (time.perf_counter() - start) / args.steps
    events = prof.key_averages()
    if device.type == "cuda":  # the kernels' own rows: operator rows repeat the time of the kernels they launch
        key = "self_device_time_total"
        rows = [e for e in events if e.device_type == DeviceType.CUDA and not e.is_user_annotation]
    else:
        key, rows = "self_cpu_time_total", events
    busy = sum(getattr(e, key) for e in rows) / 1e6 / args.steps  # microseconds -> s per step
    report = "\n".join([
        f"{args.model_name_or_path} {args.variant} {args.precision} batch {args.batch} on "
        f"{torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}, torch {torch.__version__}",
        f"step wall time (under the profiler): {wall:.4f} s",
        f"summed {'kernel' if device.type == 'cuda' else 'operator self'} time per step: {busy:.4f} s "
        f"({busy / wall:.0%} of the step)",
        events.table(sort_by=key, row_limit=args.rows, max_name_column_width=60),
    ])
    print(report)
    return {"model": args.model_name_or_path, "variant": args.variant, "precision": args.precision,
            "batch": args.batch, "step_wall_s": round(wall, 4), "busy_s": round(busy, 4),
            "busy_share": round(busy / wall, 3), "report": report}


BENCHMARK = Benchmark(__doc__, add_arguments, measure, quick={
    "model_name_or_path": "tiny-sam", "precision": "fp32", "batch": 2, "steps": 1, "warmup": 1, "rows": 5})

if __name__ == "__main__":
    run_benchmark(BENCHMARK)
