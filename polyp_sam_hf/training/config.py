"""Training configuration: dataclasses with help text, read from a YAML file with command-line overrides.

    python train.py --config configs/paper/table2-b-full.yaml --learning_rate 1e-5 --output_dir runs/x

Every field is a flag of the same name (`--output_dir`; the names of transformers' example scripts
where a setting means the same: `--model_name_or_path`, `--per_device_train_batch_size`,
`--num_train_epochs`, `--max_train_steps`, `--lr_scheduler_type`, `--checkpointing_steps`,
`--gradient_accumulation_steps`); a YAML file sets the defaults the flags then override. A key in the
file that is not a field is an error naming the file, and an old name is answered with the new one.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field

from transformers.trainer_utils import SchedulerType

from polyp_sam_hf.core.arguments import check_choices, check_ranges, parse_arguments
from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.data.clicks import CORRECTION_CLICKS, FIRST_CLICKS
from polyp_sam_hf.data.prompts import TRAINING_PROMPT_MODES, get_prompt_mode
from polyp_sam_hf.data.splits import SPLIT_PRESETS, SplitSettings
from polyp_sam_hf.models.attention import VISION_ATTENTION
from polyp_sam_hf.models.mask_prompts import MASK_PROMPTS
from polyp_sam_hf.training.losses import LOSSES
from polyp_sam_hf.training.strategies import STRATEGIES


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="facebook/sam-vit-base",
        metadata={"help": "Hub id, local folder, or built-in name (tiny-sam: random tiny SAM, no download)."},
    )
    strategy: str = field(
        default="decoder", metadata={"help": "What to train.", "choices": list(STRATEGIES)}
    )
    lora_rank: int = field(default=8, metadata={"help": "LoRA rank (strategies lora, lora-prompt-decoder)."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (strategies lora, lora-prompt-decoder)."})
    vision_attention: str = field(
        default="fused",
        metadata={"help": "SAM ViT attention: fused (the relative-position terms folded into queries and keys, one "
                  "SDPA call without a bias tensor: faster, less memory, same scores); transformers (its own "
                  "implementation). TinyViT encoders are unaffected. The saved model is the same either way.",
                  "choices": list(VISION_ATTENTION)},
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute encoder activations in backward (saves memory for ViT-L full)."}
    )
    mask_prompt: str = field(
        default="inherit",
        metadata={"help": "Also prompt SAM with a mask made from each box: ellipse (the ellipse inscribed in the box, "
                  "as a dense prompt); none (the box alone, the paper's); inherit: the model's own setting "
                  "(none for a plain SAM). Recorded in best/config.json, so evaluate, predict and the app "
                  "prompt the model the same way.",
                  "choices": ["inherit", *MASK_PROMPTS]},
    )

    def __post_init__(self) -> None:
        check_choices(self)
        check_ranges(self, {"lora_rank": (1, None), "lora_alpha": (1, None)})


@dataclass
class DataArguments:
    """The data, its split, how frames are prompted, and how they are read."""

    data: str = field(
        default="outputs/demo/data",
        metadata={"help": "A prepared DatasetDict (save_to_disk folder) or a raw data root."},
    )
    generate_demo_data: bool = field(
        default=False, metadata={"help": "If --data does not exist, write the synthetic demo data there."}
    )
    split_preset: str = field(default=SplitSettings.preset, metadata={"help": "Split preset for a raw data root (a prepared "
                              "dataset holds its own: the one it was prepared with is recorded).",
                              "choices": list(SPLIT_PRESETS)})
    val_fraction: float = field(default=SplitSettings.val_fraction, metadata={"help": "Validation part of each training source (raw root)."})
    split_seed: int = field(
        default=SplitSettings.seed, metadata={"help": "Seeds the split of a raw data root (train/validation/test), apart from --seed, "
                              "so a seed sweep trains on the same frames and never on a test frame."})
    prompt_mode: str = field(
        default="box", metadata={"help": "How each training frame is prompted: " + "; ".join(
            f"{m.name}: {m.description}" for m in TRAINING_PROMPT_MODES.values()) + "."}
    )
    box_jitter: float = field(
        default=0.0, metadata={"help": "Move each training box edge by up to this fraction of the box size (0 = paper)."}
    )
    interactive_rounds: int = field(
        default=1, metadata={"help": "Prompts per frame and step, as SAM was trained: the first prompt (the box, or a "
                             "click, see --point_share), then rounds each adding one correction click drawn from the "
                             "previous mask's error, with the previous logits as the dense prompt; the loss sums the "
                             "rounds. 1: the first prompt only (the paper). Needs --prompt_mode box."})
    point_share: float = field(
        default=0.0, metadata={"help": "The share of training frames whose first prompt is one click drawn in the "
                               "polyp instead of the box (0: every frame starts from its box)."})
    first_click: str = field(
        default="uniform", metadata={"choices": list(FIRST_CLICKS), "help": "Where that click is drawn: uniform "
                                     "(anywhere in the polyp, as SAM trains a point prompt), central (in its central "
                                     "part, at least half as deep inside as its deepest point, where a person clicks "
                                     "and the evaluation clicker's first click falls)."})
    correction_click: str = field(
        default="uniform", metadata={"choices": list(CORRECTION_CLICKS), "help": "Where each correction click of "
                                     "--interactive_rounds is drawn: uniform (anywhere in the previous mask's "
                                     "error, as SAM was trained), central (in the central part of its largest error "
                                     "region, where a person corrects and the evaluation clicker clicks), deepest (the "
                                     "evaluation clicker's own click: the point deepest inside the largest error)."})
    click_region_weight: float = field(
        default=0.0, metadata={"help": "Each correction round of --interactive_rounds also adds this weight times "
                               "the binary cross-entropy averaged over the error region its click lies in (the "
                               "connected missed or false polyp around the click), so a click is rewarded for "
                               "clearing that whole region, not only the pixels near it. 0: the rounds' losses "
                               "alone."})
    augment_flips: str = field(
        default="", metadata={"help": "Add flipped copies of the training frames: h (left-right), v (up-down), "
                              "hv (both); works with the embedding and pixel caches. Empty: none (paper)."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N validation/test rows."})
    dataloader_num_workers: int = field(default=0, metadata={"help": "DataLoader worker processes."})
    embedding_cache: bool = field(
        default=True, metadata={"help": "With strategy decoder: compute the image embeddings once and reuse them."}
    )
    pixel_cache: bool = field(
        default=False,
        metadata={"help": "With strategies full/lora: resize the frames once into a memory-mapped uint8 cache "
                  "(4 x S x S bytes a frame on disk, its mask included) so no image is decoded while training."},
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "Cache folder for embeddings and pixels (default OUTPUT_DIR/../cache)."}
    )

    @property
    def interactive(self) -> bool:
        """Correction rounds or click-first prompts: the step is `training.interactive`'s."""
        return self.interactive_rounds > 1 or self.point_share > 0

    def __post_init__(self) -> None:
        check_choices(self)
        mode = get_prompt_mode(self.prompt_mode, training=True)  # an old or unknown name: the error names the valid ones
        if self.interactive and not (mode.boxes is not None and mode.whole_mask_target):
            raise ConfigError(f"--interactive_rounds and --point_share prompt one frame at a time (one box or click "
                              f"for the whole frame, then corrections): use --prompt_mode box, not {mode.name}.")
        if self.click_region_weight and self.interactive_rounds < 2:
            raise ConfigError(f"--click_region_weight {self.click_region_weight} weighs the correction rounds' "
                              f"clicked error regions: give --interactive_rounds 2 or more (it is "
                              f"{self.interactive_rounds}), or leave the weight at 0.")
        check_ranges(self, {"interactive_rounds": (1, None), "point_share": (0.0, 1.0),
                            "click_region_weight": (0.0, None), "val_fraction": (0.0, 0.99), "box_jitter": (0.0, 1.0),
                            "max_train_samples": (1, None), "max_eval_samples": (1, None),
                            "dataloader_num_workers": (0, None)})


