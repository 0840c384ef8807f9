"""Procedural fine vessels (retinagan.fine_vessels): seconds per tree, and what they add.

python bench/bench_fine_vessels.py [--checkpoint checkpoints/aae-lsgan-128] [--n 50]

Samples n trees (seeds 0..n-1), then times add_fine_vessels on each alone (numpy/scipy/PIL,
one core; the model's own sampling is not counted) and prints the median and 90th percentile,
and the median centre-line length and vessel share before and after. Needs no data.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retinagan.fine_vessels import add_fine_vessels  # noqa: E402
from retinagan.inference import VesselGenerator  # noqa: E402
from retinagan.metrics.morphology import vessel_features  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default="checkpoints/aae-lsgan-128")
    parser.add_argument("--n", type=int, default=50)
    args = parser.parse_args()
    trees = VesselGenerator.load(args.checkpoint).sample(list(range(args.n))) >= 0.5
    seconds, out = [], []
    for seed, tree in enumerate(trees):
        start = time.perf_counter()
        out.append(add_fine_vessels(tree, seed))
        seconds.append(time.perf_counter() - start)
    before = [vessel_features(t) for t in trees]
    after = [vessel_features(t) for t in out]
    median = lambda rows, key: float(np.median([r[key] for r in rows]))  # noqa: E731
    print(f"{args.checkpoint}, {args.n} trees: {np.median(seconds):.3f} s per tree (median), {np.percentile(seconds, 90):.3f} s (90th percentile)")
    for key, label in (("skeleton_length", "centre-line length / side"), ("area_fraction", "vessel share"), ("components", "pieces")):
        print(f"  {label}: {median(before, key):.3f} -> {median(after, key):.3f}")


if __name__ == "__main__":
    main()
