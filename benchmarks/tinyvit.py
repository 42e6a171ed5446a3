"""MobileSAM / LiteMedSAM on a CPU: encoder time against ViT-B, kornia's TinyViT against timm's,
a decoder-only step from cached embeddings (and the epoch of the paper's 1,450 frames it implies),
and the demo app's time per click.

    python benchmarks/tinyvit.py [--repeats 3] [--output_file benchmarks/results-tinyvit.json] [--quick]

Every ratio divides two times measured in this one run on this one machine. Random weights of
the same architecture time the same as the real ones, so no download is needed.
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
from polyp_sam_hf.models.loading import load_model_and_processor
from polyp_sam_hf.models.modeling_tinyvit_sam import TinyViTSamModel
from polyp_sam_hf.models.segmenter import PolypSegmenter
from polyp_sam_hf.publishing.gradio_demo import EmbeddingMemo, segment
from polyp_sam_hf.training.losses import batch_loss, get_loss
from polyp_sam_hf.training.strategies import get_strategy

PAPER_TRAIN_FRAMES = 1450


def best_of(fn, repeats: int) -> float:
    """Fastest of `repeats` timed calls after one warm-up call (seconds)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@torch.no_grad()
def encoder_seconds(model, size: int, repeats: int) -> float:
    x = torch.randn(1, 3, size, size)
    return best_of(lambda: model.get_image_embeddings(x), repeats)


def timm_tinyvit_seconds(repeats: int) -> float | None:
    """timm's TinyViT-5M at 1024 px with MobileSAM's stride-1 last stage and SAM's neck."""
    try:
        import timm
    except ImportError:
        return None
    body = timm.create_model("tiny_vit_5m_224", pretrained=False, num_classes=0).eval()
    body.stages[3].downsample.conv2.conv.stride = (1, 1)
    neck = TinyViTSamModel(get_arch("mobile-sam").config()).vision_encoder.neck.eval()
    x = torch.randn(1, 3, 1024, 1024)
    with torch.no_grad():
        return best_of(lambda: neck(body.forward_features(x)), repeats)


def decoder_step_seconds(model, batch: int, repeats: int) -> float:
    """One decoder-only optimiser step from cached (B, 256, 64, 64) embeddings, one box each, Dice
    loss on the 1024 x 1024 input grid through training's own `batch_loss`."""
    model = get_strategy("decoder").apply(model)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    loss_fn = get_loss("dice")
    emb = torch.randn(batch, 256, 64, 64)
    boxes = torch.tensor([[[200.0, 240.0, 620.0, 700.0]]]).repeat(batch, 1, 1)
    targets = torch.zeros(batch, 1, 1024, 1024)
    targets[:, :, 240:700, 200:620] = 1
    inputs = {"targets": targets, "reshaped": torch.tensor([[1024, 1024]] * batch),
              "box_valid": torch.ones(batch, 1, dtype=torch.bool)}

    def step():
        out = model(image_embeddings=emb, input_boxes=boxes, multimask_output=False)
        loss = batch_loss(out.pred_masks[:, :, 0], inputs, loss_fn)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return best_of(step, repeats)


def click_seconds(model_name: str, repeats: int) -> dict:
    """The app's `segment` on a 512 x 512 frame: first click (encoder + decoder), later clicks
    on the same frame (decoder only, the embedding memoised)."""
    segmenter = PolypSegmenter.from_pretrained(model_name, device="cpu")
    frame = Image.fromarray(np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8))
    out = tempfile.mkdtemp()

    def first():
        segment(segmenter, frame, "100,100,300,320", out, EmbeddingMemo(segmenter))

    memo = EmbeddingMemo(segmenter)
    segment(segmenter, frame, "100,100,300,320", out, memo)
    first_s = best_of(first, repeats)
    later_s = best_of(lambda: segment(segmenter, frame, "120,90,310,300", out, memo), repeats)
    return {"first_click_s": first_s, "later_click_s": later_s}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vit_b", type=int, default=1, help="also time SAM ViT-B's encoder (1) or not (0)")


def measure(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    mobile = TinyViTSamModel(get_arch("mobile-sam").config()).eval()
    lite = TinyViTSamModel(get_arch("lite-medsam").config()).eval()
    mobile_s = encoder_seconds(mobile, 1024, args.repeats)
    lite_s = encoder_seconds(lite, 256, args.repeats)
    vit_b_s = None
    if args.vit_b:
        vit_b, _ = load_model_and_processor("random-sam-vit-base")
        vit_b_s = encoder_seconds(vit_b.eval(), 1024, args.repeats)
    timm_s = timm_tinyvit_seconds(args.repeats)
    step_s = decoder_step_seconds(mobile, 4, args.repeats)
    epoch_s = PAPER_TRAIN_FRAMES / 4 * step_s

    with tempfile.TemporaryDirectory() as tmp:
        mobile.save_pretrained(tmp)
        get_arch("mobile-sam").processor().save_pretrained(tmp)
        clicks = click_seconds(tmp, args.repeats)

    return {
        "encoder_seconds_per_image": {"mobile_sam_1024": mobile_s, "lite_medsam_256": lite_s,
                                      "sam_vit_b_1024": vit_b_s, "timm_tinyvit_1024_with_neck": timm_s},
        "vit_b_over_mobile_sam": vit_b_s / mobile_s if vit_b_s else None,
        "timm_over_kornia": (timm_s / mobile_s) if timm_s else None,
        "decoder_step_batch4_seconds": step_s,
        "paper_epoch_from_cached_embeddings": {
            "frames": PAPER_TRAIN_FRAMES, "seconds": epoch_s,
            "arithmetic": f"{PAPER_TRAIN_FRAMES} frames / 4 per step x {step_s:.3f} s = {epoch_s:.0f} s",
            "embedding_cache_once_seconds": PAPER_TRAIN_FRAMES * mobile_s,
        },
        "app_click": clicks,
    }


BENCHMARK = Benchmark(__doc__, add_arguments, measure, quick={"repeats": 1, "vit_b": 0})

if __name__ == "__main__":
    run_benchmark(BENCHMARK)
