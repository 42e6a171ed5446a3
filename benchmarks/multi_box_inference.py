"""k boxes on one frame: one image embedding shared by all prompts, against the encoder run per box.

    python benchmarks/multi_box_inference.py [--model random-sam-vit-base] [--boxes 4] [--frames 2]

Times `PolypSegmenter.predict(frame, k boxes)` (what `polyp-sam predict` runs) against k calls of
`predict(frame, [box])`, which re-run the encoder for every prompt; and `score_split` with k
box-jitter levels (what `polyp-sam evaluate --box-jitter` runs: one embedding per frame, k prompts)
against k evaluations of one level each. The ratios approach k as the encoder dominates.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
import torch

from polyp_sam_hf.data.prepare import prepare_dataset
from polyp_sam_hf.data.synthetic import synth_frame, write_demo_data
from polyp_sam_hf.evaluation.scoring import ScoringSettings, score_split
from polyp_sam_hf.models.segmenter import PolypSegmenter


def measure(model: str, boxes: int, frames: int, warmup: bool = True) -> dict:
    rng = np.random.default_rng(0)
    images = [synth_frame(rng, height=448, width=512)[0] for _ in range(frames)]
    prompts = [[40 + 20 * i, 30 + 15 * i, 300 + 10 * i, 260 + 12 * i] for i in range(boxes)]
    segmenter = PolypSegmenter.from_pretrained(model, device="cpu")
    if warmup:
        segmenter.predict(images[0], prompts[:1])
    start = time.perf_counter()
    for image in images:
        shared = segmenter.predict(image, prompts)
    shared_s = time.perf_counter() - start
    start = time.perf_counter()
    for image in images:
        naive = np.concatenate([segmenter.predict(image, [box]) for box in prompts])
    naive_s = time.perf_counter() - start
    assert (shared == naive).all(), "sharing the embedding must not change the masks"
    return _result(model, boxes, frames, shared_s, naive_s, naive="encoder_per_box", ratio="multi_box_inference_speedup")


def _result(model: str, k: int, frames: int, shared_s: float, naive_s: float, naive: str, ratio: str) -> dict:
    """Both times, both rates and their ratio, under the given names for the naive way and the ratio."""
    return {
        "model": model,
        "k": k,
        "frames": frames,
        "shared_embedding_s": round(shared_s, 3),
        f"{naive}_s": round(naive_s, 3),
        "shared_images_per_s": round(frames / shared_s, 3),
        f"{naive}_images_per_s": round(frames / naive_s, 3),
        ratio: round(naive_s / shared_s, 2),
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} threads",
    }


def measure_evaluate(model: str, levels: int, frames: int, work: Path) -> dict:
    """`score_split` with `levels` jitter levels at once against one level at a time."""
    raw = write_demo_data(work / "raw", num_train=1, num_test=frames, seed=4)  # `frames` per test source
    split = prepare_dataset(raw, val_fraction=0.0)[0]["test"].select(range(frames))
    segmenter = PolypSegmenter.from_pretrained(model, device="cpu")
    jitter = tuple(round(0.05 * i, 2) for i in range(levels))
    config = ScoringSettings(prompt_modes=("box",), box_jitter=jitter, batch_size=frames)
    score_split(segmenter, split.select(range(1)), dataclasses.replace(config, box_jitter=(0.0,)))  # warm-up
    start = time.perf_counter()
    together, _ = score_split(segmenter, split, config)
    shared_s = time.perf_counter() - start
    start = time.perf_counter()
    apart = [score_split(segmenter, split, dataclasses.replace(config, box_jitter=(level,)))[0] for level in jitter]
    naive_s = time.perf_counter() - start
    # the unjittered level draws no random boxes, so both ways must score it identically
    assert [s.dice for s in together if s.box_jitter == 0.0] == [s.dice for s in apart[0]]
    return _result(model, levels, frames, shared_s, naive_s, naive="encoder_per_level", ratio="evaluate_speedup")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random-sam-vit-base")
    parser.add_argument("--boxes", type=int, default=4)
    parser.add_argument("--frames", type=int, default=2)
    args = parser.parse_args()
    datasets.disable_progress_bars()
    print(json.dumps(measure(args.model, args.boxes, args.frames), indent=1))
    with tempfile.TemporaryDirectory() as work:
        print(json.dumps(measure_evaluate(args.model, args.boxes, args.frames, Path(work)), indent=1))


if __name__ == "__main__":
    main()
