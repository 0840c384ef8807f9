#!/usr/bin/env bash
# Second GPU round: continue the shipped models on one GPU, side by side against the same clock,
# then export them (fp16) and pack each as one .tgz plus logs.tgz (scripts/gpu_train.sh does the
# running and packing; this file is its job table).
#   MINUTES=7.3 OUT=/tmp/gpu-out bash scripts/gpu_finetune.sh
# Jobs: the 128-latent AAE continued (as is, and with two 128-px fine blocks + strong
# augmentation), the dual AAE retrained from scratch with the one-batch map discriminator, and
# the textured translator continued at batch 16 (two learning rates).
# Needs runs/prepared-256.npz (or PREPARED=...; a compressed copy loads the same).
# The shipped aae-lsgan-128 is this round's aae-lsgan-128-fine (exported) continued 2 more minutes:
#   python train.py aae --adversarial lsgan --init runs/gpu2/export/aae-lsgan-128-fine --model.fine-blocks 2 \
#     --augment strong --batch-size 32 --lr 1e-3 --steps 200000 --time-limit-min 2 --output runs/f2
# (beside the same with --lr 3e-4; held-out refined Dice 0.604 and 0.600.)
MINUTES=${MINUTES:-7.5}
RUNS=${RUNS:-runs/gpu2}
TEXTURE="--init checkpoints/pix2pix-grade --model.noise-levels 2 --l1-lowpass 1.0 --l1-detail-weight 0.1 --batch-size 16"
declare -A JOBS=(
  [aae-lsgan-128-more]="aae --adversarial lsgan --init checkpoints/aae-lsgan-128 --batch-size 32"
  [aae-lsgan-128-fine]="aae --adversarial lsgan --init checkpoints/aae-lsgan-128 --model.fine-blocks 2 --augment strong --batch-size 32"
  [aae-dual-128]="aae --adversarial lsgan --dual --batch-size 32"
  [pix2pix-grade-a]="pix2pix $TEXTURE"
  [pix2pix-grade-b]="pix2pix $TEXTURE --lr 1e-4 --ema-decay 0.999"
)
source "$(dirname "$0")/gpu_train.sh"
