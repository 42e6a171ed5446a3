"""`polyp-sam export` and `polyp-sam upload`: a fine-tuned checkpoint as a Hub model repository.

    polyp-sam export --model runs/x/best --repo-id ORG/polyp-sam-b --output upload/ [--eval-results eval/metrics.json]
    polyp-sam upload --model runs/x/best --repo-id ORG/polyp-sam-b [--eval-results ...] [--private]

`export` writes exactly what `upload` would send (weights a plain `SamModel.from_pretrained`
loads, the model card with the run's numbers) and sends nothing; `upload` checks the token
(HF_TOKEN or the stored login) before anything is exported, and never prints it.
`hub_upload.py` at the repository root is the same command with `--dry-run DIR` for `export`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from polyp_sam_hf.publishing.hub import prepare_upload, require_token, upload


@dataclass
class PublishArguments:
    model: str = field(metadata={"help": "a saved SamModel folder, e.g. OUTPUT/best"})
    repo_id: str = field(metadata={"help": "ORG/NAME on the Hub (named in the model card)"})
    eval_results: str | None = field(default=None, metadata={
        "help": "metrics.json from `polyp-sam evaluate` (the card's numbers)"})


@dataclass
class ExportArguments(PublishArguments):
    output: Path | None = field(default=None, metadata={"help": "the folder to write (required)"})

    def __post_init__(self) -> None:
        if self.output is None:
            raise ValueError("export needs --output: the folder to write.")


@dataclass
class UploadArguments(PublishArguments):
    private: bool = field(default=False, metadata={"help": "create the repository private"})


def run_export(args: ExportArguments) -> int:
    folder = prepare_upload(args.model, args.output, args.repo_id, args.eval_results)
    print(f"Exported {args.model} to {folder}: what `polyp-sam upload` would send; nothing was sent.")
    return 0


def run_upload(args: UploadArguments) -> int:
    token = require_token()
    with tempfile.TemporaryDirectory() as tmp:
        folder = prepare_upload(args.model, f"{tmp}/upload", args.repo_id, args.eval_results)
        url = upload(folder, args.repo_id, token, private=args.private)
    print(f"Uploaded {args.repo_id}: {url}")
    return 0
