"""Real numbers on real polyps: zero-shot and fine-tuned MobileSAM / LiteMedSAM beside the box-only
baselines, on the real frames of the polyp samples folder, per dataset and overall.

    python scripts/real_samples.py                      # about 15 minutes on a 2-core CPU
    python scripts/real_samples.py --skip_training      # zero-shot rows only

Steps: fetch and convert both checkpoints; prepare the PraNet-layout root (TrainDataset trains
and validates, ETIS and CVC-ColonDB test) and the original Kvasir-SEG root (every frame tests:
never seen in training); fine-tune MobileSAM with `configs/mobile-sam-decoder.yaml` through
`train.py` (a real process, only --model_name_or_path, --data and --output_dir given); then score every model
with `polyp-sam evaluate`'s computation at each box jitter level, with one box around the mask and
with one box per polyp. Writes OUT/results.md and OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from polyp_sam_hf.data.prepare import prepare_dataset  # noqa: E402
from polyp_sam_hf.evaluation.scoring import ScoringSettings, score_split  # noqa: E402
from polyp_sam_hf.models.convert import convert_checkpoint  # noqa: E402
from polyp_sam_hf.models.segmenter import PolypSegmenter  # noqa: E402
from polyp_sam_hf.models.weights import fetch_checkpoint  # noqa: E402

SOURCE_NAMES = {"etis": "ETIS", "cvc-colondb": "CVC-ColonDB", "kvasir": "Kvasir-SEG"}
MODES = ("box-per-polyp", "box")


def prepare(samples: Path, out: Path) -> dict[str, Path]:
    """Prepared DatasetDicts: `pranet` (train/validation/test) and `kvasir` (test only)."""
    paths = {}
    for name, root, preset in (("pranet", samples / "pranet", "paper"), ("kvasir", samples / "original", "test-only")):
        path = out / "data" / name
        if not (path / "dataset_dict.json").is_file():
            dataset, _ = prepare_dataset(root, split_preset=preset)
            dataset.save_to_disk(str(path))
        paths[name] = path
    return paths


def fine_tune(config: str, model: Path, data: Path, out: Path, extra: list[str]) -> tuple[Path, float]:
    """`python train.py --config CONFIG --model_name_or_path M --data D --output_dir O`; (best/, seconds)."""
    timing = out / "train_seconds.txt"  # kept with the run, so a resumed benchmark reports it too
    if (out / "best" / "config.json").is_file() and (out / "test_results.json").is_file() and timing.is_file():
        return out / "best", float(timing.read_text())
    start = time.perf_counter()
    cmd = [sys.executable, str(REPO / "train.py"), "--config", str(REPO / config), "--model_name_or_path", str(model),
           "--data", str(data), "--output_dir", str(out), *extra]
    subprocess.run(cmd, check=True, cwd=REPO)
    seconds = time.perf_counter() - start
    timing.write_text(f"{seconds:.1f}\n")
    return out / "best", seconds


def score(model: Path, datasets_: dict[str, Path], levels: tuple[float, ...], mask_prompt: str | None = None) -> list:
    """Per-image scores of the model and the baselines on every test frame of both roots (`mask_prompt`
    overrides the model's own)."""
    import datasets

    segmenter = PolypSegmenter.from_pretrained(str(model), device="cpu", mask_prompt=mask_prompt)
    scores = []
    for path in datasets_.values():
        split = datasets.load_from_disk(str(path))["test"]
        scores += score_split(segmenter, split, ScoringSettings(prompt_modes=MODES, box_jitter=levels))[0]
    return scores


def table(rows: dict[str, list], level: float, mode: str) -> list[dict]:
    """Mean Dice / IoU per source and overall, for each labelled model and the baselines."""
    out = []
    for label, scores in rows.items():
        for method in ("model", "ellipse", "box"):
            if method != "model" and label != next(iter(rows)):
                continue  # the baselines depend only on the boxes: one row each
            picked = [s for s in scores if s.method == method and s.prompt_mode == mode and s.box_jitter == level]
            if not picked:
                continue
            by_source = defaultdict(list)
            for s in picked:
                by_source[s.source].append(s)
            row = {"method": label if method == "model" else f"{method} from box", "mode": mode, "jitter": level}
            for source, items in by_source.items():
                row[source] = (float(np.mean([s.dice for s in items])), float(np.mean([s.iou for s in items])), len(items))
            row["all"] = (float(np.mean([s.dice for s in picked])), float(np.mean([s.iou for s in picked])), len(picked))
            out.append(row)
    return out


def markdown(rows: list[dict]) -> str:
    sources = [s for s in SOURCE_NAMES if any(s in r for r in rows)]
    counts = {s: next(r[s][2] for r in rows if s in r) for s in sources}
    head = ["Method", "Boxes", "Jitter"] + [f"{SOURCE_NAMES[s]} ({counts[s]}) Dice / IoU" for s in sources]
    head.append(f"All ({sum(counts.values())}) Dice / IoU")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["method"], r["mode"], f"{r['jitter']:g}"]
        cells += [f"{r[s][0]:.3f} / {r[s][1]:.3f}" if s in r else "n/a" for s in sources + ["all"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path,
                        default=Path(os.environ.get("POLYP_SAMPLES", REPO.parent / "shared" / "polyp-samples")))
    parser.add_argument("--output_dir", type=Path, default=REPO / "outputs" / "real-samples")
    parser.add_argument("--jitter", default="0,0.05,0.1,0.2", help="box jitter levels (fractions of the box)")
    parser.add_argument("--skip_training", action="store_true")
    parser.add_argument("--strategies", default="decoder",
                        help="comma-separated fine-tunes of MobileSAM: decoder, lora, full (each from its "
                             "configs/mobile-sam-STRATEGY.yaml)")
    parser.add_argument("--train_arg", action="append", default=[], help="extra train.py flag (repeatable)")
    args = parser.parse_args()
    levels = tuple(float(v) for v in args.jitter.split(","))
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)

    models = {arch: out / "models" / arch for arch in ("mobile-sam", "lite-medsam")}
    for arch, folder in models.items():
        if not (folder / "config.json").is_file():
            convert_checkpoint(fetch_checkpoint(arch), arch, folder)
    data = prepare(args.samples, out)
    tests = {"pranet": data["pranet"], "kvasir": data["kvasir"]}

    # label -> (model folder, mask prompt: None for the model's own)
    labelled = {"MobileSAM zero-shot": (models["mobile-sam"], None),
                "MobileSAM zero-shot, box + ellipse mask prompt": (models["mobile-sam"], "ellipse"),
                "LiteMedSAM zero-shot (training data overlaps)": (models["lite-medsam"], None)}
    timings = {}
    for strategy in [] if args.skip_training else args.strategies.split(","):
        best, seconds = fine_tune(f"configs/mobile-sam-{strategy}.yaml", models["mobile-sam"], data["pranet"],
                                  out / "runs" / f"mobile-sam-{strategy}", args.train_arg)
        labelled[f"MobileSAM {strategy} fine-tuned"] = (best, None)
        timings[f"mobile-sam-{strategy}"] = seconds
    scores = {label: score(path, tests, levels, prompt) for label, (path, prompt) in labelled.items()}

    result = {"samples": str(args.samples.name), "train_seconds": timings, "tables": {}}
    text = ["# Real samples: Dice / IoU per dataset, mean per image at original size", ""]
    for level in levels:
        for mode in MODES:
            rows = table(scores, level, mode)
            result["tables"][f"{mode}@{level:g}"] = rows
            text += [f"## {mode} boxes, jitter {level:g}", "", markdown(rows), ""]
    (out / "results.md").write_text("\n".join(text))
    (out / "results.json").write_text(json.dumps(result, indent=1))
    print("\n".join(text))


if __name__ == "__main__":
    main()
