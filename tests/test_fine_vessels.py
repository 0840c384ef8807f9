"""Procedural fine vessels (retinagan.fine_vessels) and their wiring into sampling, the CLI and the app."""
import csv
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from conftest import ROOT, need_data
from retinagan.checkpoint import read_config
from retinagan.cli import main
from retinagan.fine_vessels import FineVesselConfig, add_fine_vessels, estimate_disc_and_fovea, join_pieces
from retinagan.inference import FINE_SUFFIX, FineVesselGenerator, VesselGenerator, load_vessel_generator
from retinagan.metrics.morphology import vessel_features
from retinagan.models.autoencoder import AutoencoderConfig
from retinagan.training.autoencoder import AutoencoderTrainConfig, train_autoencoder

SHIPPED = ROOT / "checkpoints" / "aae-lsgan-128"


def thick_tree(side: int = 128) -> np.ndarray:
    """Two thick arcades leaving a disc on the right, as the decoders draw them."""
    canvas = Image.new("L", (side, side))
    draw = ImageDraw.Draw(canvas)
    disc = (0.85 * side, 0.45 * side)
    draw.ellipse([disc[0] - 6, disc[1] - 6, disc[0] + 6, disc[1] + 6], fill=255)
    draw.line([disc, (0.5 * side, 0.15 * side), (0.15 * side, 0.3 * side)], fill=255, width=6)
    draw.line([disc, (0.5 * side, 0.8 * side), (0.15 * side, 0.65 * side)], fill=255, width=6)
    return np.asarray(canvas) > 0


def test_fine_vessels_lengthen_and_thin_the_tree_inside_the_fov():
    tree = thick_tree()
    out = add_fine_vessels(tree, seed=0)
    before, after = vessel_features(tree), vessel_features(out)
    assert after["skeleton_length"] > 1.5 * before["skeleton_length"]  # branches grown
    mean_width = lambda f: f["area_fraction"] / f["skeleton_length"]  # noqa: E731  (area per centre-line)
    assert mean_width(after) < 0.7 * mean_width(before)  # and the arcades thinned
    assert after["endpoints"] > before["endpoints"]
    centre = (tree.shape[0] - 1) / 2
    y, x = np.mgrid[: tree.shape[0], : tree.shape[0]]
    assert not out[(y - centre) ** 2 + (x - centre) ** 2 > (tree.shape[0] / 2) ** 2].any()
    fov = np.zeros_like(tree)
    fov[:, :64] = True
    assert not add_fine_vessels(tree, seed=0, fov=fov)[:, 64:].any()


def test_fine_vessels_are_deterministic_per_seed():
    tree = thick_tree()
    a, b, c = add_fine_vessels(tree, 3), add_fine_vessels(tree, 3), add_fine_vessels(tree, 4)
    assert a.dtype == bool and a.shape == tree.shape
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_fine_vessels_keep_an_empty_map_empty_and_refuse_other_shapes():
    assert not add_fine_vessels(np.zeros((64, 64), bool), 0).any()
    dot = np.zeros((64, 64), bool)
    dot[30, 30] = True  # one centre-line point: one neighbour to take a heading from
    assert add_fine_vessels(dot, 0)[30, 30] and np.array_equal(add_fine_vessels(dot, 0), add_fine_vessels(dot, 0))
    with pytest.raises(ValueError, match="one square map"):
        add_fine_vessels(np.zeros((2, 64, 64), bool), 0)


def test_join_pieces_links_near_pieces_and_drops_far_ones():
    tree = np.zeros((100, 100), bool)
    tree[50, 10:60] = True  # main piece
    tree[50, 70:80] = True  # 10 px off: joined
    tree[5, 5:8] = True  # 45 px off: dropped
    joined = join_pieces(tree, max_gap=20)
    assert joined[50, 60:70].all() and joined[50, 70:80].all() and not joined[5].any()


def test_fovea_lies_towards_the_centre_from_the_disc():
    disc, fovea = estimate_disc_and_fovea(thick_tree(128))
    assert disc[1] > 90 and 40 < fovea[1] < disc[1] - 20
    _, mirrored = estimate_disc_and_fovea(thick_tree(128)[:, ::-1])
    assert mirrored[1] > 64  # disc on the left: the fovea to its right


def test_branches_avoid_the_fovea():
    tree = thick_tree(128)
    _, fovea = estimate_disc_and_fovea(tree)
    config = FineVesselConfig(fovea_radius=20)
    y, x = np.mgrid[:128, :128]
    near = (y - fovea[0]) ** 2 + (x - fovea[1]) ** 2 < 8**2
    grown = np.stack([add_fine_vessels(tree, s, config=config) & ~tree for s in range(4)])
    assert grown.any(axis=0).sum() > 200 and grown[:, near].mean() < 0.25 * grown.mean()


@pytest.fixture(scope="module")
def shipped():
    if not (SHIPPED / "config.json").is_file():
        pytest.skip("the shipped aae-lsgan-128 checkpoint is missing")
    return VesselGenerator.load(SHIPPED)


