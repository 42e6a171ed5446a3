"""Self-prompting (`auto`) on one image embedding, against running the encoder for each pass.

`auto` is a prompt-free pass and then a box-prompted pass. `PolypSegmenter.auto_logits` runs both
on the frame's one embedding; the naive way embeds the frame again for the second pass. Same
frames, same model, one run, each way three times, best kept.

    python benchmarks/auto_cost.py [--model models/mobile-sam] [--frames 4] [--output FILE]
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np
import torch
from report import best_of, emit

from polyp_sam_hf.data.prompts import AUTO_BOX_MARGIN, component_boxes, grow_box
from polyp_sam_hf.data.synthetic import synth_frame
from polyp_sam_hf.models.segmenter import PolypSegmenter


def naive_auto(segmenter: PolypSegmenter, frame) -> None:
    """The second pass re-embeds the frame, as two independent calls would."""
    embedded = segmenter.embed(frame)
    mask = (segmenter.logits(embedded, None) > 0).any(0).cpu().numpy()
    height, width = embedded.original
    boxes = [grow_box(b, AUTO_BOX_MARGIN, width, height) for b in component_boxes(mask)]
    if boxes:
        segmenter.logits(segmenter.embed(frame), np.asarray(boxes, np.float32))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-sam")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    segmenter = PolypSegmenter.from_pretrained(args.model, device="cpu")
    rng = np.random.default_rng(0)
    frames = [synth_frame(rng, 480, 640, num_polyps=2)[0] for _ in range(args.frames)]
    found = [len(segmenter.auto_logits(segmenter.embed(f))[1]) for f in frames]
    ways = {"one_embedding": lambda: [segmenter.auto_logits(segmenter.embed(f)) for f in frames],
            "encoder_per_pass": lambda: [naive_auto(segmenter, f) for f in frames]}
    best = best_of(ways)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
                   f"{torch.get_num_threads()} threads",
        "model": args.model, "frames": args.frames, "boxes_found_per_frame": found,
        "seconds": best,
        "auto_one_embedding_speedup": best["encoder_per_pass"] / best["one_embedding"],
    }
    emit(result, args.output)
    return result


if __name__ == "__main__":
    main()
