"""`polyp-sam upload`: export a fine-tuned checkpoint (as `polyp-sam export` does) and push it to the Hub.

    polyp-sam upload --model_name_or_path runs/x/best --repo_id ORG/polyp-sam-b [--eval_results ...] [--private]

The token (HF_TOKEN or the stored login) is checked before anything is exported, and never printed.
`hub_upload.py` at the repository root is the same command.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field

from polyp_sam_hf.commands.export import PublishArguments
from polyp_sam_hf.publishing.hub import prepare_upload, require_token, upload


@dataclass
class UploadArguments(PublishArguments):
    private: bool = field(default=False, metadata={"help": "create the repository private"})


def run(args: UploadArguments) -> int:
    token = require_token()
    with tempfile.TemporaryDirectory() as tmp:
        folder = prepare_upload(args.model_name_or_path, f"{tmp}/upload", args.repo_id, args.eval_results, args.onnx, args.web)
        url = upload(folder, args.repo_id, token, private=args.private)
    print(f"Uploaded {args.repo_id}: {url}")
    return 0
