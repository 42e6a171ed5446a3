"""`polyp-sam bootstrap`: two evaluations of the same test frames compared by a paired bootstrap.

    polyp-sam bootstrap eval/zero-shot eval/fine-tuned [--group_by sequence] [--output_file result.json]
    polyp-sam bootstrap eval/fine-tuned eval/fine-tuned --method_a ellipse     # the model against the ellipse
    polyp-sam bootstrap eval/clicks eval/clicks --clicks_b 1   # the box, then one correction click, against the box
    polyp-sam bootstrap eval/a eval/b --prompt_mode clicks --clicks_a 1 --clicks_b 1   # one click alone, two models

Per dataset (or per video study) it prints the mean Dice of A and B, the mean of B - A with its 95%
interval, how many frames B scores better and worse, and the 95% interval of B's own mean
(`evaluation.bootstrap`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from polyp_sam_hf.core.arguments import check_choices
from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.data.clicks import CLICK_STARTS
from polyp_sam_hf.data.prompts import get_prompt_mode
from polyp_sam_hf.evaluation.bootstrap import GROUPINGS, bootstrap_markdown, paired_bootstrap, read_frame_scores

CLICKS_ALONE = next(start.name for start in CLICK_STARTS.values() if not start.box)  # per_image.csv's prompt_mode


@dataclass
class BootstrapArguments:
    evaluations: list[Path] = field(metadata={
        "positional": True, "metavar": "EVAL",
        "help": "two folders `polyp-sam evaluate` wrote: A (the reference), then B"})
    method_a: str = field(default="model", metadata={"help": "A's per_image.csv method: model, box or ellipse"})
    method_b: str = field(default="model", metadata={"help": "B's method (give one folder twice to compare the model "
                                                             "with a baseline on the same boxes)"})
    prompt_mode: str = field(default="box", metadata={"help": "the prompt mode whose rows are compared, or clicks: "
                                                              "the rows of clicks alone (an evaluation with --clicks; "
                                                              "give --clicks_a and --clicks_b of at least 1)"})
    clicks_a: int = field(default=0, metadata={"help": "A's rows after this many evaluation clicks from the prompt "
                                                       "(an evaluation with --clicks); 0: the prompt alone"})
    clicks_b: int = field(default=0, metadata={"help": "B's clicks (one folder twice, --clicks_b 1: what the first "
                                                       "correction click adds to the box)"})
    group_by: str = field(default="dataset", metadata={"help": "one row per dataset, or per video study (sequence) "
                                                               "of the datasets that record them",
                                                       "choices": list(GROUPINGS)})
    resamples: int = field(default=10_000, metadata={"help": "bootstrap draws"})
    seed: int = field(default=0, metadata={"help": "seeds the draws"})
    output_file: Path | None = field(default=None, metadata={"help": "also write the result here as JSON"})

    def __post_init__(self) -> None:
        check_choices(self)
        if self.prompt_mode == CLICKS_ALONE:
            if min(self.clicks_a, self.clicks_b) < 1:
                raise ConfigError("Clicks alone start from the first click: give --clicks_a and --clicks_b "
                                  "of at least 1.")
        else:
            get_prompt_mode(self.prompt_mode)
        if len(self.evaluations) != 2:
            raise ValueError(f"bootstrap compares two evaluations; {len(self.evaluations)} given.")


def run(args: BootstrapArguments) -> int:
    a, b = args.evaluations
    result = paired_bootstrap(read_frame_scores(a, args.method_a, args.prompt_mode, args.clicks_a),
                              read_frame_scores(b, args.method_b, args.prompt_mode, args.clicks_b), args.resamples,
                              args.seed, args.group_by)
    print(bootstrap_markdown(result, _named(a, args.method_a, args.clicks_a), _named(b, args.method_b, args.clicks_b)))
    if args.output_file:
        args.output_file.write_text(json.dumps({"a": str(a), "b": str(b), "method_a": args.method_a,
                                                "method_b": args.method_b, "clicks_a": args.clicks_a,
                                                "clicks_b": args.clicks_b,
                                                "prompt_mode": args.prompt_mode, "group_by": args.group_by,
                                                "resamples": args.resamples, "seed": args.seed, "groups": result},
                                               indent=1) + "\n")
    return 0


def _named(folder: Path, method: str, clicks: int) -> str:
    return f"{folder} ({method}{f', {clicks} clicks' if clicks else ''})"
