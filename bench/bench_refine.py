"""Code refinement (inference.refine_codes): reconstruction Dice and seconds per tree vs steps.

python bench/bench_refine.py [--checkpoint checkpoints/aae-lsgan-128] [--data runs/prepared-256.npz]
                             [--drive ../shared/data/drive] [--steps 0,25,50,100,200]

Two sets of trees the model never trained on: the held-out maps of its prepared set (every
10th id) and DRIVE test's hand-drawn maps. Seconds per tree: one tree at a time, as the app
encodes an interpolation end (torch's threads as set by OMP_NUM_THREADS).
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retinagan.inference import VesselGenerator  # noqa: E402
from retinagan.metrics.evaluate_vessels import drive_maps  # noqa: E402
from retinagan.metrics.segmentation import dice  # noqa: E402
from retinagan.pipeline import load_prepared  # noqa: E402
from retinagan.training.autoencoder import split_holdout  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default="checkpoints/aae-lsgan-128")
    parser.add_argument("--data", default="runs/prepared-256.npz")
    parser.add_argument("--drive", default="../shared/data/drive")
    parser.add_argument("--steps", default="0,25,50,100,200")
    args = parser.parse_args()
    generator = VesselGenerator.load(args.checkpoint)
    size = generator.model.config.image_size
    sets = {"DRIVE test": drive_maps(args.drive, "test", size)}
    if Path(args.data).is_file():
        prepared = load_prepared(args.data)
        sets = {"held-out": prepared.vessels[split_holdout(prepared.ids, 10)], **sets}
    print(f"{args.checkpoint}, torch threads {torch.get_num_threads()}")
    print("| steps | " + " | ".join(f"Dice, {name} ({len(maps)})" for name, maps in sets.items()) + " | code std | s per tree (one at a time) |")
    print("|---|" + "---|" * (len(sets) + 2))
    for steps in [int(s) for s in args.steps.split(",")]:
        scores, codes = [], None
        for maps in sets.values():
            codes = generator.encode(maps, refine=steps)
            scores.append(np.mean([dice(r, t) for r, t in zip(generator.decode(codes) >= 0.5, maps)]))
        start = time.perf_counter()
        for tree in list(sets.values())[-1][:3]:
            generator.encode(tree[None], refine=steps)
        seconds = (time.perf_counter() - start) / 3
        print(f"| {steps} | " + " | ".join(f"{s:.3f}" for s in scores) + f" | {codes.std():.2f} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
