"""Scoring frames: every frame of a split, or a validation loader, through the one scorer
(`metrics.score_logits`).

`score_split` is what `polyp-sam evaluate` and the training's test report run: each frame is
embedded once; every prompt mode and jitter level reuses that embedding, and the box-only
baselines see exactly the boxes the model sees, jitter included. `validation_scores` is training's
validation, on batches of the training loader.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import datasets
import numpy as np
import torch
from tqdm.auto import tqdm

from polyp_sam_hf.core.arguments import Floats, Names
from polyp_sam_hf.data.prompts import MIN_POLYP_AREA, get_prompt_mode, jitter_box
from polyp_sam_hf.data.reading import stored_mask
from polyp_sam_hf.data.sources import frame_key
from polyp_sam_hf.evaluation.baselines import BASELINES, baseline_prediction
from polyp_sam_hf.evaluation.clicks import ClickSession, click_session, frame_sessions, session_rows
from polyp_sam_hf.evaluation.metrics import detection_counts, get_protocol, logits_from_mask, score_logits
from polyp_sam_hf.evaluation.record import Results, Scores
from polyp_sam_hf.models.segmenter import (
    ImageEmbedding,
    PolypSegmenter,
    batch_logits,
    batch_to_original,
    shared_embeddings,
    union_mask,
)


@dataclass(frozen=True)
class ScoringSettings:
    """How the frames of a split are prompted and scored.

    Attributes:
        prompt_modes: `PromptMode` names, the headline's first.
        box_jitter: jitter levels (fractions of the box size), the headline's first.
        seed: seeds the jitter.
        batch_size: frames per encoder call.
        protocol: a `metrics.PROTOCOLS` name.
        auto_rounds: self-prompted modes: rounds of boxes made from the last mask.
        min_polyp_area: pixels; smaller components are specks (detection counts, self-made boxes), the
            prepared dataset's own setting.
        clicks: run the evaluation clicker this many times on every frame from each start (0: no clicks).
    """

    prompt_modes: tuple[str, ...] = ("box",)
    box_jitter: tuple[float, ...] = (0.0,)
    seed: int = 0
    batch_size: int = 4
    protocol: str = "paper"
    auto_rounds: int = 1
    min_polyp_area: int = MIN_POLYP_AREA
    clicks: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt_modes", Names(self.prompt_modes))
        object.__setattr__(self, "box_jitter", Floats(self.box_jitter))
        for mode in self.prompt_modes:
            get_prompt_mode(mode)  # an unknown mode fails here, with the valid ones
        get_protocol(self.protocol)


@dataclass
class ImageScore:
    """One row of per_image.csv: one method's score on one frame, for one prompt mode and jitter level."""

    source: str
    image_id: str
    method: str
    prompt_mode: str
    box_jitter: float
    dice: float
    iou: float
    empty_mask: bool = False  # no polyp annotated: left out of the means (EMPTY_MASK_POLICY)
    polyps: int = 0  # ground-truth polyps in the frame (`metrics.detection_counts`)
    found: int = 0  # of them, found by a predicted component
    false_positives: int = 0  # predicted components that find no polyp
    prompts: int = 0  # boxes given (self-made ones in `auto`; 0 there: the model found nothing)
    clicks: int = 0  # a click session's row (`evaluation.clicks`): clicks given so far; 0 for the others


def _jittered(boxes: list, level: float, width: int, height: int, rng_key: tuple) -> np.ndarray:
    arr = np.asarray(boxes, np.float32).reshape(-1, 4)
    if level <= 0 or not len(arr):
        return arr
    return jitter_box(arr, level, width, height, np.random.default_rng(rng_key))


