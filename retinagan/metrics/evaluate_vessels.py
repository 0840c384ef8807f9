"""Scores of a vessel-tree generator against real maps (issue: Stage 1 evaluation).

Reference sets are DRIVE's hand-drawn maps put through the same FOV crop, resize and
laterality step as the training maps: DRIVE test is the held-out set, and DRIVE training
vs DRIVE test gives the real-vs-real floor of the morphology distance.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from retinagan.data.readers import read_drive
from retinagan.metrics.morphology import feature_table, morphology_distance
from retinagan.metrics.segmentation import dice
from retinagan.pipeline import load_prepared, prepare
from retinagan.training.autoencoder import split_holdout


def drive_maps(root: str | Path, split: str, size: int) -> np.ndarray:
    prepared, _ = prepare(read_drive(root, split), None, size=size, progress=False)
    return prepared.vessels


def pairwise_dice(maps: np.ndarray) -> float:
    scores = [dice(maps[i], maps[j]) for i in range(len(maps)) for j in range(i + 1, len(maps))]
    return float(np.mean(scores))


def nearest_dice(samples: np.ndarray, references: np.ndarray) -> np.ndarray:
    """For each sample, the Dice of its closest reference map (by Dice)."""
    flat_ref = references.reshape(len(references), -1).astype(np.float32)
    ref_sums = flat_ref.sum(1)
    out = []
    for sample in samples.reshape(len(samples), -1).astype(np.float32):
        overlap = flat_ref @ sample
        out.append(float(np.max(2 * overlap / np.maximum(ref_sums + sample.sum(), 1))))
    return np.array(out)


def reconstruction_scores(generator, maps: np.ndarray, refine: int, desc: str) -> dict[str, float]:
    """Mean Dice of thresholded reconstructions of maps: from the encoder's codes, and (refine >
    0) from codes refined that many steps through the decoder (inference.refine_codes)."""
    scores = {"encoder": float(np.mean([dice(r, t) for r, t in zip(generator.decode(generator.encode(maps)) >= 0.5, maps)]))}
    if refine > 0:
        with tqdm(total=len(maps), desc=f"refining codes: {desc}", unit="map") as bar:
            codes = generator.encode(maps, refine=refine, progress=lambda done, total: bar.update(done - bar.n))
        scores["refined"] = float(np.mean([dice(r, t) for r, t in zip(generator.decode(codes) >= 0.5, maps)]))
    return scores


def evaluate_generator(generator, drive_root: str | Path, n: int = 100, seed: int = 0, train_data: str | None = None,
                       refine: int = 0) -> dict:
    size = generator.model.config.image_size
    real_train, real_test = drive_maps(drive_root, "training", size), drive_maps(drive_root, "test", size)
    soft = generator.sample(list(range(seed, seed + n)))
    samples = soft >= 0.5
    test_features = feature_table(real_test, desc="morphology: DRIVE test")
    floor = morphology_distance(test_features, feature_table(real_train, desc="morphology: DRIVE training"))
    model = morphology_distance(test_features, feature_table(samples, desc="morphology: samples"))
    recon = reconstruction_scores(generator, real_test, refine, "DRIVE test")
    training_maps, held = real_train, None
    if train_data and Path(train_data).is_file():
        prepared = load_prepared(train_data)
        training_maps = prepared.vessels
        every = generator.config.get("train_config", {}).get("holdout_every", 10)
        held = reconstruction_scores(generator, prepared.vessels[split_holdout(prepared.ids, every)], refine, "held-out training-set maps")
    nearest = nearest_dice(samples, training_maps)
    return {
        "model": generator.kind,
        "latent_dim": generator.latent_dim,
        "samples": n,
        "morphology_distance": model["mean"],
        "real_vs_real_floor": floor["mean"],
        "ratio_to_floor": model["mean"] / floor["mean"],
        "per_feature": {k: round(v, 3) for k, v in model.items() if k != "mean"},
        "per_feature_floor": {k: round(v, 3) for k, v in floor.items() if k != "mean"},
        "reconstruction_dice_drive_test": recon["encoder"],
        "reconstruction_dice_drive_test_refined": recon.get("refined"),
        "reconstruction_dice_holdout": held["encoder"] if held else None,
        "reconstruction_dice_holdout_refined": held.get("refined") if held else None,
        "refine_steps": refine,
        "diversity_pairwise_dice": pairwise_dice(samples[:50]),
        "nearest_training_dice_mean": float(nearest.mean()),
        "nearest_training_dice_max": float(nearest.max()),
        "grey_pixel_share": float(((soft > 0.1) & (soft < 0.9)).mean()),
        "vessel_fraction": float(samples.mean()),
    }
