"""Choose the photo detailer's sampling steps without the evaluation's pairing (figures printed).

python scripts/photodetail_steps.py --photo-detail CHECKPOINT [CHECKPOINT ...] [--real runs/prepared-256.npz] [--translator checkpoints/pix2pix-grade] [--steps 1,2,3,5,10] [--no-own]

`evaluate fundus` scores the translator's photos of the real half-B trees against the real half-A
photos. This scores the mirror pairing instead: the half-A trees translated (look seeds 0..n-1),
their detail redrawn at each step count, FID and KID against the real half-B photos (step 0: the
translator's photos as they are). It also prints what the detailer costs a real photo: the real
half-B photos with their own detail redrawn, against real half A (floor: real B against real A).
About 2 minutes a step count on one core of this CPU (1 with --no-own). Several checkpoints (a
fine-tune's snapshots, train.py photodetail --snapshot-steps) share the translated photos and the
real photos' features; each row names its checkpoint.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retinagan.checkpoint import load_model  # noqa: E402
from retinagan.inference import FundusTranslator  # noqa: E402
from retinagan.metrics.evaluate_fundus import fid, inception, inception_features, kid, split_halves  # noqa: E402
from retinagan.pipeline import load_prepared  # noqa: E402


def scores(feats, reference) -> dict:
    k, spread = kid(feats, reference)
    return {"fid": round(fid(feats, reference), 2), "kid_x1000": round(1000 * k, 1), "kid_std_x1000": round(1000 * spread, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photo-detail", required=True, nargs="+", metavar="CHECKPOINT")
    parser.add_argument("--real", default="runs/prepared-256.npz")
    parser.add_argument("--translator", default="checkpoints/pix2pix-grade")
    parser.add_argument("--steps", default="1,2,3,5,10")
    parser.add_argument("--no-own", action="store_true", help="skip the real half-B photos redrawn (halves the time)")
    args = parser.parse_args()
    prepared = load_prepared(args.real)
    half_a = split_halves(prepared.ids)
    photos = prepared.images * prepared.fov[..., None]
    net = inception()
    feats_a, feats_b = inception_features(net, photos[half_a]), inception_features(net, photos[~half_a])
    made = FundusTranslator.load(args.translator).translate(prepared.vessels[half_a], prepared.fov[half_a],
                                                             look_seed=list(range(int(half_a.sum()))))
    seeds = list(range(len(made)))
    print(json.dumps({"pairing": "half-A trees vs real half B", "steps": 0, **scores(inception_features(net, made), feats_b)}), flush=True)
    print(json.dumps({"pairing": "real half B vs real half A (the floor)", **scores(feats_b, feats_a)}), flush=True)
    for checkpoint in args.photo_detail:
        detailer, _ = load_model(checkpoint, expected_kind="photodetail")
        for steps in (int(s) for s in args.steps.split(",")):
            drawn = detailer.draw(made, prepared.vessels[half_a], prepared.fov[half_a], seeds, steps=steps)
            print(json.dumps({"checkpoint": checkpoint, "pairing": "half-A trees vs real half B", "steps": steps,
                              **scores(inception_features(net, drawn), feats_b)}), flush=True)
            if not args.no_own:
                own = detailer.draw(photos[~half_a], prepared.vessels[~half_a], prepared.fov[~half_a], seeds[: int((~half_a).sum())], steps=steps)
                print(json.dumps({"checkpoint": checkpoint, "pairing": "real half B, detail redrawn, vs real half A", "steps": steps,
                                  **scores(inception_features(net, own), feats_a)}), flush=True)


if __name__ == "__main__":
    main()
