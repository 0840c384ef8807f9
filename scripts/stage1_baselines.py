"""Reference points for Stage 1 on a prepared set (figures printed): what a 1-px shift of a
real map costs, how well PCA reconstructs held-out maps, and the morphology distance of the
training maps themselves to DRIVE test (what a model that copied its training set would score).

python scripts/stage1_baselines.py [runs/prepared-256.npz] [../shared/data/drive]
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retinagan.metrics.evaluate_vessels import drive_maps  # noqa: E402
from retinagan.metrics.morphology import feature_table, morphology_distance  # noqa: E402
from retinagan.pipeline import load_prepared  # noqa: E402
from retinagan.training.autoencoder import split_holdout  # noqa: E402


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


def main(path: str) -> None:
    prepared = load_prepared(path)
    maps = prepared.vessels.astype(bool)
    held = split_holdout(prepared.ids, 10)
    print(f"{len(maps)} maps, {held.sum()} held out; vessel share {maps.mean():.3f}")
    print(f"Dice of a map with itself shifted 1 px sideways: {np.mean([dice(m, np.roll(m, 1, 1)) for m in maps]):.3f}")
    print(f"... shifted 1 px diagonally: {np.mean([dice(m, np.roll(np.roll(m, 1, 1), 1, 0)) for m in maps]):.3f}")
    flat = maps.reshape(len(maps), -1).astype(np.float32)
    train, test = flat[~held], flat[held]
    mean = train.mean(0)
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    for k in (16, 32, 64, 128):
        recon = (test - mean) @ vt[:k].T @ vt[:k] + mean
        best = max((np.mean([dice(r > t, h > 0.5) for r, h in zip(recon, test)]), t) for t in (0.1, 0.2, 0.3, 0.4, 0.5))
        print(f"PCA {k:>3} components, held-out reconstruction Dice {best[0]:.3f} (threshold {best[1]})")
    nearest = [max(dice(h > 0.5, t > 0.5) for t in train) for h in test]
    print(f"held-out map vs its nearest training map: Dice {np.mean(nearest):.3f}")


def training_maps_distance(path: str, drive: str) -> None:
    """Morphology distance to DRIVE test's hand-drawn maps of each source's prepared maps."""
    prepared = load_prepared(path)
    reference = feature_table(drive_maps(drive, "test", prepared.vessels.shape[1]), desc="DRIVE test")
    for source in np.unique(prepared.sources):
        maps = prepared.vessels[prepared.sources == source].astype(bool)
        distance = morphology_distance(reference, feature_table(maps, desc=str(source)))
        worst = sorted(((v, k) for k, v in distance.items() if k != "mean"), reverse=True)[:3]
        print(f"{source} maps ({len(maps)}) vs DRIVE test: morphology distance {distance['mean']:.2f}; "
              "largest terms " + ", ".join(f"{k} {v:.2f}" for v, k in worst))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/prepared-256.npz")
    training_maps_distance(sys.argv[1] if len(sys.argv) > 1 else "runs/prepared-256.npz",
                           sys.argv[2] if len(sys.argv) > 2 else "../shared/data/drive")
