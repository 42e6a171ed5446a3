"""train.py's own loop against the bare step it is made of: how much the loop adds.

    python benchmarks/train_loop.py                                   # tiny-sam on demo frames, CPU or GPU
    python benchmarks/train_loop.py --model_name_or_path random-sam-vit-base --batch 8 --precision bf16   # a GPU
    python benchmarks/train_loop.py --quick                           # a few steps: a check that it runs

Both sides run the same model, batches and optimiser on the device at hand. The loop is the
library's `training.train_steps` (data loading, accumulation, the per-step host sync, logging,
the progress bar) with validation and checkpoints pushed past the timed steps; the bare step is
forward, loss, backward and optimiser step over batches already on the device. The figure is the
loop's images/s as a share of the bare step's (target: at least 95%).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from harness import Benchmark, run_benchmark

from polyp_sam_hf.data.synthetic import write_demo_data
from polyp_sam_hf.models.segmenter import batch_logits
from polyp_sam_hf.training import loop as training
from polyp_sam_hf.training.config import parse_config
from polyp_sam_hf.training.losses import batch_loss


def _settings(args, data: Path, output: Path, steps: int) -> list[str]:
    return ["--model_name_or_path", args.model_name_or_path, "--strategy", args.strategy, "--data", str(data),
            "--output_dir", str(output), "--per_device_train_batch_size", str(args.batch),
            "--effective_batch_size", str(args.batch), "--max_train_steps", str(steps), "--eval_steps", str(10 * steps),
            "--max_eval_samples", "1", "--mixed_precision", args.precision, "--report_to", "none",
            "--evaluate_test", "false", "--generate_demo_data", "true", "--dataloader_num_workers", str(args.workers),
            "--learning_rate", "1e-5"]


def measure_loop(args, work: Path) -> dict:
    data = work / "data"
    write_demo_data(data, num_train=max(4 * args.batch * (args.steps + args.warmup) // 3, 16), num_test=2)
    steps = args.warmup + args.steps
    run = training.setup(*parse_config(_settings(args, data, work / "run", steps)))
    device = run.accelerator.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    # the loop: warm-up steps, then the timed ones; its clock ticks where each optimiser step's loss is counted
    times: list[float] = []
    real_add_loss = run.add_loss

    def timed_add_loss(loss: float) -> None:
        sync()
        times.append(time.perf_counter())
        real_add_loss(loss)

    run.add_loss = timed_add_loss
    training.train_steps(run)
    loop_s = (times[-1] - times[args.warmup - 1]) / (len(times) - args.warmup)

    # the bare step on the same model and optimiser, over batches already on the device
    batches = [b for _, b in zip(range(steps), run.train_loader)]
    model, optimizer = run.model, run.optimizer

    def bare():
        loss = batch_loss(batch_logits(model, batch), batch, run.loss_fn)
        run.accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()

    model.train()
    bare_times = []
    for i, batch in enumerate(batches):
        sync()
        start = time.perf_counter()
        bare()
        sync()
        if i >= args.warmup:
            bare_times.append(time.perf_counter() - start)
    bare_s = sum(bare_times) / len(bare_times)
    return {"model": args.model_name_or_path, "strategy": args.strategy, "batch": args.batch,
            "optimiser_steps": len(times), "timed_steps": len(times) - args.warmup,
            "loop_images_per_s": round(args.batch / loop_s, 3), "bare_images_per_s": round(args.batch / bare_s, 3),
            "loop_share_of_bare": round(bare_s / loop_s, 3)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model_name_or_path", default="tiny-sam")
    parser.add_argument("--strategy", default="full")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--precision", default="no", choices=["no", "bf16"])


def measure(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as work:
        return measure_loop(args, Path(work))


BENCHMARK = Benchmark(__doc__, add_arguments, measure, quick={"steps": 4, "warmup": 1, "batch": 2})

if __name__ == "__main__":
    run_benchmark(BENCHMARK)
