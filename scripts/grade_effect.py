"""How much the translator's DR-grade input changes its photos (figures printed).

python scripts/grade_effect.py [checkpoints/pix2pix-grade] [runs/prepared-256.npz]
Mean absolute difference inside the FOV (0-255) between photos of the same held-out trees
asked for with different grades, beside the difference two looks make.
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retinagan.inference import FundusTranslator  # noqa: E402
from retinagan.pipeline import load_prepared  # noqa: E402
from retinagan.training.autoencoder import split_holdout  # noqa: E402


def main(checkpoint: str, data: str) -> None:
    translator = FundusTranslator.load(checkpoint)
    prepared = load_prepared(data)
    held = split_holdout(prepared.ids, 10)
    maps, fovs = prepared.vessels[held], prepared.fov[held]
    seeds = list(range(len(maps)))
    photo = lambda grade, looks=seeds: translator.translate(maps, fovs, grade, look_seed=looks).astype(np.float32)  # noqa: E731
    inside = np.repeat(fovs[..., None], 3, axis=-1)
    diff = lambda a, b: float(np.abs(a - b)[inside].mean())  # noqa: E731
    by_grade = {g: photo(g) for g in range(5)}
    print(f"{len(maps)} held-out trees; mean |difference| inside the FOV (0-255):")
    for g in range(1, 5):
        print(f"  grade 0 vs grade {g}: {diff(by_grade[0], by_grade[g]):.1f}")
    print(f"  grade 0 vs unknown: {diff(by_grade[0], photo(None)):.1f}")
    print(f"  same grade, another look: {diff(by_grade[0], photo(0, [s + 100 for s in seeds])):.1f}")


if __name__ == "__main__":
    main(*(sys.argv[1:] or ["checkpoints/pix2pix-grade", "runs/prepared-256.npz"]))
