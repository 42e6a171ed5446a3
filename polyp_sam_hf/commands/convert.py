"""`polyp-sam convert` and `polyp-sam fetch-weights`: MobileSAM / LiteMedSAM checkpoints as
transformers model folders (docs/real-weights.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from polyp_sam_hf.core.arguments import check_choices
from polyp_sam_hf.models.convert import ARCHS, convert_checkpoint
from polyp_sam_hf.models.weights import PACKAGES, fetch_checkpoint


@dataclass
class ConvertArguments:
    arch: str = field(metadata={"help": "the checkpoint's architecture", "choices": sorted(ARCHS)})
    checkpoint: Path | None = field(default=None, metadata={
        "help": "a Meta-format .pt/.pth state dict (default: the official file, fetched and checked by SHA-256 "
                "into the cache, see fetch-weights)"})
    output_dir: Path | None = field(default=None, metadata={"help": "model folder to write (default: models/ARCH)"})

    def __post_init__(self) -> None:
        check_choices(self)


def run(args: ConvertArguments) -> int:
    checkpoint = args.checkpoint or fetch_checkpoint(args.arch)
    output = convert_checkpoint(checkpoint, args.arch, args.output_dir or Path("models") / args.arch)
    print(f"Wrote {args.arch} from {checkpoint} to {output}: pass --model_name_or_path {output} to train.py, evaluate, "
          "predict, app.py or hub_upload.py.")
    return 0


@dataclass
class FetchWeightsArguments:
    arch: list[str] | None = field(default=None, metadata={
        "repeat": True, "help": f"which checkpoint: {', '.join(sorted(PACKAGES))} (repeat for several; default: all)"})

    def __post_init__(self) -> None:
        self.arch = self.arch or sorted(PACKAGES)


def run_fetch_weights(args: FetchWeightsArguments) -> int:
    for arch in args.arch:
        print(f"{arch}: {fetch_checkpoint(arch)}")
    return 0
