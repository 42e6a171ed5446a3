"""The test report at the end of training: per-source scores beside the box-only baselines.

It is `polyp-sam evaluate`'s computation (`scoring.score_split`) on one prompt mode without jitter, so
training and evaluation can never disagree, printed by the same table writer as `results.md`.
"""

from __future__ import annotations

import datasets
import torch

from polyp_sam_hf.data.sources import SOURCES
from polyp_sam_hf.data.synthetic import is_synthetic
from polyp_sam_hf.evaluation.baselines import BASELINES
from polyp_sam_hf.evaluation.comparison import comparison_table
from polyp_sam_hf.evaluation.record import EvaluationRecord, RunIdentity
from polyp_sam_hf.evaluation.scoring import ScoringSettings, score_split, summarise
from polyp_sam_hf.models.segmenter import PolypSegmenter


def test_report(model: torch.nn.Module, processor, split: datasets.Dataset, prompt_mode: str,
                device: torch.device | str | None = None, batch_size: int = 4, strategy: str | None = None) -> dict:
    """Mean Dice and mIoU per source for the model and the baselines, and a printable table.

    Returns:
        `{"sources": {source: {"n", "dice", "miou", "recall", "fp_per_frame", "<baseline>_dice",
        "<baseline>_miou"}}, "table": str}` (no baselines for a prompt-free run).
    """
    settings = ScoringSettings(prompt_modes=(prompt_mode,), box_jitter=(0.0,), batch_size=batch_size)
    scores, _ = score_split(PolypSegmenter(model, processor, device), split, settings)
    results = summarise(scores)
    # a prompt-free run has no box, so no box-only baseline
    summary = {method: modes[prompt_mode]["0.0"] for method, modes in results.items() if prompt_mode in modes}
    per_source = {}
    for source, entry in summary["model"].items():
        if source == "all":
            continue
        per_source[source] = entry.to_json()
        for name in (n for n in BASELINES if n in summary):
            per_source[source][f"{name}_dice"] = summary[name][source].dice
            per_source[source][f"{name}_miou"] = summary[name][source].miou
    record = EvaluationRecord(settings={"protocol": settings.protocol, "synthetic": is_synthetic(split)},
                              run=RunIdentity("best/", strategy=strategy), model_sha256=None,
                              primary_mode=prompt_mode, primary_jitter=0.0, results=results,
                              empty_mask_frames=[], empty_mask_policy="")
    sources = [s for s in SOURCES if s in per_source]
    table, notes = comparison_table([], [record], sources)  # the one table writer, without published rows
    return {"sources": per_source, "table": "\n\n".join([table, *notes])}
