"""Print the README's results tables from the metrics stored in the shipped checkpoints.

python scripts/results_table.py [checkpoints]
(The numbers are written by `evaluate vessels --store` / `evaluate fundus --store`.)
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retinagan.explorer import VESSEL_MODELS as ORDER  # noqa: E402  (the app's order)


def fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def main(root: Path) -> None:
    print("| model | latent | morphology distance (x floor) | recon Dice, held-out training-set maps: encoder / refined codes "
          "| recon Dice, DRIVE test: encoder / refined | diversity | nearest-training Dice mean / max | grey pixels | train time |")
    print("|---|---|---|---|---|---|---|---|---|")
    floor = None
    for name in ORDER:
        path = root / name / "config.json"
        if not path.is_file():
            continue
        config = json.loads(path.read_text())
        metrics = config.get("metrics", {})
        ev = metrics.get("evaluate_vessels", {})
        floor = ev.get("real_vs_real_floor", floor)
        print(
            f"| `{name}` | {config['model_config']['latent_dim']} | {fmt(ev.get('morphology_distance'))} ({fmt(ev.get('ratio_to_floor'), 1)}x) "
            f"| {fmt(metrics.get('holdout_reconstruction_dice'))} / {fmt(ev.get('reconstruction_dice_holdout_refined'))} "
            f"| {fmt(ev.get('reconstruction_dice_drive_test'))} / {fmt(ev.get('reconstruction_dice_drive_test_refined'))} "
            f"| {fmt(ev.get('diversity_pairwise_dice'))} | {fmt(ev.get('nearest_training_dice_mean'))} / {fmt(ev.get('nearest_training_dice_max'))} "
            f"| {fmt(100 * ev['grey_pixel_share'], 0) + '%' if 'grey_pixel_share' in ev else '-'} | {config.get('wall_time_s', 0) / 60:.0f} min |"
        )
    print(f"\nreal-vs-real floor (DRIVE training vs DRIVE test hand-drawn maps): {fmt(floor)}")
    for path in sorted([*root.glob("pix2pix*/config.json"), *root.glob("*/translator/config.json")]):
        fundus = json.loads(path.read_text()).get("metrics", {}).get("evaluate_fundus", {})
        print(f"\n| {path.parent.relative_to(root)} | value |\n|---|---|")
        for key, value in fundus.items():
            print(f"| {key} | {fmt(value, 4) if isinstance(value, float) else value} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "checkpoints"))
