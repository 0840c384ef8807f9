"""The photo detailer (retinagan.models.photodetail): a diffusion model that redraws a photo's fine
detail given its coarse part; its training, the translator's use of it, and the CLI."""
import csv
import json
from dataclasses import asdict

import numpy as np
from PIL import Image
from scipy import ndimage
import pytest
import torch

from retinagan.checkpoint import load_model, read_config, save_model
from retinagan.cli import main
from retinagan.data.preprocess import fov_disc
from retinagan.errors import CheckpointError, RetinaganError
from retinagan.inference import FundusTranslator
from retinagan.lesions import Lesion, edited_region
from retinagan.models.autoencoder import AutoencoderConfig, VesselAutoencoder
from retinagan.models.detail import DetailConfig, VesselDetailer
from retinagan.models.photodetail import DetailCritic, PhotoDetailConfig, PhotoDetailer, split_photo
from retinagan.models.pix2pix import Pix2PixConfig, Pix2PixGenerator
from retinagan.training.photodetail import PhotoDetailTrainConfig, adversarial_step, batch_of, train_photodetail

TINY = PhotoDetailConfig(widths="8,16", image_size=64, sample_steps=3)


def photos_and_maps(count: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    fov = np.broadcast_to(fov_disc(size), (count, size, size)).copy()
    photos = (rng.random((count, size, size, 3)) * 200 + 20).astype(np.uint8) * fov[..., None]
    vessels = (rng.random((count, size, size)) < 0.1) & fov
    return photos, vessels, fov


def test_split_photo_parts_add_up_inside_the_fov_and_vanish_outside():
    photos = torch.rand(2, 3, 32, 32) * 2 - 1
    fov = torch.zeros(2, 1, 32, 32)
    fov[:, :, 4:28, 4:28] = 1
    coarse, detail = split_photo(photos, fov, 2.0)
    assert torch.allclose((coarse + detail) * fov, photos * fov, atol=1e-6)
    assert float(coarse[fov.expand_as(coarse) == 0].abs().max()) == 0 and float(detail[fov.expand_as(detail) == 0].abs().max()) == 0
    flat = torch.full((1, 3, 32, 32), 0.3)
    coarse, detail = split_photo(flat, fov[:1], 4.0)  # the dark surround does not bleed into the rim
    assert torch.allclose(coarse[fov[:1].expand_as(coarse) > 0], torch.tensor(0.3), atol=1e-5)
    assert float(detail.abs().max()) < 1e-5


def test_forward_shape():
    model = PhotoDetailer(TINY)
    assert model(torch.zeros(2, 11, 64, 64), torch.rand(2)).shape == (2, 3, 64, 64)
    with pytest.raises(RuntimeError):
        model(torch.zeros(1, 8, 64, 64), torch.rand(1))  # eleven input channels


def test_draw_is_per_seed_keeps_the_surround_and_round_trips_through_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = PhotoDetailer(TINY).eval()
    photos, vessels, fov = photos_and_maps(2)
    fov[1, :, :20] = False  # a cut field of view
    photos[1, :, :20] = 7
    drawn = model.draw(photos, vessels, fov, [5, 6])
    assert drawn.dtype == np.uint8 and drawn.shape == photos.shape
    assert np.array_equal(drawn[1], model.draw(photos[1:], vessels[1:], fov[1:], [6])[0])  # photo k: its inputs and seed only
    assert not np.array_equal(drawn[0], model.draw(photos[:1], vessels[:1], fov[:1], [7])[0])  # another seed, other detail
    assert np.array_equal(drawn[1][~fov[1]], photos[1][~fov[1]])  # outside the FOV the photo is kept as it was
    assert not np.array_equal(drawn[0][fov[0]], photos[0][fov[0]])
    loaded, config = load_model(save_model(tmp_path / "ckpt", model, "photodetail"), expected_kind="photodetail")
    assert config["model_config"]["widths"] == "8,16"
    assert np.array_equal(loaded.draw(photos, vessels, fov, [5, 6]), drawn)


def test_keep_detail_blends_the_photos_own_fine_detail_with_the_drawn(tmp_path):
    """keep k: (1 - k) times the drawn detail plus k times the photo's own, over the same blur."""
    torch.manual_seed(0)
    model = PhotoDetailer(TINY).eval()
    photos, vessels, fov = photos_and_maps(2)
    drawn = model.draw(photos, vessels, fov, [5, 6])
    assert np.array_equal(model.draw(photos, vessels, fov, [5, 6], keep=0.0), drawn)  # the default: all drawn
    own = model.draw(photos, vessels, fov, [5, 6], keep=1.0)
    assert np.abs(own.astype(int) - photos).max() <= 1  # all kept: the photo itself (blur + its detail)
    half = model.draw(photos, vessels, fov, [5, 6], keep=0.5).astype(float)
    assert np.abs(half - (drawn.astype(float) + photos) / 2).max() <= 1.5
    assert not np.array_equal(half, drawn) and not np.array_equal(half, own)
    with pytest.raises(ValueError, match="keep"):
        model.draw(photos, vessels, fov, [5, 6], keep=1.5)
    # the share is a checkpoint setting: read back from its config, used when draw is not told otherwise
    model.config = PhotoDetailConfig(**{**asdict(TINY), "keep_detail": 0.5})
    loaded, config = load_model(save_model(tmp_path / "ckpt", model, "photodetail"), expected_kind="photodetail")
    assert config["model_config"]["keep_detail"] == 0.5
    assert np.array_equal(loaded.draw(photos, vessels, fov, [5, 6]), model.draw(photos, vessels, fov, [5, 6], keep=0.5))
    stored = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    stored["model_config"]["keep_detail"] = 2.0  # a hand-edited config: refused when loaded, with the reason
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(stored))
    with pytest.raises(CheckpointError, match="keep_detail must be within 0-1"):
        load_model(tmp_path / "ckpt", expected_kind="photodetail")


