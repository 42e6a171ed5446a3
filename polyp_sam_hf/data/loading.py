"""Open what `--data` names: a prepared DatasetDict, or a raw data root prepared on the fly."""

from __future__ import annotations

import logging
from pathlib import Path

import datasets

from .prepare import prepare_dataset
from .synthetic import write_demo_data

logger = logging.getLogger(__name__)


def is_prepared(path: str | Path) -> bool:
    """True for a `DatasetDict.save_to_disk` folder."""
    return (Path(path) / "dataset_dict.json").is_file()


def load_polyp_data(
    data: str | Path,
    split_preset: str = "paper",
    val_fraction: float = 0.2,
    seed: int = 42,
    generate_demo_data: bool = False,
) -> datasets.DatasetDict:
    """Load a prepared DatasetDict, or prepare a raw data root in memory.

    With `generate_demo_data`, a missing `data` folder is first filled with the synthetic demo
    dataset (deterministic, seed 0), so a demo run needs nothing on disk.
    """
    path = Path(data)
    if is_prepared(path):
        return datasets.load_from_disk(str(path))
    if not path.exists() and generate_demo_data:
        logger.info("Writing the synthetic demo data to %s", path)
        write_demo_data(path)
    dataset, report = prepare_dataset(path, split_preset=split_preset, val_fraction=val_fraction, seed=seed)
    logger.info("Prepared %s:\n%s", path, report.format())
    return dataset
