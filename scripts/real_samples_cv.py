"""Cross-validated fine-tuning on the real samples: every real frame is a test frame once.

    python scripts/real_samples_cv.py     # the decoder configuration with and without the ellipse, 3 folds
    python scripts/real_samples_cv.py --recipe "lr 1e-4=--learning_rate 1e-4" --recipe "configuration="

About 20 minutes per recipe on a 2-core CPU (three 300-step fine-tunes from cached embeddings).

With a few dozen real frames one train/test split says little: one frame moves a mean of 19 by up
to 0.05. Here all the real frames of the samples folder (PraNet-layout TrainDataset, ETIS,
CVC-ColonDB, and the original Kvasir-SEG frames) are pooled and split into folds, stratified by
dataset; for each fold, `configs/mobile-sam-decoder.yaml` fine-tunes MobileSAM through `train.py`
on the other folds (a few of their frames validate) and the fold's frames are scored, beside
zero-shot MobileSAM and the ellipse in the same boxes (one box per polyp). Each recipe is that
configuration with extra `train.py` flags. Writes OUT/cv.md and OUT/cv.json.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
from real_samples import REPO, fine_tune, prepare, score

from polyp_sam_hf.models.convert import convert_checkpoint
from polyp_sam_hf.models.weights import fetch_checkpoint


def pooled_frames(data: dict[str, Path]):
    """Every real frame of the prepared roots, one `datasets.Dataset`."""
    import datasets

    parts = [split for path in data.values() for split in datasets.load_from_disk(str(path)).values()]
    return datasets.concatenate_datasets(parts)


def fold_of(frames, folds: int) -> list[int]:
    """Fold of each frame: within each dataset, frames in image-id order are dealt round-robin."""
    order = sorted(range(len(frames)), key=lambda i: (frames[i]["source"], frames[i]["image_id"]))
    fold, seen = [0] * len(frames), defaultdict(int)
    for i in order:
        fold[i] = seen[frames[i]["source"]] % folds
        seen[frames[i]["source"]] += 1
    return fold


def fold_dataset(frames, fold: list[int], k: int, val_every: int, out: Path) -> Path:
    """DatasetDict of fold `k`: its frames test; of the rest every `val_every`-th validates."""
    import datasets

    path = out / "data" / f"fold{k}"
    if not (path / "dataset_dict.json").is_file():
        rest = [i for i, f in enumerate(fold) if f != k]
        val = rest[::val_every]
        train = [i for i in rest if i not in val]
        datasets.DatasetDict({
            "train": frames.select(train), "validation": frames.select(val),
            "test": frames.select([i for i, f in enumerate(fold) if f == k]),
        }).save_to_disk(str(path))
    return path


def summary(scores: list, method: str) -> dict:
    picked = [s for s in scores if s.method == method and s.prompt_mode == "box-per-polyp" and s.box_jitter == 0]
    by_source = defaultdict(list)
    for s in picked:
        by_source[s.source].append(s.dice)
    return {"all": (float(np.mean([s.dice for s in picked])), len(picked)),
            **{src: (float(np.mean(v)), len(v)) for src, v in sorted(by_source.items())}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path,
                        default=Path(os.environ.get("POLYP_SAMPLES", REPO.parent / "shared" / "polyp-samples")))
    parser.add_argument("--output_dir", type=Path, default=REPO / "outputs" / "real-samples-cv")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--val_every", type=int, default=7, help="every N-th training frame validates")
    parser.add_argument("--config", default="configs/mobile-sam-decoder.yaml")
    parser.add_argument("--recipe", action="append", default=[],
                        help='NAME=train.py flags, e.g. "lr 1e-4=--learning_rate 1e-4" (repeatable; default: '
                             'the configuration with the box alone, and as it is, with the ellipse mask prompt)')
    args = parser.parse_args()
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    model = out / "models" / "mobile-sam"
    if not (model / "config.json").is_file():
        convert_checkpoint(fetch_checkpoint("mobile-sam"), "mobile-sam", model)
    frames = pooled_frames(prepare(args.samples, out))
    fold = fold_of(frames, args.folds)
    recipes = dict(r.split("=", 1) for r in args.recipe) or {
        "configuration, box alone (--mask_prompt none)": "--mask_prompt none",
        "configuration (box + ellipse mask prompt)": ""}

    per_fold: dict[str, list] = {"MobileSAM zero-shot": [], "MobileSAM zero-shot, box + ellipse mask prompt": [],
                                 "ellipse in the box": []}
    for name in recipes:
        per_fold[name] = []
    for k in range(args.folds):
        data = fold_dataset(frames, fold, k, args.val_every, out)
        zero_shot = score(model, {"fold": data}, (0.0,))
        per_fold["MobileSAM zero-shot"] += zero_shot
        per_fold["ellipse in the box"] += [s for s in zero_shot if s.method == "ellipse"]
        per_fold["MobileSAM zero-shot, box + ellipse mask prompt"] += score(model, {"fold": data}, (0.0,), "ellipse")
        for name, flags in recipes.items():
            best, _ = fine_tune(args.config, model, data, out / "runs" / name.replace(" ", "_") / f"fold{k}",
                                ["--cache_dir", str(out / "cache"), *flags.split()])  # recipes share embeddings
            per_fold[name] += score(best, {"fold": data}, (0.0,))

    rows = {label: summary(scores, "ellipse" if label == "ellipse in the box" else "model")
            for label, scores in per_fold.items()}
    sources = [s for s in rows["MobileSAM zero-shot"] if s != "all"]
    head = ["", *[f"{s} ({rows['MobileSAM zero-shot'][s][1]})" for s in sources],
            f"all ({rows['MobileSAM zero-shot']['all'][1]})"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, row in rows.items():
        lines.append("| " + " | ".join([label, *[f"{row[s][0]:.3f}" for s in sources], f"{row['all'][0]:.3f}"]) + " |")
    text = (f"Mean Dice, one box per polyp, exact boxes; {args.folds} folds, every frame tested once by a model "
            f"that never saw it.\n\n" + "\n".join(lines) + "\n")
    (out / "cv.md").write_text(text)
    (out / "cv.json").write_text(json.dumps({"folds": args.folds, "recipes": recipes, "rows": rows}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
