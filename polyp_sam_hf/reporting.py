"""Test-split scores per source, beside the box-only baselines on the same images and prompts."""

from __future__ import annotations

from collections import defaultdict

import datasets
import numpy as np
import torch

from .baselines import BASELINES, baseline_prediction
from .data.collate import PromptDataset, collate
from .evaluation import evaluate_loader
from .metrics import dice_iou


def prompt_boxes(row: dict, prompt_mode: str) -> list[list[float]]:
    """The boxes a row is prompted with: the whole-mask box, or one per polyp."""
    if prompt_mode == "per-component" and row["boxes"]:
        return row["boxes"]
    return [row["box"]] if row["box"] is not None else []


def baseline_scores(split: datasets.Dataset, prompt_mode: str) -> dict[str, np.ndarray]:
    """Per-image (Dice, IoU) of every baseline: name -> (N, 2) array, in row order."""
    out = {name: [] for name in BASELINES}
    for row in split.select_columns(["mask", "box", "boxes"]):
        mask = np.asarray(row["mask"]) > 127
        for name in BASELINES:
            pred = baseline_prediction(name, prompt_boxes(row, prompt_mode), *mask.shape)
            out[name].append(dice_iou(pred, mask))
    return {name: np.asarray(scores).reshape(-1, 2) for name, scores in out.items()}


def test_report(
    model: torch.nn.Module, processor, split: datasets.Dataset, prompt_mode: str, accelerator,
    batch_size: int = 4,
) -> dict:
    """Mean Dice and mIoU per source for the model and the baselines, and a printable table.

    Returns:
        `{"sources": {source: {"n", "dice", "miou", "<baseline>_dice", "<baseline>_miou"}},
        "table": str}`.
    """
    loader = torch.utils.data.DataLoader(
        PromptDataset(split, processor, prompt_mode=prompt_mode), batch_size=batch_size, collate_fn=collate
    )
    result = evaluate_loader(model, accelerator.prepare(loader), accelerator, desc="Testing")
    sources = np.asarray(split["source"])
    order = result["indices"].numpy()
    model_dice = np.empty(len(split))
    model_dice[order] = result["dice_per_image"].numpy()
    baselines = baseline_scores(split, prompt_mode)
    per_source: dict[str, dict] = defaultdict(dict)
    for source in sorted(set(sources)):
        rows = sources == source
        entry = {"n": int(rows.sum()), "dice": float(model_dice[rows].mean())}
        for name, scores in baselines.items():
            entry[f"{name}_dice"] = float(scores[rows, 0].mean())
            entry[f"{name}_miou"] = float(scores[rows, 1].mean())
        per_source[source] = entry
    return {"sources": dict(per_source), "table": format_table(per_source)}


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
