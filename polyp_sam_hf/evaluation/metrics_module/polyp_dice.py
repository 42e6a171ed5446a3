"""Polyp Dice and mIoU as a Hugging Face `evaluate` metric.

    import evaluate
    from polyp_sam_hf.evaluation.metrics import METRIC_SCRIPT
    metric = evaluate.load(METRIC_SCRIPT)            # offline: a path, not a Hub name
    metric.compute(predictions=[pred], references=[mask], protocol="paper")

The computation is the library's own (`polyp_sam_hf.evaluation.metrics`): this file only wraps it.
"""

import datasets
import evaluate
import numpy as np

from polyp_sam_hf.evaluation.metrics import dice_iou, pranet_dice_iou
from polyp_sam_hf.models.segmenter import PROBABILITY_THRESHOLD

_DESCRIPTION = """Mean Dice and mean IoU over images of binary polyp masks.
protocol="paper": predictions are masks (or probabilities, above 0.5 are polyp).
protocol="pranet": predictions are probability maps; each image's Dice and IoU are averaged over
256 thresholds, as PraNet's evaluation (used by Polyp-PVT and HSNet) does.
Empty ground truth with empty prediction scores 1; with any predicted pixel, 0."""

_KWARGS = """Args:
    predictions: list of (H, W) arrays, masks or probabilities in [0, 1].
    references: list of (H, W) binary ground-truth masks, same sizes.
    protocol: "paper" (default) or "pranet".
Returns:
    dice: mean Dice; miou: mean IoU; per_image_dice, per_image_iou: lists."""

_CITATION = "Li, Hu, Yang. Polyp-SAM: Transfer SAM for Polyp Segmentation. 2023."


class PolypDice(evaluate.Metric):
    def _info(self):
        image = datasets.Sequence(datasets.Sequence(datasets.Value("float32")))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": image, "references": image}),
        )

    def _compute(self, predictions, references, protocol="paper"):
        if protocol not in ("paper", "pranet"):
            raise ValueError(f"Unknown protocol {protocol!r}. Valid protocols: paper, pranet.")
        dices, ious = [], []
        for pred, ref in zip(predictions, references):
            pred, ref = np.asarray(pred, dtype=np.float32), np.asarray(ref) > PROBABILITY_THRESHOLD
            if protocol == "paper":  # strictly above 0.5, as the scorer's logit > 0: they agree at p = 0.5
                d, i = dice_iou(pred > PROBABILITY_THRESHOLD, ref)
            else:
                d, i = pranet_dice_iou(pred, ref)
            dices.append(d)
            ious.append(i)
        return {
            "dice": float(np.mean(dices)) if dices else float("nan"),
            "miou": float(np.mean(ious)) if ious else float("nan"),
            "per_image_dice": dices,
            "per_image_iou": ious,
        }
