#!/usr/bin/env bash
# Round 3 on one GPU: the diffusion photo detailer continued at a coarser split (sigma 6 and 8 px:
# it redraws everything finer than that Gaussian; the band-swap diagnostic put part of the FID gap
# in the 4-16 px bands), plain diffusion (batch 32, lr 1e-4, bf16); beside them the adversarial
# fine-tune at sigma 4 with five critic updates a step. INIT6/INIT8: the diffusion detailer's
# checkpoint with model_config.sigma set to 6 / 8 (the weights as they are).
#   MINUTES=3 PREPARED=runs/pd-gpu/prepared.npz OUT=/tmp/gpu-out bash scripts/gpu_photodetail_sigma.sh
PLAIN="--adversarial-weight 0 --lr 1e-4 --ema-decay 0.999 --self-condition 0.5 --bf16 --batch-size 32 --steps 100000"
declare -A JOBS=(
  [sigma6]="--init ${INIT6:-runs/pd-gpu/diffusion-s6} $PLAIN"
  [sigma8]="--init ${INIT8:-runs/pd-gpu/diffusion-s8} $PLAIN"
  [c1e3-c64-n5]="--batch-size 16 --critic-lr 1e-3 --critic-width 64 --critic-steps 5 --steps 300 --snapshot-steps 100,200,300"
)
source "$(dirname "$0")/gpu_photodetail_adversarial.sh"
