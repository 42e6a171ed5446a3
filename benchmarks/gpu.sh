#!/usr/bin/env bash
# The GPU figures in one short run (about 5 minutes on an H100 or H200): training throughput, peak
# memory and model FLOP utilisation for ViT-B and ViT-L with random weights on synthetic frames; no
# network. Results go to $OUT (default benchmarks/) as gpu_*.json, each rewritten after every
# configuration so that a run cut short keeps what it measured. The steps come in order of
# importance, the compiled runs (minutes of compilation each) last.
#   bash benchmarks/gpu.sh               # on a GPU machine
#   bash benchmarks/gpu.sh --cpu_check   # the same script with a tiny model, to check it runs
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-benchmarks}
py=${PYTHON:-python3}
mkdir -p "$out"
bench() { "$py" benchmarks/train_throughput.py "$@"; }
if [[ "${1:-}" == "--cpu_check" ]]; then
    bench --quick --output_file "$out/gpu_check.json"
    bench --quick --variants full --compile --output_file "$out/gpu_check_compiled.json"
    exit 0
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$py" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
# 1. ViT-B: every strategy, bf16 and fp32, checkpointing off and on, eager
bench --models random-sam-vit-base --batch 8 --steps 6 --warmup 3 --output_file "$out/gpu_vit_b.json"
# 2. ViT-L: every strategy at batch 2 (the paper's 32 GB cards), bf16, checkpointing on and off
bench --models random-sam-vit-large --variants decoder-cached,lora,full --precisions bf16 \
    --checkpointing on,off --batch 2 --steps 4 --warmup 2 --output_file "$out/gpu_vit_l.json"
# 3. ViT-B full in bf16: SDPA against eager attention
bench --models random-sam-vit-base --variants full --precisions bf16 --checkpointing off \
    --attention sdpa,eager --batch 8 --steps 6 --warmup 3 --output_file "$out/gpu_vit_b_attention.json"
# 4. ViT-B full and decoder in bf16, eager against torch.compile
bench --models random-sam-vit-base --variants full,decoder --precisions bf16 --checkpointing off \
    --compile --batch 8 --steps 6 --warmup 3 --output_file "$out/gpu_vit_b_compiled.json"
