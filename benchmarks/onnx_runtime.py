"""ONNX Runtime against PyTorch on the CPU: the image encoder per frame, the prompt encoder and mask
decoder per prompt, the files' sizes, and (with --data) Dice on real test frames by the same evaluation.

    python benchmarks/onnx_runtime.py --model_name_or_path outputs/real-data/runs/mobile-sam-decoder/best \
        --data prepared/polyp-data-kc [--frames 162] [--repeats 5] [--quick]

The model is exported to a temporary folder by the library's own export (`export_onnx`: float32 and
int8, checked). Per frame: `PolypSegmenter.embed` with each backend (the fastest of `--repeats`
after a warm-up); per prompt: the prompt encoder and mask decoder alone on one box (`low_res_logits`,
the 20 ms target's call), then the mask at the frame's size for one box and for one click beside it
with the previous round's logits (`session_logits`, the frame's embedding kept). With `--data`,
`polyp-sam evaluate` scores the first `--frames` test frames (one box per frame) with `--backend
torch`, `onnx` and `onnx-int8`, each in its own process. Issue targets on this 2-core CPU: int8
encoder at least 2x PyTorch's speed, float32 at least as fast; at most 20 ms a prompt; Dice
within 0.001 (float32) and 0.005 (int8) of PyTorch.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import Benchmark, best_of, run_benchmark
from PIL import Image

from polyp_sam_hf.models.convert import get_arch
from polyp_sam_hf.models.modeling_tinyvit_sam import TinyViTSamModel
from polyp_sam_hf.models.onnx_graphs import GRAPHS
from polyp_sam_hf.models.segmenter import PolypSegmenter
from polyp_sam_hf.publishing.onnx_export import export_onnx
from polyp_sam_hf.training.checkpointing import save_pretrained_atomic

REPO = Path(__file__).resolve().parents[1]
FRAME = (530, 622)  # a Kvasir-SEG frame's typical height and width
BOX = np.array([[150.0, 120.0, 420.0, 380.0]], np.float32)
CLICK = [(285.0, 250.0, 1)]
BACKENDS = ("torch", "onnx", "onnx-int8")


def _fastest(call, repeats: int) -> float:
    """Seconds of the fastest of `repeats` calls, after a warm-up call."""
    call()
    return best_of({"call": call}, repeats)["call"]


def speeds(folder: Path, repeats: int, backends: tuple[str, ...] = BACKENDS) -> dict:
    """Seconds per frame for the encoder, milliseconds per prompt for the decoder, per backend, and
    each ONNX backend's encoder speed-up over PyTorch's."""
    frame = Image.fromarray(np.random.default_rng(0).integers(0, 255, (*FRAME, 3), dtype=np.uint8))
    result = {}
    for backend in backends:
        seg = PolypSegmenter.from_pretrained(str(folder), device="cpu", backend=backend)
        embedded = seg.embed(frame)
        rounds: dict = {}
        seg.session_logits(embedded, BOX, rounds=rounds)
        result[backend] = {
            "encoder_s_per_frame": round(_fastest(lambda: seg.embed(frame), repeats), 4),
            "decoder_ms": round(1000 * _fastest(lambda: seg.low_res_logits(embedded, BOX), repeats), 1),
            "box_ms": round(1000 * _fastest(lambda: seg.session_logits(embedded, BOX), repeats), 1),
            # one click more: one decoder call, the box's round kept (as the app keeps it)
            "click_ms": round(1000 * _fastest(lambda: seg.session_logits(embedded, BOX, CLICK, rounds=dict(rounds)),
                                              repeats), 1),
        }
    for backend in backends[1:]:
        result[f"encoder_speedup_{backend.replace('-', '_')}"] = round(
            result["torch"]["encoder_s_per_frame"] / result[backend]["encoder_s_per_frame"], 2)
    return result


def dice_on_frames(folder: Path, data: Path, frames: int) -> dict:
    """Mean Dice (one box per frame) of each backend on the first `frames` test frames, and its cost."""
    scores = {}
    for backend in BACKENDS:
        out = Path(tempfile.mkdtemp(prefix=f"onnx-eval-{backend}-"))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "polyp_sam_hf", "evaluate", "--model_name_or_path", str(folder),
                        "--data", str(data), "--output_dir", str(out), "--prompt_mode", "box", "--device", "cpu",
                        "--backend", backend, "--max_eval_samples", str(frames)], check=True, cwd=REPO)
        results = json.loads((out / "metrics.json").read_text())["results"]["model"]["box"]["0.0"]
        scores[backend] = {"seconds": round(time.perf_counter() - start, 1),
                           **{source: round(entry["dice"], 4) for source, entry in results.items()},
                           "frames": results["all"]["n"]}
        shutil.rmtree(out, ignore_errors=True)
    for backend in BACKENDS[1:]:
        scores[f"{backend}_minus_torch"] = round(scores[backend]["all"] - scores["torch"]["all"], 4)
    return scores


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model_name_or_path", help="a model folder (default: MobileSAM's architecture, random "
                                                     "weights: speed does not depend on them)")
    parser.add_argument("--data", type=Path, help="a prepared DatasetDict: also score its test frames per backend")
    parser.add_argument("--frames", type=int, default=162, help="with --data: the first N test frames")
    parser.add_argument("--repeats", type=int, default=5)


def measure(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="onnx-bench-"))
    try:
        folder = work / "model"
        if args.model_name_or_path:
            shutil.copytree(args.model_name_or_path, folder)
        else:
            arch = get_arch("mobile-sam")
            save_pretrained_atomic(TinyViTSamModel(arch.config()).eval(), arch.processor(), folder)
        start = time.perf_counter()
        export_onnx(folder, quantize=bool(args.model_name_or_path))  # random weights: int8 masks are noise
        result = {"model": args.model_name_or_path or "MobileSAM architecture, random weights",
                  "export_s": round(time.perf_counter() - start, 1),
                  "mib": {Path(g.file(q)).name: round((folder / g.file(q)).stat().st_size / 2**20, 1)
                          for g in GRAPHS for q in (False, True) if (folder / g.file(q)).is_file()}}
        # random weights: float32 only (their int8 masks are noise)
        result.update(speeds(folder, args.repeats, BACKENDS if args.model_name_or_path else BACKENDS[:2]))
        if args.data:
            result["dice"] = dice_on_frames(folder, args.data, args.frames)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


BENCHMARK = Benchmark(__doc__, add_arguments, measure, quick={"repeats": 2})

if __name__ == "__main__":
    run_benchmark(BENCHMARK)
