#!/usr/bin/env bash
# Ingredients for a weight soup of CnnModel2 (issue 19): 4-epoch fine-tunes of the shipped
# weights with the recipe of runs/proxy-control (seed 0), each with another seed and, for
# diversity, one change (no weight average; a doubled learning rate). All stay in the shipped
# weights' basin, where averaging weights works (Wortsman et al. 2022, "Model soups"); then
#
#   fer-hub soup runs/soup space/checkpoints/cnn-model2 runs/proxy-* runs/soup-* --dataset ../shared/fer2013
#
#   nohup scripts/soup_ingredients.sh ../shared/fer2013 > runs/soup_ingredients.log 2>&1 &
#
# Resumable like train_checkpoints.sh: run it again after an interruption. `--init` names the
# shipped folder: the runs' metrics.json record the sha256 of the weights they started from.
# Its runs in MODEL_CARD's tables started from CnnModel2 seed 0, not the one shipped now (footnote ⁴).
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET="${1:-../shared/fer2013}"
PY="${PYTHON:-python}"
source scripts/train_lib.sh
BASE=(--epochs 4 --init space/checkpoints/cnn-model2 --rotation 10 --scale 0.1 --erase 0)

train cnn-model2 runs/soup-seed1 "${BASE[@]}" --lr 3e-4 --seed 1
train cnn-model2 runs/soup-seed2-no-ema "${BASE[@]}" --lr 3e-4 --seed 2 --ema 0
train cnn-model2 runs/soup-seed3-lr6e-4 "${BASE[@]}" --lr 6e-4 --seed 3
