"""The vessel detailer (retinagan.models.detail): a diffusion model that redraws a vessel model's
coarse trees as hand-drawn-like ones; its training, sampling wrappers, CLI and app wiring."""
import json
import shutil

import numpy as np
import pytest
import torch

from conftest import ROOT, make_drive_like
from retinagan.checkpoint import load_model, read_config, save_model
from retinagan.data.readers import read_drive
from retinagan.cli import main
from retinagan.data.preprocess import fov_disc
from retinagan.errors import RetinaganError
from retinagan.inference import DETAIL_SUFFIX, DetailedVesselGenerator, VesselGenerator, load_vessel_generator
from retinagan.models.autoencoder import AutoencoderConfig
from retinagan.models.detail import DetailConfig, VesselDetailer, alpha_bar
from retinagan.pipeline import prepare, save_prepared
from retinagan.training.autoencoder import AutoencoderTrainConfig, train_autoencoder
from retinagan.training.detail import DetailTrainConfig, augmented_drive, random_crops, train_detail

TINY = DetailConfig(widths="8,16", image_size=64, sample_steps=4)
SHIPPED = ROOT / "checkpoints" / "detail"


def test_forward_shape_and_schedule():
    model = VesselDetailer(TINY)
    out = model(torch.zeros(3, 4, 64, 64), torch.rand(3))
    assert out.shape == (3, 1, 64, 64)
    t = torch.linspace(0, 1, 11)
    ab = alpha_bar(t)
    assert ab[0] > 0.999 and ab[-1] < 1e-3 and bool((ab[1:] < ab[:-1]).all())  # signal falls from all to none
    with pytest.raises(RuntimeError):
        model(torch.zeros(1, 3, 64, 64), torch.rand(1))  # four input channels, not three


def test_draw_is_per_seed_and_inside_the_fov(tmp_path):
    torch.manual_seed(0)
    model = VesselDetailer(TINY).eval()
    coarse = np.random.default_rng(0).random((2, 64, 64)).astype(np.float32)
    fov = np.zeros((64, 64), bool)
    fov[:, :40] = True
    both = model.draw(coarse, [fov, fov], [5, 6])
    assert both.dtype == bool and both.shape == (2, 64, 64)
    assert np.array_equal(both[1], model.draw(coarse[1:], [fov], [6])[0])  # map k depends on its seed and tree only
    assert not both[:, :, 40:].any()  # nothing outside the FOV
    saved = save_model(tmp_path / "ckpt", model, "detail")
    loaded, config = load_model(saved, expected_kind="detail")
    assert config["model_config"]["widths"] == "8,16"
    assert np.array_equal(loaded.eval().draw(coarse, [fov, fov], [5, 6]), both)


def test_augmented_drive_maps_are_prepared_like_the_references(drive_like):
    maps, fovs = augmented_drive(drive_like, variants=3, size=128)
    assert maps.shape == fovs.shape == (9, 128, 128) and maps.dtype == bool
    assert not (maps & ~fovs).any()  # vessels only inside the field of view
    from retinagan.metrics.evaluate_vessels import drive_maps

    assert np.array_equal(maps[::3], drive_maps(drive_like, "training", 128))  # the first version is the map as published
    assert not np.array_equal(maps[0], maps[1])  # the others are turned


def test_random_crops_cut_the_same_place_of_each_array():
    a = torch.arange(2 * 16 * 16, dtype=torch.float32).reshape(2, 1, 16, 16)
    crops = random_crops([a, a * 2], 5, 8, torch.Generator().manual_seed(0))
    assert crops[0].shape == (5, 1, 8, 8) and torch.equal(crops[1], crops[0] * 2)


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    """-> (a DRIVE-like folder, a 128-px vessel model trained 2 steps on its maps, a work folder)."""
    root = tmp_path_factory.mktemp("detail")
    drive = make_drive_like(root / "drive")

    prepared, _ = prepare(read_drive(drive, "training") + read_drive(drive, "test"), None, size=128, progress=False)
    data = save_prepared(prepared, root / "maps.npz")
    ae = AutoencoderConfig(latent_dim=8, base_channels=4, image_size=128, feature_dim=32)
    vessels = train_autoencoder(AutoencoderTrainConfig(data=str(data), output=str(root / "ae"), model=ae, steps=2, batch_size=2,
                                                       sample_every=100, state_every=100, holdout_every=2))
    return drive, vessels, root


def detail_config(drive, vessels, output, steps, **kw) -> DetailTrainConfig:
    return DetailTrainConfig(drive=str(drive), vessels=str(vessels), output=str(output), variants=2, steps=steps, batch_size=4,
                             crop=64, lr=2e-3, log_every=10, model=DetailConfig(widths="8,16", image_size=128, sample_steps=3), **kw)


def test_short_training_lowers_the_loss_and_writes_a_checkpoint(tiny_pair):
    drive, vessels, root = tiny_pair
    folder = train_detail(detail_config(drive, vessels, root / "run", 60, sample_every=30, state_every=1000))
    losses = [json.loads(line)["loss"] for line in (root / "run" / "stats.jsonl").read_text().splitlines()]
    assert len(losses) == 6 and losses[-1] < 0.7 * losses[0]
    config = read_config(folder, "detail")
    assert config["steps"] == 60 and "DRIVE training" in config["training_data"] and config["vessel_model"] == str(vessels)
    assert (root / "run" / "samples" / "step-000060.png").is_file()
    detailed = load_vessel_generator(vessels, detail=folder)
    assert isinstance(detailed, DetailedVesselGenerator)
    batch = detailed.sample([3, 4])
    assert batch.shape == (2, 128, 128) and set(np.unique(batch)) <= {0.0, 1.0}
    assert np.array_equal(batch[1], detailed.sample([4])[0])  # sample k depends on seed k alone
    plain = VesselGenerator.load(vessels)
    codes = np.zeros((1, plain.latent_dim), np.float32)
    assert np.array_equal(detailed.decode(codes), plain.decode(codes))  # reconstructions stay the model's own
    assert not detailed.sample([3])[0][~fov_disc(128)].any()
    with pytest.raises(RetinaganError, match="not both"):
        load_vessel_generator(vessels, fine_vessels=True, detail=folder)


