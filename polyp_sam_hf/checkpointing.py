"""Where checkpoints are written: resumable training state, and `best/` in plain Hugging Face format.

Layout of a run's output folder:

    OUTPUT/checkpoints/step-000120/   accelerator.save_state + trainer_state.json (resumable)
    OUTPUT/checkpoints/interrupted/   the same, written on Ctrl-C
    OUTPUT/best/                      config.json, model.safetensors, preprocessor_config.json

Every folder is written under a temporary name and renamed into place, so an interrupted save
leaves the previous checkpoint as it was.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from pathlib import Path

import torch

from .modeling import merge_lora
from .provenance import TRAINING_SETTINGS

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
FINISHED = "train_results.json"  # OUTPUT/train_results.json: written last, when a run has finished
STEP_PREFIX = "step-"
INTERRUPTED = "interrupted"


def checkpoints_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def _replace_atomically(tmp: Path, final: Path) -> None:
    """Rename `tmp` to `final`; an existing `final` is moved aside first and deleted after."""
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)


def save_training_state(accelerator, output_dir: str | Path, name: str, state: dict,
                        keep_last: int | None = None) -> Path:
    """Save model, optimiser, scheduler, RNG states and `state` as checkpoints/`name`, atomically.

    Called on every process (Accelerate writes each process's RNG state). With `keep_last`, only
    the newest `keep_last` step checkpoints are kept.
    """
    root = checkpoints_dir(output_dir)
    final = root / name
    tmp = root / f".{name}.tmp"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)  # left by an earlier interrupted save
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    if accelerator.is_main_process:
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=1))
        _replace_atomically(tmp, final)
        if keep_last is not None:
            steps = sorted(p for p in root.glob(f"{STEP_PREFIX}*") if p.is_dir())
            for stale in steps[: max(len(steps) - keep_last, 0)]:
                shutil.rmtree(stale)
        logger.info("Saved checkpoint %s", final)
    accelerator.wait_for_everyone()
    return final


def step_name(step: int) -> str:
    return f"{STEP_PREFIX}{step:07d}"


def resolve_checkpoint(output_dir: str | Path, value: str) -> Path:
    """`latest` -> the complete checkpoint with the highest step under OUTPUT/checkpoints; a path
    -> that folder, checked.

    Raises:
        FileNotFoundError: nothing to resume from; the message says where it looked.
    """
    if value != "latest":
        path = Path(value)
        if not (path / STATE_FILE).is_file():
            raise FileNotFoundError(f"{path} is not a complete checkpoint (no {STATE_FILE}).")
        return path
    root = checkpoints_dir(output_dir)
    found = [
        (json.loads((p / STATE_FILE).read_text())["step"], p.name == INTERRUPTED, p)
        for p in root.glob("*")
        if p.is_dir() and not p.name.startswith(".") and (p / STATE_FILE).is_file()
    ]
    if not found:
        raise FileNotFoundError(f"No checkpoint to resume from in {root}.")
    return max(found)[2]


def load_training_state(accelerator, path: str | Path) -> dict:
    """Restore everything `save_training_state` saved; returns the trainer state dict."""
    accelerator.load_state(str(path))
    return json.loads((Path(path) / STATE_FILE).read_text())


def save_pretrained_atomic(model: torch.nn.Module, processor, folder: str | Path,
                           training_settings: dict | None = None) -> Path:
    """Write a plain `SamModel` folder (LoRA merged) that vanilla `from_pretrained` loads.

    Files: `config.json`, `model.safetensors`, `preprocessor_config.json` (and any other processor
    files), and with `training_settings` the run's settings as `polyp_sam_training.json` (what it
    trained on and how: the split and its seed among them). Written under a temporary name, then
    renamed.
    """
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    plain = merge_lora(copy.deepcopy(model)) if _has_lora(model) else model
    plain.save_pretrained(tmp, safe_serialization=True)
    processor.save_pretrained(tmp)
    # preprocessor_config.json too: what transformers 4.x and the Hub's widgets read
    processor.image_processor.save_pretrained(tmp)
    if training_settings is not None:
        (tmp / TRAINING_SETTINGS).write_text(json.dumps(training_settings, indent=1))
    _replace_atomically(tmp, folder)
    return folder


def _has_lora(model: torch.nn.Module) -> bool:
    return any("lora_" in name for name, _ in model.named_parameters())
