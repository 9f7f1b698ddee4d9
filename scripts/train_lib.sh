# Sourced by the training scripts: `train MODEL OUT FLAGS...` runs one train_hub.py run into
# OUT, resuming it if a previous invocation stopped part-way and skipping it if it finished.
# Needs DATASET and PY set.

train() {  # model, output folder, extra flags...
  local model="$1" out="$2"; shift 2
  local resume=()
  if [ -f "$out/training_state.pt" ]; then
    resume=(--resume)
  elif [ -f "$out/model.safetensors" ]; then
    echo "[$out] already trained"; return 0
  fi
  echo "[$out] $(date -u +%FT%TZ) start ${resume[*]:-}"
  # Fixed thread count: a resumed CPU run reproduces an unbroken one only with the same threads
  # (THREADS=0: no flag, torch's default of one per core).
  local threads=(--threads "${THREADS:-2}")
  [ "${THREADS:-2}" = 0 ] && threads=()
  "$PY" train_hub.py --model "$model" --recipe strong --dataset "$DATASET" "${threads[@]}" \
    --save-dtype float16 --output "$out" "$@" "${resume[@]}"
}