def test_batch_of_picks_crops_and_flips_all_arrays_alike():
    a = torch.arange(3 * 2 * 16 * 16, dtype=torch.float32).reshape(3, 2, 16, 16)
    first, second = batch_of((a, a * 2), 6, 8, torch.Generator().manual_seed(0))
    assert first.shape == (6, 2, 8, 8) and torch.equal(second, first * 2)
    whole = batch_of((a,), 40, 0, torch.Generator().manual_seed(1))[0]
    assert whole.shape == (40, 2, 16, 16)
    views = {a[i].flip(dims).numpy().tobytes(): (i, dims) for i in range(3) for dims in [(), (1,), (2,), (1, 2)]}
    assert all(p.numpy().tobytes() in views for p in whole)  # each pick is a photo, flipped or not
    assert len({views[p.numpy().tobytes()][1] for p in whole}) == 4  # all four flips occur


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A photodetail checkpoint trained 3 steps on a tiny prepared set of 64-px photos."""
    from retinagan.pipeline import PreparedSet, save_prepared

    root = tmp_path_factory.mktemp("photodetail")
    photos, vessels, fov = photos_and_maps(6)
    prepared = PreparedSet(images=photos, fov=fov, vessels=vessels, grades=np.full(6, -1, np.int8),
                           ids=np.array([f"p{i}" for i in range(6)]), sources=np.array(["test"] * 6),
                           vessel_sources=np.array(["manual"] * 6), mirrored=np.zeros(6, bool))
    data = save_prepared(prepared, root / "set.npz")
    cfg = PhotoDetailTrainConfig(data=str(data), output=str(root / "run"), model=TINY, steps=3, batch_size=2, crop=32,
                                 log_every=1, sample_every=100, state_every=2, device="cpu", bf16=False, holdout_every=3)
    return train_photodetail(cfg), cfg


def test_training_writes_a_checkpoint_samples_and_stats(trained):
    folder, cfg = trained
    config = read_config(folder, "photodetail")
    assert config["steps"] == 3 and "4 real fundus photos" in config["training_data"]  # 6 photos, every 3rd held out
    rows = [json.loads(line) for line in (folder.parent / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and all(np.isfinite(r["loss"]) for r in rows)
    assert (folder.parent / "samples" / "final.png").is_file()


def test_training_from_init_keeps_the_model_settings(trained, tmp_path):
    folder, cfg = trained
    cont = PhotoDetailTrainConfig(data=cfg.data, output=str(tmp_path / "cont"), init=str(folder), steps=1, batch_size=2,
                                  sample_every=100, state_every=100, device="cpu", bf16=False, holdout_every=3)
    again = train_photodetail(cont)
    config = read_config(again, "photodetail")
    assert config["model_config"]["widths"] == "8,16" and config["init"] == str(folder)
    with pytest.raises(CheckpointError):
        other = save_model(tmp_path / "vessel-detailer", VesselDetailer(DetailConfig(widths="8,16", image_size=64)), "detail")
        train_photodetail(PhotoDetailTrainConfig(data=cfg.data, output=str(tmp_path / "bad"), init=str(other), steps=1, device="cpu"))


def test_sample_is_differentiable_and_the_critic_judges_patches():
    from retinagan.models.photodetail import DetailCritic

    torch.manual_seed(0)
    model = PhotoDetailer(TINY)
    photos, vessels, fov = photos_and_maps(2)
    rgb = torch.from_numpy(photos).permute(0, 3, 1, 2).float() / 127.5 - 1
    maps, mask = (torch.from_numpy(a.astype(np.float32))[:, None] for a in (vessels, fov))
    coarse, detail = split_photo(rgb, mask, TINY.sigma)
    drawn = model.sample(coarse, maps, mask, torch.randn(2, 3, 64, 64), steps=3)
    critic = DetailCritic(width=8, layers=3)
    logits = critic(coarse, maps, mask, drawn * mask)
    assert logits.shape == (2, 1, 8, 8)  # one logit per 8x8 block of a 64-px photo
    logits.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.requires_grad)
    # draw() is sample() without gradients: the same photo for the same seed
    again = model.draw(photos, vessels, fov, [4, 5], steps=3)
    noise = torch.cat([torch.randn((1, 3, 64, 64), generator=torch.Generator().manual_seed(s)) for s in (4, 5)])
    with torch.no_grad():
        by_hand = (coarse + model.sample(coarse, maps, mask, noise, 3) / TINY.scale) * mask + rgb * (1 - mask)
    assert np.abs(again.astype(int) - ((by_hand.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()).max() == 0


def test_adversarial_fine_tune_moves_the_detailer_and_logs_its_losses(trained, tmp_path):
    folder, cfg = trained
    tune = PhotoDetailTrainConfig(data=cfg.data, output=str(tmp_path / "adv"), init=str(folder), steps=3, batch_size=2,
                                  log_every=1, sample_every=100, state_every=2, device="cpu", bf16=False, holdout_every=3,
                                  adversarial_weight=0.5, adversarial_steps=2, critic_width=8, lr=1e-3, snapshot_steps="1, 3")
    tuned = train_photodetail(tune)
    rows = [json.loads(line) for line in (tuned.parent / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(np.isfinite([r["loss"], r["adversarial"], r["critic"]]).all() for r in rows)
    before, _ = load_model(folder, expected_kind="photodetail")
    after, config = load_model(tuned, expected_kind="photodetail")
    assert config["train_config"]["adversarial_weight"] == 0.5
    assert any(not torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()))
    # snapshots of the EMA weights at the steps asked for, float16 as shipped: the last is the final weights
    snapshots = sorted(p.name for p in (tuned.parent / "snapshots").iterdir())
    assert snapshots == ["step-000001", "step-000003"]
    first, first_config = load_model(tuned.parent / "snapshots" / "step-000001", expected_kind="photodetail")
    last, last_config = load_model(tuned.parent / "snapshots" / "step-000003", expected_kind="photodetail")
    assert (first_config["dtype"], first_config["steps"], last_config["steps"]) == ("float16", 1, 3)
    assert all(torch.equal(a, b.half().float()) for a, b in zip(last.state_dict().values(), after.state_dict().values()))
    assert any(not torch.equal(a, b) for a, b in zip(first.state_dict().values(), last.state_dict().values()))
    # the training state carries the critic, so an interrupted fine-tune resumes with it
    from safetensors.torch import load_file

    states = sorted(tuned.parent.glob("state-*"))
    assert states and any(k.startswith("module/critic/") for k in load_file(str(states[-1] / "state.safetensors")))
    # --critic-warmup: the first steps train the critic alone; the detailer does not move
    warm = train_photodetail(PhotoDetailTrainConfig(**{**asdict(tune), "model": tune.model, "output": str(tmp_path / "warm"), "steps": 2,
                                                       "critic_warmup": 2, "critic_steps": 2, "snapshot_steps": ""}))
    warm_rows = [json.loads(line) for line in (warm.parent / "stats.jsonl").read_text().splitlines()]
    assert [sorted(r) for r in warm_rows] == [["critic", "seconds", "step"]] * 2
    unchanged, _ = load_model(warm, expected_kind="photodetail")
    assert all(torch.equal(a, b) for a, b in zip(before.state_dict().values(), unchanged.state_dict().values()))
    with pytest.raises(ValueError, match="--init"):
        train_photodetail(PhotoDetailTrainConfig(data=cfg.data, output=str(tmp_path / "noinit"), steps=1, device="cpu",
                                                 bf16=False, holdout_every=3, adversarial_weight=0.5))
    for bad, message in (({"snapshot_steps": "100,two"}, "--snapshot-steps"), ({"critic_steps": 0}, "--critic-steps")):
        with pytest.raises(ValueError, match=message):
            train_photodetail(PhotoDetailTrainConfig(**{**asdict(tune), "model": tune.model, "output": str(tmp_path / "bad"), **bad}))
    assert not (tmp_path / "bad").exists()  # refused before anything was written


def test_adversarial_step_updates_the_critic_critic_steps_times_and_only_it_in_warm_up():
    torch.manual_seed(0)
    model = PhotoDetailer(PhotoDetailConfig(widths="8,16", image_size=32))
    critic = DetailCritic(4, 2)
    optimizers = {"model": torch.optim.Adam(model.parameters(), lr=1e-3), "critic": torch.optim.Adam(critic.parameters(), lr=1e-3)}
    photos, vessels = torch.rand(2, 3, 32, 32) * 2 - 1, (torch.rand(2, 1, 32, 32) > 0.8).float()
    fov = torch.ones(2, 1, 32, 32)
    cfg = PhotoDetailTrainConfig(model=model.config, adversarial_weight=1.0, adversarial_steps=2, critic_steps=3, bf16=False)
    before = [p.detach().clone() for p in model.parameters()]
    losses = adversarial_step(model, critic, optimizers, photos, vessels, fov, cfg, torch.Generator().manual_seed(0),
                              torch.device("cpu"), critic_only=True)
    assert set(losses) == {"critic"}
    assert {int(state["step"]) for state in optimizers["critic"].state.values()} == {3}
    assert not optimizers["model"].state and all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    losses = adversarial_step(model, critic, optimizers, photos, vessels, fov, cfg, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert set(losses) == {"loss", "adversarial", "critic"}
    assert {int(state["step"]) for state in optimizers["critic"].state.values()} == {6}
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_translator_redraws_detail_with_the_photo_detailer(trained, tmp_path):
    folder, _ = trained
    pix = save_model(tmp_path / "pix", Pix2PixGenerator(Pix2PixConfig(base_channels=4, image_size=64)).eval(), "pix2pix")
    vessels = photos_and_maps(2)[1]
    plain = FundusTranslator.load(pix).translate(vessels, look_seed=[1, 2])
    translator = FundusTranslator.load(pix, photo_detail=folder)
    detailed = translator.translate(vessels, look_seed=[1, 2])
    assert detailed.shape == plain.shape and not np.array_equal(detailed, plain)
    assert np.array_equal(detailed, translator.translate(vessels, look_seed=[1, 2]))  # seeded: the same photos again
    assert np.array_equal(detailed[1], translator.translate(vessels[1:], look_seed=[2])[0])
    outside = ~fov_disc(64)
    assert not detailed[:, outside].any()  # black outside the FOV, as without it
    # The lesions asked for, and a margin around them, stay as painted: the detailer would erase the small ones.
    lesions = [[Lesion("microaneurysm", 20, 30, 2.0), Lesion("exudate", 40, 36, 3.0)], []]
    kept = edited_region(lesions[0], 64, FundusTranslator.LESION_KEEP_PX)
    painted = FundusTranslator.load(pix).translate(vessels, look_seed=[1, 2], lesions=lesions)
    both = translator.translate(vessels, look_seed=[1, 2], lesions=lesions)
    assert np.array_equal(both[0][kept], painted[0][kept]) and not np.array_equal(both[0][~kept], painted[0][~kept])
    assert np.array_equal(both[1], detailed[1])  # no lesions: all redrawn
    # Lesion maps given to a lesion-drawing translator: the maps grown by LESION_KEEP_PX stay as drawn.
    drawing = save_model(tmp_path / "pixl", Pix2PixGenerator(Pix2PixConfig(base_channels=4, image_size=64, lesions=3)).eval(), "pix2pix")
    maps = np.zeros((2, 3, 64, 64), bool)
    maps[0, 0, 30:32, 20:22] = True
    region = ndimage.binary_dilation(maps[0, 0], structure=np.hypot(*np.mgrid[-3:4, -3:4]) <= 3)  # the spot grown by 3 px
    as_drawn = FundusTranslator.load(drawing).translate(vessels, look_seed=[1, 2], lesion_maps=maps)
    redrawn = FundusTranslator.load(drawing, photo_detail=folder).translate(vessels, look_seed=[1, 2], lesion_maps=maps)
    assert np.array_equal(redrawn[0][region], as_drawn[0][region]) and not np.array_equal(redrawn[0][~region], as_drawn[0][~region])
    translator.use_photo_detailer(None)
    assert np.array_equal(translator.translate(vessels, look_seed=[1, 2]), plain)
    with pytest.raises(RetinaganError, match="px"):
        translator.use_photo_detailer(PhotoDetailer(PhotoDetailConfig(widths="8,16", image_size=128)))
    with pytest.raises(CheckpointError):
        FundusTranslator.load(pix, photo_detail=pix)  # a pix2pix checkpoint is no photo detailer


def test_cli_generate_with_photo_detail_and_its_errors(trained, tmp_path, capsys):
    folder, _ = trained
    pix = save_model(tmp_path / "pix", Pix2PixGenerator(Pix2PixConfig(base_channels=4, image_size=64)).eval(), "pix2pix")
    vae = save_model(tmp_path / "vae", VesselAutoencoder(AutoencoderConfig(latent_dim=8, base_channels=4, image_size=64)).eval(), "vae")
    out = tmp_path / "out"
    assert main(["generate", "--checkpoint", str(vae), "--translator", str(pix), "--photo-detail", str(folder),
                 "--photo-detail-steps", "2", "--n", "2", "--output", str(out)]) == 0
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    assert len(rows) == 2 and all("+photodetail:" in row["translator"] for row in rows)
    assert main(["generate", "--checkpoint", str(vae), "--photo-detail", str(folder), "--n", "1", "--output", str(tmp_path / "o2")]) == 2
    assert "need --translator" in capsys.readouterr().err
    assert main(["generate", "--checkpoint", str(vae), "--translator", str(pix), "--photo-detail-steps", "2", "--n", "1",
                 "--output", str(tmp_path / "o3")]) == 2
    assert "--photo-detail-steps needs --photo-detail" in capsys.readouterr().err


def test_explorer_and_app_offer_the_photo_detailer(trained, tmp_path):
    """A checkpoints folder with a vessel model, a translator and a photo detailer: the Generate and
    Export callbacks redraw the photos' detail when asked, the same seed giving the same photo."""
    import shutil
    import zipfile

    import app
    from retinagan.explorer import PHOTO_DETAILER, Explorer

    folder, _ = trained
    root = tmp_path / "checkpoints"
    save_model(root / "aae-lsgan-128", VesselAutoencoder(AutoencoderConfig(latent_dim=8, base_channels=4, image_size=64)).eval(), "aae")
    save_model(root / "pix2pix-grade", Pix2PixGenerator(Pix2PixConfig(base_channels=4, image_size=64, appearance_dim=6)).eval(), "pix2pix")
    ex = Explorer(root)
    assert not ex.has_photo_detailer()
    with pytest.raises(RetinaganError, match="no photo detailer"):
        ex.generate("aae-lsgan-128", 0, photo_detail=True)
    shutil.copytree(folder, root / PHOTO_DETAILER)
    app.state.update(explorer=None, checkpoints=str(root), real_trees=None, data=None)
    try:
        vessels, plain, note_plain = app.generate(3, "unknown", "aae-lsgan-128")
        same_vessels, detailed, note = app.generate(3, "unknown", "aae-lsgan-128", photo_detail=True)
        assert np.array_equal(vessels, same_vessels) and not np.array_equal(plain, detailed)
        assert "photo detailer" in note and "photo detailer" not in note_plain
        assert np.array_equal(app.generate(3, "unknown", "aae-lsgan-128", photo_detail=True)[1], detailed)
        assert np.array_equal(app.generate(3, "unknown", "aae-lsgan-128")[1], plain)  # the plain translator stays plain
        path, message = app.export("aae-lsgan-128", 2, 0, [], photo_detail=True, progress=lambda *a, **k: None)
        with zipfile.ZipFile(path) as archive:
            manifest = [n for n in archive.namelist() if n.endswith("manifest.csv")][0]
            rows = list(csv.DictReader(archive.read(manifest).decode().splitlines()))
        assert "photo detailer" in message and all(r["translator"].endswith("+photodetail:photodetail") for r in rows)
        assert manifest.split("/")[0].endswith("-photodetail-seed0")
        assert "follow their grades less closely" not in message  # no grades asked for: no caution
        compared, compared_note = app.compare_photos(3, progress=lambda *a, **k: None)
        compared_detail, detail_note = app.compare_photos(3, photo_detail=True, progress=lambda *a, **k: None)
        assert compared.shape == compared_detail.shape and not np.array_equal(compared, compared_detail)
        assert "photo detailer" in detail_note and "photo detailer" not in compared_note
        vessel_map = np.zeros((64, 64), np.uint8)
        vessel_map[30:33, 5:60] = 255
        upload = tmp_path / "map.png"
        Image.fromarray(vessel_map).save(upload)
        path_args = ("aae-lsgan-128", None, str(upload), None, str(upload), 3, "linear", "unknown", False)
        *_, plain_photos, _, plain_note = app.interpolate(*path_args, progress=lambda *a, **k: None)
        *_, detailed_photos, _, detailed_note = app.interpolate(*path_args, True, progress=lambda *a, **k: None)
        assert plain_photos.shape == detailed_photos.shape and not np.array_equal(plain_photos, detailed_photos)
        assert "photo detailer" in detailed_note and "photo detailer" not in plain_note
        _, graded = app.export("aae-lsgan-128", 1, 0, ["2 moderate"], photo_detail=True, progress=lambda *a, **k: None)
        assert "follow their grades less closely" in graded
        _, plain_graded = app.export("aae-lsgan-128", 1, 0, ["2 moderate"], progress=lambda *a, **k: None)
        assert "less closely" not in plain_graded
        # Lesions tab: the canvas photo detailed, a placed lesion keeping the translator's pixels
        canvas, base, _, note = app.lesion_base("aae-lsgan-128", 3, "unknown", True)
        plain_canvas, _, _, plain_note = app.lesion_base("aae-lsgan-128", 3, "unknown")
        assert not np.array_equal(canvas, plain_canvas) and "photo detailer" in note and "photo detailer" not in plain_note
        lesion = '[{"kind": "haemorrhage", "x": 30, "y": 32, "size": 5}]'
        with_lesion, message = app.lesions_api("aae-lsgan-128", 3, "unknown", lesion, True)
        outside = ~edited_region([Lesion("haemorrhage", 30, 32, 5)], 64)
        assert "1 lesion" in message and np.array_equal(with_lesion[outside], canvas[outside])
        assert not np.array_equal(with_lesion, canvas)
    finally:
        app.state.update(explorer=None, checkpoints=None, real_trees=None)
