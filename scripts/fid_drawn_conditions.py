"""evaluate fundus's first row (photos of the real half-B trees against real half A) with the
trees given lesions and grades drawn from the data instead of none (figures printed).

python scripts/fid_drawn_conditions.py [--photo-detail CHECKPOINT] [--real runs/prepared-256.npz] [--draws 0,1,2,3,4,5] [--composed 0,1]

- bare: no lesions, grade unknown (evaluate fundus's first row);
- drawn D: each tree with another half-B photo's detected lesion maps and grade, derangement
  seed D (evaluate fundus's drawn-conditions row is D = 0);
- composed S: each tree with a grade drawn from the graded training photos' grades (seed S) and
  lesions composed for it (lesions.compose_for_grade, as generate --grade does).
The look seeds are evaluate fundus's (0..n-1) throughout. About a minute a row on one core of
this CPU with the photo detailer.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from look_seed_band import first_row_setup  # noqa: E402  (scripts/, beside this one)
from retinagan.lesions import compose_for_grade  # noqa: E402
from retinagan.metrics.evaluate_fundus import conditions_drawn, conditions_of, derangement, fid, inception_features, kid  # noqa: E402


def seeds(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--draws", default="0,1,2,3,4,5", help="derangement seeds")
    parser.add_argument("--composed", default="0,1", help="grade-draw seeds for composed lesions")
    args, prepared, half_a, net, feats_a, translator = first_row_setup(parser)
    trees, fovs = prepared.vessels[~half_a], prepared.fov[~half_a]
    looks = list(range(len(trees)))
    own = conditions_of(prepared, ~half_a, translator)
    graded = prepared.grades[prepared.grades >= 0]
    rows = [("bare", None, {})]
    rows += [("drawn", d, conditions_drawn(own, derangement(len(trees), d))) for d in seeds(args.draws)]
    for s in seeds(args.composed):
        rng = np.random.default_rng(s)
        grades = [int(graded[rng.integers(len(graded))]) for _ in trees]
        lesions = [compose_for_grade(g, 1000 + k, trees[k] >= 0.5, fovs[k]) for k, g in enumerate(grades)]
        rows.append(("composed", s, {"grade": grades, "lesions": lesions}))
    for name, seed, conditions in rows:
        feats = inception_features(net, translator.translate(trees, fovs, look_seed=looks, **conditions))
        k, k_std = kid(feats, feats_a)
        print(json.dumps({"photo_detail": args.photo_detail, "conditions": name, "seed": seed, "fid": round(fid(feats, feats_a), 2),
                          "kid_x1000": round(1000 * k, 1), "kid_std_x1000": round(1000 * k_std, 1)}), flush=True)


if __name__ == "__main__":
    main()
