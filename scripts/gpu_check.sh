#!/usr/bin/env bash
# The README's own commands, end to end, on the device at hand: run this first whenever a GPU is.
#
#   bash scripts/gpu_check.sh              # on a GPU machine: MobileSAM converted, real frames, bf16
#   bash scripts/gpu_check.sh --cpu_check  # the same commands with tiny models (random weights) on the CPU
#                                          # (the test suite runs it, so the script never rots)
#
# Prints one line per command (its exit code and seconds) and a summary; exits non-zero if any
# command failed. Each command's output is in $OUT/logs/<name>.log.
# Settings, by environment variable:
#   OUT           where runs and logs go (default: a new temporary folder)
#   DATA_ROOT     polyp frames in the PraNet layout or original releases (default: the shared real
#                 samples beside the checkout, else synthetic frames the library draws)
#   MOBILE_SAM_PT MobileSAM's official mobile_sam.pt (default: models/mobile_sam.pt, else fetched:
#                 `polyp-sam fetch-weights`); a machine without network needs one of the first two
#   PYTHON        the interpreter (default: python3)
set -uo pipefail
cd "$(dirname "$0")/.."
mode=gpu
[[ "${1:-}" == "--cpu_check" ]] && mode=cpu
out=${OUT:-$(mktemp -d)}
py=${PYTHON:-python3}
mkdir -p "$out/logs"
failed=0
summary=()

run() {  # run NAME COMMAND...: time one command, log its output, print one line
    local name=$1; shift
    local start end code line
    start=$(date +%s%N)
    "$@" >"$out/logs/$name.log" 2>&1
    code=$?
    end=$(date +%s%N)
    line=$(printf '%-18s exit %-3d %7s s   %s' "$name" "$code" "$(awk "BEGIN {printf \"%.1f\", ($end - $start) / 1e9}")" "$*")
    echo "$line"
    summary+=("$line")
    if [[ $code -ne 0 ]]; then
        failed=$((failed + 1))
        tail -n 15 "$out/logs/$name.log" | sed 's/^/    | /'
    fi
}

accelerate_launch() {  # accelerate launch with N processes and the precision of this mode
    local processes=$1; shift
    "$py" -m accelerate.commands.launch --num_processes "$processes" --num_machines 1 \
        --mixed_precision "$precision" --dynamo_backend no "${device_flag[@]}" "$@"
}

if [[ $mode == gpu ]]; then
    precision=bf16
    device_flag=()
    gpus=$("$py" -c "import torch; print(torch.cuda.device_count())")
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
    weights=${MOBILE_SAM_PT:-models/mobile_sam.pt}
    model="$out/mobile-sam"
    vit_b=random-sam-vit-base
    if [[ -f "$weights" ]]; then
        run convert "$py" -m polyp_sam_hf convert --arch mobile-sam --checkpoint "$weights" --output_dir "$model"
    else
        run convert "$py" -m polyp_sam_hf convert --arch mobile-sam --output_dir "$model"
    fi
    steps=(--max_train_steps 30 --eval_steps 10)
    half=15
    full_steps=(--max_train_steps 20 --eval_steps 10)
    eval_flags=()
else
    precision=no
    device_flag=(--cpu)
    gpus=0
    model="$out/micro-tinyvit-sam"  # MobileSAM's architecture at 64 px, random weights
    vit_b="$out/micro-sam"          # a SAM ViT (fused attention) at 32 px, random weights
    run models "$py" -c "
from polyp_sam_hf.models.loading import MODEL_CLASSES, SamModel, processor_for, tiny_sam_config, tiny_vit_sam_config
for path, config in (('$model', tiny_vit_sam_config(image_size=64)), ('$vit_b', tiny_sam_config(
        image_size=32, patch_size=4, vision_hidden=16, vision_layers=2, prompt_hidden=16))):
    MODEL_CLASSES.get(config.model_type, SamModel)(config).save_pretrained(path)
    processor_for(config).save_pretrained(path)"
    steps=(--max_train_steps 2 --eval_steps 1 --max_eval_samples 4)
    half=1
    full_steps=(--max_train_steps 2 --eval_steps 1 --max_eval_samples 4)
    eval_flags=(--max_eval_samples 4)
fi

data=${DATA_ROOT:-}
if [[ -z "$data" && -d ../shared/polyp-samples/pranet ]]; then
    data=../shared/polyp-samples/pranet
fi
if [[ -z "$data" ]]; then
    data="$out/demo-data"
    run demo-data "$py" -c "from polyp_sam_hf.data.synthetic import write_demo_data; write_demo_data('$data', 24, 4)"
fi
run prepare "$py" -m polyp_sam_hf prepare --data_root "$data" --output_dir "$out/data"
frame=$(ls "$data"/TestDataset/*/images/* 2>/dev/null | head -n 1)

common=(--model_name_or_path "$model" --data "$out/data" --report_to none)
# the decoder run stops half-way with a checkpoint, then resumes from it to the end
run train-decoder accelerate_launch 1 train.py --config configs/mobile-sam-decoder.yaml "${common[@]}" \
    --output_dir "$out/decoder" "${steps[@]}" --stop_after_steps "$half"
run resume accelerate_launch 1 train.py --config configs/mobile-sam-decoder.yaml "${common[@]}" \
    --output_dir "$out/decoder" "${steps[@]}" --resume_from_checkpoint latest
run train-full accelerate_launch 1 train.py --config configs/mobile-sam-full.yaml "${common[@]}" \
    --output_dir "$out/full" "${full_steps[@]}"
run train-lora accelerate_launch 1 train.py --config configs/mobile-sam-lora.yaml "${common[@]}" \
    --output_dir "$out/lora" "${full_steps[@]}"
run train-vit-full accelerate_launch 1 train.py --model_name_or_path "$vit_b" --strategy full --data "$out/data" --report_to none \
    --output_dir "$out/vit-full" --per_device_train_batch_size 2 --effective_batch_size 2 "${full_steps[@]}"
run evaluate "$py" -m polyp_sam_hf evaluate --model_name_or_path "$out/decoder/best" --data "$out/data" \
    --output_dir "$out/eval" --figures "${eval_flags[@]}"
if [[ -n "$frame" ]]; then
    run predict "$py" -m polyp_sam_hf predict --model_name_or_path "$out/decoder/best" --image "$frame" \
        --box 10,10,60,50 --output_dir "$out/pred"
fi
run export "$py" hub_upload.py --model_name_or_path "$out/decoder/best" --repo_id polyp-sam-hf/gpu-check \
    --eval_results "$out/eval/metrics.json" --dry_run "$out/upload"
if [[ $gpus -ge 2 ]]; then
    run train-2-processes accelerate_launch 2 train.py --config configs/mobile-sam-decoder.yaml "${common[@]}" \
        --output_dir "$out/decoder-2" "${steps[@]}"
fi

echo
echo "gpu_check ($mode): ${#summary[@]} commands, $failed failed; logs in $out/logs"
exit $((failed > 0))
