"""Publish a fine-tuned checkpoint on the Hugging Face Hub, with its model card.

    python hub_upload.py --model runs/table2-b-full/best --repo-id ORG/polyp-sam-b \
        --eval-results eval/metrics.json [--private]
    python hub_upload.py --model runs/table2-b-full/best --repo-id ORG/polyp-sam-b --dry-run upload/

The same as `polyp-sam upload` (and, with `--dry-run DIR`, `polyp-sam export --output DIR`), which
an installed package has without this file.
"""

import sys

from polyp_sam_hf.commands.cli import main as cli_main


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--dry-run" in argv or any(a.startswith("--dry-run=") for a in argv):
        argv = [a.replace("--dry-run", "--output", 1) if a.startswith("--dry-run") else a for a in argv]
        return cli_main(["export", *argv])
    return cli_main(["upload", *argv])


if __name__ == "__main__":
    sys.exit(main())
