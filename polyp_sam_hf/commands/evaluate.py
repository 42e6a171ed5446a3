"""`polyp-sam evaluate`: a model scored per dataset beside the box-only baselines, as the paper's
tables report it; writes metrics.json, per_image.csv and results.md (and masks and figures).

    polyp-sam evaluate --model_name_or_path runs/x/best --data prepared/paper --output_dir eval/x
"""

from __future__ import annotations

import csv
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from polyp_sam_hf.core.arguments import Floats, Names, check_choices
from polyp_sam_hf.core.errors import ConfigError, DataError
from polyp_sam_hf.data.loading import is_prepared, load_polyp_data, recorded_min_polyp_area, recorded_split
from polyp_sam_hf.data.prompts import PROMPT_MODE_REGISTRY
from polyp_sam_hf.data.sources import frame_key
from polyp_sam_hf.data.splits import SPLIT_PRESETS, SplitSettings
from polyp_sam_hf.data.synthetic import is_synthetic
from polyp_sam_hf.evaluation.clicks import check_clicks_possible, summarise_clicks
from polyp_sam_hf.evaluation.comparison import identify, results_markdown
from polyp_sam_hf.evaluation.figures import best_worst_grid, plot_click_curves, plot_jitter_curves
from polyp_sam_hf.evaluation.metrics import PROTOCOLS
from polyp_sam_hf.evaluation.published import PAPER_RUNS
from polyp_sam_hf.evaluation.record import EvaluationRecord
from polyp_sam_hf.evaluation.scoring import (
    EMPTY_MASK_POLICY,
    ScoringSettings,
    empty_mask_frames,
    score_split,
    summarise,
)
from polyp_sam_hf.models.mask_prompts import MASK_PROMPTS
from polyp_sam_hf.models.provenance import base_model_of, read_train_config, trained_split, weights_sha256
from polyp_sam_hf.models.segmenter import BACKENDS, PolypSegmenter

logger = logging.getLogger(__name__)


def _mode_help() -> str:
    return "; ".join(f"{mode.name} ({mode.description})" for mode in PROMPT_MODE_REGISTRY.values())


@dataclass
class EvaluateArguments:
    """Settings of one evaluation (`polyp-sam evaluate`; recorded in metrics.json)."""

    model_name_or_path: str = field(metadata={"help": "Hub id, folder, or built-in name"})
    data: str = field(metadata={"help": "prepared DatasetDict or raw data root"})
    output_dir: str = field(metadata={"help": "folder for metrics.json, per_image.csv, results.md"})
    split: str = field(default="test", metadata={"help": "which split of the data to score"})
    protocol: str = field(default="paper", metadata={"help": "how a frame is scored", "choices": sorted(PROTOCOLS)})
    prompt_mode: Names = field(default=Names(("box", "box-per-polyp")), metadata={
        "help": f"comma-separated, the first is the headline: {_mode_help()}"})
    box_jitter: Floats = field(default=Floats((0.0,)), metadata={
        "help": "comma-separated levels, e.g. 0,0.05,0.1,0.2"})
    seed: int = field(default=0, metadata={"help": "seeds the box jitter"})
    per_device_eval_batch_size: int = field(default=4, metadata={"help": "frames per encoder call"})
    save_masks: bool = field(default=False, metadata={"help": "write masks/<source>/<image_id>.png"})
    figures: bool = field(default=False, metadata={"help": "best/worst overlays per source"})
    split_preset: str | None = field(default=None, metadata={
        "help": f"a raw data root's split; default: the one the model's run trained on, else {SplitSettings.preset} "
                "(a prepared dataset holds its own)", "choices": sorted(SPLIT_PRESETS)})
    split_seed: int | None = field(default=None, metadata={
        "help": f"a raw data root's split seed; default: the model's run's, else {SplitSettings.seed}"})
    val_fraction: float | None = field(default=None, metadata={
        "help": "a raw data root's validation fraction; default: the model's run's, else "
                f"{SplitSettings.val_fraction}"})
    paper_run: str | None = field(default=None, metadata={
        "help": "the paper run this model reproduces, for the difference to the paper's row (default: read from "
                "the run's record: base model, strategy, split)", "choices": sorted(PAPER_RUNS)})
    max_eval_samples: int | None = field(default=None, metadata={"help": "evaluate only the first N frames"})
    device: str | None = field(default=None, metadata={"help": "cuda, cpu, ... (default: cuda when present)"})
    backend: str = field(default="torch", metadata={
        "help": "torch, or the folder's ONNX graphs under ONNX Runtime on the CPU: onnx (float32) or onnx-int8 "
                "(`polyp-sam export --onnx` writes them)", "choices": sorted(BACKENDS)})
    auto_rounds: int = field(default=1, metadata={"help": "auto: rounds of boxes made from the last mask"})
    clicks: int = field(default=0, metadata={
        "help": "also run the evaluation clicker this many times on every frame, from clicks alone and from the box "
                "(20 is the usual cap): Dice after 1, 2, 3, 5, 10 clicks and NoC@85 / NoC@90 per dataset; 0: none"})
    mask_prompt: str | None = field(default=None, metadata={
        "help": "also prompt with a mask made from each box (ellipse: the ellipse inscribed in it); default: the "
                "model's own setting, recorded when it was trained (none for a plain SAM)",
        "choices": sorted(MASK_PROMPTS)})

    def __post_init__(self) -> None:
        self.prompt_mode, self.box_jitter = Names(self.prompt_mode), Floats(self.box_jitter)
        check_choices(self)
        if not self.prompt_mode or not self.box_jitter:
            raise ConfigError("--prompt_mode and --box_jitter need at least one value each.")
        self.scoring(1)  # an unknown prompt mode fails here, with the valid ones

    def scoring(self, min_polyp_area: int) -> ScoringSettings:
        """How the frames are prompted and scored; `min_polyp_area` is the data's own."""
        return ScoringSettings(self.prompt_mode, self.box_jitter, self.seed, self.per_device_eval_batch_size,
                               self.protocol, self.auto_rounds, min_polyp_area, self.clicks)


