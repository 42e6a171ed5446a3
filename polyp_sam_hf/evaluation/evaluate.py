"""Evaluation, in one module: training's validation (`evaluate_loader`) and `polyp-sam evaluate`
(`evaluate_split`, `run_evaluation`) score every frame with the one scorer, `metrics.score_logits`.

`polyp-sam evaluate` scores a checkpoint per dataset, as the paper's tables report, beside box-only
baselines. Each frame is embedded once; every prompt mode and jitter level reuses that embedding.
The baselines see exactly the boxes the model sees, jitter included.
"""

from __future__ import annotations

import csv
import logging
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import datasets
import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from polyp_sam_hf.core.arguments import Floats, Names, check_choices
from polyp_sam_hf.core.errors import ConfigError, DataError
from polyp_sam_hf.data.loading import is_prepared, load_polyp_data, recorded_split
from polyp_sam_hf.data.prompts import get_prompt_mode, jitter_box
from polyp_sam_hf.data.reading import stored_mask
from polyp_sam_hf.data.sources import frame_key
from polyp_sam_hf.data.splits import SPLIT_PRESETS, SplitSettings
from polyp_sam_hf.data.synthetic import is_synthetic
from polyp_sam_hf.evaluation.baselines import BASELINES, baseline_prediction
from polyp_sam_hf.evaluation.comparison import identify, results_markdown
from polyp_sam_hf.evaluation.figures import best_worst_grid, plot_jitter_curves
from polyp_sam_hf.evaluation.metrics import PROTOCOLS, detection_counts, mask_logits, score_logits
from polyp_sam_hf.evaluation.published import PAPER_RUNS
from polyp_sam_hf.evaluation.record import EvaluationRecord, Results, Scores
from polyp_sam_hf.models.mask_prompts import MASK_PROMPTS
from polyp_sam_hf.models.provenance import base_model_of, read_train_config, trained_split, weights_sha256
from polyp_sam_hf.models.segmenter import PolypSegmenter, batch_to_original, prompt_logits, to_mask

logger = logging.getLogger(__name__)


@dataclass
class EvaluateConfig:
    """Settings of one evaluation (`polyp-sam evaluate`; recorded in metrics.json)."""

    model: str = field(metadata={"help": "Hub id, folder, or built-in name"})
    data: str = field(metadata={"help": "prepared DatasetDict or raw data root"})
    output: str = field(metadata={"help": "folder for metrics.json, per_image.csv, results.md"})
    split: str = field(default="test", metadata={"help": "which split of the data to score"})
    protocol: str = field(default="paper", metadata={"help": "how a frame is scored", "choices": sorted(PROTOCOLS)})
    prompt_modes: Names = field(default=Names(("single", "per-component")), metadata={
        "aliases": ["--prompt-mode", "--prompt_mode"],
        "help": "comma-separated (the first is the headline): single (one box around the whole mask, the paper's), "
                "per-component (a box per polyp), none (no box: a model trained with --prompt_mode none), auto "
                "(boxes made from the prompt-free mask, then box-prompted)"})
    box_jitter: Floats = field(default=Floats((0.0,)), metadata={
        "help": "comma-separated levels, e.g. 0,0.05,0.1,0.2"})
    seed: int = field(default=0, metadata={"help": "seeds the box jitter"})
    batch_size: int = field(default=4, metadata={"help": "frames per encoder call"})
    save_masks: bool = field(default=False, metadata={"help": "write masks/<source>/<image_id>.png"})
    figures: bool = field(default=False, metadata={"help": "best/worst overlays per source"})
    split_preset: str | None = field(default=None, metadata={
        "help": f"a raw data root's split; default: the one the model's run trained on, else {SplitSettings.preset} "
                "(a prepared dataset holds its own)", "choices": sorted(SPLIT_PRESETS)})
    split_seed: int | None = field(default=None, metadata={
        "help": f"a raw data root's split seed; default: the model's run's, else {SplitSettings.seed}"})
    val_fraction: float | None = field(default=None, metadata={
        "help": f"a raw data root's validation fraction; default: the model's run's, else {SplitSettings.val_fraction}"})
    paper_run: str | None = field(default=None, metadata={
        "help": "the paper run this model reproduces, for the difference to the paper's row (default: read from "
                "the run's record: base model, strategy, split)", "choices": sorted(PAPER_RUNS)})
    max_samples: int | None = field(default=None, metadata={"help": "evaluate only the first N frames"})
    device: str | None = field(default=None, metadata={"help": "cuda, cpu, ... (default: cuda when present)"})
    auto_rounds: int = field(default=1, metadata={"help": "auto: rounds of boxes made from the last mask"})
    mask_prompt: str | None = field(default=None, metadata={
        "help": "also prompt with a mask made from each box (ellipse: the ellipse inscribed in it); default: the "
                "model's own setting, recorded when it was trained (none for a plain SAM)",
        "choices": sorted(MASK_PROMPTS)})

    def __post_init__(self) -> None:
        self.prompt_modes, self.box_jitter = Names(self.prompt_modes), Floats(self.box_jitter)
        check_choices(self)
        for mode in self.prompt_modes:
            get_prompt_mode(mode)  # an unknown mode fails here, with the valid ones
        if not self.prompt_modes or not self.box_jitter:
            raise ConfigError("--prompt-mode and --box-jitter need at least one value each.")


