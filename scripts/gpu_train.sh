#!/usr/bin/env bash
# Train every shipped model side by side on one GPU, each against the same clock, then export
# them (fp16) and pack each as one .tgz (checkpoint folder) plus logs.tgz (stats, sample grids).
#   MINUTES=7 OUT=/tmp/gpu-out bash scripts/gpu_train.sh
# Needs runs/prepared-256.npz (python -m retinagan prepare ..., see train_stage1.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-7}
OUT=${OUT:-runs/gpu-out}
PY=${PY:-python3}
PREPARED=${PREPARED:-runs/prepared-256.npz}
RUNS=${RUNS:-runs/gpu}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PYTHONUNBUFFERED=1
source scripts/stage1_variants.sh
COMMON="--steps 200000 --time-limit-min $MINUTES --sample-every 2000 --state-every 5000 --log-every 100"
mkdir -p "$RUNS" "$OUT"
nvidia-smi -L || true
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
for name in "${!ARGS[@]}"; do
  $PY train.py ${ARGS[$name]} --data "$PREPARED" --output "$RUNS/$name" --batch-size 32 $COMMON > "$RUNS/$name.log" 2>&1 &
done
$PY train.py pix2pix --data "$PREPARED" --output "$RUNS/pix2pix" --batch-size 16 $COMMON > "$RUNS/pix2pix.log" 2>&1 &
wait
nvidia-smi --query-gpu=name,memory.used --format=csv || true
for name in "${!ARGS[@]}" pix2pix; do
  tail -c 400 "$RUNS/$name.log"; echo
  $PY -m retinagan export --checkpoint "$RUNS/$name/checkpoint" --output "$RUNS/export/$name" \
    && tar czf "$OUT/$name.tgz" -C "$RUNS/export" "$name"
  $PY -c "import json,sys; c=json.load(open(sys.argv[1])); print(sys.argv[1], c['steps'], 'steps', c['wall_time_s'], 's', c['metrics'])" "$RUNS/$name/checkpoint/config.json"
done
tar czf "$OUT/logs.tgz" --exclude='state-*' --exclude='checkpoint' --exclude='export' "$RUNS"
ls -la "$OUT"
