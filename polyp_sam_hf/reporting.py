"""The test report at the end of training: per-source scores beside the box-only baselines.

It is `polyp-sam evaluate`'s computation (`evaluate_split`) on one prompt mode without jitter, so
training and evaluation can never disagree.
"""

from __future__ import annotations

import datasets
import torch

from .evaluate_run import EvaluateConfig, evaluate_split, summarise
from .inference import PolypSegmenter

BASELINE_NAMES = ("ellipse", "box")


def test_report(model: torch.nn.Module, processor, split: datasets.Dataset, prompt_mode: str,
                device: torch.device | str | None = None, batch_size: int = 4) -> dict:
    """Mean Dice and mIoU per source for the model and the baselines, and a printable table.

    Returns:
        `{"sources": {source: {"n", "dice", "miou", "<baseline>_dice", "<baseline>_miou"}},
        "table": str}`.
    """
    config = EvaluateConfig(model="", data="", output="", prompt_modes=(prompt_mode,), box_jitter=(0.0,),
                            batch_size=batch_size)
    scores, _ = evaluate_split(PolypSegmenter(model, processor, device), split, config)
    summary = {method: modes[prompt_mode]["0.0"] for method, modes in summarise(scores).items()}
    per_source = {}
    for source, entry in summary["model"].items():
        if source == "all":
            continue
        per_source[source] = dict(entry)
        for name in BASELINE_NAMES:
            per_source[source][f"{name}_dice"] = summary[name][source]["dice"]
            per_source[source][f"{name}_miou"] = summary[name][source]["miou"]
    return {"sources": per_source, "table": format_table(per_source)}


def format_table(per_source: dict[str, dict]) -> str:
    """Test Dice per source: the model, then each baseline, with the model's margin over the ellipse."""
    lines = [f"{'source':<14}{'n':>5}{'model':>9}{'ellipse':>9}{'box':>9}{'margin':>9}"]
    for source, e in per_source.items():
        lines.append(f"{source:<14}{e['n']:>5}{e['dice']:>9.4f}{e['ellipse_dice']:>9.4f}"
                     f"{e['box_dice']:>9.4f}{e['dice'] - e['ellipse_dice']:>+9.4f}")
    n = sum(e["n"] for e in per_source.values())
    if n:
        mean = {k: sum(e[k] * e["n"] for e in per_source.values()) / n for k in ("dice", "ellipse_dice", "box_dice")}
        lines.append(f"{'all':<14}{n:>5}{mean['dice']:>9.4f}{mean['ellipse_dice']:>9.4f}"
                     f"{mean['box_dice']:>9.4f}{mean['dice'] - mean['ellipse_dice']:>+9.4f}")
    return "\n".join(lines)
