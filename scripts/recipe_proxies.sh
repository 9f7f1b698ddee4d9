#!/usr/bin/env bash
# Short proxy runs that compare training recipes on the CPU before a long run is spent on one
# (issue 19). Each fine-tunes the shipped CnnModel2 for a few epochs with one change and is
# compared on validation only (accuracy, macro-F1, the share of faces called "neutral"):
#
#   nohup scripts/recipe_proxies.sh ../shared/fer2013 > runs/recipe_proxies.log 2>&1 &
#   python scripts/compare_runs.py runs/proxy-*
#
# Resumable like train_checkpoints.sh: run it again after an interruption.
# Its runs in MODEL_CARD's tables started from CnnModel2 seed 0, not the one shipped now (footnote ⁴).
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET="${1:-../shared/fer2013}"
PY="${PYTHON:-python}"
EPOCHS="${EPOCHS:-4}"
source scripts/train_lib.sh
# the shipped recipe's light augmentation, a fine-tuning learning rate
BASE=(--epochs "$EPOCHS" --init space/checkpoints/cnn-model2 --lr 3e-4 --rotation 10 --scale 0.1 --erase 0)

train cnn-model2 runs/proxy-control "${BASE[@]}"
train cnn-model2 runs/proxy-logit-adjust "${BASE[@]}" --logit-adjust 1
train cnn-model2 runs/proxy-mixup-degrade "${BASE[@]}" --mixup 0.2 --degrade 0.3
train cnn-model2 runs/proxy-all "${BASE[@]}" --logit-adjust 1 --mixup 0.2 --degrade 0.3
