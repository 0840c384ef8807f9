"""Gather the fewer-annotated-photos runs into one learning curve, seed by seed (figures printed)

python scripts/collect_learning_curve.py LOG [LOG ...] [--base RESULTS_JSON] [--output RESULTS_JSON]

Each LOG is the output of one `scripts/mixing_batchnorm.py` run: its last line is the run's JSON
summary. The protocol's two arms are told apart by their settings: real alone (`SEED shared
--real-share 1 --real-count K`) and real + synthetic (`SEED domain --drive-looks --real-share 0.75
--real-count K`, every other setting at mixing_batchnorm.py's default); a log of any other run is an
error, not silently dropped. --base: an earlier results file whose runs are kept (this script's output,
or session 29's rows with seeds in real_summary / mixed_summary); a seed
measured in both must give the same Dice (the runs are deterministic on one thread), else an error.
Per K: both arms seed by seed, their means and spreads, and mixed - real on the seeds both arms
have, with its mean, its standard error and how many seeds are ahead. Nothing is trained here.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling script, also when loaded from elsewhere

from mixing_batchnorm import build_parser

WHAT = ("issue 4, 'synthetic + real beats real alone', with fewer annotated photos: K of DRIVE's 20 training pairs "
        "(evenly spread; threshold and looks from those K alone), real alone against real + the 200 fine-vessel synthetic "
        "pairs painted by the shipped pix2pix-grade in the K photos' looks (BatchNorm per domain, 12 real + 4 synthetic "
        "64-px patches a batch), 1,200 steps, seed by seed (mix − real on the seeds both arms ran)")
COMMANDS = {"real": "python scripts/mixing_batchnorm.py SEED shared --real-share 1 --real-count K",
            "mixed": "python scripts/mixing_batchnorm.py SEED domain --drive-looks --real-share 0.75 --real-count K",
            "collect": "python scripts/collect_learning_curve.py LOG ... --base PREVIOUS_RESULTS --output RESULTS"}


ARMS = {"real": {"mode": "shared", "real_share": 1.0, "drive_looks": False},
        "mixed": {"mode": "domain", "real_share": 0.75, "drive_looks": True}}


def protocol_defaults() -> dict:
    """Every other mixing_batchnorm.py setting at its default, read from its own parser (so the two cannot
    drift apart); --added-weight is left out: a run without --added prints it as None."""
    defaults = vars(build_parser().parse_args(["0", "shared"]))
    return {key: value for key, value in defaults.items() if key not in {"seed", "real_count", "added_weight", *ARMS["real"]}}


def arm_of(run: dict) -> str:
    """'real' or 'mixed' for the protocol's two arms; ValueError for any other run (a setting absent from
    an older run's summary line counts as the default)."""
    protocol = protocol_defaults()
    for arm, settings in ARMS.items():
        if all(run.get(key, value) == value for key, value in protocol.items()) and all(run.get(key) == value for key, value in settings.items()):
            return arm
    raise ValueError(f"not a run of the learning-curve protocol: {json.dumps(run)[:200]}")


def read_run(log: Path) -> dict:
    """The summary line a finished run prints last; a clear error for an unfinished or foreign log."""
    lines = [line for line in log.read_text().splitlines() if line.startswith("{") and '"real_count"' in line]
    if not lines:
        raise ValueError(f"{log}: no run summary (unfinished run?)")
    return json.loads(lines[-1])


def base_runs(results: dict) -> list[dict]:
    """(K, arm, seed, Dice at the chosen threshold and at 0.5, AUC) of an earlier results file: this script's own
    output keeps them in "runs"; session 29's file (2026-12-06) in its rows' per-arm summaries."""
    if "runs" in results:
        return results["runs"]
    runs = []
    for k, row in results["learning_curve"]["rows"].items():
        for arm in ("real", "mixed"):
            seeds = row[f"{arm}_summary"]
            for seed, dice, at_05, auc in zip(seeds["seeds"], row[arm], seeds["dice_05"], seeds["auc"]):
                runs.append({"k": int(k), "arm": arm, "seed": seed, "dice": dice, "dice_05": at_05, "auc": auc, "source": "base"})
    return runs


