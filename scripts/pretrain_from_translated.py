"""One-off check: the `translated` segmenters fine-tuned on the 20 real DRIVE pairs, as the
`pretrained` condition of `evaluate synthetic` does with the synthetic ones.

python -m retinagan evaluate synthetic --conditions translated --looks 10 --seeds 3 --steps 1200 --output runs/syn-translated
python scripts/pretrain_from_translated.py SEED [--runs runs/syn-translated] [--drive ../shared/data/drive] [--steps 1200]

--condition synthetic starts from an earlier run's synthetic segmenters instead (e.g. the
fine-vessel pairs: `evaluate synthetic --fine-vessels --conditions synthetic --output runs/syn-fine`).

Prints one JSON line: Dice at 0.5 and AUC on DRIVE test. Its fair control is real alone with
twice the steps (docs/train-on-synthetic.md, *Where the gap lies*).
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retinagan.metrics.synthetic_training import fit_and_score, real_drive_pairs, segmenter_tensors  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("seed", type=int)
    parser.add_argument("--runs", default="runs/syn-translated", help="the output folder of the translated condition")
    parser.add_argument("--condition", default="translated", choices=["translated", "synthetic"], help="whose segmenters to start from")
    parser.add_argument("--drive", default="../shared/data/drive")
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--output", default="runs/pretrained-from-translated")
    args = parser.parse_args()
    real = segmenter_tensors(*real_drive_pairs(args.drive, 256))
    score = fit_and_score(*real, f"DRIVE training split (20 photos) at 256 px, fine-tuned from the {args.condition} segmenter",
                          f"{args.output}/seed{args.seed}", args.drive, args.seed, args.steps,
                          init=f"{args.runs}/{args.condition}-seed{args.seed}/checkpoint")
    print(json.dumps({"seed": args.seed, "dice": score["dice"], "auc": score["auc"]}))


if __name__ == "__main__":
    main()
