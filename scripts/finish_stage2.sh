#!/usr/bin/env bash
# After training: ship the translator, score it, build the app's atlases, make the README's
# pictures and screenshots.
#   PY=python PREPARED=runs/prepared-256.npz RUN=runs/pix2pix-grade bash scripts/finish_stage2.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
PREPARED=${PREPARED:-runs/prepared-256.npz}
RUN=${RUN:-runs/pix2pix-grade}  # a `train.py pix2pix` run (grades and lesion maps: the defaults)
MODELS=(aae-lsgan-128 aae-bce-128 aae-dual-128 vae-128 aae-lsgan-32)
$PY -m retinagan export --checkpoint "$RUN/checkpoint" --output checkpoints/pix2pix-grade
$PY -m retinagan evaluate fundus --checkpoint checkpoints/pix2pix-grade --real "$PREPARED" \
  --vessels checkpoints/aae-lsgan-128 --n 87 --json --store | tail -1 > "$RUN/eval-fundus.json"
$PY -m retinagan evaluate control --real "$PREPARED" --json --store | tail -1 > docs/results/control.json
for name in "${MODELS[@]}"; do
  [ -f "checkpoints/$name/config.json" ] && $PY -m retinagan atlas --checkpoint "checkpoints/$name" --data "$PREPARED"
done
$PY scripts/make_figures.py samples $(for n in "${MODELS[@]}"; do [ -f "checkpoints/$n/config.json" ] && echo "checkpoints/$n"; done)
$PY scripts/make_figures.py pairs checkpoints/aae-lsgan-128 checkpoints/pix2pix-grade
$PY scripts/make_figures.py grades checkpoints/aae-lsgan-128 checkpoints/pix2pix-grade
RETINAGAN_SCREENSHOTS=docs/screens $PY -m pytest -q tests/test_browser.py
$PY scripts/results_table.py
