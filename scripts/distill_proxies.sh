#!/usr/bin/env bash
# Short proxy runs for CustomCNN (issue 19): does distilling from the shipped CnnModel2 (a
# teacher about 5 points stronger on validation) beat the same fine-tune without a teacher?
# Compared on validation only:
#
#   PYTHON=.venv/bin/python nohup scripts/distill_proxies.sh ../shared/fer2013 > runs/distill_proxies.log 2>&1 &
#   python scripts/compare_runs.py space/checkpoints/custom-cnn runs/custom-*
#
# Resumable: run it again after an interruption.
# Its runs in MODEL_CARD's tables learned from CnnModel2 seed 0, not the one shipped now (footnote ⁴).
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET="${1:-../shared/fer2013}"
PY="${PYTHON:-python}"
EPOCHS="${EPOCHS:-6}"
source scripts/train_lib.sh
BASE=(--epochs "$EPOCHS" --init space/checkpoints/custom-cnn --lr 3e-4 --rotation 10 --scale 0.1 --erase 0)

train custom-cnn runs/custom-control "${BASE[@]}"
train custom-cnn runs/custom-distill "${BASE[@]}" --teacher space/checkpoints/cnn-model2 --distill 0.5
