"""Publish a fine-tuned checkpoint on the Hugging Face Hub, with its model card.

    python hub_upload.py --model_name_or_path runs/table2-b-full/best --repo_id ORG/polyp-sam-b \
        --eval_results eval/metrics.json [--private]
    python hub_upload.py --model_name_or_path runs/table2-b-full/best --repo_id ORG/polyp-sam-b --dry_run upload/

The same as `polyp-sam upload` (and, with `--dry_run DIR`, `polyp-sam export --output_dir DIR`), which
an installed package has without this file.
"""

import sys

from polyp_sam_hf.commands.cli import main as cli_main

DRY_RUN = "--dry_run"  # DIR: write what would be uploaded there (`polyp-sam export --output_dir DIR`), send nothing


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a == DRY_RUN or a.startswith(f"{DRY_RUN}=") for a in argv):
        argv = [a.replace(DRY_RUN, "--output_dir", 1) if a.startswith(DRY_RUN) else a for a in argv]
        return cli_main(["export", *argv])
    return cli_main(["upload", *argv])


if __name__ == "__main__":
    sys.exit(main())