def score_split(segmenter: PolypSegmenter, split: datasets.Dataset, settings: ScoringSettings,
                sessions: list[tuple[str, ClickSession]] | None = None
                ) -> tuple[list[ImageScore], dict[str, np.ndarray]]:
    """Score every frame for every prompt mode and jitter level, model and baselines; with
    `settings.clicks`, also run the evaluation clicker on the frame's one embedding.

    Args:
        sessions: where each frame's click sessions go, `(source, session)` (with `settings.clicks`).

    Returns:
        The per-image scores, and the model's masks for the first mode at the first jitter level
        (image key `source/image_id` -> (H, W) bool), kept for masks and figures.
    """
    scores: list[ImageScore] = []
    kept: dict[str, np.ndarray] = {}
    modes = [get_prompt_mode(name) for name in settings.prompt_modes]
    bar = tqdm(total=len(split), desc="Evaluating", unit="img")
    for start in range(0, len(split), settings.batch_size):
        rows = split[start : start + settings.batch_size]
        rows = [dict(zip(rows, values)) for values in zip(*rows.values())]
        embedded = segmenter.embed_batch([row["image"] for row in rows])  # once per frame
        for offset, (row, emb) in enumerate(zip(rows, embedded)):
            index = start + offset
            target = stored_mask(row["mask"])
            height, width = target.shape
            empty = not target.any()
            for mode_index, mode in enumerate(modes):
                for level_index, level in enumerate(settings.box_jitter):
                    if not mode.given_true_box and level_index:
                        continue  # no box of the dataset's: nothing to jitter
                    boxes = None if mode.boxes is None else _jittered(mode.boxes(row), level, width, height,
                                                                       (settings.seed, level_index, index))
                    # no polyp annotated, no prompt: the model predicts nothing (None); no box, no baseline
                    logits, boxes = segmenter.logits_for_mode(emb, mode, boxes, rounds=settings.auto_rounds,
                                                              min_area=settings.min_polyp_area)
                    entries = [("model", logits)]
                    if boxes is not None:
                        entries += [(name, logits_from_mask(baseline_prediction(name, boxes, height, width)))
                                    for name in BASELINES]
                    prompts = 0 if boxes is None else len(boxes)
                    for method, frame_logits in entries:
                        dice, iou = score_logits(frame_logits, target, settings.protocol)
                        pred = union_mask(frame_logits, height, width)
                        found = detection_counts(pred, target, min_area=settings.min_polyp_area)
                        scores.append(ImageScore(row["source"], row["image_id"], method, mode.name, level, dice, iou,
                                                 empty, *found, prompts))
                        if method == "model" and mode_index == 0 and level_index == 0:
                            kept[frame_key(row["source"], row["image_id"])] = pred
            for session in frame_sessions(segmenter, emb, row, target, settings.clicks, settings.protocol) \
                    if settings.clicks else []:
                if sessions is not None:
                    sessions.append((row["source"], session))
                scores += [ImageScore(row["source"], row["image_id"], "model", session.start, 0.0, dice, iou,
                                      clicks=k) for k, dice, iou in session_rows(session)]
        bar.update(len(rows))
    bar.close()
    return scores, kept


EMPTY_MASK_POLICY = (
    "Test frames whose mask is empty (no polyp annotated) are left out of every mean: any method that "
    "predicts nothing on them scores Dice 1, which would inflate a mean without a word. They are listed "
    "by name in metrics.json (`empty_mask_frames`) and scored one by one in per_image.csv."
)


def empty_mask_frames(scores: list[ImageScore]) -> list[str]:
    """`source/image_id` of the frames with an empty ground-truth mask, sorted."""
    return sorted({frame_key(s.source, s.image_id) for s in scores if s.empty_mask})


