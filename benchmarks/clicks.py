"""What a click costs: MobileSAM's decoder on a stored embedding per click, and the training time
per step that correction rounds add.

    python benchmarks/clicks.py [--repeats 5] [--rounds 8] [--batch 8] [--quick]

- Per click (issue target: at most 50 ms for MobileSAM on a 2-core CPU): the prompt encoder and mask
  decoder on the frame's stored embedding with the clicks so far and the previous low-resolution
  logits, then the logits at the frame's size (`PolypSegmenter.session_logits` one click longer),
  the model as `from_pretrained` loads it (`route_single_masks`: the single-mask decoder with
  attention on the token side), and beside it with transformers' own mask decoder;
  and the app's whole answer to a click (`gradio_demo.segment`: the round, the mask, the overlay,
  the PNG), its embedding and earlier rounds memoised as the app keeps them.
- Per training step: the decoder strategy on cached embeddings (`--batch` frames of MobileSAM's
  size, one box each, half starting from a click), forward and backward through training's own
  `step_loss`, with 1 round against `--rounds` rounds, and `--rounds` rounds with
  `click_region_weight` 1 (each clicked error region found and scored) against without.

Random weights of MobileSAM's architecture time the same as the real ones; every ratio divides two
times measured in this one run on this one machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from harness import Benchmark, run_benchmark
from PIL import Image

from polyp_sam_hf.models.convert import get_arch
from polyp_sam_hf.models.modeling_tinyvit_sam import TinyViTSamModel
from polyp_sam_hf.models.segmenter import PolypSegmenter
from polyp_sam_hf.models.single_mask_decoder import route_single_masks
from polyp_sam_hf.publishing.gradio_demo import EmbeddingMemo, add_click, segment
from polyp_sam_hf.training.config import DataArguments
from polyp_sam_hf.training.interactive import PromptRounds
from polyp_sam_hf.training.loop import step_loss
from polyp_sam_hf.training.losses import get_loss
from polyp_sam_hf.training.strategies import get_strategy

FRAME = (530, 622)  # a Kvasir-SEG frame's typical height and width
BOX = [150.0, 120.0, 420.0, 380.0]
CLICKS = [(285, 250, 1), (160, 130, 0), (400, 360, 0), (300, 140, 1), (200, 330, 1),
          (410, 130, 0), (170, 370, 0), (280, 300, 1), (350, 250, 1), (220, 200, 1)]


def _mobile_sam(transformers_decoder: bool = False) -> PolypSegmenter:
    """MobileSAM as `PolypSegmenter.from_pretrained` loads it (`route_single_masks`), or with
    transformers' own mask decoder."""
    torch.manual_seed(0)
    arch = get_arch("mobile-sam")
    model = TinyViTSamModel(arch.config()).eval()
    return PolypSegmenter(model if transformers_decoder else route_single_masks(model), arch.processor(), device="cpu")


def _one_click(segmenter: PolypSegmenter, embedded, k: int) -> float:
    """Seconds for click k + 1 of a session whose first k rounds are kept: one decoder call."""
    rounds: dict = {}
    segmenter.session_logits(embedded, [BOX], CLICKS[:k], rounds=rounds)  # the session so far, kept
    start = time.perf_counter()
    segmenter.session_logits(embedded, [BOX], CLICKS[:k + 1], rounds=rounds)
    return time.perf_counter() - start


