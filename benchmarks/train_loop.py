"""train.py's own loop against the bare step it is made of: how much the loop adds.

    python benchmarks/train_loop.py                                   # tiny-sam on demo frames, CPU or GPU
    python benchmarks/train_loop.py --model random-sam-vit-base --batch 8 --precision bf16   # a GPU

Both sides run the same model, batches and optimiser on the device at hand. The loop is the
library's `training.train_steps` (data loading, accumulation, the per-step host sync, logging,
the progress bar) with validation and checkpoints pushed past the timed steps; the bare step is
forward, loss, backward and optimiser step over batches already on the device. The figure is the
loop's images/s as a share of the bare step's (target: at least 95%).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from report import emit  # noqa: E402

from polyp_sam_hf.data.synthetic import write_demo_data  # noqa: E402
from polyp_sam_hf.models.segmenter import batch_logits  # noqa: E402
from polyp_sam_hf.training import loop as training  # noqa: E402
from polyp_sam_hf.training.config import parse_config  # noqa: E402
from polyp_sam_hf.training.losses import batch_loss  # noqa: E402
from polyp_sam_hf.training.stopping import GracefulStop  # noqa: E402


def _settings(args, data: Path, output: Path, steps: int) -> list[str]:
    return ["--model", args.model, "--strategy", args.strategy, "--data", str(data), "--output_dir", str(output),
            "--per_device_batch_size", str(args.batch), "--effective_batch_size", str(args.batch),
            "--max_steps", str(steps), "--eval_every_steps", str(10 * steps), "--max_eval_samples", "1",
            "--mixed_precision", args.precision, "--report_to", "none", "--evaluate_test", "false",
            "--generate_demo_data", "true", "--num_workers", str(args.workers), "--learning_rate", "1e-5"]


def measure(args, work: Path) -> dict:
    data = work / "data"
    write_demo_data(data, num_train=max(4 * args.batch * (args.steps + args.warmup) // 3, 16), num_test=2)
    steps = args.warmup + args.steps
    run = training.setup(*parse_config(_settings(args, data, work / "run", steps)))
    device = run.accelerator.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    # the loop: warm-up steps, then the timed ones (the step counter's own clock)
    times: list[float] = []
    real_log = run.accelerator.log

    def timed_log(values, step=None, **kwargs):  # logged once per optimiser step: a clock tick per step
        if "train_loss" in values:
            sync()
            times.append(time.perf_counter())
        return real_log(values, step=step, **kwargs)

    run.accelerator.log = timed_log
    with GracefulStop(on_request=run.accelerator.set_trigger) as stop:
        training.train_steps(run, stop)
    run.accelerator.log = real_log
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
    return {"loop_images_per_s": round(args.batch / loop_s, 3), "bare_images_per_s": round(args.batch / bare_s, 3),
            "loop_share_of_bare": round(bare_s / loop_s, 3)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-sam")
    parser.add_argument("--strategy", default="full")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--precision", default="no", choices=["no", "bf16"])
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        result = measure(args, Path(work))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    result = {"command": "python benchmarks/train_loop.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": f"{platform.machine()}, {device}, torch {torch.__version__}",
              "model": args.model, "strategy": args.strategy, "batch": args.batch, "steps": args.steps, **result}
    emit(result, args.output)
    return result


if __name__ == "__main__":
    main()