def resolve_split(config: EvaluateConfig, train_config: dict | None) -> SplitSettings:
    """The split to evaluate a raw data root with: the one the model's run trained on, so no
    training frame is scored as a test frame. A flag that contradicts the run's record is refused.

    Raises:
        ValueError: a split flag disagrees with the split the run recorded.
    """
    recorded = trained_split(train_config)
    default = recorded or SplitSettings()
    given = SplitSettings(
        config.split_preset if config.split_preset is not None else default.preset,
        config.val_fraction if config.val_fraction is not None else default.val_fraction,
        config.split_seed if config.split_seed is not None else default.seed,
    )
    if recorded is not None and given != recorded:
        raise ConfigError(
            f"{config.model} was trained with split preset {recorded.preset}, val_fraction {recorded.val_fraction} "
            f"and split seed {recorded.seed}; splitting {config.data} with {given.preset}, {given.val_fraction} and "
            f"{given.seed} would score frames it trained on. Drop the split flags, or prepare a dataset "
            "(`polyp-sam prepare`) and pass it as --data."
        )
    return given


@dataclass
class ImageScore:
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


def _jittered(boxes: list, level: float, width: int, height: int, rng_key: tuple) -> np.ndarray:
    arr = np.asarray(boxes, np.float32).reshape(-1, 4)
    if level <= 0 or not len(arr):
        return arr
    return jitter_box(arr, level, width, height, np.random.default_rng(rng_key))


def evaluate_split(
    segmenter: PolypSegmenter, split: datasets.Dataset, config: EvaluateConfig
) -> tuple[list[ImageScore], dict[str, np.ndarray]]:
    """Score every frame for every prompt mode and jitter level, model and baselines.

    Returns:
        The per-image scores, and the model's masks for the first mode at the first jitter level
        (image key `source/image_id` -> (H, W) bool), kept for masks and figures.
    """
    scores: list[ImageScore] = []
    kept: dict[str, np.ndarray] = {}
    bar = tqdm(total=len(split), desc="Evaluating", unit="img")
    for start in range(0, len(split), config.batch_size):
        rows = split[start : start + config.batch_size]
        rows = [dict(zip(rows, values)) for values in zip(*rows.values())]
        embedded = segmenter.embed_batch([row["image"] for row in rows])  # once per frame
        for offset, (row, emb) in enumerate(zip(rows, embedded)):
            index = start + offset
            target = stored_mask(row["mask"])
            height, width = target.shape
            empty = not target.any()
            for mode_index, mode in enumerate(map(get_prompt_mode, config.prompt_modes)):
                for level_index, level in enumerate(config.box_jitter):
                    if not mode.given_true_box and level_index:
                        continue  # no box of the dataset's: nothing to jitter
                    boxes = None if mode.boxes is None else _jittered(mode.boxes(row), level, width, height,
                                                                       (config.seed, level_index, index))
                    # no polyp annotated, no prompt: the model predicts nothing (None); no box, no baseline
                    logits, boxes = segmenter.prompted_logits(emb, mode, boxes, rounds=config.auto_rounds)
                    entries = [("model", logits)]
                    if boxes is not None:
                        entries += [(name, mask_logits(baseline_prediction(name, boxes, height, width)))
                                    for name in BASELINES]
                    prompts = 0 if boxes is None else len(boxes)
                    for method, frame_logits in entries:
                        dice, iou = score_logits(frame_logits, target, config.protocol)
                        pred = (to_mask(frame_logits).any(0).cpu().numpy() if frame_logits is not None
                                else np.zeros_like(target))
                        scores.append(ImageScore(row["source"], row["image_id"], method, mode.name, level, dice, iou,
                                                 empty, *detection_counts(pred, target), prompts))
                        if method == "model" and mode_index == 0 and level_index == 0:
                            kept[frame_key(row["source"], row["image_id"])] = pred
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
    for s in scores:
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


