"""Open what `--data` names (a prepared DatasetDict, or a raw data root prepared on the fly), save a
prepared one safely, and say which split it holds.

The split is a property of the data, not of a training run: `prepare` records it beside the
DatasetDict (`polyp_sam_split.json`), a run records the split it trained on, and `evaluate` reads
it back, so a seed sweep never moves a test frame into training. The same record keeps the smallest
polyp area the boxes were made with, so evaluation leaves out the same specks.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import datasets

from polyp_sam_hf.core.files import replace_atomically, staging_folder
from polyp_sam_hf.data.prepare import prepare_dataset
from polyp_sam_hf.data.prompts import MIN_POLYP_AREA
from polyp_sam_hf.data.reading import DataError
from polyp_sam_hf.data.splits import SplitSettings
from polyp_sam_hf.data.synthetic import write_demo_data

logger = logging.getLogger(__name__)

SPLIT_RECORD = "polyp_sam_split.json"


SHARD_SIZE = "16MB"


def is_prepared(path: str | Path) -> bool:
    """True for a `DatasetDict.save_to_disk` folder."""
    return (Path(path) / "dataset_dict.json").is_file()


def recorded_split(path: str | Path) -> SplitSettings | None:
    """The split a prepared folder was made with, from its record; None without one (made by
    hand or by an older version)."""
    record = Path(path) / SPLIT_RECORD
    if not record.is_file():
        return None
    values = json.loads(record.read_text())
    return SplitSettings(values["preset"], values["val_fraction"], values["seed"])


def recorded_min_polyp_area(path: str | Path) -> int:
    """The smallest polyp, in pixels, a prepared folder's boxes were made with (`prepare
    --min_polyp_area`); the library's default for a raw root, or a folder prepared without a record."""
    record = Path(path) / SPLIT_RECORD
    values = json.loads(record.read_text()) if is_prepared(path) and record.is_file() else {}
    return int(values.get("min_polyp_area", MIN_POLYP_AREA))


def load_polyp_data(
    data: str | Path,
    split_preset: str = SplitSettings.preset,
    val_fraction: float = SplitSettings.val_fraction,
    seed: int = SplitSettings.seed,
    generate_demo_data: bool = False,
) -> datasets.DatasetDict:
    """Load a prepared DatasetDict, or prepare a raw data root in memory.

    `seed` is the split seed (the release split and the validation draw), never a training seed.
    With `generate_demo_data`, a missing `data` folder is first filled with the synthetic demo
    dataset (deterministic, seed 0), so a demo run needs nothing on disk.
    """
    path = Path(data)
    if is_prepared(path):
        return check_columns(_load_prepared(path), path)
    if not path.exists() and generate_demo_data:
        logger.info("Writing the synthetic demo data to %s", path)
        write_demo_data(path)
    dataset, report = prepare_dataset(path, split_preset=split_preset, val_fraction=val_fraction, seed=seed)
    logger.info("Prepared %s:\n%s", path, report.format())
    return dataset


REQUIRED_COLUMNS = ("image", "mask", "source", "image_id", "box", "boxes")
PREPARE_HINT = "prepare it with `polyp-sam prepare --data_root DATA_ROOT --output_dir DIR` and pass DIR"


def _load_prepared(path: Path) -> datasets.DatasetDict:
    try:
        dataset = datasets.load_from_disk(str(path))
    except Exception as err:  # arrow, json and file errors: the folder is damaged or half-written
        raise DataError(f"Cannot read the prepared dataset {path}: {type(err).__name__}: {err}. A split is empty, "
                        f"damaged or half-written; {PREPARE_HINT}.") from None
    if not isinstance(dataset, datasets.DatasetDict):
        raise DataError(f"{path} holds one Dataset, not a DatasetDict with train/validation/test splits; {PREPARE_HINT}.")
    return dataset


def check_columns(dataset: datasets.DatasetDict, path: str | Path) -> datasets.DatasetDict:
    """Every split has the columns the library reads, or a `DataError` names the split, the missing
    columns and how to make them."""
    for split, part in dataset.items():
        missing = [c for c in REQUIRED_COLUMNS if c not in part.column_names]
        if missing:
            raise DataError(f"{path}: split {split!r} lacks the column(s) {', '.join(missing)} (it has "
                            f"{', '.join(part.column_names)}); {PREPARE_HINT}.")
    return dataset


def save_prepared(dataset: datasets.DatasetDict, output: str | Path, split: SplitSettings,
                  data_root: str | Path, overwrite: bool = False, report: str | None = None,
                  min_polyp_area: int = MIN_POLYP_AREA) -> Path:
    """`save_to_disk` into `output` with the split record, never leaving a half-written dataset.

    The DatasetDict is written into a sibling temporary folder and renamed into place, so a run
    killed while saving leaves `output` as it was. An existing non-empty `output` is replaced only
    with `overwrite` and only if it is a prepared dataset; `output` may not lie inside the data root
    (a later `prepare` would read it as data).

    Raises:
        DataError: `output` is inside `data_root`, is a file, or holds something that would be lost.
    """
    output, root = Path(output), Path(data_root)
    if output.resolve() == root.resolve() or root.resolve() in output.resolve().parents:
        raise DataError(f"--output_dir {output} is inside the data root {root}; write the prepared dataset "
                        "elsewhere (nothing was written).")
    if output.exists() and not output.is_dir():
        raise DataError(f"--output_dir {output} is a file; give a folder (nothing was written).")
    if output.is_dir() and any(output.iterdir()):
        if not is_prepared(output):
            raise DataError(f"--output_dir {output} is not empty and holds no prepared dataset; give a new or empty "
                            "folder (nothing was deleted).")
        if not overwrite:
            raise DataError(f"--output_dir {output} already holds a prepared dataset; pass --overwrite_output_dir to "
                            "replace it (nothing was changed).")
    staging = staging_folder(output, "prepare-tmp")
    # shards of at most SHARD_SIZE: writing one holds it in memory, so memory stays flat with the frames
    dataset.save_to_disk(str(staging), max_shard_size=SHARD_SIZE)
    (staging / SPLIT_RECORD).write_text(json.dumps({**asdict(split), "min_polyp_area": min_polyp_area}, indent=1))
    if report is not None:
        (staging / "prepare_report.txt").write_text(report + "\n")
    replace_atomically(staging, output)
    return output
