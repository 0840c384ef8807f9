"""Does reading a vessel model's soft output more carefully than `>= 0.5` bring its samples'
morphology nearer real trees? (figures printed; a measurement, not a feature)

python scripts/binarisation_check.py [checkpoints/aae-lsgan-128] [../shared/data/drive] [--n 100]

The decoder's faint branches (probability 0.15-0.5) are its own vessels that the 0.5 threshold
erases. Each rule below binarises the same n samples (seeds 0..n-1), scored as
`evaluate vessels` scores them (morphology distance to DRIVE test's hand-drawn maps, and that
over the real-vs-real floor): `t0.5` (what `generate` writes); `hystLOW` (hysteresis: pixels
>= LOW joined to pixels >= 0.5); `core+skelLOW` (the 0.5 map plus the 1-px centre lines of the
>= LOW map); `skelcore+skelLOW` (centre lines only). About 1 min on one core.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
from skimage.filters import apply_hysteresis_threshold
from skimage.morphology import skeletonize

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retinagan.inference import VesselGenerator  # noqa: E402
from retinagan.metrics.evaluate_vessels import drive_maps  # noqa: E402
from retinagan.metrics.morphology import feature_table, morphology_distance  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default="checkpoints/aae-lsgan-128")
    parser.add_argument("drive", nargs="?", default="../shared/data/drive")
    parser.add_argument("--n", type=int, default=100)
    args = parser.parse_args()
    generator = VesselGenerator.load(args.checkpoint)
    size = generator.model.config.image_size
    soft = generator.sample(list(range(args.n)))
    test = feature_table(drive_maps(args.drive, "test", size))
    floor = morphology_distance(test, feature_table(drive_maps(args.drive, "training", size)))["mean"]
    rules = {"t0.5": lambda s: s >= 0.5}
    for low in (0.15, 0.25, 0.35):
        rules[f"hyst{low}"] = lambda s, low=low: apply_hysteresis_threshold(s, low, 0.5)
        rules[f"core+skel{low}"] = lambda s, low=low: (s >= 0.5) | skeletonize(s >= low)
        rules[f"skelcore+skel{low}"] = lambda s, low=low: skeletonize(s >= 0.5) | skeletonize(s >= low)
    for name, rule in rules.items():
        maps = np.stack([rule(s) for s in soft])
        distance = morphology_distance(test, feature_table(maps))
        print(json.dumps({"rule": name, "morphology_distance": round(distance["mean"], 3), "x_floor": round(distance["mean"] / floor, 2),
                          "vessel_share": round(float(maps.mean()), 4), **{k: round(v, 2) for k, v in distance.items() if k != "mean"}}))


if __name__ == "__main__":
    main()
