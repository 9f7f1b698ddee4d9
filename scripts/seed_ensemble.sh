#!/usr/bin/env bash
# CnnModel2 from an ensemble teacher (issue 19), on the CPU, in long runs:
#   1. the shipped CnnModel2's recipe at seed 1 (the first shipped one was seed 0, trained on an
#      H100 without re-estimating the weight average's BatchNorm statistics; it is kept as
#      runs/cnn-model2-seed0), with the weight average's BatchNorm statistics re-estimated before
#      each validation. Its default scoring beat seed 0's on validation (68.51% against 68.26%),
#      so it ships as space/checkpoints/cnn-model2, and a fresh clone does not train it again;
#   2. the same recipe at seed 2, so that three seeds give the recipe's spread;
#   3. a CnnModel2 (seed 4) distilled from the three seeds (the mean of their flip-averaged soft
#      targets): independent seeds disagree where single models err, so their mean is a teacher
#      stronger than any one of them. On test, read after seed 1 was chosen, the student of two
#      seeds was the best CnnModel2 so far (MODEL_CARD, "Seed 1 replaces seed 0"), so a stronger
#      teacher is the next candidate, chosen on validation like any;
#   4. that student of two seeds (seed 3, from seeds 0 and 1; validation, flip TTA: their mean
#      68.77% against 67.93% and 68.10%), which did not beat seed 1 on validation. It comes last
#      because nothing depends on it: it reproduces a row of the every-run table.
# Then it compares them on validation only (scripts/compare_runs.py); a model ships only if it
# beats the shipped one there.
#
#   nohup scripts/seed_ensemble.sh ../shared/fer2013 >> runs/seed_ensemble.log 2>&1 &
#
# Resumable like train_checkpoints.sh: run it again after an interruption. On a 2-core CPU with
# native bf16 (AVX-512 BF16, which training then uses) each run takes about 3.5 hours; on one
# without (AVX2 only) training runs in float32, as seed 0's did on the GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET="${1:-../shared/fer2013}"
PY="${PYTHON:-python}"
THREADS=0  # one per core: the flag seed 1's run started with
source scripts/train_lib.sh
SHIPPED=(--epochs 60 --rotation 10 --scale 0.1 --erase 0 --ema-batchnorm 8192)

# seed 0, the first shipped CnnModel2 (on a GPU, as train_checkpoints.sh trained it then)
train cnn-model2 runs/cnn-model2-seed0 --epochs 60 --rotation 10 --scale 0.1 --erase 0
TEACHERS=(runs/cnn-model2-seed0 space/checkpoints/cnn-model2)  # seeds 0 and 1
train cnn-model2 runs/cnn-model2-seed2 "${SHIPPED[@]}" --seed 2
TEACHERS3=("${TEACHERS[@]}" runs/cnn-model2-seed2)
train cnn-model2 runs/cnn-model2-distilled-3seeds "${SHIPPED[@]}" --seed 4 --teacher "${TEACHERS3[@]}"
train cnn-model2 runs/cnn-model2-distilled-2seeds "${SHIPPED[@]}" --seed 3 --teacher "${TEACHERS[@]}"
# validation only: the three seeds' mean, then the shipped one beside seed 2 and the students
"$PY" scripts/compare_runs.py "${TEACHERS3[@]}" --ensemble --dataset "$DATASET"
"$PY" scripts/compare_runs.py space/checkpoints/cnn-model2 runs/cnn-model2-seed2 runs/cnn-model2-distilled-3seeds runs/cnn-model2-distilled-2seeds --dataset "$DATASET"
