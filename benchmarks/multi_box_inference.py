"""k boxes on one frame: one image embedding shared by all prompts, against the encoder run per box.

    python benchmarks/multi_box_inference.py [--model random-sam-vit-base] [--boxes 4] [--frames 2]

Times `PolypSegmenter.predict(frame, k boxes)` against k calls of `predict(frame, [box])`, which
re-run the encoder for every prompt. The ratio approaches k as the encoder dominates.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from polyp_sam_hf.data.synthetic import synth_frame
from polyp_sam_hf.inference import PolypSegmenter


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
    return {
        "model": model,
        "k": boxes,
        "frames": frames,
        "shared_embedding_s": round(shared_s, 3),
        "encoder_per_box_s": round(naive_s, 3),
        "shared_images_per_s": round(frames / shared_s, 3),
        "encoder_per_box_images_per_s": round(frames / naive_s, 3),
        "multi_box_inference_speedup": round(naive_s / shared_s, 2),
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} threads",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random-sam-vit-base")
    parser.add_argument("--boxes", type=int, default=4)
    parser.add_argument("--frames", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(measure(args.model, args.boxes, args.frames), indent=1))


if __name__ == "__main__":
    main()
