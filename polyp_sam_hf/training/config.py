"""Training configuration: dataclasses with help text, read from a YAML file with command-line overrides.

    python train.py --config configs/paper/table2-b-full.yaml --learning_rate 1e-5 --output_dir runs/x

Every field is a flag (`--output_dir` or `--output-dir`); a YAML file sets the defaults the flags
then override. A key in the file that is not a field is an error naming the file.
"""

from __future__ import annotations

import argparse
import difflib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml
from transformers import HfArgumentParser
from transformers.trainer_utils import SchedulerType

from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.data.prompts import PROMPT_MODES
from polyp_sam_hf.data.splits import SPLIT_PRESETS, SplitSettings
from polyp_sam_hf.models.attention import VISION_ATTENTION
from polyp_sam_hf.models.loading import STRATEGIES
from polyp_sam_hf.models.mask_prompts import MASK_PROMPTS
from polyp_sam_hf.training.losses import LOSSES


def _check_ranges(config, rules: dict[str, tuple[float | None, float | None]]) -> None:
    """Each named field lies in [low, high] (None: unbounded; a None value is allowed: unset)."""
    for name, (low, high) in rules.items():
        value = getattr(config, name)
        if value is None:
            continue
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"in [{low}, {high}]"
            raise ConfigError(f"{name} {value!r} must be {bounds}.")


def _check_choices(config) -> None:
    """Every field whose metadata lists `choices` holds one of them, whether it came from a flag
    (argparse checks too) or from a YAML file (argparse does not check defaults)."""
    for f in fields(config):
        choices = f.metadata.get("choices")
        value = getattr(config, f.name)
        if choices is not None and value not in choices:
            raise ConfigError(f"{f.name} {value!r} is not one of: {', '.join(map(str, choices))}.")


