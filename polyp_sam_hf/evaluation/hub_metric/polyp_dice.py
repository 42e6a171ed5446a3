"""Polyp Dice and mIoU as a Hugging Face `evaluate` metric.

    import evaluate
    from polyp_sam_hf.evaluation.metrics import METRIC_SCRIPT
    metric = evaluate.load(METRIC_SCRIPT)            # offline: a path, not a Hub name
    metric.compute(predictions=[pred], references=[mask], protocol="paper")

The scoring is the library's own (`polyp_sam_hf.evaluation.metrics.score_logits`, its protocols
chosen there): a prediction's probabilities are turned into logits and scored like the model's.
"""

import datasets
import evaluate
import numpy as np
import torch

from polyp_sam_hf.evaluation.metrics import PROTOCOLS, get_protocol, score_logits
from polyp_sam_hf.models.segmenter import PROBABILITY_THRESHOLD

_DESCRIPTION = f"""Mean Dice and mean IoU over images of binary polyp masks.
protocol="paper": predictions are masks (or probabilities, above {PROBABILITY_THRESHOLD} are polyp).
protocol="pranet": predictions are probability maps; each image's Dice and IoU are averaged over
256 thresholds, as PraNet's evaluation (used by Polyp-PVT and HSNet) does.
Empty ground truth with empty prediction scores 1; with any predicted pixel, 0."""

_KWARGS = f"""Args:
    predictions: list of (H, W) arrays, masks or probabilities in [0, 1].
    references: list of (H, W) binary ground-truth masks, same sizes.
    protocol: one of {', '.join(PROTOCOLS)} (default paper).
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
        get_protocol(protocol)  # an unknown protocol fails before any frame, with the valid ones
        dices, ious = [], []
        for pred, ref in zip(predictions, references):
            # probability -> logit (0 and 1 become -inf and +inf): the paper protocol's logit > 0 is p > 0.5
            logits = torch.logit(torch.from_numpy(np.asarray(pred, dtype=np.float64)))[None]
            d, i = score_logits(logits, np.asarray(ref) > PROBABILITY_THRESHOLD, protocol)
            dices.append(d)
            ious.append(i)
        return {
            "dice": float(np.mean(dices)) if dices else float("nan"),
            "miou": float(np.mean(ious)) if ious else float("nan"),
            "per_image_dice": dices,
            "per_image_iou": ious,
        }
