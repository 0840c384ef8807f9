"""The photo detailer (retinagan.models.photodetail): seconds per photo by sampling steps and
precision, beside the translation itself.

python bench/bench_photodetail.py [--photo-detail checkpoints/photodetail] [--translator checkpoints/pix2pix-grade]
                                  [--vessels checkpoints/aae-lsgan-128] [--n 8] [--steps 3,10,25]

Samples n trees (seeds 0..n-1) and translates them, then redraws each photo's detail alone at each
step count, in float32 and (where the CPU or GPU has bf16 units) bf16 autocast, and prints seconds
per photo and how far the detail moves a pixel (mean absolute change, grey levels). Needs no data.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retinagan.checkpoint import load_model  # noqa: E402
from retinagan.data.preprocess import fov_disc  # noqa: E402
from retinagan.inference import FundusTranslator, VesselGenerator  # noqa: E402
from retinagan.training.common import bf16_units  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photo-detail", default="checkpoints/photodetail")
    parser.add_argument("--translator", default="checkpoints/pix2pix-grade")
    parser.add_argument("--vessels", default="checkpoints/aae-lsgan-128")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--steps", default="3,10,25")
    args = parser.parse_args()
    detailer, _ = load_model(args.photo_detail, expected_kind="photodetail")
    seeds = list(range(args.n))
    trees = VesselGenerator.load(args.vessels).sample(seeds)
    translator = FundusTranslator.load(args.translator)
    fovs = np.repeat(fov_disc(trees.shape[-1])[None], args.n, 0)
    start = time.perf_counter()
    photos = translator.translate(trees, fovs, look_seed=seeds)
    print(f"{args.photo_detail} on {args.translator}'s photos of {args.vessels} samples, {args.n} photos, {torch.get_num_threads()} threads")
    print(f"  translation: {(time.perf_counter() - start) / args.n:.2f} s per photo")
    inside = fovs[..., None].repeat(3, -1)
    for bf16 in (False, True) if bf16_units() else (False,):
        for steps in (int(s) for s in args.steps.split(",")):
            detailer.draw(photos[:1], trees[:1] >= 0.5, fovs[:1], seeds[:1], steps=1, bf16=bf16)  # warm-up
            start = time.perf_counter()
            drawn = detailer.draw(photos, trees >= 0.5, fovs, seeds, steps=steps, bf16=bf16)
            seconds = (time.perf_counter() - start) / args.n
            change = np.abs(drawn.astype(np.int16) - photos)[inside].mean()
            print(f"  {'bf16' if bf16 else 'fp32'} {steps:3d} steps: {seconds:.2f} s per photo; a pixel moves {change:.1f} grey levels")


if __name__ == "__main__":
    main()
