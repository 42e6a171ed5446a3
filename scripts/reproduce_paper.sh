#!/usr/bin/env bash
# Reproduce the paper's Tables 1-3 (Li, Hu, Yang 2023): prepare both splits, train the six paper
# runs with accelerate, evaluate each best/, and write OUT/comparison.md. Run it again to resume.
#
#   scripts/reproduce_paper.sh DATA_ROOT OUT [--gpus N] [--dry-run] [--model DIR] [-- TRAIN_FLAGS...]
#
# Every option is `polyp-sam reproduce`'s (see `polyp-sam reproduce --help`; docs/reproduce.md).
set -euo pipefail
if [[ $# -lt 2 || "$1" == -* ]]; then
    echo "usage: $0 DATA_ROOT OUT [--gpus N] [--dry-run] [--model DIR] [-- TRAIN_FLAGS...]" >&2
    exit 2
fi
data_root=$1 out=$2
shift 2
exec "${PYTHON:-python}" -m polyp_sam_hf.cli reproduce --data-root "$data_root" --output "$out" "$@"
