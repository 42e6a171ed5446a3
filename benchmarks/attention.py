"""SAM ViT encoder forward + backward: the library's fused relative-position attention against
transformers' own (SDPA with the bias tensor), time and peak memory.

    python benchmarks/attention.py                       # ViT-B, 1024 px, batch 1, CPU or the GPU at hand
    python benchmarks/attention.py --image_size 512      # quicker on a 2-core CPU
    python benchmarks/attention.py --device cuda --dtype bf16 --batch 8
    python benchmarks/attention.py --quick               # 256 px, two layers: a check that it runs

Each attention implementation runs in its own process (so the peak resident memory of one is not
the other's), the two take turns for `--rounds` rounds, and each keeps its best step time. On a GPU
the peak is `torch.cuda.max_memory_allocated`; on the CPU, the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from harness import Benchmark, run_benchmark

IMPLEMENTATIONS = ("transformers", "fused")


def _one_step(args) -> dict:
    """Run in a child process: build a random ViT-B-shaped SAM and time forward + backward of its encoder."""
    import torch
    from transformers import SamConfig, SamModel, SamVisionConfig

    from polyp_sam_hf.models.attention import set_vision_attention

    vision = SamVisionConfig(image_size=args.image_size)  # ViT-B: 12 layers, 768 wide, 12 heads, window 14
    if args.layers:
        vision.num_hidden_layers = args.layers
        vision.global_attn_indexes = [i for i in vision.global_attn_indexes if i < args.layers] or [args.layers - 1]
    torch.manual_seed(0)
    model = SamModel(SamConfig(vision_config=vision.to_dict()))
    encoder = model.vision_encoder.to(args.device)
    set_vision_attention(encoder, args.implementation)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    pixels = torch.randn(args.batch, 3, args.image_size, args.image_size, device=args.device)

    def step():
        with torch.autocast(args.device.split(":")[0], dtype=dtype, enabled=dtype != torch.float32):
            out = encoder(pixels).last_hidden_state
        out.float().square().mean().backward()
        encoder.zero_grad(set_to_none=True)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    step()  # warm-up
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    return {"best_s": min(times), "peak_gib": round(peak, 3)}


CHILD = "child"  # how the measuring process calls its children: `attention.py child SETTINGS_JSON`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image_size", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--layers", type=int, default=None, help="fewer encoder layers (a quick check)")
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--rounds", type=int, default=2, help="turns each implementation takes")
    parser.add_argument("--steps", type=int, default=1, help="timed steps per turn")


def measure(args: argparse.Namespace) -> dict:
    settings = {k: getattr(args, k) for k in ("image_size", "batch", "layers", "device", "dtype", "steps")}
    best = {name: {"best_s": float("inf"), "peak_gib": 0.0} for name in IMPLEMENTATIONS}
    for _ in range(args.rounds):
        for name in IMPLEMENTATIONS:
            out = subprocess.run([sys.executable, __file__, CHILD, json.dumps({**settings, "implementation": name})],
                                 check=True, capture_output=True, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            best[name]["best_s"] = min(best[name]["best_s"], row["best_s"])
            best[name]["peak_gib"] = max(best[name]["peak_gib"], row["peak_gib"])
    return {
        "setting": {**settings, "layers": args.layers or 12},
        "transformers": best["transformers"], "fused": best["fused"],
        "speedup": round(best["transformers"]["best_s"] / best["fused"]["best_s"], 3),
        "peak_memory_ratio": round(best["fused"]["peak_gib"] / best["transformers"]["peak_gib"], 3),
    }


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


BENCHMARK = Benchmark(__doc__, add_arguments, measure, quick={"image_size": 256, "layers": 2, "rounds": 1})

if __name__ == "__main__":
    if sys.argv[1:2] == [CHILD]:
        from polyp_sam_hf.core.threads import flush_denormal_floats

        flush_denormal_floats()
        print(json.dumps(_one_step(argparse.Namespace(**json.loads(sys.argv[2])))))
    else:
        run_benchmark(BENCHMARK)
