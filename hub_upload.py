"""Publish a fine-tuned checkpoint on the Hugging Face Hub, with its model card.

    python hub_upload.py --model runs/table2-b-full/best --repo-id ORG/polyp-sam-b \
        --eval-results eval/metrics.json [--private]
    python hub_upload.py --model runs/table2-b-full/best --repo-id ORG/polyp-sam-b --dry-run upload/

The token comes from HF_TOKEN or the stored login (`hf auth login`); it is checked before
anything is exported and never printed. `--dry-run DIR` writes exactly what would be uploaded.
"""

import argparse
import logging
import sys
import tempfile

from polyp_sam_hf.errors import REPORTED
from polyp_sam_hf.hub import prepare_upload, require_token, upload


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--model", required=True, help="a saved SamModel folder, e.g. OUTPUT/best")
    parser.add_argument("--repo-id", required=True, help="ORG/NAME on the Hub")
    parser.add_argument("--eval-results", help="metrics.json from `polyp-sam evaluate`")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--dry-run", metavar="DIR", help="write the upload to DIR; send nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        if args.dry_run:
            folder = prepare_upload(args.model, args.dry_run, args.repo_id, args.eval_results)
            print(f"Dry run: wrote what would be uploaded to {folder}; nothing was sent.")
            return 0
        token = require_token()
        with tempfile.TemporaryDirectory() as tmp:
            folder = prepare_upload(args.model, f"{tmp}/upload", args.repo_id, args.eval_results)
            url = upload(folder, args.repo_id, token, private=args.private)
    except REPORTED as err:
        # the library's own errors carry what to do; anything else is a bug and keeps its traceback
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Uploaded {args.repo_id}: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
