import numpy as np
import pytest

from retinagan.metrics.evaluate_vessels import evaluate_generator, nearest_dice
from retinagan.metrics.morphology import FEATURES, feature_table, fractal_dimension, morphology_distance, vessel_features


def line_map(size=128):
    m = np.zeros((size, size), bool)
    m[60:63, 10:110] = True
    return m


def test_features_of_a_straight_line():
    f = vessel_features(line_map())
    assert f["components"] == 1 and f["largest_component_share"] == 1
    assert f["tortuosity"] == pytest.approx(1.0, abs=0.05)
    assert f["junctions"] == 0
    assert f["endpoints"] > 0
    assert f["area_fraction"] == pytest.approx(300 / 128**2)


def test_t_junction_and_two_pieces():
    m = line_map()
    m[20:61, 60:63] = True  # a branch joining the line: one junction
    m[100:104, 100:120] = True  # a separate piece
    f = vessel_features(m)
    assert f["junctions"] > 0 and f["components"] == 2 and f["largest_component_share"] < 1


def test_fractal_dimension_of_line_and_square():
    square = np.ones((128, 128), bool)
    assert fractal_dimension(square) == pytest.approx(2.0, abs=0.01)
    line = np.zeros((128, 128), bool)
    line[64, :] = True
    assert fractal_dimension(line) == pytest.approx(1.0, abs=0.05)


def test_distance_is_zero_for_the_same_set_and_grows_with_difference():
    rng = np.random.default_rng(0)
    maps = rng.random((6, 64, 64)) < 0.1
    same = feature_table(maps)
    assert morphology_distance(same, same)["mean"] == 0
    denser = feature_table(rng.random((6, 64, 64)) < 0.3)
    assert morphology_distance(same, denser)["area_fraction"] > 3
    assert set(morphology_distance(same, denser)) == set(FEATURES) | {"mean"}


def test_nearest_dice_finds_the_copy():
    rng = np.random.default_rng(1)
    refs = rng.random((5, 32, 32)) < 0.2
    scores = nearest_dice(refs[[2]], refs)
    assert scores[0] == pytest.approx(1.0)


def test_evaluate_generator_end_to_end(drive_like):
    import torch

    from retinagan.inference import VesselGenerator
    from retinagan.models.autoencoder import AutoencoderConfig, VesselAutoencoder

    torch.manual_seed(0)
    model = VesselAutoencoder(AutoencoderConfig(latent_dim=8, base_channels=4, image_size=128, feature_dim=16)).eval()
    result = evaluate_generator(VesselGenerator(model, {"kind": "aae"}), drive_like, n=4, refine=20)
    assert result["samples"] == 4 and result["real_vs_real_floor"] > 0
    assert 0 <= result["reconstruction_dice_drive_test"] <= 1
    assert result["refine_steps"] == 20 and 0 <= result["reconstruction_dice_drive_test_refined"] <= 1
    assert result["reconstruction_dice_holdout"] is None  # no training data given
    assert result["ratio_to_floor"] == pytest.approx(result["morphology_distance"] / result["real_vs_real_floor"])