def test_wrapped_generator_samples_per_seed_and_keeps_the_models_decoder(shipped):
    fine = FineVesselGenerator(shipped)
    batch = fine.sample([5, 6])
    assert batch.dtype == np.float32 and set(np.unique(batch)) <= {0.0, 1.0}
    assert np.array_equal(batch[1], fine.sample([6])[0])  # sample k depends on its seed only
    assert np.array_equal(batch[0], add_fine_vessels(shipped.sample([5])[0] >= 0.5, 5))
    codes = np.zeros((1, fine.latent_dim), np.float32)
    assert np.array_equal(fine.decode(codes), shipped.decode(codes)) and fine.config is shipped.config
    assert isinstance(load_vessel_generator(SHIPPED, fine_vessels=True), FineVesselGenerator)
    assert fine.add_fine(np.zeros((0, 256, 256)), []).shape == (0, 256, 256)
    with pytest.raises(ValueError, match="2 maps but 1 seeds"):
        fine.add_fine(batch, [5])


def test_generate_cli_names_the_fine_vessels_in_the_manifest(shipped, tmp_path):
    out = tmp_path / "fine"
    assert main(["generate", "--checkpoint", str(SHIPPED), "--fine-vessels", "--n", "2", "--seed", "7", "--output", str(out)]) == 0
    with open(out / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == ["aae-lsgan-128" + FINE_SUFFIX] * 2
    written = np.asarray(Image.open(out / "vessels" / "000001.png")) > 0
    assert np.array_equal(written, add_fine_vessels(shipped.sample([8])[0] >= 0.5, 8))
    # The same folder will not mix trees with and without fine vessels.
    assert main(["generate", "--checkpoint", str(SHIPPED), "--n", "2", "--seed", "7", "--output", str(out)]) == 2


def test_app_generate_and_export_offer_fine_vessels(shipped):
    import app

    plain, _, note_plain = app.generate(2, "unknown", "aae-lsgan-128")
    fine, _, note = app.generate(2, "unknown", "aae-lsgan-128", fine_vessels=True)
    assert "procedural fine vessels" in note and "procedural" not in note_plain
    assert vessel_features(fine > 0)["skeleton_length"] > 1.5 * vessel_features(plain > 0)["skeleton_length"]
    moved, _, _ = app.generate(2, "unknown", "aae-lsgan-128", 1.0, fine_vessels=True)  # a slider moved: same seed's growth
    assert moved is not None and moved.shape == fine.shape
    path, message = app.export("aae-lsgan-128", 2, 0, [], True, progress=lambda *a, **k: None)
    with zipfile.ZipFile(path) as archive:
        manifest = [n for n in archive.namelist() if n.endswith("manifest.csv")][0]
        rows = list(csv.DictReader(archive.read(manifest).decode().splitlines()))
    assert "fine vessels" in message and rows[0]["model"] == "aae-lsgan-128" + FINE_SUFFIX
    assert Path(manifest).parts[0].endswith("-fine-vessels-seed0")


def test_fine_vessels_bring_samples_closer_to_drive_test(shipped):
    """The measured claim at small scale: 20 samples, morphology distance to DRIVE test's hand-drawn maps."""
    from retinagan.metrics.evaluate_vessels import drive_maps
    from retinagan.metrics.morphology import feature_table, morphology_distance

    reference = feature_table(drive_maps(need_data("drive"), "test", 256))
    seeds = list(range(20))
    plain = morphology_distance(reference, feature_table(shipped.sample(seeds) >= 0.5))["mean"]
    fine = morphology_distance(reference, feature_table(FineVesselGenerator(shipped).sample(seeds) > 0.5))["mean"]
    assert fine < 0.5 * plain, (fine, plain)


def test_evaluate_vessels_stores_fine_vessel_scores_beside_the_models_own(prepared_maps, drive_like, tmp_path, capsys):
    tiny = AutoencoderConfig(latent_dim=8, base_channels=4, image_size=128, feature_dim=32)
    folder = train_autoencoder(AutoencoderTrainConfig(data=str(prepared_maps), output=str(tmp_path / "run"), model=tiny, steps=2,
                                                      batch_size=2, sample_every=100, state_every=100, holdout_every=2))
    args = ["evaluate", "vessels", "--checkpoint", str(folder), "--drive", str(drive_like), "--n", "3", "--refine", "0", "--json", "--store"]
    assert main(args) == 0
    plain = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(args + ["--fine-vessels"]) == 0
    fine = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert fine["fine_vessels"] and not plain["fine_vessels"] and fine["grey_pixel_share"] == 0.0
    assert fine["reconstruction_dice_holdout"] == pytest.approx(plain["reconstruction_dice_holdout"])  # the model's own decoder
    metrics = read_config(folder)["metrics"]
    assert metrics["evaluate_vessels"]["fine_vessels"] is False and metrics["evaluate_vessels_fine_vessels"]["fine_vessels"] is True
    # evaluate fundus: fine vessels need trees to act on
    shutil.rmtree(tmp_path / "run")
    code = main(["evaluate", "fundus", "--checkpoint", "checkpoints/pix2pix-grade", "--real", str(tmp_path / "none.npz"), "--fine-vessels"])
    assert code == 2 and "act on the trees of --vessels" in capsys.readouterr().err
