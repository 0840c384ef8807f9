"""scripts/segmenter_gap.py: train and test Dice of a segmenter at the threshold chosen on its training photos."""
import pytest

from conftest import ROOT, SEGMENTER, load_script

SCRIPT = ROOT / "scripts" / "segmenter_gap.py"


@pytest.fixture(scope="module")
def script():
    return load_script("segmenter_gap")


@pytest.mark.skipif(not (SEGMENTER / "model.safetensors").is_file(), reason="shipped segmenter missing")
def test_gap_is_train_minus_test_at_the_training_threshold(script, drive_like):
    from retinagan.inference import Segmenter
    from retinagan.metrics.evaluate_segmenter import drive_probabilities, score_probabilities

    segmenter = Segmenter.load(SEGMENTER)
    training = drive_probabilities(segmenter, drive_like, "training", progress=False)
    test = drive_probabilities(segmenter, drive_like, "test", progress=False)
    out = script.generalisation_gap(training, test)
    for other in (0.2, 0.3, 0.5, 0.7, 0.8):  # the chosen threshold is the best on training (of the 0.2-0.8 grid)
        assert out["train_dice"] >= round(score_probabilities(training, "training", other)["dice"], 4)
    assert out["test_dice"] == round(score_probabilities(test, "test", out["threshold"])["dice"], 4)
    assert out["test_dice_oracle"] >= out["test_dice"]
    assert out["gap"] == pytest.approx(out["train_dice"] - out["test_dice"], abs=1e-4)
    first = script.generalisation_gap(training[:1], test)  # a segmenter that saw only the first training photo
    assert first["train_dice"] == round(score_probabilities(training[:1], "training", first["threshold"])["dice"], 4)
    assert first["test_dice"] == round(score_probabilities(test, "test", first["threshold"])["dice"], 4)
    assert "unseen_train_dice" not in first
    split = script.generalisation_gap(training[:1], test, unseen=training[1:])  # the other two, never seen
    assert split["unseen_train_dice"] == round(score_probabilities(training[1:], "training", split["threshold"])["dice"], 4)
    assert split["gap_unseen"] == pytest.approx(split["train_dice"] - split["unseen_train_dice"], abs=1e-4)


def test_references_score_a_second_observer_and_the_round_trip(script, drive_like):
    import shutil

    alone = script.references(drive_like)
    assert alone["second_observer_dice"] is None  # the fixture has no 2nd_manual
    small = script.references(drive_like, fov_width=32)
    assert 0 < small["round_trip_dice"] < alone["round_trip_dice"] <= 1  # coarser round trips lose more of the thin vessels
    second = drive_like / "test" / "2nd_manual"
    second.mkdir()
    for manual in (drive_like / "test" / "1st_manual").iterdir():
        shutil.copy(manual, second / manual.name.replace("manual1", "manual2"))
    agreeing = script.references(drive_like)
    assert agreeing["second_observer_dice"] == 1.0 and agreeing["second_observer_accuracy"] == 1.0
    assert agreeing["second_observer_round_trip_dice"] < 1.0  # the same maps, but through 256 px and back


def test_arguments_are_checked():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(SCRIPT), "x", "--real-count", "0"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "--real-count must be within 1 and 20" in done.stderr
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "give segmenter folders, --references, or both" in done.stderr
