"""Training throughput per strategy, precision and checkpointing: images/s, peak memory, MFU.

    python benchmarks/train_throughput.py                                   # ViT-B and ViT-L on a GPU
    python benchmarks/train_throughput.py --quick                           # tiny-sam: a check that it runs

Random weights of the real sizes and synthetic frames: no download, no network. Model FLOP
utilisation is the achieved model FLOP/s (counted with `benchmarks/profiling.py`) over the card's
dense bf16 rate, also for fp32 runs. Each configuration is timed after warm-up steps; one that runs
out of memory is recorded as such.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext

import torch
from harness import Benchmark, record, run_benchmark
from profiling import count_step_flops

from polyp_sam_hf.data.preprocessing import Preprocessing
from polyp_sam_hf.models.loading import BUILTIN_MODELS, load_model_and_processor
from polyp_sam_hf.models.segmenter import batch_logits
from polyp_sam_hf.training.losses import batch_loss, get_loss
from polyp_sam_hf.training.strategies import get_strategy

# dense bf16 tensor-core peak, TFLOP/s, from the vendors' data sheets (SXM parts)
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "V100": 125.0, "L40S": 362.0}

# benchmark names -> (strategy, start from cached embeddings)
VARIANTS = {
    "decoder-cached": ("decoder", True),
    "decoder": ("decoder", False),
    "lora": ("lora", False),
    "full": ("full", False),
}


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def synthetic_batch(config, batch: int, cached: bool, device: torch.device) -> dict:
    size = config.vision_config.image_size
    grid = size // config.vision_config.patch_size
    g = torch.Generator().manual_seed(0)
    out = {
        "input_boxes": torch.tensor([[[size * 0.2, size * 0.25, size * 0.7, size * 0.8]]] * batch),
        "targets": (torch.rand(batch, 1, size, size, generator=g) > 0.7).to(torch.uint8),
        "box_valid": torch.ones(batch, 1, dtype=torch.bool),
        "reshaped": torch.tensor([[size, size]] * batch),
    }
    if cached:
        out["image_embeddings"] = torch.randn(batch, config.vision_config.output_channels, grid, grid, generator=g)
    else:
        out["pixel_uint8"] = torch.randint(0, 256, (batch, 3, size, size), generator=g, dtype=torch.uint8)
        prep = Preprocessing(size, size, 2, 1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # SAM's
        out["pixel_scale"], out["pixel_shift"] = prep.scale, prep.shift
    return {k: v.to(device) for k, v in out.items()}


def make_step(model_name: str, variant: str, precision: str, checkpointing: bool, batch: int,
              device: torch.device, compile_model: bool, attention: str = "sdpa"):
    """One configuration's training step on a synthetic batch, as a function of no arguments."""
    strategy, cached = VARIANTS[variant]
    model, _ = load_model_and_processor(model_name)
    model.set_attn_implementation(attention)
    model = get_strategy(strategy).apply(model).to(device)
    if checkpointing:
        # transformers 5 renamed it; older releases have only gradient_checkpointing_enable
        getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-6, fused=device.type == "cuda")
    forward = torch.compile(model) if compile_model else model
    data = synthetic_batch(model.config, batch, cached, device)
    loss_fn = get_loss("dice")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()

    def step():
        with autocast:
            loss = batch_loss(batch_logits(forward, data), data, loss_fn)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_one(model_name: str, variant: str, precision: str, checkpointing: bool, batch: int, steps: int,
            warmup: int, device: torch.device, compile_model: bool, attention: str = "sdpa") -> dict:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step = make_step(model_name, variant, precision, checkpointing, batch, device, compile_model, attention)
    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    seconds = time.perf_counter() - start
    return {
        "images_per_s": round(batch * steps / seconds, 3),
        "step_s": round(seconds / steps, 4),
        "peak_memory_gb": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="random-sam-vit-base,random-sam-vit-large")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--precisions", default="bf16,fp32")
    parser.add_argument("--checkpointing", default="off,on")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd models")
    parser.add_argument("--attention", default="sdpa", help="comma-separated: sdpa, eager")
    parser.add_argument("--peak_tflops", type=float, help="the card's dense bf16 rate, if not in the table")


def measure(args: argparse.Namespace) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    peak = peak_tflops(device, args.peak_tflops)
    rows = []
    for model_name in args.models.split(","):
        config = BUILTIN_MODELS[model_name]()
        for variant in args.variants.split(","):
            strategy, cached = VARIANTS[variant]
            flops = count_step_flops(config, strategy, cached)["step"]
            for precision in args.precisions.split(","):
                for ckpt in args.checkpointing.split(","):
                    if ckpt == "on" and cached:
                        continue  # nothing to recompute: the encoder does not run
                    for compiled, attention in [(c, a) for c in ([False, True] if args.compile else [False])
                                                for a in args.attention.split(",")]:
                        row = {"model": model_name, "variant": variant, "precision": precision,
                               "checkpointing": ckpt, "compiled": compiled, "attention": attention, "batch": args.batch,
                               "gflop_per_image": round(flops / 1e9, 3)}
                        try:
                            row.update(run_one(model_name, variant, precision, ckpt == "on", args.batch,
                                               args.steps, args.warmup, device, compiled, attention))
                            achieved = row["images_per_s"] * flops / 1e12
                            row["achieved_tflops"] = round(achieved, 2)
                            row["mfu"] = round(achieved / peak, 4) if peak else None
                        except torch.cuda.OutOfMemoryError:
                            row["error"] = "out of memory"
                        if device.type == "cuda":
                            torch.cuda.empty_cache()
                        rows.append(row)
                        print(json.dumps(row), flush=True)
                        if args.output_file:  # after every row: a run cut short keeps what it measured
                            partial = record("train_throughput", ["(cut short)"], {"peak_bf16_tflops": peak,
                                                                                    "results": rows})
                            args.output_file.write_text(json.dumps(partial, indent=1) + "\n")
    return {"peak_bf16_tflops": peak, "results": rows}


BENCHMARK = Benchmark(__doc__, add_arguments, measure, quick={
    "models": "tiny-sam", "variants": "decoder-cached,full", "precisions": "fp32", "checkpointing": "off",
    "batch": 2, "steps": 1, "warmup": 1})

if __name__ == "__main__":
    run_benchmark(BENCHMARK)
