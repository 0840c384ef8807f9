"""Choose the photo detailer's sampling steps without the evaluation's pairing (figures printed).

python scripts/photodetail_steps.py --photo-detail CHECKPOINT [CHECKPOINT ...] [--real runs/prepared-256.npz] [--translator checkpoints/pix2pix-grade] [--steps 1,2,3,5,10] [--keep K[,K...]] [--look-sets N] [--no-own]

`evaluate fundus` scores the translator's photos of the real half-B trees against the real half-A
photos. This scores the mirror pairing instead: the half-A trees translated (look seeds 0..n-1),
their detail redrawn at each step count, FID and KID against the real half-B photos (step 0: the
translator's photos as they are). It also prints what the detailer costs a real photo: the real
half-B photos with their own detail redrawn, against real half A (floor: real B against real A).
About 2 minutes a step count on one core of this CPU (1 with --no-own). Several checkpoints (a
fine-tune's snapshots, train.py photodetail --snapshot-steps) share the translated photos and the
real photos' features; each row names its checkpoint.
--keep: the share of the translator's own fine detail kept beside the drawn (PhotoDetailConfig.keep_detail;
default: each checkpoint's own), one row per value. --look-sets N: every row over N sets of look
seeds (evaluate_fundus.look_set, as evaluate fundus --look-sets), each set's FID and their mean.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retinagan.checkpoint import load_model  # noqa: E402
from retinagan.inference import FundusTranslator  # noqa: E402
from retinagan.metrics.evaluate_fundus import fid, inception, inception_features, kid, look_set, split_halves  # noqa: E402
from retinagan.pipeline import load_prepared  # noqa: E402


def scores(feats, reference) -> dict:
    k, spread = kid(feats, reference)
    return {"fid": round(fid(feats, reference), 2), "kid_x1000": round(1000 * k, 1), "kid_std_x1000": round(1000 * spread, 1)}


def over_sets(feats: list, reference) -> dict:
    """scores() of one set of photos' features, or of several sets: each set's FID, their mean and spread."""
    if len(feats) == 1:
        return scores(feats[0], reference)
    each = [scores(f, reference) for f in feats]
    fids = [e["fid"] for e in each]
    return {"fid_sets": fids, "fid": round(float(np.mean(fids)), 2), "fid_std": round(float(np.std(fids, ddof=1)), 2),
            "kid_x1000": round(float(np.mean([e["kid_x1000"] for e in each])), 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photo-detail", required=True, nargs="+", metavar="CHECKPOINT")
    parser.add_argument("--real", default="runs/prepared-256.npz")
    parser.add_argument("--translator", default="checkpoints/pix2pix-grade")
    parser.add_argument("--steps", default="1,2,3,5,10")
    parser.add_argument("--keep", help="shares of the translator's own fine detail kept (comma-separated; default: the checkpoint's)")
    parser.add_argument("--look-sets", type=int, default=1, help="score each row over this many sets of look seeds")
    parser.add_argument("--no-own", action="store_true", help="skip the real half-B photos redrawn (halves the time)")
    args = parser.parse_args()
    prepared = load_prepared(args.real)
    half_a = split_halves(prepared.ids)
    photos = prepared.images * prepared.fov[..., None]
    net = inception()
    feats_a, feats_b = inception_features(net, photos[half_a]), inception_features(net, photos[~half_a])
    translator = FundusTranslator.load(args.translator)
    n = int(half_a.sum())
    look_sets = [look_set(n, j) for j in range(args.look_sets)]
    made = [translator.translate(prepared.vessels[half_a], prepared.fov[half_a], look_seed=seeds) for seeds in look_sets]
    seeds = look_sets[0]
    print(json.dumps({"pairing": "half-A trees vs real half B", "steps": 0, **over_sets([inception_features(net, m) for m in made], feats_b)}), flush=True)
    print(json.dumps({"pairing": "real half B vs real half A (the floor)", **scores(feats_b, feats_a)}), flush=True)
    keeps = [float(k) for k in args.keep.split(",")] if args.keep else [None]
    for checkpoint in args.photo_detail:
        detailer, _ = load_model(checkpoint, expected_kind="photodetail")
        for steps, keep in ((int(s), k) for s in args.steps.split(",") for k in keeps):
            feats = [inception_features(net, detailer.draw(m, prepared.vessels[half_a], prepared.fov[half_a], s, steps=steps, keep=keep))
                     for m, s in zip(made, look_sets)]
            print(json.dumps({"checkpoint": checkpoint, "pairing": "half-A trees vs real half B", "steps": steps,
                              "keep": detailer.config.keep_detail if keep is None else keep, **over_sets(feats, feats_b)}), flush=True)
            if not args.no_own:
                own = detailer.draw(photos[~half_a], prepared.vessels[~half_a], prepared.fov[~half_a], seeds[: int((~half_a).sum())], steps=steps, keep=0.0)
                print(json.dumps({"checkpoint": checkpoint, "pairing": "real half B, detail redrawn, vs real half A", "steps": steps,
                                  **scores(inception_features(net, own), feats_a)}), flush=True)


if __name__ == "__main__":
    main()
