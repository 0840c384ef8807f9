#!/usr/bin/env bash
# Round 2 of the photo detailer's adversarial fine-tunes on one GPU (round 1:
# scripts/gpu_photodetail_adversarial.sh, whose critics stayed near chance, hinge loss ~2): a
# critic trained alone first (--critic-warmup), faster (--critic-lr 1e-3), wider or deeper, a
# gentler adversarial weight, batch 32. Batch 16 unless named; snapshots at the steps listed.
#   MINUTES=6.5 INIT=runs/pd-gpu/diffusion PREPARED=runs/pd-gpu/prepared.npz OUT=/tmp/gpu-out bash scripts/gpu_photodetail_critic.sh
declare -A JOBS=(
  [w500-c1e3]="--batch-size 16 --critic-warmup 500 --critic-lr 1e-3 --steps 900 --snapshot-steps 550,600,700,900"
  [w500-c1e3-c64]="--batch-size 16 --critic-warmup 500 --critic-lr 1e-3 --critic-width 64 --steps 900 --snapshot-steps 550,600,700,900"
  [w500-c1e3-c64-l4]="--batch-size 16 --critic-warmup 500 --critic-lr 1e-3 --critic-width 64 --critic-layers 4 --steps 900 --snapshot-steps 550,600,700,900"
  [w500-c1e3-c64-aw03]="--batch-size 16 --critic-warmup 500 --critic-lr 1e-3 --critic-width 64 --adversarial-weight 0.3 --steps 1100 --snapshot-steps 600,700,900,1100"
  [w500-c64]="--batch-size 16 --critic-warmup 500 --critic-width 64 --steps 900 --snapshot-steps 550,600,700,900"
  [c1e3-c64]="--batch-size 16 --critic-lr 1e-3 --critic-width 64 --steps 400 --snapshot-steps 50,100,200,400"
  [c64-b32]="--batch-size 32 --critic-width 64 --steps 300 --snapshot-steps 50,100,150,300"
)
source "$(dirname "$0")/gpu_photodetail_adversarial.sh"
