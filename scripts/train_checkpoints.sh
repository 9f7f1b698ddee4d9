#!/usr/bin/env bash
# Train the two checkpoints that ship in space/checkpoints/, resuming wherever a previous
# (killed, interrupted or timed-out) invocation stopped. Safe to run again and again:
#
#   nohup scripts/train_checkpoints.sh ../shared/fer2013 > runs/train_checkpoints.log 2>&1 &
#
# Each model's training state is saved after every epoch in its output folder; a model whose
# folder is complete (model.safetensors and no training_state.pt) is skipped. CnnModel2 trains
# first: CustomCNN learns from it (--teacher), with lighter augmentation than `strong` (which
# left it underfitting: 64% on its own augmented batches, 62.55% on test).
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET="${1:-../shared/fer2013}"
PY="${PYTHON:-python}"

train() {  # model, extra flags...
  local model="$1"; shift
  local out="space/checkpoints/$model"
  local resume=()
  if [ -f "$out/training_state.pt" ]; then
    resume=(--resume)
  elif [ -f "$out/model.safetensors" ]; then
    echo "[$model] already trained: $out"; return 0
  fi
  echo "[$model] $(date -u +%FT%TZ) start ${resume[*]:-}"
  # Fixed thread count: a resumed CPU run reproduces an unbroken one only with the same threads.
  "$PY" train_hub.py --model "$model" --recipe strong --dataset "$DATASET" --threads 2 \
    --save-dtype float16 --output "$out" "$@" "${resume[@]}"
}

train cnn-model2 --epochs 30
train custom-cnn --teacher space/checkpoints/cnn-model2 --erase 0 --scale 0.1 --rotation 10
