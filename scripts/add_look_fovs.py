"""Give a translator checkpoint stored before FOV-matched looks (2026-11-28) its bank's FOV shapes.

python scripts/add_look_fovs.py CHECKPOINT [CHECKPOINT ...] [--real runs/prepared-256.npz] [--holdout-every 10]

A translator's `appearance_bank` holds the look (appearance_of) of each photo of its training split,
in the prepared set's order; this recomputes those looks from the prepared set, checks that they are
the bank's (to 1e-3), and writes each photo's FOV shape beside them (`appearance_fov`,
retinagan.models.pix2pix.look_bank), so that look_seed picks among photos whose FOV is shaped like
the one asked for. Only config.json changes; the weights stay as they are.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retinagan.models.pix2pix import look_bank, looks_of  # noqa: E402
from retinagan.pipeline import load_prepared  # noqa: E402
from retinagan.training.autoencoder import split_holdout  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--real", default="runs/prepared-256.npz")
    parser.add_argument("--holdout-every", type=int, default=10)
    args = parser.parse_args()
    prepared = load_prepared(args.real)
    train = ~split_holdout(prepared.ids, args.holdout_every)
    photos, fovs = prepared.images[train] * prepared.fov[train][..., None], prepared.fov[train]
    looks = looks_of(photos, fovs)
    for folder in args.checkpoints:
        path = Path(folder) / "config.json"
        config = json.loads(path.read_text())
        bank = np.asarray(config.get("appearance_bank") or [], dtype=np.float32)
        if bank.shape != looks.shape or np.abs(bank - looks).max() > 1e-3:
            sys.exit(f"{folder}: its appearance bank {bank.shape} is not the looks of {args.real}'s training split {looks.shape}")
        config["appearance_fov"] = look_bank(looks, fovs)["appearance_fov"]
        path.write_text(json.dumps(config, indent=2) + "\n")
        print(f"{folder}: {len(bank)} FOV shapes written (bank matches to {np.abs(bank - looks).max():.1e})")


if __name__ == "__main__":
    main()
