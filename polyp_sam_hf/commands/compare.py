"""`polyp-sam compare`: evaluations set beside the paper's Tables 1-3."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.evaluation.comparison import comparison_markdown
from polyp_sam_hf.evaluation.record import read_metrics


@dataclass
class CompareArguments:
    metrics: list[Path] = field(metadata={
        "positional": True, "metavar": "EVAL",
        "help": "metrics.json files of `polyp-sam evaluate`, or the folders holding them"})
    table: list[int] | None = field(default=None, metadata={
        "repeat": True, "help": "only this paper table, 1, 2 or 3 (repeat for several; default: all)"})
    output_file: Path | None = field(default=None, metadata={"help": "also write the comparison to this file"})

    def __post_init__(self) -> None:
        bad = [t for t in self.table or () if t not in (1, 2, 3)]
        if bad:
            raise ConfigError(f"--table {bad[0]}: the paper has Tables 1, 2 and 3.")


def run(args: CompareArguments) -> int:
    text = comparison_markdown([read_metrics(p) for p in args.metrics], tuple(args.table or ()))
    if args.output_file:
        args.output_file.write_text(text)
    print(text)
    return 0
