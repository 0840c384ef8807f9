#!/usr/bin/env bash
# Continue the shipped photo detailer on one GPU: three continuations side by side against the
# same clock (batch 32 at lr 2e-4 and 1e-4, batch 64 at 2e-4; each a fresh cosine to lr / 10),
# then export them (fp16) and pack each as one .tgz plus logs.tgz (scripts/gpu_train.sh does the work).
#   MINUTES=7.8 PREPARED=runs/pd-gpu/prepared.npz OUT=/tmp/gpu-out bash scripts/gpu_photodetail_continue.sh
INIT=${INIT:-checkpoints/photodetail}
declare -A JOBS=(
  [pdc-b32]="photodetail --init $INIT --batch-size 32"
  [pdc-b32-lr1]="photodetail --init $INIT --batch-size 32 --lr 1e-4"
  [pdc-b64]="photodetail --init $INIT --batch-size 64"
)
source "$(dirname "$0")/gpu_train.sh"
