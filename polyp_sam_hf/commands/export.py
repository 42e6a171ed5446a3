"""`polyp-sam export`: a fine-tuned checkpoint written as a Hub model repository, and nothing sent.

    polyp-sam export --model_name_or_path runs/x/best --repo_id ORG/polyp-sam-b --output_dir upload/ \
        [--eval_results eval/metrics.json]

The folder holds exactly what `polyp-sam upload` would send: weights a plain
`SamModel.from_pretrained` loads (checked in a process without this library), the model card with
the run's numbers, and example frames. `hub_upload.py --dry_run DIR` at the repository root is the
same command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.publishing.hub import prepare_upload


@dataclass
class PublishArguments:
    """What `export` and `upload` share: the model, where it goes, and the numbers on its card."""

    model_name_or_path: str = field(metadata={"help": "a saved SamModel folder, e.g. OUTPUT/best"})
    repo_id: str = field(metadata={"help": "ORG/NAME on the Hub (named in the model card)"})
    eval_results: str | None = field(default=None, metadata={
        "help": "metrics.json from `polyp-sam evaluate` (the card's numbers)"})
    onnx: bool = field(default=False, metadata={
        "help": "also write onnx/: the image encoder and the prompt encoder with mask decoder, float32 and int8, in "
                "transformers.js's layout, checked against PyTorch first (needs pip install \"polyp-sam-hf[onnx]\")"})
    web: bool = field(default=False, metadata={
        "help": "also write web/ (and onnx/): a static page that segments in the visitor's browser with the ONNX "
                "graphs, its onnxruntime-web bundled by npm from a pinned lock (needs Node.js)"})


@dataclass
class ExportArguments(PublishArguments):
    output_dir: Path | None = field(default=None, metadata={"help": "the folder to write (required)"})

    def __post_init__(self) -> None:
        if self.output_dir is None:
            raise ConfigError("export needs --output_dir: the folder to write.")


def run(args: ExportArguments) -> int:
    folder = prepare_upload(args.model_name_or_path, args.output_dir, args.repo_id, args.eval_results, args.onnx, args.web)
    print(f"Exported {args.model_name_or_path} to {folder}: what `polyp-sam upload` would send; nothing was sent.")
    return 0
