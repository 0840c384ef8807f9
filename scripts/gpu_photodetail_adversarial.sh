#!/usr/bin/env bash
# Adversarial fine-tunes of the photo detailer (train.py photodetail --adversarial-weight) side by
# side on one GPU against the same clock, each saving its EMA weights (float16) at a few steps;
# packs each run's snapshots as one .tgz plus logs.tgz. Score them afterwards on the mirror
# pairing (python scripts/photodetail_steps.py --steps 3 --photo-detail SNAPSHOT...).
#   MINUTES=7 INIT=runs/pd-gpu/diffusion PREPARED=runs/pd-gpu/prepared.npz OUT=/tmp/gpu-out bash scripts/gpu_photodetail_adversarial.sh
# INIT: the diffusion detailer before its fine-tune (git show 852227f:checkpoints/photodetail/...).
# Another job table: declare JOBS (name -> train.py arguments after $TUNE, the recipe) and source this
# file (scripts/gpu_photodetail_critic.sh does).
# EXTRA: arguments appended to every run (a smoke test: EXTRA="--steps 2 --snapshot-steps 1,2 --batch-size 2" DEVICE=cpu).
set -uo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-7}
OUT=${OUT:-runs/gpu-out}
PY=${PY:-python3}
PREPARED=${PREPARED:-runs/prepared-256.npz}
INIT=${INIT:-runs/pd-gpu/diffusion}
RUNS=${RUNS:-runs/gpu-adv}
DEVICE=${DEVICE:-auto}
EXTRA=${EXTRA:-}
KILL_AFTER=${KILL_AFTER:-$(awk "BEGIN {print int($MINUTES * 60 + 90)}")}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PYTHONUNBUFFERED=1
# the CPU recipe of the shipped fine-tune (2026-11-28), then variants of it
TUNE="photodetail --init $INIT --adversarial-weight 1 --adversarial-steps 3 --lr 2e-5 --ema-decay 0.995 --self-condition 0 --no-bf16"
declare -p JOBS >/dev/null 2>&1 || declare -A JOBS=(
  [adv-b4]="--batch-size 4 --steps 300 --snapshot-steps 150,200,250,300"
  [adv-b16]="--batch-size 16 --steps 400 --snapshot-steps 100,200,300,400"
  [adv-b16-l4]="--batch-size 16 --critic-layers 4 --steps 400 --snapshot-steps 100,200,300,400"
  [adv-b16-c64]="--batch-size 16 --critic-width 64 --steps 400 --snapshot-steps 100,200,300,400"
  [adv-b16-slow]="--batch-size 16 --lr 1e-5 --adversarial-weight 0.5 --steps 800 --snapshot-steps 200,400,600,800"
)
COMMON="--data $PREPARED --time-limit-min $MINUTES --log-every 10 --sample-every 100000 --state-every 100000 --device $DEVICE"
mkdir -p "$RUNS" "$OUT"
nvidia-smi -L || true
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
for name in "${!JOBS[@]}"; do
  timeout "$KILL_AFTER" $PY train.py $TUNE ${JOBS[$name]} $COMMON $EXTRA --output "$RUNS/$name" > "$RUNS/$name.log" 2>&1 &
done
wait
nvidia-smi --query-gpu=name,memory.used --format=csv || true
for name in "${!JOBS[@]}"; do
  tail -c 300 "$RUNS/$name.log" | tr '\r' '\n' | tail -2; echo
  final="$RUNS/$name/checkpoint"
  if [ -f "$final/config.json" ]; then
    read -r steps seconds < <($PY -c "import json,sys; c=json.load(open(sys.argv[1])); print(c['steps'], c['wall_time_s'])" "$final/config.json")
    echo "$name: $steps steps in $seconds s"
    last="$RUNS/$name/snapshots/step-$(printf %06d "$steps")"  # a run cut by the clock: its final weights too
    [ -d "$last" ] || $PY -m retinagan export --checkpoint "$final" --output "$last"
  fi
  [ -d "$RUNS/$name/snapshots" ] && tar czf "$OUT/$name.tgz" -C "$RUNS/$name" snapshots
done
tar czf "$OUT/logs.tgz" --exclude='snapshots' --exclude='checkpoint' --exclude='state-*' --exclude='samples' "$RUNS"
ls -la "$OUT"