@dataclass
class ModelArguments:
    model: str = field(
        default="facebook/sam-vit-base",
        metadata={"help": "Hub id, local folder, or built-in name (tiny-sam: random tiny SAM, no download)."},
    )
    strategy: str = field(
        default="decoder", metadata={"help": "What to train.", "choices": list(STRATEGIES)}
    )
    lora_rank: int = field(default=8, metadata={"help": "LoRA rank (strategy lora)."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (strategy lora)."})
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
        _check_choices(self)
        _check_ranges(self, {"lora_rank": (1, None), "lora_alpha": (1, None)})


@dataclass
class DataArguments:
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
        default="single", metadata={"help": "single: the whole-mask box (paper); per-component: one box per polyp; none: no box at all, "
                                    "the model learns to mark every polyp from the image alone.",
                                    "choices": list(PROMPT_MODES)}
    )
    box_jitter: float = field(
        default=0.0, metadata={"help": "Move each training box edge by up to this fraction of the box size (0 = paper)."}
    )
    augment_flips: str = field(
        default="", metadata={"help": "Add flipped copies of the training frames: h (left-right), v (up-down), "
                              "hv (both); works with the embedding and pixel caches. Empty: none (paper)."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N validation/test rows."})
    num_workers: int = field(default=0, metadata={"help": "DataLoader worker processes."})
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

    def __post_init__(self) -> None:
        _check_choices(self)
        _check_ranges(self, {"val_fraction": (0.0, 0.99), "box_jitter": (0.0, 1.0), "max_train_samples": (1, None),
                             "max_eval_samples": (1, None), "num_workers": (0, None)})


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
    num_epochs: int = field(default=24, metadata={"help": "Training epochs."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many optimiser steps."})
    per_device_batch_size: int = field(default=4, metadata={"help": "Images per device per forward pass."})
    effective_batch_size: int = field(
        default=48, metadata={"help": "Images per optimiser step over all devices (paper: 48); sets accumulation."}
    )
    learning_rate: float = field(default=4e-6, metadata={"help": "AdamW peak learning rate (paper: 4e-6)."})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay (paper's code: 1e-4)."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Part of the steps spent warming up linearly."})
    lr_scheduler: str = field(default="cosine", metadata={"help": "transformers scheduler after warm-up.",
                                                          "choices": SCHEDULERS})
    loss: str = field(default="dice", metadata={"help": "dice (paper) or dice+bce.", "choices": list(LOSSES)})
    mixed_precision: str = field(default="no", metadata={"help": "Through Accelerate.", "choices": ["no", "bf16", "fp16"]})
    max_grad_norm: float | None = field(default=None, metadata={"help": "Clip gradients to this norm."})
    seed: int = field(default=42, metadata={"help": "Seeds weights of built-in models, shuffling and jitter."})
    eval_every_steps: int = field(default=0, metadata={"help": "Validate every N steps (0: every epoch)."})
    save_every_steps: int = field(default=0, metadata={"help": "Checkpoint every N steps (0: every validation)."})
    save_total_limit: int = field(default=2, metadata={"help": "Keep the last K step checkpoints (best/ is kept too)."})
    stop_after_steps: int | None = field(
        default=None,
        metadata={"help": "End this session after N optimiser steps with a checkpoint, schedule unchanged "
                  "(for time-limited jobs; continue with --resume_from_checkpoint latest)."},
    )
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "A checkpoint folder, or 'latest' in OUTPUT_DIR/checkpoints."}
    )
    report_to: str = field(default="tensorboard", metadata={"help": "Accelerate tracker: tensorboard, wandb, none."})
    evaluate_test: bool = field(default=True, metadata={"help": "After training, score best/ on the test split."})

    def __post_init__(self) -> None:
        _check_choices(self)
        _check_ranges(self, {"num_epochs": (1, None), "max_steps": (1, None), "per_device_batch_size": (1, None),
                             "effective_batch_size": (1, None), "learning_rate": (0.0, None),
                             "weight_decay": (0.0, None), "warmup_ratio": (0.0, 1.0), "max_grad_norm": (0.0, None),
                             "eval_every_steps": (0, None), "save_every_steps": (0, None),
                             "save_total_limit": (1, None), "stop_after_steps": (1, None)})


CONFIG_CLASSES = (ModelArguments, DataArguments, TrainArguments)


def parse_config(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, TrainArguments]:
    """Parse `--config FILE.yaml` and command-line overrides into the three dataclasses.

    Raises:
        ValueError: the YAML file holds a key that is no field (the file and the key are named).
    """
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config")
    known, rest = pre.parse_known_args(argv)
    parser = HfArgumentParser(CONFIG_CLASSES, allow_abbrev=False)  # `--num_epoch` is a typo, not --num_epochs
    # listed for --help; read above, so it never reaches the namespace (SUPPRESS keeps it out)
    parser.add_argument("--config", metavar="FILE.yaml", default=argparse.SUPPRESS,
                        help="A YAML file of these settings (e.g. configs/paper/table2-b-full.yaml); flags override it.")
    if known.config:
        path = resolve_config_path(known.config)
        values = yaml.safe_load(path.read_text()) or {}
        names = {f.name for cls in CONFIG_CLASSES for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"{path}: unknown keys {unknown}{did_you_mean(unknown, names)}. "
                              f"Valid keys: {sorted(names)}.")
        parser.set_defaults(**values)
    for action in parser._actions:  # HfArgumentParser gives --no_X the help of --X
        negated = [o for o in action.option_strings if o.startswith("--no_")]
        if negated:
            action.help = f"Turn off --{negated[0][len('--no_'):]} (on by default)."
    _, extra = parser.parse_known_args(rest)
    flags = [arg.split("=")[0] for arg in extra if arg.startswith("-")]
    if flags:
        known_flags = [o for a in parser._actions for o in a.option_strings]
        raise ConfigError(f"Unknown flag(s) {' '.join(flags)}{did_you_mean(flags, known_flags)}. "
                          "`python train.py --help` lists them all.")
    try:
        return parser.parse_args_into_dataclasses(args=rest)
    except ValueError as err:  # a value from the file (flags are checked by argparse first)
        raise ConfigError(f"{known.config}: {err}" if known.config else str(err)) from None


# the YAML configs shipped in the package (a clone's `configs/` is a link to this folder)
PACKAGED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def resolve_config_path(given: str | Path) -> Path:
    """`given` if it is a file; else, for `configs/...`, the config shipped with the package (so the
    README's `--config configs/demo.yaml` works from an installed wheel, in any folder).

    Raises:
        ConfigError: neither exists; the message lists the shipped configs.
    """
    path = Path(given)
    if path.is_file():
        return path
    if path.parts and path.parts[0] == "configs":
        packaged = PACKAGED_CONFIGS.joinpath(*path.parts[1:])
        if packaged.is_file():
            return packaged
    shipped = sorted(str(Path("configs") / p.relative_to(PACKAGED_CONFIGS)) for p in PACKAGED_CONFIGS.rglob("*.yaml")
                     if p.parent.name != "accelerate")
    raise ConfigError(f"Config file {path} not found. The library ships these (pass them as written, from any "
                      f"folder): {', '.join(shipped)}.")


def did_you_mean(given: list[str], known) -> str:
    """` (did you mean --learning_rate?)` for the closest known names, or nothing."""

    close = [m for g in given for m in difflib.get_close_matches(g, list(known), n=1, cutoff=0.6)]
    return f" (did you mean {', '.join(close)}?)" if close else ""


def config_to_dict(*configs) -> dict:
    """All fields of the given dataclasses, flat, for logs, trackers and model cards."""
    out: dict = {}
    for config in configs:
        out.update(asdict(config))
    return out