def curve(runs: list[dict]) -> dict:
    """Rows keyed by K (as text, like the earlier file): each arm's Dice by seed, and the paired difference."""
    table: dict[int, dict[str, dict[int, dict]]] = {}
    for run in runs:
        seeds = table.setdefault(run["k"], {"real": {}, "mixed": {}})[run["arm"]]
        before = seeds.get(run["seed"])
        if before and abs(before["dice"] - run["dice"]) > 1e-4:
            raise ValueError(f"K={run['k']} {run['arm']} seed {run['seed']}: {before['dice']} before, {run['dice']} now")
        seeds[run["seed"]] = run
    rows = {}
    for k in sorted(table):
        real, mixed = table[k]["real"], table[k]["mixed"]
        paired = sorted(set(real) & set(mixed))
        gain = [round(mixed[s]["dice"] - real[s]["dice"], 4) for s in paired]
        row = {"real": [real[s]["dice"] for s in sorted(real)], "real_seeds": sorted(real),
               "mixed": [mixed[s]["dice"] for s in sorted(mixed)], "mixed_seeds": sorted(mixed)}
        for arm, seeds in (("real", real), ("mixed", mixed)):
            if row[arm]:
                row[f"{arm}_mean"], row[f"{arm}_std"] = round(float(np.mean(row[arm])), 4), round(float(np.std(row[arm])), 4)
                for measure in ("dice_05", "auc"):  # secondary: Dice at 0.5 and AUC, means over the arm's seeds
                    row[f"{arm}_{measure}_mean"] = round(float(np.mean([run[measure] for run in seeds.values()])), 4)
        row.update(paired_seeds=paired, mixed_minus_real_same_seed=gain,
                   at_05_mixed_minus_real_same_seed=[round(mixed[s]["dice_05"] - real[s]["dice_05"], 4) for s in paired])
        if gain:
            row["gain_mean"] = round(float(np.mean(gain)), 4)
            row["gain_standard_error"] = round(float(np.std(gain, ddof=1) / np.sqrt(len(gain))), 4) if len(gain) > 1 else None
            row["seeds_ahead"] = f"{sum(g > 0 for g in gain)} of {len(gain)}"
        rows[str(k)] = row
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("logs", nargs="+", type=Path)
    parser.add_argument("--base", type=Path, help="an earlier results file whose learning-curve rows are kept")
    parser.add_argument("--output", type=Path, help="write the rows here (printed either way)")
    args = parser.parse_args()
    runs = base_runs(json.loads(args.base.read_text())) if args.base else []
    try:
        for log in args.logs:
            run = read_run(log)
            runs.append({"k": run["real_count"], "arm": arm_of(run), "seed": run["seed"], "dice": run["dice_chosen"],
                         "dice_05": run["dice"], "auc": run["auc"], "source": str(log)})
        rows = curve(runs)
    except ValueError as error:
        sys.exit(f"error: {error}")
    for k, row in rows.items():
        print(f"K={k:>2}  real {row.get('real_mean', float('nan')):.4f} ({len(row['real'])} seeds)  mixed {row.get('mixed_mean', float('nan')):.4f} "
              f"({len(row['mixed'])})  paired gain {row.get('gain_mean', float('nan')):+.4f} ± {row.get('gain_standard_error') or float('nan'):.4f}, "
              f"{row.get('seeds_ahead', '-')} ahead")
    if args.output:
        results = {"what": WHAT, "commands": COMMANDS, "base": str(args.base) if args.base else None,
                   "learning_curve": {"measure": "Dice on DRIVE test at the threshold chosen on the K real training pairs seen", "rows": rows},
                   "runs": [{key: run[key] for key in ("k", "arm", "seed", "dice", "dice_05", "auc", "source")} for run in runs]}
        args.output.write_text(json.dumps(results, indent=1) + "\n")
        print(args.output)


if __name__ == "__main__":
    main()
