"""`polyp-sam prepare`: a data root (PraNet layout or the original releases) as a saved `DatasetDict`
with box prompts and the paper's split."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from polyp_sam_hf.core.arguments import check_choices
from polyp_sam_hf.core.files import staging_folder
from polyp_sam_hf.data.loading import save_prepared
from polyp_sam_hf.data.prepare import prepare_dataset
from polyp_sam_hf.data.prompts import MIN_POLYP_AREA
from polyp_sam_hf.data.splits import SPLIT_PRESETS, SplitSettings


@dataclass
class PrepareArguments:
    data_root: Path = field(metadata={"help": "PraNet layout or releases"})
    output_dir: Path = field(metadata={"help": "where save_to_disk writes"})
    split_preset: str = field(default=SplitSettings.preset, metadata={"help": "how frames are split",
                                                                      "choices": sorted(SPLIT_PRESETS)})
    val_fraction: float = field(default=SplitSettings.val_fraction, metadata={"help": "per training source"})
    split_seed: int = field(default=SplitSettings.seed,
                            metadata={"help": "the split seed: draws the release split and validation"})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "replace a dataset already prepared in --output_dir"})
    min_polyp_area: int = field(default=MIN_POLYP_AREA, metadata={
        "help": "smallest polyp in pixels: smaller specks are left out of `box` and `boxes`, and evaluation's "
                "self-made boxes and detection counts leave them out too (recorded with the dataset)"})
    skip_bad_files: bool = field(default=False, metadata={
        "help": "list unreadable or mismatched pairs as skipped instead of stopping at the first"})
    hub_dataset_id: str | None = field(default=None, metadata={"help": "also push the DatasetDict to this Hub "
                                                               "dataset repository", "metavar": "REPO"})
    public: bool = field(default=False, metadata={"help": "with --hub_dataset_id: a public repository (default: "
                                                          "private)"})

    def __post_init__(self) -> None:
        check_choices(self)

    @property
    def split(self) -> SplitSettings:
        return SplitSettings(self.split_preset, self.val_fraction, self.split_seed)


def run(args: PrepareArguments) -> int:
    # the rows stream to Arrow files beside the output as they are read: memory stays flat
    work_dir = staging_folder(args.output_dir.resolve(), "prepare-rows")
    try:
        dataset, report = prepare_dataset(args.data_root, split_preset=args.split_preset,
                                          val_fraction=args.val_fraction, seed=args.split_seed,
                                          min_polyp_area=args.min_polyp_area,
                                          skip_bad_files=args.skip_bad_files, work_dir=work_dir)
        save_prepared(dataset, args.output_dir, args.split, args.data_root, overwrite=args.overwrite_output_dir,
                      report=report.format(full=True), min_polyp_area=args.min_polyp_area)
        if args.hub_dataset_id:
            dataset.push_to_hub(args.hub_dataset_id, private=not args.public)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    print(report.format())
    print(f"\nSaved to {args.output_dir} (datasets.load_from_disk reads it back).")
    return 0
