"""How far a trained segmenter's DRIVE test Dice falls below its own training Dice (figures printed)

python scripts/segmenter_gap.py FOLDER [FOLDER ...] [--drive ../shared/data/drive] [--real-count K]
python scripts/segmenter_gap.py --references [--drive ../shared/data/drive] [--fov-width 256]

For each segmenter (a folder saved by scripts/mixing_batchnorm.py or `train.py segmenter`): the
Dice-maximising threshold on the DRIVE training photos it was trained on (all 20, or --real-count
K of them, spread as mixing_batchnorm.py spreads them), the Dice there (train), the Dice on DRIVE test
at that threshold (the protocol's score), and on test at test's own best threshold (oracle, never a
reported score: it tells a threshold that does not carry over from a segmenter that ranks pixels worse).
gap = train - test. Extra training pairs (synthetic ones) can close a gap; where there is none,
the segmenter is held back by what it can fit, not by how few photos it saw. With --real-count K,
also the Dice on the other 20 - K training photos, which it never saw (unseen_train_dice; gap_unseen =
train - unseen): the same camera and annotators as its own, so no test-set difference in between.
DRIVE's photos differ in difficulty: run a segmenter that saw all 20 with the same --real-count to
see how the two groups of photos differ for a segmenter that saw both.
--references: what a Dice on DRIVE test can be measured against, no segmenter needed: the second
observer's maps (test/2nd_manual) scored against the first's, the reference every DRIVE Dice uses
(how far two experts agree); and the first observer's own maps taken to the protocol's size (FOV
FOV_WIDTH px wide, area-averaged) and back (bilinear), at their best threshold: the most a segmenter
working at that size could score, were it perfect there; and the second observer's maps through
the same round trip (at 0.5) against the first's: how far two experts agree at that size.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retinagan.data.imageio import read_mask
from retinagan.data.preprocess import fov_box
from retinagan.data.readers import read_drive
from retinagan.inference import Segmenter
from retinagan.metrics.evaluate_segmenter import drive_probabilities, pooled, score_probabilities
from retinagan.metrics.segmentation import best_threshold, dice
from retinagan.metrics.synthetic_training import evenly_spread


def generalisation_gap(training, test, unseen=None) -> dict:
    """Train and test Dice at the threshold chosen on TRAINING (drive_probabilities' results, all),
    and on UNSEEN, DRIVE training photos the segmenter did not train on, if given."""
    chosen, oracle = best_threshold(*pooled(training)), best_threshold(*pooled(test))
    train_dice = score_probabilities(training, "training", chosen)["dice"]
    test_dice = score_probabilities(test, "test", chosen)["dice"]
    out = {"threshold": round(float(chosen), 3), "train_dice": round(train_dice, 4), "test_dice": round(test_dice, 4),
           "gap": round(train_dice - test_dice, 4), "test_oracle_threshold": round(float(oracle), 3),
           "test_dice_oracle": round(score_probabilities(test, "test", oracle)["dice"], 4)}
    if unseen:
        unseen_dice = score_probabilities(unseen, "training", chosen)["dice"]
        out.update(unseen_train_dice=round(unseen_dice, 4), gap_unseen=round(train_dice - unseen_dice, 4))
    return out


def references(root, fov_width: int = 256) -> dict:
    """The second observer's Dice against the first on DRIVE test, as drawn and after a round trip
    to a FOV FOV_WIDTH px wide (None without test/2nd_manual), and the first observer's maps' Dice
    after that round trip, at their best threshold."""
    first, round_trip, second, second_trip = [], [], [], []  # second observer: only where test/2nd_manual has the map
    for sample in read_drive(root, "test"):
        mask, manual = read_mask(sample.mask), read_mask(sample.vessels)
        first.append(manual[mask])
        other = Path(sample.vessels).parent.parent / "2nd_manual" / Path(sample.vessels).name.replace("manual1", "manual2")
        _, _, left, right = fov_box(mask)
        size = tuple(round(side * fov_width / (right - left)) for side in mask.shape)
        round_trip.append(there_and_back(manual, size)[mask])
        if other.is_file():
            other = read_mask(other)
            second.append(other[mask])
            second_trip.append(there_and_back(other, size)[mask] >= 0.5)
    truth, trip = np.concatenate(first), np.concatenate(round_trip)
    threshold = best_threshold(trip, truth, np.linspace(0.05, 0.95, 91))
    out = {"second_observer_dice": None, "second_observer_accuracy": None, "second_observer_round_trip_dice": None, "fov_width": fov_width,
           "round_trip_threshold": round(float(threshold), 3), "round_trip_dice": round(dice(trip >= threshold, truth), 4)}
    if len(second) == len(first):
        other = np.concatenate(second)
        out.update(second_observer_dice=round(dice(other, truth), 4), second_observer_accuracy=round(float((other == truth).mean()), 4),
                   second_observer_round_trip_dice=round(dice(np.concatenate(second_trip), truth), 4))
    return out


def there_and_back(vessels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (H, W) vessel map area-averaged to SIZE and brought back (bilinear): what survives that scale, 0-1."""
    truth = torch.from_numpy(vessels.astype(np.float32))[None, None]
    small = F.interpolate(truth, size=size, mode="area")
    return F.interpolate(small, size=vessels.shape, mode="bilinear", align_corners=False)[0, 0].numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--references", action="store_true", help="print the second observer's and the round trip's Dice on DRIVE test")
    parser.add_argument("--fov-width", type=int, default=256, help="--references: the FOV width of the round trip (the protocol's: 256)")
    parser.add_argument("--drive", default="../shared/data/drive")
    parser.add_argument("--real-count", type=int, default=20, help="the segmenters saw only this many of DRIVE's 20 training pairs")
    args = parser.parse_args()
    if not 1 <= args.real_count <= 20:
        parser.error(f"--real-count must be within 1 and 20, not {args.real_count}")
    if not args.folders and not args.references:
        parser.error("give segmenter folders, --references, or both")
    if args.references:
        print(json.dumps({"references": references(args.drive, args.fov_width)}), flush=True)
    images = None
    if args.real_count < 20:
        images = evenly_spread(20, args.real_count).tolist()
    for folder in args.folders:
        segmenter = Segmenter.load(folder)
        training = drive_probabilities(segmenter, args.drive, "training", progress=False)
        unseen = None
        if images is not None:
            training, unseen = [training[k] for k in images], [p for k, p in enumerate(training) if k not in images]
        test = drive_probabilities(segmenter, args.drive, "test", progress=False)
        print(json.dumps({"segmenter": str(folder), **generalisation_gap(training, test, unseen)}), flush=True)


if __name__ == "__main__":
    main()
