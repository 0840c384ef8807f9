import json

import numpy as np
import pytest

from retinagan.cli import main
from retinagan.metrics.evaluate_fundus import anatomy, disc_peaks, fid, fov_iou, kid, split_halves
from retinagan.models.pix2pix import Pix2PixConfig
from retinagan.training.pix2pix import Pix2PixTrainConfig, train_pix2pix

from conftest import SEGMENTER, make_fundus


def test_fid_and_kid_by_construction():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 8)), rng.normal(size=(200, 8))
    shifted = b + 1.0
    assert fid(a, b) < 0.5 < fid(a, shifted)
    assert fid(a, shifted) == pytest.approx(8.0, rel=0.25)  # |mean difference|^2 = 8
    near, near_std = kid(a, b, subsets=20, subset_size=50)
    far, _ = kid(a, shifted, subsets=20, subset_size=50)
    assert abs(near) < far and near_std > 0


def test_split_halves_is_stable():
    ids = np.array([f"x{i}" for i in range(9)])
    half = split_halves(ids)
    assert half.sum() == 5 and np.array_equal(half, split_halves(ids[::-1])[::-1])


def test_anatomy_checks_on_synthetic_photos():
    rgb, _ = make_fundus(256, 256, disc_side="right", seed=1)
    fov = rgb.max(2) > 0
    assert disc_peaks(rgb, fov) == (True, "right")
    assert disc_peaks(rgb[:, ::-1], fov[:, ::-1])[1] == "left"
    two = rgb.copy()
    two[110:146, 40:76] = rgb[110:146, 173:209]  # a copy of the disc (and its vessels) on the left
    assert disc_peaks(two, fov)[0] is False
    assert fov_iou(rgb, fov) > 0.95
    half = rgb.copy()
    half[:128] = 0  # the FOV's top half lost
    assert fov_iou(half, fov) < 0.6
    rates = anatomy(np.stack([rgb, half]), np.stack([fov, fov]))
    assert rates["fov_intact_rate"] == 0.5


def test_evaluate_fundus_cli(prepared_maps, tmp_path, capsys):
    cfg = Pix2PixTrainConfig(data=str(prepared_maps), output=str(tmp_path / "p2p"), model=Pix2PixConfig(base_channels=4, image_size=128, grades=5, lesions=3, appearance_dim=6),
                             disc_channels=4, steps=2, batch_size=2, holdout_every=3)
    folder = train_pix2pix(cfg)
    args = ["evaluate", "fundus", "--checkpoint", str(folder), "--real", str(prepared_maps), "--segmenter", str(SEGMENTER), "--json", "--store"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n_real_a"] + result["n_real_b"] == 5 and result["n_holdout"] == 2
    assert result["fid_from_real_maps"] > 0 and np.isfinite(result["fid_real_vs_real"])
    assert result["fid_from_real_maps_own_conditions"] > 0 and np.isfinite(result["kid_from_real_maps_own_conditions"])  # lesion maps + grade
    assert result["fid_from_real_maps_drawn_conditions"] > 0 and np.isfinite(result["kid_from_real_maps_drawn_conditions"])  # another photo's
    assert result["fid_from_real_maps_own_look"] > 0 and np.isfinite(result["kid_from_real_maps_own_look"])  # + each photo's own look
    assert 0 <= result["fidelity_dice_holdout"] <= 1 and 0 <= result["fidelity_dice_real_photos"] <= 1
    assert result["fid_heldout_trees"] > 0 and result["fid_heldout_real"] > 0  # 2 held-out trees vs the other 3 photos
    assert result["fid_heldout_trees"] != result["fid_heldout_real"] and np.isfinite(result["kid_heldout_trees"])
    # the first row over 8 sets of look seeds (the default): set 1 is the row itself, the others differ
    sets = result["fid_from_real_maps_look_sets"]
    assert result["look_sets"] == len(sets) == 8 and sets[0] == result["fid_from_real_maps"] and len(set(sets)) > 1
    assert result["fid_from_real_maps_look_sets_mean"] == pytest.approx(np.mean(sets))
    assert result["fid_from_real_maps_look_sets_std"] == pytest.approx(np.std(sets, ddof=1)) and result["fid_from_real_maps_look_sets_std"] > 0
    stored = json.loads((folder / "config.json").read_text())["metrics"]["evaluate_fundus"]
    assert stored["fid_from_real_maps"] == result["fid_from_real_maps"]
    assert stored["fid_from_real_maps_look_sets"] == sets
    assert main(args[:4] + ["--real", str(tmp_path / "nothing.npz")]) == 2
    assert main(args[:4] + ["--real", str(prepared_maps), "--look-sets", "0"]) == 2
    assert "--look-sets must be 1 or more" in capsys.readouterr().err


def test_fid_matches_the_matrix_square_root_formula():
    from scipy import linalg

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(40, 6)), rng.normal(size=(30, 6)) @ rng.normal(size=(6, 6)) + 0.3
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca + cb - 2 * np.real(linalg.sqrtm(ca @ cb)))
    assert fid(a, b) == pytest.approx(expected, rel=1e-6)


def test_drawn_conditions_are_another_photos_own():
    """Each photo gets another photo's lesion maps and grade: a seeded permutation with no fixed point."""
    from retinagan.metrics.evaluate_fundus import conditions_drawn, derangement

    for n in (2, 3, 10, 87):
        order = derangement(n, seed=n)
        assert sorted(order) == list(range(n)) and not (order == np.arange(n)).any()
        assert np.array_equal(order, derangement(n, seed=n))
    assert derangement(1) is None and not np.array_equal(derangement(50, 0), derangement(50, 1))
    own = {"lesion_maps": np.arange(4)[:, None, None, None] * np.ones((4, 3, 8, 8)), "grade": [0, 1, 2, -1]}
    order = derangement(4)
    drawn = conditions_drawn(own, order)
    assert [int(m[0, 0, 0]) for m in drawn["lesion_maps"]] == list(order) and drawn["grade"] == [own["grade"][i] for i in order]
