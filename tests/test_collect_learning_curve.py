"""scripts/collect_learning_curve.py: runs' summary lines become paired rows, foreign or clashing runs are errors."""
import json
import subprocess
import sys

import pytest
from conftest import ROOT, load_script

collect = load_script("collect_learning_curve")


def summary(seed: int, k: int, arm: str, dice: float, **changes) -> dict:
    """The summary line mixing_batchnorm.py prints for a run of one of the protocol's arms."""
    run = {"pairs": "synthetic", "translator": "checkpoints/pix2pix-grade", "mode": "shared", "seed": seed, "real_share": 1.0,
           "real_tail": 0, "drive_looks": False, "added": 0, "width": 16, "real_count": k, "batch": 16, "steps": 1200,
           "dice": dice - 0.02, "auc": 0.95, "threshold": 0.4, "dice_chosen": dice, "minutes": 4.5}
    if arm == "mixed":
        run.update(mode="domain", real_share=0.75, drive_looks=True)
    run.update(changes)
    return run


def write_log(path, run: dict) -> None:
    path.write_text("training...\n" + json.dumps(run) + "\n")


def test_arms_are_told_apart_and_other_runs_refused():
    assert collect.arm_of(summary(0, 2, "real", 0.75)) == "real"
    assert collect.arm_of(summary(0, 2, "mixed", 0.75)) == "mixed"
    for foreign in (summary(0, 2, "real", 0.75, width=32), summary(0, 2, "mixed", 0.75, added=4),
                    summary(0, 2, "mixed", 0.75, translator="runs/tr-drive-600/checkpoint"), summary(0, 2, "real", 0.75, steps=9600),
                    summary(0, 2, "mixed", 0.75, agreement=True), summary(0, 2, "mixed", 0.75, real_share=0.5)):
        with pytest.raises(ValueError, match="not a run of the learning-curve protocol"):
            collect.arm_of(foreign)


def test_rows_pair_seeds_and_summarise():
    def run(k, arm, seed, dice):
        return {"k": k, "arm": arm, "seed": seed, "dice": dice, "dice_05": dice - 0.02, "auc": 0.95}

    runs = [run(2, "real", s, d) for s, d in ((0, 0.750), (1, 0.760), (2, 0.755))]
    runs += [run(2, "mixed", s, d) for s, d in ((1, 0.770), (0, 0.754))]
    runs += [run(20, "real", 0, 0.78)]
    rows = collect.curve(runs)
    assert list(rows) == ["2", "20"]
    row = rows["2"]
    assert row["real_seeds"] == [0, 1, 2] and row["mixed"] == [0.754, 0.770]
    assert row["paired_seeds"] == [0, 1] and row["mixed_minus_real_same_seed"] == [0.004, 0.01]
    assert row["gain_mean"] == pytest.approx(0.007) and row["seeds_ahead"] == "2 of 2"
    assert row["gain_standard_error"] == pytest.approx(0.003, abs=1e-4)
    assert row["at_05_mixed_minus_real_same_seed"] == [0.004, 0.01] and row["real_dice_05_mean"] == pytest.approx(0.735)
    assert rows["20"]["mixed_minus_real_same_seed"] == [] and "gain_mean" not in rows["20"]


def test_a_seed_measured_twice_must_agree():
    same = [{"k": 5, "arm": "real", "seed": 3, "dice": 0.77, "dice_05": 0.75, "auc": 0.95}] * 2
    assert collect.curve(same)["5"]["real"] == [0.77]
    with pytest.raises(ValueError, match="seed 3"):
        collect.curve(same[:1] + [dict(same[0], dice=0.76)])


def test_command_line_merges_a_base_file_and_reports_bad_logs(tmp_path):
    earlier = {"seeds": [0], "dice_05": [0.73], "auc": [0.95]}
    base = {"learning_curve": {"rows": {"2": {"real": [0.75], "mixed": [0.76], "real_summary": earlier, "mixed_summary": earlier}}}}
    (tmp_path / "base.json").write_text(json.dumps(base))
    write_log(tmp_path / "real.log", summary(1, 2, "real", 0.752))
    write_log(tmp_path / "mixed.log", summary(1, 2, "mixed", 0.749))
    script = [sys.executable, str(ROOT / "scripts" / "collect_learning_curve.py")]
    done = subprocess.run(script + [str(tmp_path / "real.log"), str(tmp_path / "mixed.log"), "--base", str(tmp_path / "base.json"),
                                    "--output", str(tmp_path / "out.json")], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    row = json.loads((tmp_path / "out.json").read_text())["learning_curve"]["rows"]["2"]
    assert row["mixed_minus_real_same_seed"] == [0.01, -0.003] and row["seeds_ahead"] == "1 of 2"
    write_log(tmp_path / "later.log", summary(2, 2, "real", 0.758))  # this script's output serves as the next base
    again = subprocess.run(script + [str(tmp_path / "later.log"), "--base", str(tmp_path / "out.json"), "--output", str(tmp_path / "next.json")],
                           check=False, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    row = json.loads((tmp_path / "next.json").read_text())["learning_curve"]["rows"]["2"]
    assert row["real_seeds"] == [0, 1, 2] and row["real"] == [0.75, 0.752, 0.758] and row["mixed_minus_real_same_seed"] == [0.01, -0.003]
    (tmp_path / "unfinished.log").write_text("step 100 loss 0.4\n")
    failed = subprocess.run(script + [str(tmp_path / "unfinished.log")], check=False, capture_output=True, text=True)
    assert failed.returncode != 0 and "no run summary" in failed.stderr
