"""`polyp-sam demo-data`: synthetic polyp frames in the PraNet layout (offline, seconds)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from polyp_sam_hf.data.synthetic import write_demo_data


@dataclass
class DemoDataArguments:
    output_dir: Path = field(metadata={"help": "folder to write into"})
    num_train: int = field(default=120, metadata={"help": "TrainDataset frames"})
    num_test: int = field(default=12, metadata={"help": "frames per test dataset"})
    seed: int = field(default=0, metadata={"help": "the same seed writes the same data"})


def run(args: DemoDataArguments) -> int:
    out = write_demo_data(args.output_dir, args.num_train, args.num_test, args.seed)
    print(f"Wrote demo data in the PraNet layout to {out}")
    return 0