def _short(name: str) -> str:
    """A Hub id or built-in name as is; a local path as its last two parts (`run/best`)."""
    path = Path(name)
    return "/".join(path.parts[-2:]) if path.exists() else name


def run_evaluation(config: EvaluateConfig) -> EvaluationRecord:
    """Evaluate, then write metrics.json, per_image.csv, results.md (and masks, plots, figures).

    Returns:
        What metrics.json holds.
    """

    train_config = read_train_config(config.model) if Path(config.model).is_dir() else None
    if is_prepared(config.data):
        split = recorded_split(config.data)
        trained = trained_split(train_config)
        if split and trained and split != trained:
            logger.warning("%s was trained on a %s split; %s holds a %s split: if both come from the same frames, "
                           "its test split may hold training frames.", config.model, trained, config.data, split)
    else:
        split = resolve_split(config, train_config)
    identity = identify(_short(config.model), base_model_of(config.model, train_config), train_config,
                        split.preset if split else None, config.paper_run)
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    data = load_polyp_data(config.data, *((split.preset, split.val_fraction, split.seed) if split else ()))
    if config.split not in data:
        raise DataError(f"{config.data} has no split {config.split!r}; it has {', '.join(data)}.")
    frames = data[config.split]
    if config.max_samples:
        frames = frames.select(range(min(config.max_samples, len(frames))))
    segmenter = PolypSegmenter.from_pretrained(config.model, device=config.device, mask_prompt=config.mask_prompt)
    config = replace(config, mask_prompt=segmenter.mask_prompt)  # recorded: the prompt the model was given
    scores, masks = evaluate_split(segmenter, frames, config)
    summary = summarise(scores)
    primary_mode, primary_level = config.prompt_modes[0], str(config.box_jitter[0])
    record = EvaluationRecord(
        settings={**asdict(config), "prompt_modes": list(config.prompt_modes), "box_jitter": list(config.box_jitter),
                  "data_split": asdict(split) if split else None, "synthetic": is_synthetic(frames)},
        run=identity, model_sha256=weights_sha256(config.model), primary_mode=primary_mode,
        primary_jitter=float(primary_level), results=summary, empty_mask_frames=empty_mask_frames(scores),
        empty_mask_policy=EMPTY_MASK_POLICY)
    record.write(output / "metrics.json")
    with open(output / "per_image.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(scores[0]))) if scores else None
        if writer:
            writer.writeheader()
            writer.writerows(asdict(s) for s in scores)
    (output / "results.md").write_text(results_markdown(record))
    if config.save_masks:
        for key, mask in masks.items():
            path = output / "masks" / f"{key}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255).save(path)
    if len(config.box_jitter) > 1:
        plot_jitter_curves(summary, primary_mode, output / "dice_vs_jitter.png")
    if config.figures:
        model_scores = {frame_key(s.source, s.image_id): s.dice for s in scores
                        if s.method == "model" and s.prompt_mode == primary_mode
                        and str(s.box_jitter) == primary_level}
        best_worst_grid(frames, masks, model_scores, output / "figures", prompt_mode=primary_mode)
    logger.info("Wrote metrics.json, per_image.csv and results.md to %s", output)
    return record


# ------------------------------------------------------------------ training's validation


def score_batch(logits: torch.Tensor, batch: dict, protocol: str = "paper") -> tuple[torch.Tensor, torch.Tensor]:
    """Dice and IoU per frame (B,) at the original resolution, by `metrics.score_logits`."""
    scores = [score_logits(frame, np.asarray(mask), protocol)
              for frame, mask in zip(batch_to_original(logits, batch), batch["mask"])]
    dice, iou = zip(*scores) if scores else ((), ())
    return (torch.tensor(dice, dtype=torch.float32, device=logits.device),
            torch.tensor(iou, dtype=torch.float32, device=logits.device))


@torch.no_grad()
def evaluate_loader(model: torch.nn.Module, loader, accelerator, desc: str = "Validating") -> dict:
    """Mean Dice and mIoU over a (prepared) loader, gathered across processes.

    Returns:
        `{"dice": float, "miou": float, "n": int}`.
    """
    model.eval()
    dices, ious = [], []
    for batch in tqdm(loader, desc=desc, disable=not accelerator.is_local_main_process, leave=False):
        dice, iou = score_batch(prompt_logits(model, batch), batch)
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
