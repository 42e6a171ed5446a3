"""How far converted MobileSAM / LiteMedSAM are from independent implementations, on real frames.

    python scripts/exactness.py [--output_file scripts/results/results-exactness.json]

For each architecture and frame (ETIS 135 with three boxes, CVC-ColonDB 102 with one): the largest
embedding and low-resolution logit differences against the official model code shipped with the
checkpoints (and, for MobileSAM, kornia's `Sam`), and how many of the 256 x 256 mask pixels per box
differ. `tests/test_real_weights.py` asserts the same comparisons.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from reference_sam import kornia_logits, reference_logits, reference_parts  # noqa: E402

from polyp_sam_hf.data.prompts import component_boxes  # noqa: E402
from polyp_sam_hf.data.reading import read_pair  # noqa: E402
from polyp_sam_hf.models.convert import convert_checkpoint  # noqa: E402
from polyp_sam_hf.models.loading import load_model_and_processor  # noqa: E402
from polyp_sam_hf.models.weights import cache_root, fetch_checkpoint  # noqa: E402

FRAMES = [("ETIS-LaribPolypDB", "135.png"), ("CVC-ColonDB", "102.jpg")]


def compare(ours: torch.Tensor, ref: torch.Tensor) -> dict:
    return {"max_abs_logit_diff": float((ours - ref).abs().max()),
            "differing_mask_pixels": int(((ours > 0) != (ref > 0)).sum()),
            "mask_pixels": int(ref.numel())}


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path,
                        default=Path(os.environ.get("POLYP_SAMPLES", REPO.parent / "shared" / "polyp-samples")))
    parser.add_argument("--output_file", type=Path, help="also write the result here as JSON")
    args = parser.parse_args()
    result = {}
    for arch in ("mobile-sam", "lite-medsam"):
        checkpoint = fetch_checkpoint(arch)
        folder = cache_root() / "models" / arch
        if not (folder / "config.json").is_file():
            convert_checkpoint(checkpoint, arch, folder)
        model, processor = load_model_and_processor(str(folder))
        model.eval()
        parts = reference_parts(arch, checkpoint)
        for folder_name, name in FRAMES:
            base = args.samples / "pranet" / "TestDataset" / folder_name
            image, mask = read_pair(base / "images" / name, base / "masks" / name)
            boxes = component_boxes(mask)
            inputs = processor(images=image, input_boxes=[boxes], return_tensors="pt")
            emb = model.get_image_embeddings(inputs["pixel_values"])
            ours = model(image_embeddings=emb, input_boxes=inputs["input_boxes"].float(),
                         multimask_output=False).pred_masks[0, :, 0]
            ref_emb, ref = reference_logits(parts, inputs["pixel_values"], inputs["input_boxes"][0].float())
            entry = {"boxes": len(boxes), "official": {"max_abs_embedding_diff": float((emb - ref_emb).abs().max()),
                                                       **compare(ours, ref)}}
            if arch == "mobile-sam":
                entry["kornia_sam"] = compare(ours, kornia_logits(checkpoint, inputs["pixel_values"],
                                                                  inputs["input_boxes"][0].float()))
            result[f"{arch} {folder_name}/{name}"] = entry
    text = json.dumps(result, indent=1)
    print(text)
    if args.output_file:
        args.output_file.write_text(text + "\n")


if __name__ == "__main__":
    main()