def test_resume_continues_exactly(tiny_pair):
    drive, vessels, root = tiny_pair
    straight = train_detail(detail_config(drive, vessels, root / "a", 20, sample_every=1000, state_every=10))
    train_detail(detail_config(drive, vessels, root / "b", 20, sample_every=1000, state_every=10))
    shutil.rmtree(root / "b" / "checkpoint")  # as if killed after the state at step 10
    resumed = train_detail(detail_config(drive, vessels, root / "b", 20, sample_every=1000, state_every=10))
    assert (resumed / "model.safetensors").read_bytes() == (straight / "model.safetensors").read_bytes()


def test_cli_generate_and_evaluate_with_the_detailer(tiny_pair, capsys):
    drive, vessels, root = tiny_pair
    detailer = train_detail(detail_config(drive, vessels, root / "cli", 4, sample_every=1000, state_every=1000))
    out = root / "generated"
    assert main(["generate", "--checkpoint", str(vessels), "--detail", "--detailer", str(detailer), "--n", "2", "--seed", "3",
                 "--output", str(out)]) == 0
    manifest = (out / "manifest.csv").read_text()
    assert DETAIL_SUFFIX in manifest and (out / "vessels" / "000001.png").is_file()
    args = ["evaluate", "vessels", "--checkpoint", str(vessels), "--drive", str(drive), "--n", "3", "--refine", "0", "--json", "--store"]
    assert main(args + ["--detail", "--detailer", str(detailer)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["detail"] is True and result["grey_pixel_share"] == 0.0
    assert read_config(vessels)["metrics"]["evaluate_vessels_detail"]["detail"] is True
    assert main(["generate", "--checkpoint", str(vessels), "--detail", "--fine-vessels", "--detailer", str(detailer), "--n", "1",
                 "--output", str(root / "both")]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["generate", "--checkpoint", str(vessels), "--detail", "--detailer", str(vessels), "--n", "1",
                 "--output", str(root / "wrong")]) == 2  # a vessel model is not a detailer
    assert "detail" in capsys.readouterr().err


@pytest.mark.skipif(not SHIPPED.is_dir(), reason="no shipped detailer in checkpoints/detail")
def test_shipped_detailer_adds_thin_vessels_to_shipped_samples():
    from retinagan.metrics.morphology import vessel_features

    shipped = VesselGenerator.load(ROOT / "checkpoints" / "aae-lsgan-128")
    detailed = load_vessel_generator(ROOT / "checkpoints" / "aae-lsgan-128", detail=SHIPPED)
    plain, drawn = shipped.sample([0]) >= 0.5, detailed.sample([0]) > 0.5
    before, after = vessel_features(plain[0]), vessel_features(drawn[0])
    assert after["skeleton_length"] > 1.8 * before["skeleton_length"]  # thin vessels drawn
    assert after["components"] > 3 * before["components"]  # which break up at 256 px, as hand-drawn ones do
    overlap = (plain & drawn).sum() / plain.sum()
    assert overlap > 0.3  # the coarse tree's vessels stay where they were (the detailer thins them)


def test_explorer_without_a_detailer_says_so(tmp_path):
    from retinagan.explorer import Explorer

    (tmp_path / "aae-lsgan-128").symlink_to(ROOT / "checkpoints" / "aae-lsgan-128")
    ex = Explorer(tmp_path)
    assert not ex.has_detailer()
    with pytest.raises(RetinaganError, match="no detailer"):
        ex.generate("aae-lsgan-128", 0, detail=True)
    vessels, _, _ = ex.generate("aae-lsgan-128", 0)  # the rest still works
    assert vessels.any()


@pytest.mark.skipif(not SHIPPED.is_dir(), reason="no shipped detailer in checkpoints/detail")
def test_app_generate_and_export_offer_the_detailer():
    import csv
    import zipfile
    from pathlib import Path

    import app

    assert app.tree_options(app.TREES[1]) == {"fine_vessels": False, "detail": True}
    plain, _, note_plain = app.generate(2, "unknown", "aae-lsgan-128")
    drawn, photo, note = app.generate(2, "unknown", "aae-lsgan-128", detail=True)
    assert "redrawn by the detailer" in note and "detailer" not in note_plain
    assert drawn.shape == plain.shape and not np.array_equal(drawn, plain)
    again, _, _ = app.generate(2, "unknown", "aae-lsgan-128", detail=True)
    assert np.array_equal(again, drawn)  # the same seed, the same tree
    moved, _, _ = app.generate(2, "unknown", "aae-lsgan-128", 1.5, detail=True)  # a slider moved
    assert moved is not None and not np.array_equal(moved, drawn)
    _, _, both = app.generate(2, "unknown", "aae-lsgan-128", fine_vessels=True, detail=True)
    assert "not both" in both
    path, message = app.export("aae-lsgan-128", 2, 0, [], detail=True, progress=lambda *a, **k: None)
    with zipfile.ZipFile(path) as archive:
        manifest = [n for n in archive.namelist() if n.endswith("manifest.csv")][0]
        rows = list(csv.DictReader(archive.read(manifest).decode().splitlines()))
    assert "detailer" in message and rows[0]["model"] == "aae-lsgan-128" + DETAIL_SUFFIX
    assert Path(manifest).parts[0].endswith("-detail-seed0")
