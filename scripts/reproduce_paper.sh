#!/usr/bin/env bash
# Reproduce the paper's Tables 1-3 (Li, Hu, Yang 2023): prepare both splits, train the six paper
# runs with accelerate, evaluate each best/, and write OUT/comparison.md. Run it again to resume.
#
#   scripts/reproduce_paper.sh --data_root DATA_ROOT --output_dir OUT [--gpus N] [--dry_run] [--model_name_or_path DIR] [-- TRAIN_FLAGS...]
#
# Exactly `polyp-sam reproduce` with the same flags (see `polyp-sam reproduce --help`; docs/reproduce.md).
set -euo pipefail
exec "${PYTHON:-python}" -m polyp_sam_hf reproduce "$@"
