#!/usr/bin/env bash
# Train, export (fp16) and evaluate the shipped Stage 1 vessel-tree generators.
#   DATA=../shared/data STEPS=1500 bash scripts/train_stage1.sh [variant ...]
# Needs a prepared set: python -m retinagan prepare --data $DATA/drive/training \
#   --data $DATA/eyepacs --data $DATA/idrid --output runs/prepared-256.npz
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
STEPS=${STEPS:-1500}
PREPARED=${PREPARED:-runs/prepared-256.npz}
PY=${PY:-python}
source scripts/stage1_variants.sh
variants=("$@")
[ ${#variants[@]} -eq 0 ] && variants=(aae-lsgan-128 aae-dual-128 aae-bce-128 vae-128 aae-lsgan-32)
for name in "${variants[@]}"; do
  $PY train.py ${ARGS[$name]} --data "$PREPARED" --output "runs/$name" --steps "$STEPS"
  $PY -m retinagan export --checkpoint "runs/$name/checkpoint" --output "checkpoints/$name"
  $PY -m retinagan evaluate vessels --checkpoint "checkpoints/$name" --drive "$DATA/drive" --json --store | tail -1 > "runs/$name/eval.json"
done