def click_costs(repeats: int) -> dict:
    """Milliseconds one more click costs, after k = 0 .. len(CLICKS) - 1 clicks beside the box (the
    fastest of `repeats` for each k, then the median and the worst over k); the median with
    transformers' mask decoder beside it, interleaved with the loaded model's."""
    segmenter, plain = _mobile_sam(), _mobile_sam(transformers_decoder=True)
    frame = Image.fromarray(np.random.default_rng(0).integers(0, 255, (*FRAME, 3), dtype=np.uint8))
    embedded = segmenter.embed(frame)
    out = tempfile.mkdtemp()
    decoder, app, decoder_plain = [], [], []
    for k in range(len(CLICKS)):
        best_decoder = best_app = best_plain = float("inf")
        for _ in range(repeats):
            best_decoder = min(best_decoder, _one_click(segmenter, embedded, k))
            best_plain = min(best_plain, _one_click(plain, embedded, k))
            memo = EmbeddingMemo(segmenter)
            text = ""
            for click in CLICKS[:k]:
                text = add_click(text, *click)
            segment(segmenter, frame, ",".join(map(str, BOX)), out, memo, text)
            start = time.perf_counter()
            segment(segmenter, frame, ",".join(map(str, BOX)), out, memo, add_click(text, *CLICKS[k]))
            best_app = min(best_app, time.perf_counter() - start)
        decoder.append(1000 * best_decoder)
        decoder_plain.append(1000 * best_plain)
        app.append(1000 * best_app)
    return {"frame": f"{FRAME[1]} x {FRAME[0]}", "clicks": len(CLICKS),
            "decoder_ms_per_click_median": round(float(np.median(decoder)), 1),
            "decoder_ms_per_click_worst": round(max(decoder), 1),
            "decoder_ms_per_click_median_transformers": round(float(np.median(decoder_plain)), 1),
            "transformers_over_loaded": round(float(np.median(decoder_plain) / np.median(decoder)), 2),
            "app_ms_per_click_median": round(float(np.median(app)), 1),
            "app_ms_per_click_worst": round(max(app), 1),
            "decoder_ms_by_clicks_before": [round(v, 1) for v in decoder]}


def step_seconds(rounds: int, batch: int, repeats: int, click_region_weight: float = 0.0) -> float:
    """One optimiser step of the decoder strategy on cached embeddings with `rounds` prompts a frame
    (and the clicked-region loss at `click_region_weight`)."""
    torch.manual_seed(0)
    model = PromptRounds(get_strategy("decoder").apply(TinyViTSamModel(get_arch("mobile-sam").config())))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    data_args = DataArguments(interactive_rounds=rounds, point_share=0.5, click_region_weight=click_region_weight)
    targets = torch.zeros(batch, 1, 1024, 1024)
    targets[:, :, 240:700, 200:620] = 1
    first = torch.tensor([[400.0, 470.0]]).repeat(batch, 1)
    items = {"image_embeddings": torch.randn(batch, 256, 64, 64), "targets": targets,
             "reshaped": torch.tensor([[1024, 1024]] * batch), "index": torch.arange(batch),
             "input_boxes": torch.tensor([[[200.0, 240.0, 620.0, 700.0]]]).repeat(batch, 1, 1),
             "box_valid": torch.ones(batch, 1, dtype=torch.bool),
             "point_first": torch.arange(batch) % 2 == 1, "first_point": first}
    loss_fn = get_loss("dice+bce")

    def step():
        step_loss(model, items, loss_fn, data_args, seed=0, epoch=0).backward()
        optimizer.step()
        optimizer.zero_grad()

    step()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=8, help="correction rounds a step (the real-data recipe's 8)")
    parser.add_argument("--batch", type=int, default=8, help="frames a step (the real-data recipe's 8)")


def measure(args: argparse.Namespace) -> dict:
    result = click_costs(args.repeats)
    repeats = max(1, args.repeats // 2)
    one, many = (step_seconds(rounds, args.batch, repeats) for rounds in (1, args.rounds))
    regions = step_seconds(args.rounds, args.batch, repeats, click_region_weight=1.0)
    result.update({"target_ms_per_click": 50, "batch": args.batch, "rounds": args.rounds,
                   "step_s_one_round": round(one, 3), f"step_s_{args.rounds}_rounds": round(many, 3),
                   "step_ratio": round(many / one, 2),
                   "extra_s_per_round": round((many - one) / max(args.rounds - 1, 1), 3),
                   f"step_s_{args.rounds}_rounds_click_region": round(regions, 3),
                   "click_region_ratio": round(regions / many, 2)})
    return result


BENCHMARK = Benchmark(__doc__, add_arguments, measure, quick={"repeats": 2, "rounds": 3, "batch": 2})

if __name__ == "__main__":
    run_benchmark(BENCHMARK)
