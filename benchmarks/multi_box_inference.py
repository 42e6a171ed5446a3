"""Several prompts on one frame: one image embedding shared by all of them, against the encoder run per prompt.

    python benchmarks/multi_box_inference.py [--model_name_or_path random-sam-vit-base] [--boxes 4] [--frames 2]

Times `PolypSegmenter.predict(frame, k boxes)` (what `polyp-sam predict` runs) against k calls of
`predict(frame, [box])`, which re-run the encoder for every prompt; `score_split` with k
box-jitter levels (what `polyp-sam evaluate --box_jitter` runs: one embedding per frame, k prompts)
against k evaluations of one level each; and self-prompting (`auto`: a prompt-free pass, then its
boxes) on one embedding against embedding the frame again for the second pass. The ratios approach
the number of passes as the encoder dominates.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
import torch
from harness import Benchmark, best_of, run_benchmark

from polyp_sam_hf.data.prepare import prepare_dataset
from polyp_sam_hf.data.prompts import AUTO_BOX_MARGIN, component_boxes, grow_box
from polyp_sam_hf.data.synthetic import synth_frame, write_demo_data
from polyp_sam_hf.evaluation.scoring import ScoringSettings, score_split
from polyp_sam_hf.models.segmenter import PolypSegmenter


def measure_boxes(model: str, boxes: int, frames: int, warmup: bool = True) -> dict:
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


def _auto_reembedding(segmenter: PolypSegmenter, frame) -> None:
    """Self-prompting as two independent calls would do it: the second pass embeds the frame again."""
    embedded = segmenter.embed(frame)
    height, width = embedded.original
    mask = (segmenter.logits(embedded, None) > 0).any(0).cpu().numpy()
    boxes = [grow_box(b, AUTO_BOX_MARGIN, width, height) for b in component_boxes(mask)]
    if boxes:
        segmenter.logits(segmenter.embed(frame), np.asarray(boxes, np.float32))


@torch.no_grad()
def measure_auto(model: str, frames: int) -> dict:
    """`auto` on the frame's one embedding (`PolypSegmenter.auto_logits`) against re-embedding it."""
    segmenter = PolypSegmenter.from_pretrained(model, device="cpu")
    rng = np.random.default_rng(0)
    images = [synth_frame(rng, 480, 640, num_polyps=2)[0] for _ in range(frames)]
    seconds = best_of({"one_embedding": lambda: [segmenter.auto_logits(segmenter.embed(f)) for f in images],
                       "encoder_per_pass": lambda: [_auto_reembedding(segmenter, f) for f in images]})
    return {**_result(model, 2, frames, seconds["one_embedding"], seconds["encoder_per_pass"],
                      naive="encoder_per_pass", ratio="auto_one_embedding_speedup"),
            "boxes_found_per_frame": [len(segmenter.auto_logits(segmenter.embed(f))[1]) for f in images]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model_name_or_path", default="random-sam-vit-base", help="the model of the box measurement")
    parser.add_argument("--small_model", default="tiny-sam", help="the model of the evaluate and auto measurements (a "
                        "random ViT-B's prompt-free mask is noise: dozens of self-made boxes)")
    parser.add_argument("--boxes", type=int, default=4, help="prompts per frame (and jitter levels)")
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--evaluate_frames", type=int, default=8)


def measure(args: argparse.Namespace) -> dict:
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as work:
        return {"boxes": measure_boxes(args.model_name_or_path, args.boxes, args.frames),
                "evaluate": measure_evaluate(args.small_model, args.boxes, args.evaluate_frames, Path(work)),
                "auto": measure_auto(args.small_model, args.evaluate_frames)}


BENCHMARK = Benchmark(__doc__, add_arguments, measure, quick={"boxes": 3, "frames": 1})

if __name__ == "__main__":
    run_benchmark(BENCHMARK)