PAPER_EFFECTIVE_BATCH = 48  # images per optimiser step in the paper (its batch size, reached by accumulation)

# transformers' schedulers that run from the warm-up and total steps alone: the others need a metric
# at every step (reduce_lr_on_plateau, greedy) or settings this config has no field for (min_lr, decay steps)
SCHEDULERS = [s.value for s in SchedulerType if s.value in (
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt")]


@dataclass
class TrainArguments:
    output_dir: str = field(default="outputs/run", metadata={"help": "Checkpoints, logs, best/ and curves."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Train into an OUTPUT_DIR that holds an earlier run, first removing that run's files "
                  "(best/, checkpoints/, logs). Without it such a folder is refused unless resuming."},
    )
    num_train_epochs: int = field(default=24, metadata={"help": "Training epochs."})
    max_train_steps: int | None = field(
        default=None,
        metadata={"help": "Train this many optimiser steps (the schedule's length), whatever the epochs."})
    per_device_train_batch_size: int = field(default=4, metadata={
        "help": "Training images per device per forward pass."})
    per_device_eval_batch_size: int | None = field(
        default=None, metadata={"help": "Validation images per device per forward pass (default: the training batch)."})
    effective_batch_size: int | None = field(
        default=None, metadata={"help": f"Images per optimiser step over all devices (paper: {PAPER_EFFECTIVE_BATCH}); "
                                "sets the accumulation from the batch and the processes, so the step stays the same on "
                                f"1 GPU or 8. Default {PAPER_EFFECTIVE_BATCH}, or what --gradient_accumulation_steps "
                                "makes."})
    gradient_accumulation_steps: int | None = field(
        default=None, metadata={"help": "Micro-batches per optimiser step, as in transformers' examples: the effective "
                                "batch is then per-device batch x processes x this. Give it or --effective_batch_size, "
                                "or both when they agree."})
    learning_rate: float = field(default=4e-6, metadata={"help": "AdamW peak learning rate (paper: 4e-6)."})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay (paper's code: 1e-4)."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Part of the steps spent warming up linearly."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "transformers scheduler after warm-up.",
                                                               "choices": SCHEDULERS})
    loss: str = field(default="dice", metadata={"help": "dice (paper) or dice+bce.", "choices": list(LOSSES)})
    mixed_precision: str = field(default="no", metadata={"help": "Through Accelerate.", "choices": ["no", "bf16", "fp16"]})
    max_grad_norm: float | None = field(default=None, metadata={"help": "Clip gradients to this norm."})
    metric_for_best_model: str = field(
        default="dice", metadata={
            "help": "What best/ keeps the best of: dice, the validation Dice from one box (the paper's protocol); "
                    "box_and_clicks, the mean of that and the Dice after 3 clicks alone of the evaluation clicker (a "
                    "model trained with --interactive_rounds to take both).",
            "choices": ["dice", "box_and_clicks"]})
    ema_decay: float | None = field(
        default=None, metadata={"help": "Validate, and keep as best/, an exponential moving average of the trained "
                                "weights with this decay (0.99: about the last 100 steps); none without it."})
    seed: int = field(default=42, metadata={"help": "Seeds weights of built-in models, shuffling and jitter."})
    eval_steps: int = field(default=0, metadata={"help": "Validate every N optimiser steps (0: every epoch)."})
    checkpointing_steps: int = field(default=0, metadata={"help": "Checkpoint every N optimiser steps (0: at every "
                                                          "validation)."})
    save_total_limit: int = field(default=2, metadata={"help": "Keep the last K step checkpoints (best/ is kept too)."})
    stop_after_steps: int | None = field(
        default=None,
        metadata={"help": "End this session after N optimiser steps with a checkpoint, schedule unchanged "
                  "(for time-limited jobs; continue with --resume_from_checkpoint latest)."},
    )
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "A checkpoint folder, or 'latest' in OUTPUT_DIR/checkpoints."}
    )
    logging_steps: int = field(default=10, metadata={
        "help": "Log the training loss every N optimiser steps, as their mean (metrics.jsonl, the trackers, the "
                "loss curve): one step's loss is mostly the luck of its batch."})
    report_to: str = field(default="tensorboard", metadata={"help": "Accelerate tracker: tensorboard, wandb, none."})
    evaluate_test: bool = field(default=True, metadata={"help": "After training, score best/ on the test split."})

    def __post_init__(self) -> None:
        check_choices(self)
        check_ranges(self, {"num_train_epochs": (1, None), "max_train_steps": (1, None),
                             "per_device_train_batch_size": (1, None), "per_device_eval_batch_size": (1, None),
                             "effective_batch_size": (1, None), "gradient_accumulation_steps": (1, None),
                             "learning_rate": (0.0, None),
                             "weight_decay": (0.0, None), "warmup_ratio": (0.0, 1.0), "max_grad_norm": (0.0, None),
                             "ema_decay": (0.0, 0.9999),
                             "eval_steps": (0, None), "checkpointing_steps": (0, None),
                             "save_total_limit": (1, None), "stop_after_steps": (1, None),
                             "logging_steps": (1, None)})


    @property
    def eval_batch_size(self) -> int:
        return self.per_device_eval_batch_size or self.per_device_train_batch_size

    def accumulation_steps(self, processes: int) -> int:
        """Micro-batches per optimiser step on `processes` processes: from the effective batch (default
        the paper's 48), or `gradient_accumulation_steps` as given.

        Raises:
            ConfigError: the effective batch is not a multiple of per-device batch x processes, or the two
                settings disagree.
        """
        per_step = self.per_device_train_batch_size * processes
        if self.gradient_accumulation_steps is not None:
            if self.effective_batch_size not in (None, per_step * self.gradient_accumulation_steps):
                raise ConfigError(
                    f"--effective_batch_size {self.effective_batch_size} disagrees with --gradient_accumulation_steps "
                    f"{self.gradient_accumulation_steps} x per-device batch {self.per_device_train_batch_size} x "
                    f"{processes} processes = {per_step * self.gradient_accumulation_steps}; give one of them.")
            return self.gradient_accumulation_steps
        effective = self.effective_batch_size or PAPER_EFFECTIVE_BATCH
        if effective % per_step:
            raise ConfigError(
                f"--effective_batch_size {effective} is not a multiple of per-device batch "
                f"{self.per_device_train_batch_size} x {processes} processes = {per_step}; change one of them, or "
                "give --gradient_accumulation_steps instead.")
        return effective // per_step


CONFIG_CLASSES = (ModelArguments, DataArguments, TrainArguments)


def parse_config(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, TrainArguments]:
    """Parse `--config FILE.yaml` and command-line overrides into the three dataclasses.

    Raises:
        ConfigError: an unknown flag or YAML key (the file and the key are named), or a value out
            of its range.
    """
    return parse_arguments(CONFIG_CLASSES, sys.argv[1:] if argv is None else argv, prog="train.py",
                           description="Fine-tune SAM for box-prompted polyp segmentation.", config_file=True)


def config_to_dict(*configs) -> dict:
    """All fields of the given dataclasses, flat, for logs, trackers and model cards."""
    out: dict = {}
    for config in configs:
        out.update(asdict(config))
    return out
