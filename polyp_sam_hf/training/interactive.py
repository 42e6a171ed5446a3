"""Training with correction rounds, as SAM was trained: each step prompts a frame several times.

Round 1 is the item's first prompt: its box (jittered as usual), or, for a `point_share` of the items,
one click drawn in the polyp (`data.batches`). Each later round adds one correction click, drawn from
the error of the previous round's mask (`data.clicks.CORRECTION_CLICKS`: uniformly from all of it by
default, as SAM; seeded by (seed, epoch, item, round), so a resumed run draws the same clicks), and
feeds the previous low-resolution logits back as the dense prompt (detached, as SAM does); a model
trained with the ellipse mask prompt keeps it for the first round only (`segmenter.decode`). The
loss sums the rounds; with `click_region_weight` each correction round also pays for the error
region its click lies in, averaged over that region (`losses.click_region_loss`), so that a click
is rewarded for clearing its whole region, not only the pixels around it.

The image encoder runs once per step: cached embeddings as they are; otherwise the encoder on the
batch's pixels, its embeddings shared by every round (with gradient for `full` and `lora`).

`PromptRounds` wraps the model for training so that a step's rounds are one forward call:
DistributedDataParallel then sees one forward per micro-batch, and a weight used by several rounds
is ordinary weight sharing (several forward calls of one step made DDP count it ready twice).
"""

from __future__ import annotations

import numpy as np
import torch

from polyp_sam_hf.core.registry import lookup
from polyp_sam_hf.data.clicks import CORRECTION_CLICKS, clicked_region
from polyp_sam_hf.models.mask_prompts import unwrap_config
from polyp_sam_hf.models.segmenter import decode, shared_embeddings, upsample_to_input, valid_region

# a click slot with no click (a box item's first slot; a round whose mask was already right). SAM's prompt
# encoder makes it a zero token, which the decoder still attends to: a box-and-clicks prompt in training has
# one token more than at prediction. Checked on the 291 validation frames with the interactive model: box +
# 1-3 clicks with and without that token differ by at most 0.001 Dice.
PADDING_LABEL = -10


def _next_clicks(low_res: torch.Tensor, batch: dict, seed: int, epoch: int, round_: int,
                 correction_click: str = "uniform", regions: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One correction click per item (drawn as `CORRECTION_CLICKS[correction_click]`) from the error of
    `low_res` (B, 1, h, w) on the S x S input grid: ((B, 2) points in input pixels, (B,) labels,
    `PADDING_LABEL` where there is no error, and with `regions` the (B, S, S) bool error region each
    click lies in (`data.clicks.clicked_region`; all False where there is no click), else None)."""
    draw = lookup(CORRECTION_CLICKS, correction_click, "correction click")
    size = batch["targets"].shape[-1]
    with torch.no_grad():
        pred = (upsample_to_input(low_res, size)[:, 0] > 0) & valid_region(batch["reshaped"], size)
    pred, targets = pred.cpu().numpy(), batch["targets"][:, 0].bool().cpu().numpy()
    points, labels = np.zeros((len(pred), 2), np.float32), np.full(len(pred), PADDING_LABEL, np.int64)
    clicked = np.zeros(pred.shape, bool) if regions else None
    for i, index in enumerate(batch["index"].tolist()):
        click = draw(pred[i], targets[i], np.random.default_rng((seed, epoch, index, 2 + round_)))
        if click is not None:
            points[i], labels[i] = (click.x, click.y), click.label
            if regions:
                clicked[i] = clicked_region(pred[i], targets[i], click)
    return points, labels, clicked


def interactive_logits(model: torch.nn.Module, batch: dict, rounds: int, seed: int, epoch: int,
                       correction_click: str = "uniform", click_regions: bool = False
                       ) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    """Every round's (B, 1, h, w) low-resolution logits for a batch of one prompt per frame, and for
    each round after the first the (B, S, S) bool error regions its clicks were drawn in (None
    without `click_regions`).

    Args:
        batch: a `data.batches` batch of one box per frame (the `box` prompt mode), with `point_first`
            (B,) and `first_point` (B, 2): which items start from a click instead, and where.
        rounds: prompts per frame (1: the first prompt only).
        correction_click: how each later round's click is drawn (`CORRECTION_CLICKS`).
        click_regions: also return the clicked error regions (for `losses.click_region_loss`).
    """
    inputs = shared_embeddings(model, batch)
    embeddings = inputs["image_embeddings"]
    device = embeddings.device
    point_first = batch["point_first"].to(device)
    clicks = batch["first_point"].to(device)[:, None, None]  # (B, 1, n, 2): each item's clicks so far
    labels = torch.where(point_first, 1, PADDING_LABEL)[:, None, None].to(device)
    previous, outputs, regions = None, [], []
    for round_ in range(rounds):
        low_res = torch.empty((len(embeddings), 1, *_low_res_size(model)), device=device)
        for group in (~point_first, point_first):  # with the box (and its clicks), or from clicks alone
            if not group.any():
                continue
            # a box item's first click slot is padding: its clicks are the corrections
            has_clicks = round_ > 0 or bool(point_first[group].all())
            low_res[group] = decode(
                model, {"image_embeddings": embeddings[group]},
                boxes=None if group is point_first else batch["input_boxes"][group],
                box_valid=None if group is point_first else batch["box_valid"][group],
                points=clicks[group] if has_clicks else None, labels=labels[group] if has_clicks else None,
                previous=None if previous is None else previous[group])
        outputs.append(low_res)
        if round_ + 1 == rounds:
            break
        points, tags, clicked = _next_clicks(low_res, batch, seed, epoch, round_, correction_click, click_regions)
        regions.append(None if clicked is None else torch.from_numpy(clicked).to(device))
        clicks = torch.cat([clicks, torch.from_numpy(points).to(device)[:, None, None]], dim=2)
        labels = torch.cat([labels, torch.from_numpy(tags).to(device)[:, None, None]], dim=2)
        previous = low_res.detach()
    return outputs, regions


class PromptRounds(torch.nn.Module):
    """SAM for training with correction rounds: `forward(rounds_of=batch, ...)` runs a step's rounds in
    one call (`interactive_logits`); any other call is SAM's own forward (validation). The SAM is
    `.module`, as in Accelerate's and DDP's wrappers, so the library's unwrapping reaches it."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.module = model

    def forward(self, rounds_of: dict | None = None, rounds: int = 1, seed: int = 0, epoch: int = 0,
                correction_click: str = "uniform", click_regions: bool = False, **sam_inputs):
        if rounds_of is None:
            return self.module(**sam_inputs)
        return interactive_logits(self.module, rounds_of, rounds, seed, epoch, correction_click, click_regions)


def _low_res_size(model: torch.nn.Module) -> tuple[int, int]:
    prompt = unwrap_config(model).prompt_encoder_config
    side = 4 * (prompt.image_size // prompt.patch_size)
    return side, side
