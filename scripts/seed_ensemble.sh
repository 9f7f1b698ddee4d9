#!/usr/bin/env bash
# CnnModel2 from an ensemble teacher (issue 19), on the CPU, in three long runs:
#   1-2. the shipped CnnModel2's recipe at seeds 1 and 2 (the shipped one is seed 0), with the
#        weight average's BatchNorm statistics re-estimated before each validation, so the three
#        seeds give the recipe's spread;
#   3.   a CnnModel2 distilled from the ensemble of all three (the mean of their flip-averaged
#        soft targets): independent seeds disagree where single models err, so their mean is a
#        teacher clearly stronger than any one of them, as fine-tunes of one model were not.
# Then it compares them on validation only (scripts/compare_runs.py); a model ships only if it
# beats the shipped one there.
#
#   nohup scripts/seed_ensemble.sh ../shared/fer2013 >> runs/seed_ensemble.log 2>&1 &
#
# Resumable like train_checkpoints.sh: run it again after an interruption. On a 2-core CPU with
# native bf16 (AVX-512 BF16, which training then uses) each run takes about 3.5 hours.
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET="${1:-../shared/fer2013}"
PY="${PYTHON:-python}"
THREADS=0  # one per core: the flag seed 1's run started with
source scripts/train_lib.sh
SHIPPED=(--epochs 60 --rotation 10 --scale 0.1 --erase 0 --ema-batchnorm 8192)

train cnn-model2 runs/cnn-model2-seed1-bf16 "${SHIPPED[@]}" --seed 1
train cnn-model2 runs/cnn-model2-seed2-bf16 "${SHIPPED[@]}" --seed 2
TEACHERS=(space/checkpoints/cnn-model2 runs/cnn-model2-seed1-bf16 runs/cnn-model2-seed2-bf16)
train cnn-model2 runs/cnn-model2-ensemble-distilled "${SHIPPED[@]}" --seed 3 --teacher "${TEACHERS[@]}"
# validation only: each seed and their mean (the teacher), then the student beside the shipped one
"$PY" scripts/compare_runs.py "${TEACHERS[@]}" --ensemble --dataset "$DATASET"
"$PY" scripts/compare_runs.py space/checkpoints/cnn-model2 runs/cnn-model2-ensemble-distilled --dataset "$DATASET"
