"""Where a checkpoint comes from: the run that trained it, the model it started from.

A `best/` folder written by `train.py` carries the run's settings (`polyp_sam_training.json`), and
cards, evaluations and comparisons read them from there only, so nothing about a checkpoint's
origin is guessed. (The run folder's `config.yaml` holds the same settings as a file `train.py
--config` takes, to run it again.)
"""

from __future__ import annotations

import json
from pathlib import Path

from polyp_sam_hf.core.arguments import current_settings
from polyp_sam_hf.core.files import sha256_file
from polyp_sam_hf.data.prompts import current_prompt_mode_name
from polyp_sam_hf.data.splits import SplitSettings
from polyp_sam_hf.models.loading import BUILTIN_MODELS, is_hub_id

TRAINING_SETTINGS = "polyp_sam_training.json"  # in best/: the settings of the run that wrote it


def config_value(model_dir: str | Path, key: str):
    """One entry of a model folder's config.json, or None where the folder or the entry has none."""
    path = Path(model_dir) / "config.json"
    return json.loads(path.read_text()).get(key) if path.is_file() else None


def model_origin(model_dir: str | Path) -> dict | None:
    """What a converted model was made from (`polyp_sam_origin` in config.json: arch, checkpoint
    SHA-256, source, licence), or None for SAM's own checkpoints."""
    return config_value(model_dir, "polyp_sam_origin")


def _lineage(model_dir: str | Path, train_config: dict | None) -> list[tuple[Path, dict | None]]:
    """`model_dir` and each local folder it was fine-tuned from in turn (a run's `model`), newest
    first, each with its run's record (None where the folder has none, which ends the chain)."""
    chain = [(Path(model_dir), train_config)]
    seen = {Path(model_dir).resolve()}
    while (name := str((chain[-1][1] or {}).get("model_name_or_path") or "")) and Path(name).is_dir() \
            and Path(name).resolve() not in seen:
        seen.add(Path(name).resolve())
        chain.append((Path(name), read_train_config(name)))
    return chain


def base_model_of(model_dir: str | Path, train_config: dict | None) -> str | None:
    """The Hub id the checkpoint was fine-tuned from, from what the run recorded, or None.

    - a converted MobileSAM / LiteMedSAM (`polyp_sam_origin` in config.json): None, it has no Hub
      id (the card names it in words);
    - the run's `model` is a Hub id: that id;
    - the run's `model` is a local folder: that folder's own base, from its run's record;
    - a built-in model (random weights) or no record: None. Nothing is guessed from the shape.
    """
    chain = _lineage(model_dir, train_config)
    if any(model_origin(folder) for folder, _ in chain):
        return None
    name = str((chain[-1][1] or {}).get("model_name_or_path") or "")
    return name if name not in BUILTIN_MODELS and is_hub_id(name) else None


def earlier_runs(model_dir: str | Path, train_config: dict | None) -> list[dict]:
    """The records of the runs before this one, first run first, where each started from the
    `best/` folder of the one before it (a local folder with its own record): a model trained in
    stages. Empty for a run that started from a Hub id, a converted or built-in model."""
    return [record for _, record in reversed(_lineage(model_dir, train_config)[1:]) if record is not None]


def weights_sha256(model: str | Path) -> str | None:
    """SHA-256 of a local model folder's `model.safetensors` (None for a Hub id or built-in): what
    ties an evaluation to the exact weights it scored."""
    path = Path(model) / "model.safetensors"
    return sha256_file(path) if path.is_file() else None


def trained_split(train_config: dict | None):
    """The split (`data.splits.SplitSettings`) a run trained on, from its record, or None."""
    if not train_config:
        return None
    default = SplitSettings()
    return SplitSettings(train_config.get("split_preset", default.preset),
                         train_config.get("val_fraction", default.val_fraction),
                         train_config.get("split_seed", default.seed))


def read_train_config(model_dir: str | Path) -> dict | None:
    """The settings of the run that wrote `model_dir` (its `polyp_sam_training.json`, the one record
    a model carries), with today's names where an earlier version wrote others; None for a model
    this library did not train."""
    own = Path(model_dir) / TRAINING_SETTINGS
    if not own.is_file():
        return None
    settings = current_settings(json.loads(own.read_text()))
    if "prompt_mode" in settings:
        settings["prompt_mode"] = current_prompt_mode_name(settings["prompt_mode"])
    return settings