def summarise(scores: list[ImageScore]) -> Results:
    """Nested results: method -> prompt mode -> jitter -> source (and `all`) -> `Scores`.

    Dice and mIoU are means over the frames with a polyp (`EMPTY_MASK_POLICY`); `recall` is the
    share of polyps found (None where there is none) and `fp_per_frame` the mean number of
    predicted components that find no polyp, over every frame, empty ones included.
    """
    groups: dict[tuple, list[ImageScore]] = defaultdict(list)
    for s in (s for s in scores if not s.clicks):  # click sessions are summarised apart (`summarise_clicks`)
        groups[(s.method, s.prompt_mode, s.box_jitter, s.source)].append(s)
        groups[(s.method, s.prompt_mode, s.box_jitter, "all")].append(s)
    out: Results = {}
    for (method, mode, level, source), items in groups.items():  # insertion order: as configured
        scored = [s for s in items if not s.empty_mask]
        if not scored:
            continue  # only empty-mask frames: no mean to report (they are listed apart)
        polyps = sum(s.polyps for s in items)
        out.setdefault(method, {}).setdefault(mode, {}).setdefault(str(level), {})[source] = Scores(
            n=len(scored),
            dice=float(np.mean([s.dice for s in scored])),
            miou=float(np.mean([s.iou for s in scored])),
            recall=sum(s.found for s in items) / polyps if polyps else None,
            fp_per_frame=float(np.mean([s.false_positives for s in items])),
            nothing_found=sum(s.prompts == 0 for s in items) if get_prompt_mode(mode).self_prompted else None,
        )
    return out


# ------------------------------------------------------------------ training's validation


def score_batch(logits: torch.Tensor, batch: dict, protocol: str = "paper") -> tuple[torch.Tensor, torch.Tensor]:
    """Dice and IoU per frame (B,) at the original resolution, by `metrics.score_logits`."""
    scores = [score_logits(frame, np.asarray(mask), protocol)
              for frame, mask in zip(batch_to_original(logits, batch), batch["mask"])]
    dice, iou = zip(*scores) if scores else ((), ())
    return (torch.tensor(dice, dtype=torch.float32, device=logits.device),
            torch.tensor(iou, dtype=torch.float32, device=logits.device))


VALIDATION_CLICKS = 3  # clicks alone that `validation_click_dice` gives each frame


@torch.no_grad()
def validation_click_dice(model: torch.nn.Module, processor, loader, accelerator, clicks: int = VALIDATION_CLICKS
                          ) -> float:
    """Mean Dice after `clicks` clicks of the evaluation clicker from clicks alone (`evaluation.clicks`),
    over a validation loader's frames (original-size masks), gathered across processes.

    Args:
        model: the SAM (unwrapped), in eval mode; `processor` its processor.
    """
    segmenter = PolypSegmenter(model, processor, accelerator.device)
    dices = []
    for batch in loader:
        embeddings = shared_embeddings(model, batch)["image_embeddings"]
        for i, target in enumerate(batch["mask"]):
            embedded = ImageEmbedding(embeddings[i], tuple(batch["original"][i].tolist()),
                                      tuple(batch["reshaped"][i].tolist()))
            dices.append(click_session(segmenter, embedded, np.asarray(target, bool), "clicks", clicks).dice[clicks])
    dice = accelerator.gather_for_metrics(torch.tensor(dices, dtype=torch.float32, device=accelerator.device))
    return float(dice.mean()) if len(dice) else float("nan")


@torch.no_grad()
def validation_scores(model: torch.nn.Module, loader, accelerator, desc: str = "Validating") -> dict:
    """Mean Dice and mIoU over a (prepared) loader, gathered across processes.

    Returns:
        `{"dice": float, "miou": float, "n": int}`.
    """
    model.eval()
    dices, ious = [], []
    for batch in tqdm(loader, desc=desc, disable=not accelerator.is_local_main_process, leave=False):
        dice, iou = score_batch(batch_logits(model, batch), batch)
        dice, iou = accelerator.gather_for_metrics((dice, iou))
        dices.append(dice.cpu())
        ious.append(iou.cpu())
    model.train()
    dice, iou = torch.cat(dices), torch.cat(ious)
    return {
        "dice": float(dice.mean()) if len(dice) else float("nan"),
        "miou": float(iou.mean()) if len(iou) else float("nan"),
        "n": int(len(dice)),
    }
