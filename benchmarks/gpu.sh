#!/usr/bin/env bash
# The GPU figures in one short run (about 6 minutes on an H100): training throughput, peak memory
# and model FLOP utilisation for ViT-B and ViT-L with random weights on synthetic frames; no
# network. Results go to $OUT (default benchmarks/) as gpu_vit_b.json and gpu_vit_l.json.
#   bash benchmarks/gpu.sh               # on a GPU machine
#   bash benchmarks/gpu.sh --cpu-check   # the same script with a tiny model, to check it runs
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-benchmarks}
mkdir -p "$out"
if [[ "${1:-}" == "--cpu-check" ]]; then
    python benchmarks/train_throughput.py --models tiny-sam --variants decoder-cached,full \
        --precisions fp32 --checkpointing off --batch 2 --steps 1 --warmup 1 --output "$out/gpu_check.json"
    exit 0
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
# ViT-B: every strategy, bf16 and fp32, checkpointing off and on, eager and compiled
python benchmarks/train_throughput.py --models random-sam-vit-base --batch 8 --steps 6 --warmup 3 \
    --compile --output "$out/gpu_vit_b.json"
# ViT-B full in bf16: the effect of SDPA against eager attention
python benchmarks/train_throughput.py --models random-sam-vit-base --variants full --precisions bf16 \
    --checkpointing off --attention sdpa,eager --batch 8 --steps 6 --warmup 3 --output "$out/gpu_vit_b_attention.json"
# ViT-L: full fine-tuning at batch 2 with checkpointing (the paper's 32 GB cards), bf16
python benchmarks/train_throughput.py --models random-sam-vit-large --variants decoder-cached,lora,full \
    --precisions bf16 --checkpointing on,off --batch 2 --steps 4 --warmup 2 --output "$out/gpu_vit_l.json"
