"""The detailer (retinagan.models.detail): seconds per tree by sampling steps and precision, and
what the steps change in the trees.

python bench/bench_detail.py [--detailer checkpoints/detail] [--vessels checkpoints/aae-lsgan-128] [--n 8] [--steps 25,50,100]

Samples n coarse trees (seeds 0..n-1), then redraws each alone with the detailer at each step
count, in float32 and (where the CPU or GPU has bf16 units) bf16 autocast, and prints seconds per
tree and the median centre-line length and pieces per tree. Needs no data.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retinagan.data.preprocess import fov_disc  # noqa: E402
from retinagan.inference import VesselGenerator, load_detailer  # noqa: E402
from retinagan.metrics.morphology import vessel_features  # noqa: E402
from retinagan.training.common import bf16_units  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--detailer", default="checkpoints/detail")
    parser.add_argument("--vessels", default="checkpoints/aae-lsgan-128")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--steps", default="25,50,100")
    args = parser.parse_args()
    detailer, _ = load_detailer(args.detailer)
    seeds = list(range(args.n))
    coarse = VesselGenerator.load(args.vessels).sample(seeds)
    fovs = np.repeat(fov_disc(coarse.shape[-1])[None], args.n, 0)
    print(f"{args.detailer} on {args.vessels}, {args.n} trees, {torch.get_num_threads()} threads")
    for bf16 in (False, True) if bf16_units() else (False,):
        for steps in (int(s) for s in args.steps.split(",")):
            detailer.draw(coarse[:1], fovs[:1], seeds[:1], steps=2, bf16=bf16)  # warm-up
            start = time.perf_counter()
            drawn = detailer.draw(coarse, fovs, seeds, steps=steps, bf16=bf16)
            seconds = (time.perf_counter() - start) / args.n
            rows = [vessel_features(tree) for tree in drawn]
            length = np.median([r["skeleton_length"] for r in rows])
            pieces = np.median([r["components"] for r in rows])
            print(f"  {'bf16' if bf16 else 'fp32'} {steps:3d} steps: {seconds:.2f} s per tree; centre line {length:.1f} sides, {pieces:.0f} pieces")


if __name__ == "__main__":
    main()
