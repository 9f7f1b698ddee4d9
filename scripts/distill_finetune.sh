#!/usr/bin/env bash
# A CnnModel2 candidate that fits in one CPU session (issue 19): the shipped CnnModel2 (seed 1)
# fine-tuned for 4 epochs toward the mean of its own and seed 0's flip-averaged soft targets.
# From scratch, a student of those two seeds beat both on test but not on validation, and a
# 60-epoch run outlives a session on a 2-core CPU; starting from the shipped weights keeps what
# they know and moves them toward the pair's mean (68.77% on validation with flip TTA, against
# 67.93% and 68.10%: scripts/seed_ensemble.sh). Chosen like any run, on validation only:
#
#   PYTHON=.venv/bin/python nohup scripts/distill_finetune.sh ../shared/fer2013 >> runs/distill_finetune.log 2>&1 &
#   python scripts/compare_runs.py space/checkpoints/cnn-model2 runs/cnn-model2-ft-distilled* --dataset ../shared/fer2013
#
# Resumable: run it again after an interruption. Needs runs/cnn-model2-seed0: commit 1e42a2e's
# space/checkpoints/cnn-model2 (MODEL_CARD, footnote 4), or seed_ensemble.sh trains it.
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET="${1:-../shared/fer2013}"
PY="${PYTHON:-python}"
THREADS=0
source scripts/train_lib.sh
BASE=(--epochs 4 --init space/checkpoints/cnn-model2 --lr 3e-4 --rotation 10 --scale 0.1 --erase 0 --ema-batchnorm 8192)
TEACHERS=(runs/cnn-model2-seed0 space/checkpoints/cnn-model2)  # seeds 0 and 1

train cnn-model2 runs/cnn-model2-ft-distilled "${BASE[@]}" --seed 5 --teacher "${TEACHERS[@]}"
train cnn-model2 runs/cnn-model2-ft-distilled-0.8 "${BASE[@]}" --seed 6 --teacher "${TEACHERS[@]}" --distill 0.8