def resolve_split(args: EvaluateArguments, train_config: dict | None) -> SplitSettings:
    """The split to evaluate a raw data root with: the one the model's run trained on, so no
    training frame is scored as a test frame. A flag that contradicts the run's record is refused.

    Raises:
        ConfigError: a split flag disagrees with the split the run recorded.
    """
    recorded = trained_split(train_config)
    default = recorded or SplitSettings()
    given = SplitSettings(
        args.split_preset if args.split_preset is not None else default.preset,
        args.val_fraction if args.val_fraction is not None else default.val_fraction,
        args.split_seed if args.split_seed is not None else default.seed,
    )
    if recorded is not None and given != recorded:
        raise ConfigError(
            f"{args.model_name_or_path} was trained with split preset {recorded.preset}, val_fraction "
            f"{recorded.val_fraction} and split seed {recorded.seed}; splitting {args.data} with {given.preset}, "
            f"{given.val_fraction} and {given.seed} would score frames it trained on. Drop the split flags, or "
            "prepare a dataset (`polyp-sam prepare`) and pass it as --data."
        )
    return given


def _short(name: str) -> str:
    """A Hub id or built-in name as is; a local path as its last two parts (`run/best`)."""
    path = Path(name)
    return "/".join(path.parts[-2:]) if path.exists() else name


def run_evaluation(args: EvaluateArguments) -> EvaluationRecord:
    """Evaluate, then write metrics.json, per_image.csv, results.md (and masks, plots, figures).

    Returns:
        What metrics.json holds.
    """
    model = args.model_name_or_path
    train_config = read_train_config(model) if Path(model).is_dir() else None
    if is_prepared(args.data):
        split = recorded_split(args.data)
        trained = trained_split(train_config)
        if split and trained and split != trained:
            logger.warning("%s was trained on a %s split; %s holds a %s split: if both come from the same frames, "
                           "its test split may hold training frames.", model, trained, args.data, split)
    else:
        split = resolve_split(args, train_config)
    identity = identify(_short(model), base_model_of(model, train_config), train_config,
                        split.preset if split else None, args.paper_run)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    data = load_polyp_data(args.data, *((split.preset, split.val_fraction, split.seed) if split else ()))
    if args.split not in data:
        raise DataError(f"{args.data} has no split {args.split!r}; it has {', '.join(data)}.")
    frames = data[args.split]
    if args.max_eval_samples:
        frames = frames.select(range(min(args.max_eval_samples, len(frames))))
    segmenter = PolypSegmenter.from_pretrained(model, device=args.device, mask_prompt=args.mask_prompt,
                                               backend=args.backend)
    check_clicks_possible(segmenter, train_config, args.clicks)  # before any frame is embedded
    args.mask_prompt = segmenter.mask_prompt  # recorded: the prompt the model was given
    settings = args.scoring(recorded_min_polyp_area(args.data))
    sessions: list = []
    scores, masks = score_split(segmenter, frames, settings, sessions)
    summary = summarise(scores)
    primary_mode, primary_level = settings.prompt_modes[0], str(settings.box_jitter[0])
    record = EvaluationRecord(
        settings={**asdict(args), "prompt_mode": list(settings.prompt_modes), "box_jitter": list(settings.box_jitter),
                  "data_split": asdict(split) if split else None, "synthetic": is_synthetic(frames)},
        run=identity, model_sha256=weights_sha256(model), primary_mode=primary_mode,
        primary_jitter=float(primary_level), results=summary, empty_mask_frames=empty_mask_frames(scores),
        empty_mask_policy=EMPTY_MASK_POLICY, clicks=summarise_clicks(sessions, args.clicks) if sessions else None)
    record.write(output / "metrics.json")
    with open(output / "per_image.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(scores[0]))) if scores else None
        if writer:
            writer.writeheader()
            writer.writerows(asdict(s) for s in scores)
    (output / "results.md").write_text(results_markdown(record))
    if args.save_masks:
        for key, mask in masks.items():
            path = output / "masks" / f"{key}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255).save(path)
    if len(settings.box_jitter) > 1:
        plot_jitter_curves(summary, primary_mode, output / "dice_vs_jitter.png")
    if record.clicks:
        plot_click_curves(record.clicks, output / "clicks_curve.png")
    if args.figures:
        model_scores = {frame_key(s.source, s.image_id): s.dice for s in scores
                        if s.method == "model" and s.prompt_mode == primary_mode
                        and str(s.box_jitter) == primary_level}
        best_worst_grid(frames, masks, model_scores, output / "figures", prompt_mode=primary_mode)
    logger.info("Wrote metrics.json, per_image.csv and results.md to %s", output)
    return record


def run(args: EvaluateArguments) -> int:
    record = run_evaluation(args)
    output = Path(args.output_dir)
    print((output / "results.md").read_text())
    jitter = f", box jitter {record.primary_jitter}" if record.primary_jitter else ""
    synthetic = ", synthetic frames" if record.synthetic else ""
    print(f"{record.run.label}, {record.primary_mode} prompt{jitter}{synthetic}: mean Dice {record.all.dice:.4f}, "
          f"mIoU {record.all.miou:.4f} over {record.all.n} frames (the headline row of {output / 'results.md'})")
    return 0
