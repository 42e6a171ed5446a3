"""Every CPU benchmark in one run, written to benchmarks/results.json.

    python benchmarks/run_all.py --quick     # under 10 minutes on a 2-core CPU
    python benchmarks/run_all.py             # the full sizes

Each figure is a ratio of two times measured in this one run on this one machine, kept beside the
two times it divides. The GPU figures come from `benchmarks/gpu.sh`.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import datasets
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import embedding_cache  # noqa: E402
import input_pipeline  # noqa: E402
import memory  # noqa: E402
import multi_box_inference  # noqa: E402

SIZES = {
    "quick": {"cache_images": 2, "pipeline_images": 64, "boxes": 3, "box_frames": 1, "memory": [200, 1000],
              "evaluate_models": ["tiny-sam"], "evaluate_frames": 8},
    "full": {"cache_images": 6, "pipeline_images": 160, "boxes": 4, "box_frames": 2, "memory": [200, 2000],
             "evaluate_models": ["tiny-sam", "random-sam-vit-base"], "evaluate_frames": 2},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    size = SIZES["quick" if args.quick else "full"]
    datasets.disable_progress_bars()
    started = time.time()
    results: dict = {
        "command": "python benchmarks/run_all.py" + (" --quick" if args.quick else ""),
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}",
    }
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        cache = embedding_cache.measure("random-sam-vit-base", size["cache_images"], 2, work / "cache",
                                        warmup=not args.quick)
        results["embedding_cache_speedup"] = {
            "value": cache["embedding_cache_speedup"], "recompute_s": cache["second_epoch_recompute_s"],
            "cached_s": cache["second_epoch_cached_s"], "model": cache["model"], "images": cache["images"]}
        print(json.dumps(results["embedding_cache_speedup"]), flush=True)
        pipe = input_pipeline.measure(size["pipeline_images"], 2, 8, work / "pipeline")
        results["input_pipeline_speedup"] = {
            "value": pipe["input_pipeline_speedup"], "per_sample_processor_s": pipe["per_sample_processor_s"],
            "pixel_cache_s": pipe["pixel_cache_s"], "images": pipe["images"], "workers": pipe["workers"],
            "loader_only_speedup": pipe["loader_only_speedup"], "loader_only_s": pipe["loader_only_s"]}
        print(json.dumps(results["input_pipeline_speedup"]), flush=True)
        # the ViT-B kernels are warm from the embedding-cache run above
        boxes = {m: multi_box_inference.measure(m, size["boxes"], size["box_frames"], warmup=not args.quick or m == "tiny-sam")
                 for m in ("tiny-sam", "random-sam-vit-base")}
        vit_b = boxes["random-sam-vit-base"]
        results["multi_box_inference_speedup"] = {
            "value": vit_b["multi_box_inference_speedup"], "k": vit_b["k"],
            "shared_embedding_s": vit_b["shared_embedding_s"], "encoder_per_box_s": vit_b["encoder_per_box_s"],
            "model": vit_b["model"], "by_model": boxes}
        print(json.dumps(results["multi_box_inference_speedup"]), flush=True)
        # `evaluate` with k jitter levels: one embedding per frame against one evaluation per level
        results["evaluate_multi_level_speedup"] = {
            m: multi_box_inference.measure_evaluate(m, size["boxes"], size["evaluate_frames"], work / f"evaluate-{m}")
            for m in size["evaluate_models"]}
        print(json.dumps(results["evaluate_multi_level_speedup"]), flush=True)
        (work / "memory").mkdir()
        results["memory"] = memory.measure(size["memory"], work / "memory")
        print(json.dumps(results["memory"]), flush=True)
    results["seconds"] = round(time.time() - started, 1)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    print(f"Wrote {args.output} in {results['seconds']} s")


if __name__ == "__main__":
    main()
