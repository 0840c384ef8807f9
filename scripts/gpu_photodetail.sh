#!/usr/bin/env bash
# Train photo detailers of three widths side by side on one GPU against the same clock, then
# export them (fp16) and pack each as one .tgz plus logs.tgz (scripts/gpu_train.sh does the work).
#   MINUTES=6 PREPARED=runs/prepared-256.npz OUT=/tmp/gpu-out bash scripts/gpu_photodetail.sh
declare -A JOBS=(
  [pd-32]="photodetail --model.widths 32,64,96 --batch-size 32"
  [pd-48]="photodetail --model.widths 48,96,144 --batch-size 32"
  [pd-64]="photodetail --model.widths 64,128,192 --batch-size 32"
)
source "$(dirname "$0")/gpu_train.sh"
