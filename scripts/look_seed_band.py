"""How much evaluate fundus's first row moves with the look seeds (figures printed).

python scripts/look_seed_band.py [--photo-detail CHECKPOINT] [--real runs/prepared-256.npz] [--offsets 0,1000,2000,3000]

The half-B trees' photos (look seeds offset..offset+n-1; evaluate fundus uses offset 0) scored
against real half A, with looks fitted to the FOV (the default) and with any look (--any-look).
About a minute a row on one core of this CPU, 1.5 with the photo detailer.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retinagan.inference import FundusTranslator  # noqa: E402
from retinagan.metrics.evaluate_fundus import fid, inception, inception_features, kid, split_halves  # noqa: E402
from retinagan.pipeline import load_prepared  # noqa: E402


def first_row_setup(parser: argparse.ArgumentParser):
    """evaluate fundus's first-row pieces for a script: its parsed arguments (with --photo-detail,
    --real, --translator added), the real set, the half-A mask, the FID network, the real half-A
    photos' features and the translator."""
    parser.add_argument("--photo-detail")
    parser.add_argument("--real", default="runs/prepared-256.npz")
    parser.add_argument("--translator", default="checkpoints/pix2pix-grade")
    args = parser.parse_args()
    prepared = load_prepared(args.real)
    half_a = split_halves(prepared.ids)
    net = inception()
    feats_a = inception_features(net, (prepared.images * prepared.fov[..., None])[half_a])
    return args, prepared, half_a, net, feats_a, FundusTranslator.load(args.translator, photo_detail=args.photo_detail)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--offsets", default="0,1000,2000,3000")
    args, prepared, half_a, net, feats_a, translator = first_row_setup(parser)
    n = int((~half_a).sum())
    for match in (True, False):
        translator.match_look_to_fov = match
        for offset in (int(o) for o in args.offsets.split(",")):
            made = translator.translate(prepared.vessels[~half_a], prepared.fov[~half_a], look_seed=list(range(offset, offset + n)))
            feats = inception_features(net, made)
            k, _ = kid(feats, feats_a)
            print(json.dumps({"photo_detail": args.photo_detail, "looks": "fitted to the FOV" if match else "any", "offset": offset,
                              "fid": round(fid(feats, feats_a), 2), "kid_x1000": round(1000 * k, 1)}), flush=True)


if __name__ == "__main__":
    main()
