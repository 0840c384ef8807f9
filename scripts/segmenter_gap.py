"""How far a trained segmenter's DRIVE test Dice falls below its own training Dice (figures printed)

python scripts/segmenter_gap.py FOLDER [FOLDER ...] [--drive ../shared/data/drive] [--real-count K]

For each segmenter (a folder saved by scripts/mixing_batchnorm.py or `train.py segmenter`): the
Dice-maximising threshold on the DRIVE training photos it was trained on (all 20, or --real-count
K of them, spread as mixing_batchnorm.py spreads them), the Dice there (train), the Dice on DRIVE test
at that threshold (the protocol's score), and on test at test's own best threshold (oracle, never a
reported score: it tells a threshold that does not carry over from a segmenter that ranks pixels worse).
gap = train - test. Extra training pairs (synthetic ones) can close a gap; where there is none,
the segmenter is held back by what it can fit, not by how few photos it saw.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retinagan.inference import Segmenter
from retinagan.metrics.evaluate_segmenter import drive_probabilities, score_probabilities
from retinagan.metrics.segmentation import best_threshold


def pooled(results) -> tuple[np.ndarray, np.ndarray]:
    """All FOV pixels of drive_probabilities' results: (probabilities, manual labels)."""
    return np.concatenate([prob[mask] for prob, _, mask in results]), np.concatenate([manual[mask] for _, manual, mask in results])


def generalisation_gap(training, test) -> dict:
    """Train and test Dice at the threshold chosen on TRAINING (drive_probabilities' results, both)."""
    chosen, oracle = best_threshold(*pooled(training)), best_threshold(*pooled(test))
    train_dice = score_probabilities(training, "training", chosen)["dice"]
    test_dice = score_probabilities(test, "test", chosen)["dice"]
    return {"threshold": round(float(chosen), 3), "train_dice": round(train_dice, 4), "test_dice": round(test_dice, 4),
            "gap": round(train_dice - test_dice, 4), "test_oracle_threshold": round(float(oracle), 3),
            "test_dice_oracle": round(score_probabilities(test, "test", oracle)["dice"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--drive", default="../shared/data/drive")
    parser.add_argument("--real-count", type=int, default=20, help="the segmenters saw only this many of DRIVE's 20 training pairs")
    args = parser.parse_args()
    if not 1 <= args.real_count <= 20:
        parser.error(f"--real-count must be within 1 and 20, not {args.real_count}")
    images = None
    if args.real_count < 20:
        images = np.unique(np.round(np.linspace(0, 19, args.real_count)).astype(int)).tolist()
    for folder in args.folders:
        segmenter = Segmenter.load(folder)
        training = drive_probabilities(segmenter, args.drive, "training", progress=False)
        if images is not None:
            training = [training[k] for k in images]
        test = drive_probabilities(segmenter, args.drive, "test", progress=False)
        print(json.dumps({"segmenter": str(folder), **generalisation_gap(training, test)}), flush=True)


if __name__ == "__main__":
    main()
