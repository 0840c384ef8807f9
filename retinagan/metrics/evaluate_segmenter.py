"""Scores of a segmenter on a DRIVE split: Dice, AUC, accuracy inside the FOV at native size."""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from retinagan.data.imageio import read_mask, read_rgb
from retinagan.data.readers import read_drive
from retinagan.metrics.segmentation import accuracy, best_threshold, dice, roc_auc


def drive_probabilities(segmenter, root, split: str = "test", progress: bool = True):
    """Per image: (probability map, manual map, FOV mask), all at native 565x584."""
    results = []
    for sample in tqdm(read_drive(root, split), desc=f"DRIVE {split}", disable=not progress):
        mask = read_mask(sample.mask)
        prob = segmenter.probability(read_rgb(sample.image), mask)
        results.append((prob, read_mask(sample.vessels), mask))
    return results


def score_drive(segmenter, root, split: str = "test", threshold: float | None = None, progress: bool = True) -> dict:
    """Dice and accuracy over all FOV pixels pooled (as the literature reports), AUC likewise."""
    results = drive_probabilities(segmenter, root, split, progress)
    return score_probabilities(results, split, segmenter.threshold if threshold is None else threshold)


def pooled(results) -> tuple[np.ndarray, np.ndarray]:
    """All FOV pixels of drive_probabilities' results, pooled: (probabilities, manual labels)."""
    return np.concatenate([prob[mask] for prob, _, mask in results]), np.concatenate([manual[mask] for _, manual, mask in results])


def score_probabilities(results, split: str, threshold: float) -> dict:
    """score_drive's figures from drive_probabilities' results, so one inference can be scored at several thresholds."""
    scores, truth = pooled(results)
    pred = scores >= threshold
    per_image = [dice(prob[mask] >= threshold, manual[mask]) for prob, manual, mask in results]
    return {
        "split": split,
        "images": len(results),
        "threshold": threshold,
        "dice": dice(pred, truth),
        "dice_per_image_mean": float(np.mean(per_image)),
        "auc": roc_auc(scores, truth),
        "accuracy": accuracy(pred, truth),
    }


def choose_threshold(segmenter, root, progress: bool = True, images: list[int] | None = None) -> float:
    """The Dice-maximising threshold on the DRIVE training split (never on test); images: only
    those photos of it (indices in the split's order), e.g. the only ones a segmenter trained on."""
    results = drive_probabilities(segmenter, root, "training", progress)
    if images is not None:
        results = [results[k] for k in images]
    return best_threshold(*pooled(results))


def score_test(segmenter, root, chosen_threshold: bool = False, training_images: list[int] | None = None) -> dict:
    """Dice and AUC on DRIVE test at threshold 0.5, inferred once; with chosen_threshold, also
    "threshold_chosen" (choose_threshold, on DRIVE training, or on its training_images alone) and
    "dice_chosen" (Dice on test at it)."""
    test = drive_probabilities(segmenter, root, "test", progress=False)
    score = score_probabilities(test, "test", 0.5)
    out = {"dice": score["dice"], "auc": score["auc"]}
    if chosen_threshold:
        threshold = choose_threshold(segmenter, root, progress=False, images=training_images)
        out.update(threshold_chosen=float(threshold), dice_chosen=score_probabilities(test, "test", threshold)["dice"])
    return out
