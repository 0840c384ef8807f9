#!/usr/bin/env bash
# Train every shipped model side by side on one GPU, each against the same clock, then export
# them (fp16) and pack each as one .tgz (checkpoint folder) plus logs.tgz (stats, sample grids).
#   MINUTES=7 OUT=/tmp/gpu-out bash scripts/gpu_train.sh
# Needs runs/prepared-256.npz (python -m retinagan prepare ..., see train_stage1.sh).
# Another job table: declare JOBS (name -> train.py arguments) and source this file
# (scripts/gpu_finetune.sh does).
set -uo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-7}
OUT=${OUT:-runs/gpu-out}
PY=${PY:-python3}
PREPARED=${PREPARED:-runs/prepared-256.npz}
RUNS=${RUNS:-runs/gpu}
DEVICE=${DEVICE:-auto}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PYTHONUNBUFFERED=1
COMMON="--steps 200000 --time-limit-min $MINUTES --sample-every 2000 --state-every 5000 --log-every 100 --device $DEVICE"
if ! declare -p JOBS >/dev/null 2>&1; then
  source scripts/stage1_variants.sh
  declare -A JOBS=([pix2pix]="pix2pix --batch-size 16")
  for name in "${!ARGS[@]}"; do JOBS[$name]="${ARGS[$name]} --batch-size 32"; done
fi
mkdir -p "$RUNS" "$OUT"
nvidia-smi -L || true
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
for name in "${!JOBS[@]}"; do
  $PY train.py ${JOBS[$name]} --data "$PREPARED" --output "$RUNS/$name" $COMMON > "$RUNS/$name.log" 2>&1 &
done
wait
nvidia-smi --query-gpu=name,memory.used --format=csv || true
for name in "${!JOBS[@]}"; do
  tail -c 400 "$RUNS/$name.log" | tr '\r' '\n' | tail -3; echo
  $PY -m retinagan export --checkpoint "$RUNS/$name/checkpoint" --output "$RUNS/export/$name" \
    && tar czf "$OUT/$name.tgz" -C "$RUNS/export" "$name"
  $PY -c "import json,sys; c=json.load(open(sys.argv[1])); print(sys.argv[1], c['steps'], 'steps', c['wall_time_s'], 's', c.get('metrics'))" "$RUNS/$name/checkpoint/config.json"
done
tar czf "$OUT/logs.tgz" --exclude='state-*' --exclude='checkpoint' --exclude='export' "$RUNS"
ls -la "$OUT"
