import csv
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from retinagan.checkpoint import load_model, read_config
from retinagan.cli import main
from retinagan.inference import FundusTranslator, degrid, fov_disc, nyquist_notch
from retinagan.metrics.evaluate_fundus import nyquist_share
from retinagan.models.autoencoder import AutoencoderConfig
from retinagan.errors import CheckpointError
from retinagan.models.pix2pix import LUMA, DetailDiscriminator, PatchDiscriminator, Pix2PixConfig, Pix2PixGenerator, fov_shape, look_bank
from retinagan.training.autoencoder import AutoencoderTrainConfig, train_autoencoder
from retinagan.training.common import diff_augment, parse_disc_augment
from retinagan.training.pix2pix import Pix2PixTrainConfig, load_pairs, train_pix2pix

TINY = Pix2PixConfig(base_channels=4, image_size=128, grades=5, appearance_dim=6)


def test_shapes_at_256_and_patch_map():
    generator = Pix2PixGenerator(Pix2PixConfig(base_channels=8)).eval()
    out = generator(torch.rand(2, 2, 256, 256))
    assert out.shape == (2, 3, 256, 256) and out.abs().max() <= 1
    logits = PatchDiscriminator(4, 8)(torch.rand(2, 1, 256, 256), out)
    assert logits.shape == (2, 1, 16, 16)


def test_grade_changes_the_photo():
    torch.manual_seed(0)
    generator = Pix2PixGenerator(Pix2PixConfig(base_channels=4, image_size=64, grades=5)).eval()
    torch.nn.init.normal_(generator.grade.weight, std=3.0)
    x = torch.rand(1, 2, 64, 64)
    photos = [generator(x, torch.tensor([g])) for g in (0, 4, -1)]
    assert not torch.allclose(photos[0], photos[1])
    assert not torch.allclose(photos[0], photos[2])
    assert torch.equal(generator(x), photos[2])  # no grade = unknown


def test_fov_disc():
    full = fov_disc(256)
    assert abs(full.mean() - np.pi / 4) < 0.01
    cut = fov_disc(256, 0.8)
    rows = np.flatnonzero(cut.any(1))
    assert 200 <= rows[-1] - rows[0] + 1 <= 206
    assert cut.sum() < full.sum()
    with pytest.raises(ValueError, match="FOV height"):
        fov_disc(256, 0.2)


def test_pairs_are_black_outside_the_fov(prepared_maps):
    train, holdout, info = load_pairs(str(prepared_maps), 3)
    assert info["train"] + info["holdout"] == 5 and len(holdout.inputs) == info["holdout"]
    outside = train.inputs[:, 1] == 0
    assert train.photos.permute(1, 0, 2, 3)[:, outside].max() == 0
    assert train.photos.float().mean() > 20  # the photos themselves are there


def short_config(prepared_maps, output, steps=30, **kwargs):
    return Pix2PixTrainConfig(
        data=str(prepared_maps), output=str(output), model=TINY, disc_channels=4, steps=steps, batch_size=2,
        lr=2e-3, log_every=5, sample_every=steps, state_every=10, holdout_every=3, **kwargs,
    )


def test_short_training_lowers_l1_and_saves(prepared_maps, tmp_path):
    folder = train_pix2pix(short_config(prepared_maps, tmp_path / "run"))
    rows = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    l1 = [r["l1"] for r in rows if "l1" in r]
    assert l1[-1] < l1[0]
    assert (tmp_path / "run" / "samples" / "step-000030.png").is_file()
    config = read_config(folder, "pix2pix")
    assert 0 < config["metrics"]["holdout_l1"] < 255
    model, _ = load_model(folder)
    assert model.config.base_channels == 4


def test_resume_continues_exactly(prepared_maps, tmp_path, capsys):
    straight = train_pix2pix(short_config(prepared_maps, tmp_path / "a", steps=20))
    # A 20-step run leaves its state at step 10; without its checkpoint it looks killed after that.
    train_pix2pix(short_config(prepared_maps, tmp_path / "b", steps=20))
    assert [s.name for s in (tmp_path / "b").glob("state-*")] == ["state-00000010"]
    shutil.rmtree(tmp_path / "b" / "checkpoint")
    resumed = train_pix2pix(short_config(prepared_maps, tmp_path / "b", steps=20))
    assert "resumed" in capsys.readouterr().out
    assert (resumed / "model.safetensors").read_bytes() == (straight / "model.safetensors").read_bytes()
    logged = [json.loads(line)["step"] for line in (tmp_path / "b" / "stats.jsonl").read_text().splitlines()]
    assert logged == [5, 10, 15, 20, 20]  # losses every 5 steps, then the held-out L1 at 20; none twice


def test_translator_facade(prepared_maps, tmp_path):
    folder = train_pix2pix(short_config(prepared_maps, tmp_path / "run", steps=4))
    translator = FundusTranslator.load(folder)
    vessels = np.zeros((2, 128, 128), dtype=bool)
    vessels[:, 60:64] = True
    fov = fov_disc(128, 0.8)
    photos = translator.translate(vessels, fov)
    assert photos.shape == (2, 128, 128, 3) and photos.dtype == np.uint8
    assert photos[:, ~fov].max() == 0  # black outside the field of view
    assert np.array_equal(photos, translator.translate(vessels, fov))  # no noise: deterministic
    a = translator.translate(vessels[:1], fov, noise_seed=3)
    assert np.array_equal(a, translator.translate(vessels[:1], fov, noise_seed=3))
    assert not np.array_equal(a, translator.translate(vessels[:1], fov, noise_seed=4))
    with pytest.raises(ValueError, match="vessel maps must be"):
        translator.translate(np.zeros((1, 64, 64)))


def test_generate_pairs_cli(prepared_maps, tmp_path):
    tiny_vae = AutoencoderConfig(latent_dim=8, base_channels=4, image_size=128, feature_dim=32)
    vae = train_autoencoder(AutoencoderTrainConfig(
        data=str(prepared_maps), output=str(tmp_path / "vae"), model=tiny_vae, variant="vae", steps=2, batch_size=2, holdout_every=3,
    ))
    p2p = train_pix2pix(short_config(prepared_maps, tmp_path / "p2p", steps=2))
    out = tmp_path / "export"
    args = ["generate", "--checkpoint", str(vae), "--translator", str(p2p), "--n", "4", "--seed", "7", "--output", str(out), "--noise"]
    assert main(args) == 0
    with open(out / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["fundus"] for r in rows] == [f"fundus/{k:06d}.png" for k in range(4)]
    assert rows[0]["translator"] == "checkpoint" and rows[0]["seed"] == "7"
    photo = np.asarray(Image.open(out / rows[2]["fundus"]))
    assert photo.shape == (128, 128, 3)
    # An interrupted export: a photo lost -> that sample alone is made again, identical.
    (out / "fundus" / "000002.png").unlink()
    assert main(args) == 0
    assert np.array_equal(np.asarray(Image.open(out / "fundus" / "000002.png")), photo)
    # Another translator setting in the same folder is refused; nothing is overwritten.
    assert main(["generate", "--checkpoint", str(vae), "--n", "4", "--seed", "7", "--output", str(out)]) == 2
    assert (out / "fundus" / "000000.png").is_file()
    assert main(["generate", "--checkpoint", str(vae), "--grade", "2", "--n", "1", "--output", str(tmp_path / "x")]) == 2
    assert main(args[:5] + ["--grade", "7", "--n", "1", "--output", str(tmp_path / "y")]) == 2  # grades are 0-4
    # --any-look: the old pick among every training look, named in the manifest.
    assert main(args[:5] + ["--any-look", "--n", "1", "--output", str(tmp_path / "any")]) == 0
    with open(tmp_path / "any" / "manifest.csv") as f:
        assert next(csv.DictReader(f))["translator"] == "checkpoint+anylook"
    assert main(args[:5] + ["--grade", "3", "--n", "2", "--output", str(tmp_path / "z")]) == 0
    with open(tmp_path / "z" / "manifest.csv") as f:
        assert [r["grade"] for r in csv.DictReader(f)] == ["3", "3"]


def test_appearance_input_changes_the_look_and_is_seeded(prepared_maps, tmp_path):
    from retinagan.models.pix2pix import appearance_of

    photos = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    photos[0, 0] = 255
    fov = torch.ones(2, 8, 8, dtype=torch.bool)
    looks = appearance_of(photos, fov)
    assert looks.shape == (2, 6) and looks[0, 0] == 1 and looks[1].sum() == 0
    folder = train_pix2pix(short_config(prepared_maps, tmp_path / "run", steps=3))
    translator = FundusTranslator.load(folder)
    assert translator.looks.shape == (3, 6)  # one look per training photo (5 photos, 2 held out)
    assert translator.look_fovs.shape == (3, 256) and translator.look_fovs.min() >= 0  # and its FOV's shape
    # The 3-step model is still saturated (all black); check the look's effect on a fresh one.
    translator = FundusTranslator(Pix2PixGenerator(TINY).eval(), {"appearance_bank": translator.looks.tolist()})
    torch.nn.init.normal_(translator.model.condition[-1].weight, std=0.5)
    vessels = np.zeros((1, 128, 128), dtype=bool)
    a = translator.translate(vessels, look_seed=0)
    assert np.array_equal(a, translator.translate(vessels, look_seed=0))
    same = next(s for s in range(1, 60) if np.array_equal(translator.look(s), translator.look(0)))
    other = next(s for s in range(1, 60) if not np.array_equal(translator.look(s), translator.look(0)))
    assert np.array_equal(a, translator.translate(vessels, look_seed=same))  # the seed picks a training photo's look
    assert not np.array_equal(a, translator.translate(vessels, look_seed=other))
    assert np.allclose(translator.look(None), translator.looks.mean(0))
    # A look given as it is (e.g. a real photo's own, appearance_of) instead of a seed's pick.
    assert np.array_equal(a, translator.translate(vessels, look_seed=0, looks=translator.look(0)[None]))
    assert not np.array_equal(a, translator.translate(vessels, look_seed=0, looks=translator.look(0)[None] * 0.5))
    with pytest.raises(ValueError, match=r"looks must be \(1, 6\)"):
        translator.translate(vessels, looks=np.zeros((2, 6)))
    with pytest.raises(ValueError, match="takes no look"):
        FundusTranslator(Pix2PixGenerator(Pix2PixConfig(base_channels=4, image_size=128)).eval(), {}).translate(vessels, looks=np.zeros((1, 6)))


def test_fov_shape_tells_cameras_apart():
    disc, cut, small = fov_disc(256), fov_disc(256, 0.8), np.zeros((256, 256), bool)
    small[64:192, 64:192] = fov_disc(128)
    shapes = fov_shape(np.stack([disc, cut, small]))
    assert shapes.shape == (3, 256) and shapes.min() >= 0 and shapes.max() == 1
    assert np.isclose(shapes[0].mean(), disc.mean()) and np.isclose(shapes[1].mean(), cut.mean())
    assert np.abs(shapes[0] - shapes[1]).mean() > 0.05 and np.abs(shapes[0] - shapes[2]).mean() > 0.2
    assert np.array_equal(fov_shape(disc), shapes[0])  # one mask or many
    assert fov_shape(fov_disc(128)).shape == (256,)  # any size: a 16 x 16 grid


def test_looks_are_picked_among_photos_with_a_fov_like_the_one_asked_for():
    disc, cut = fov_disc(128), fov_disc(128, 0.75)
    looks = np.array([[0.1 * k] * 6 for k in range(10)], np.float32)  # looks 0-5 from a full-disc camera, 6-9 from a cut one
    config = look_bank(looks, np.stack([disc] * 6 + [cut] * 4))
    assert set(config) == {"appearance_bank", "appearance_fov"} and all(len(text) == 512 for text in config["appearance_fov"])
    translator = FundusTranslator(Pix2PixGenerator(TINY).eval(), config)
    assert np.abs(translator.look_fovs - fov_shape(np.stack([disc] * 6 + [cut] * 4))).max() <= 0.5 / 255
    picked = lambda fov: {round(float(translator.look(seed, fov)[0]), 1) for seed in range(60)}  # noqa: E731
    assert picked(disc) == {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7}  # the six discs, then the nearest cut ones to make 8
    translator_cut = picked(cut)
    assert {0.6, 0.7, 0.8, 0.9} <= translator_cut and len(translator_cut) == 8
    assert np.allclose(translator.look(None, cut), looks[translator.looks_for_fov(cut)].mean(0))
    # In translate: look_seed's pick follows each map's FOV, as look(seed, fov) does.
    torch.nn.init.normal_(translator.model.condition[-1].weight, std=0.5)
    vessels = np.zeros((2, 128, 128), bool)
    fovs = np.stack([disc, cut])
    made = translator.translate(vessels, fovs, look_seed=[3, 3])
    given = np.stack([translator.look(3, disc), translator.look(3, cut)])
    assert np.array_equal(made, translator.translate(vessels, fovs, look_seed=[3, 3], looks=given))
    # Matching off, or a bank stored without FOV shapes: every look, picked as before.
    translator.match_look_to_fov = False
    assert picked(cut) == {round(0.1 * k, 1) for k in range(10)}
    old = FundusTranslator(Pix2PixGenerator(TINY).eval(), {"appearance_bank": looks.tolist()})
    assert old.look_fovs is None and all(np.array_equal(old.look(s, cut), old.look(s)) for s in range(20))
    translator.match_look_to_fov = True
    translator.use_looks(looks[:2])  # the user's own photos' looks: picked among, whatever the FOV
    assert translator.look_fovs is None and {round(float(translator.look(s, cut)[0]), 1) for s in range(30)} == {0.0, 0.1}


def test_a_damaged_fov_bank_is_a_clear_checkpoint_error():
    config = look_bank(np.zeros((3, 6)), np.stack([fov_disc(128)] * 3))
    with pytest.raises(CheckpointError, match="3 looks"):
        FundusTranslator(Pix2PixGenerator(TINY).eval(), {**config, "appearance_fov": config["appearance_fov"][:2]})
    with pytest.raises(CheckpointError, match="hex strings"):
        FundusTranslator(Pix2PixGenerator(TINY).eval(), {**config, "appearance_fov": ["zz"] * 3})


def test_folding_batchnorm_keeps_what_the_models_compute():
    """Inference loads fold each BatchNorm into its conv: same outputs, fewer layers."""
    from retinagan.models.autoencoder import AutoencoderConfig, VesselAutoencoder
    from retinagan.models.layers import fold_batchnorm

    torch.manual_seed(0)
    translator = Pix2PixGenerator(Pix2PixConfig(base_channels=8, image_size=64, appearance_dim=6))
    autoencoder = VesselAutoencoder(AutoencoderConfig(latent_dim=16, base_channels=4, image_size=64))
    for model in (translator, autoencoder):
        for m in model.modules():  # running statistics that are not the identity
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.2, 0.2)
        with pytest.raises(RuntimeError, match="eval mode"):
            fold_batchnorm(model)
        model.eval()
    x, look, z = torch.rand(2, 2, 64, 64), torch.rand(2, 6), torch.randn(2, 16)
    with torch.no_grad():
        before = translator(x, None, look), autoencoder.decode(z), autoencoder.encode(x[:, :1])
        norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in [*translator.modules(), *autoencoder.modules()])
        fold_batchnorm(translator), fold_batchnorm(autoencoder)
        after = translator(x, None, look), autoencoder.decode(z), autoencoder.encode(x[:, :1])
    assert norms > 10 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in [*translator.modules(), *autoencoder.modules()])
    for a, b in zip(before, after):
        assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()


def test_texture_noise_starts_silent_then_adds_seeded_grain():
    torch.manual_seed(0)
    plain = Pix2PixGenerator(Pix2PixConfig(base_channels=4, image_size=64)).eval()
    noisy = Pix2PixGenerator(Pix2PixConfig(base_channels=4, image_size=64, noise_levels=2)).eval()
    assert plain.noise_sizes() == [] and noisy.noise_sizes() == [16, 32]
    missing, unexpected = noisy.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["noise_strength.0", "noise_strength.1"] and not unexpected
    x = torch.rand(2, 2, 64, 64)
    with torch.no_grad():
        assert torch.equal(noisy(x), plain(x))  # zero strength: exactly the model it grew from
        for strength in noisy.noise_strength:
            strength.fill_(0.5)
        assert not torch.allclose(noisy(x), plain(x))
    translator = FundusTranslator(noisy, {})
    trees = np.zeros((3, 64, 64), dtype=bool)
    trees[:, 30:33] = True
    batch = translator.translate(trees, look_seed=[5, 6, 5])
    assert np.array_equal(batch[0], batch[2]) and not np.array_equal(batch[0], batch[1])  # the grain follows the seed
    assert np.array_equal(batch[1], translator.translate(trees[:1], look_seed=6)[0])  # whatever the batch
    assert np.array_equal(translator.translate(trees[:1], noise_seed=2), translator.translate(trees[:1], noise_seed=2))
    with pytest.raises(ValueError, match="noise_levels"):
        Pix2PixGenerator(Pix2PixConfig(base_channels=4, image_size=64, noise_levels=9))


def test_refiner_starts_silent_then_paints_full_resolution_seeded_grain():
    torch.manual_seed(0)
    plain = Pix2PixGenerator(Pix2PixConfig(base_channels=4, image_size=64, lesions=3, noise_levels=2)).eval()
    refined = Pix2PixGenerator(Pix2PixConfig(base_channels=4, image_size=64, lesions=3, noise_levels=2, refine_channels=8)).eval()
    assert refined.noise_sizes() == [16, 32, 64]  # the refiner's map last: the others draw as before
    missing, unexpected = refined.load_state_dict(plain.state_dict(), strict=False)
    assert missing and all(k.startswith("refine.") for k in missing) and not unexpected
    for strength in [*plain.noise_strength, *refined.noise_strength]:
        strength.data.fill_(0.5)
    x = torch.rand(2, 5, 64, 64)
    noise = [torch.randn(2, 1, s, s) for s in refined.noise_sizes()]
    with torch.no_grad():
        assert torch.equal(refined(x, noise=noise), plain(x, noise=noise[:2]))  # zero last conv: exactly the model it grew from
        refined.refine[-1].weight.normal_(0, 0.1)
        a, b = refined(x, noise=noise), refined(x, noise=noise[:2] + [torch.randn(2, 1, 64, 64)])
    assert not torch.allclose(a, b)  # its own full-resolution noise map matters
    changed = (a - b).abs().amax(dim=1)[0]
    assert (changed > 1e-4).float().mean() > 0.5  # grain everywhere, not a patch
    translator = FundusTranslator(refined, {})
    trees = np.zeros((2, 64, 64), dtype=bool)
    trees[:, 30:33] = True
    assert np.array_equal(translator.translate(trees, look_seed=[4, 4])[0], translator.translate(trees[:1], look_seed=4)[0])
    with pytest.raises(ValueError, match="refine_channels"):
        Pix2PixGenerator(Pix2PixConfig(base_channels=4, image_size=64, refine_channels=-1))


def test_refiner_fine_tune_from_a_checkpoint(prepared_maps, tmp_path):
    start = train_pix2pix(short_config(prepared_maps, tmp_path / "start", steps=3))
    cfg = short_config(prepared_maps, tmp_path / "ref", steps=4, init=str(start))
    cfg.model = Pix2PixConfig(**{**TINY.__dict__, "refine_channels": 8})
    model, config = load_model(train_pix2pix(cfg))
    assert model.config.refine_channels == 8 and config["model_config"]["refine_channels"] == 8
    assert model.refine[-1].weight.abs().sum() > 0  # the refiner learned something
    shipped, _ = load_model("checkpoints/pix2pix-grade")  # its stored config predates the field
    assert shipped.config.refine_channels == 0 and shipped.refine is None


def test_lowpass_l1_ignores_grain_but_not_shape():
    from retinagan.losses import gaussian_blur

    torch.manual_seed(0)
    flat = torch.full((1, 3, 32, 32), 0.3)
    assert torch.allclose(gaussian_blur(flat, 1.5), flat, atol=1e-6)
    grain = flat + 0.2 * torch.randn_like(flat)
    edge = flat.clone()
    edge[..., 16:] = -0.3
    assert (gaussian_blur(grain, 1.0) - flat).abs().mean() < 0.35 * (grain - flat).abs().mean()  # white noise: ~0.28x
    assert (gaussian_blur(edge, 1.0) - flat).abs().mean() > 0.5 * (edge - flat).abs().mean()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as in a bf16 training step: the blur stays float32
        blurred = gaussian_blur(grain, 3.0)
    assert blurred.dtype == torch.float32 and torch.equal(blurred, gaussian_blur(grain, 3.0))


def test_texture_fine_tune_from_a_checkpoint(prepared_maps, tmp_path):
    start = train_pix2pix(short_config(prepared_maps, tmp_path / "start", steps=3))
    cfg = short_config(prepared_maps, tmp_path / "tex", steps=6, init=str(start), l1_lowpass=1.0, l1_detail_weight=0.1)
    cfg.model = Pix2PixConfig(**{**TINY.__dict__, "noise_levels": 2})
    folder = train_pix2pix(cfg)
    model, config = load_model(folder)
    assert model.config.noise_levels == 2 and config["train_config"]["l1_lowpass"] == 1.0
    assert any(s.abs().sum() > 0 for s in model.noise_strength)  # the strengths learned something
    with pytest.raises(ValueError, match="l1_lowpass"):
        train_pix2pix(short_config(prepared_maps, tmp_path / "bad", l1_lowpass=-1.0))


def test_discriminator_sees_real_and_fake_in_one_batch():
    """Fake photos = the real ones at lower contrast. Without biases the discriminator's convs and
    LeakyReLUs are scale-equivariant, so batch statistics computed per batch map both batches to
    the same features: judged one batch each it stays at chance; judged in one batch (shared
    statistics) it learns the difference."""
    from retinagan.losses import discriminator_loss
    from retinagan.training.common import judge

    def final_loss(together: bool) -> float:
        torch.manual_seed(0)
        disc = PatchDiscriminator(4, 8)
        first = disc.trunk[0][0]
        first.bias.data.zero_()
        first.bias.requires_grad_(False)
        optimizer = torch.optim.Adam([p for p in disc.parameters() if p.requires_grad], lr=2e-3)
        condition = torch.full((4, 1, 64, 64), 0.5)  # enters as 0: no constant channel acting as a bias
        for _ in range(40):
            real = 0.6 * torch.randn(4, 3, 64, 64).clamp(-1.5, 1.5)
            fake = 0.3 * real
            if together:
                (real_logits, _), (fake_logits, _) = judge(disc, (condition, real), (condition, fake), classify=True)
            else:
                real_logits, fake_logits = disc(condition, real), disc(condition, fake)
            loss = discriminator_loss(real_logits, fake_logits)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return loss.item()

    assert final_loss(together=True) < 1.0
    assert final_loss(together=False) > 1.35  # 2 log 2 = 1.386: chance


def test_multiscale_discriminator_judges_pooled_pairs():
    """scales=3: three patch maps stacked (B, 3, S/16, S/16); the first is the one-scale
    discriminator's map (same weights, same output), the others see the pair pooled, so a
    change that pooling erases (a +-1 checkerboard) moves only the first."""
    torch.manual_seed(0)
    one, multi = PatchDiscriminator(4, 8, grades=5), PatchDiscriminator(4, 8, grades=5, scales=3)
    multi.load_state_dict(one.state_dict(), strict=False)  # the first scale's weights (and grade parts)
    one.eval(), multi.eval()
    condition, photo = torch.rand(2, 1, 128, 128), torch.rand(2, 3, 128, 128) * 2 - 1
    grade = torch.tensor([1, -1])
    logits, grade_logits = multi(condition, photo, grade, classify=True)
    assert logits.shape == (2, 3, 8, 8) and grade_logits.shape == (2, 5)
    assert torch.allclose(logits[:, :1], one(condition, photo, grade))
    checker = (torch.arange(128)[:, None] + torch.arange(128)[None, :]) % 2 * 2 - 1  # averages to 0 over 2x2
    moved = multi(condition, photo + 0.2 * checker, grade) - logits
    assert moved[:, 0].abs().max() > 1e-3 and moved[:, 1:].abs().max() < 1e-4
    with pytest.raises(ValueError, match="scales"):
        PatchDiscriminator(4, 8, scales=0)


def test_training_with_a_multiscale_discriminator(prepared_maps, tmp_path):
    folder = train_pix2pix(short_config(prepared_maps, tmp_path / "ms", steps=12, disc_scales=2))
    assert load_model(folder)[1]["train_config"]["disc_scales"] == 2
    state = load_file(str(tmp_path / "ms" / "state-00000010" / "state.safetensors"))
    assert any(k.startswith("module/disc/coarse.0.") for k in state)  # the second scale is trained and kept for a resume


def test_detail_discriminator_judges_only_the_luma_detail():
    """It sees the photo's luma minus its blur: a colour cast, a brightness shift or a change of
    chroma alone leaves its logits as they were; grain moves them; so does the condition map."""
    torch.manual_seed(0)
    disc = DetailDiscriminator(condition_channels=1, base_channels=8, sigma=4.0).eval()
    condition, photo = (torch.rand(2, 1, 128, 128) > 0.9).float(), torch.rand(2, 3, 128, 128) * 1.6 - 0.8
    logits = disc(condition, photo)
    assert logits.shape == (2, 1, 16, 16)
    cast = torch.tensor([0.1, -0.05, 0.2]).view(1, 3, 1, 1)
    chroma = torch.zeros(2, 3, 128, 128)
    chroma[:, 0] = 0.2 * torch.randn(2, 128, 128)  # red up and green down where luma stays
    chroma[:, 1] = -chroma[:, 0] * LUMA[0] / LUMA[1]
    for same in (photo + cast, photo + chroma):
        assert torch.allclose(disc(condition, same), logits, atol=1e-4)
    assert (disc(condition, photo + 0.1 * torch.randn(2, 1, 128, 128)) - logits).abs().max() > 1e-3
    assert (disc(1 - condition, photo) - logits).abs().max() > 1e-3


def test_training_with_a_detail_discriminator_resumes_exactly(prepared_maps, tmp_path):
    straight = train_pix2pix(short_config(prepared_maps, tmp_path / "a", steps=20, detail_disc_weight=1.0))
    train_pix2pix(short_config(prepared_maps, tmp_path / "b", steps=20, detail_disc_weight=1.0))
    shutil.rmtree(tmp_path / "b" / "checkpoint")
    resumed = train_pix2pix(short_config(prepared_maps, tmp_path / "b", steps=20, detail_disc_weight=1.0))
    assert (resumed / "model.safetensors").read_bytes() == (straight / "model.safetensors").read_bytes()
    state = load_file(str(tmp_path / "a" / "state-00000010" / "state.safetensors"))
    assert any(k.startswith("module/detail_disc/") for k in state)  # trained and kept for a resume
    rows = [json.loads(line) for line in (tmp_path / "a" / "stats.jsonl").read_text().splitlines()]
    assert all(0 < r["d_detail"] < 5 and "fool_detail" in r for r in rows if "d" in r)
    plain = train_pix2pix(short_config(prepared_maps, tmp_path / "c", steps=20))
    assert (plain / "model.safetensors").read_bytes() != (straight / "model.safetensors").read_bytes()
    assert load_model(straight)[1]["train_config"]["detail_disc_weight"] == 1.0
    with pytest.raises(ValueError, match="detail_disc_weight"):
        train_pix2pix(short_config(prepared_maps, tmp_path / "d", steps=2, detail_disc_weight=-1.0))


def test_diff_augment_moves_map_and_photo_together_and_passes_gradients():
    """Translation and cutout act on the (map, photo) pair alike, so the discriminator still sees
    which photo goes with which map; colour acts on the photo only; every draw is per pair and
    from the global RNG (a resumed run draws the same); the generator's gradient gets through."""
    torch.manual_seed(0)
    condition = torch.zeros(6, 1, 64, 64)
    condition[:, :, 30:34, :] = 1  # a horizontal vessel
    photo = (condition.repeat(1, 3, 1, 1) * 1.5 - 0.75).requires_grad_(True)  # dark where the vessel is
    torch.manual_seed(1)
    cond_out, photo_out = diff_augment(condition, photo, ("translation", "cutout"))
    assert cond_out.shape == condition.shape and photo_out.shape == photo.shape
    rows = lambda t: t[:, 0].amax(dim=2)  # noqa: E731  which rows hold the vessel, per pair
    kept = cond_out[:, 0] > 0.5
    assert torch.equal(kept, photo_out[:, 0] > 0.5)  # the vessel moved (and was cut) the same way in both
    assert not torch.equal(rows(cond_out), rows(condition))  # ... and did move for some pair
    assert (photo_out == 0).any() and (photo_out == -1).any()  # a cut square, and black where the shift brought in edge
    torch.manual_seed(1)
    again = diff_augment(condition, photo, ("translation", "cutout"))
    assert torch.equal(again[0], cond_out) and torch.equal(again[1], photo_out)
    photo_out.sum().backward()
    assert photo.grad is not None and photo.grad.abs().sum() > 0
    torch.manual_seed(2)
    cond_col, photo_col = diff_augment(condition, photo.detach(), ("color",))
    assert torch.equal(cond_col, condition) and not torch.allclose(photo_col, photo.detach())
    assert parse_disc_augment(" color, cutout ") == ("color", "cutout") and parse_disc_augment("") == ()
    with pytest.raises(ValueError, match="unknown discriminator augmentation flip"):
        parse_disc_augment("color,flip")


def test_training_with_diff_augment_resumes_exactly(prepared_maps, tmp_path):
    policy = "color,translation,cutout"
    straight = train_pix2pix(short_config(prepared_maps, tmp_path / "a", steps=20, disc_augment=policy))
    train_pix2pix(short_config(prepared_maps, tmp_path / "b", steps=20, disc_augment=policy))
    shutil.rmtree(tmp_path / "b" / "checkpoint")
    resumed = train_pix2pix(short_config(prepared_maps, tmp_path / "b", steps=20, disc_augment=policy))
    assert (resumed / "model.safetensors").read_bytes() == (straight / "model.safetensors").read_bytes()
    plain = train_pix2pix(short_config(prepared_maps, tmp_path / "c", steps=20))
    assert (plain / "model.safetensors").read_bytes() != (straight / "model.safetensors").read_bytes()
    assert load_model(straight)[1]["train_config"]["disc_augment"] == policy
    with pytest.raises(ValueError, match="unknown discriminator augmentation"):
        train_pix2pix(short_config(prepared_maps, tmp_path / "d", steps=2, disc_augment="colour"))


def test_degrid_removes_a_2px_grid_and_keeps_the_picture():
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    turn = 2 * np.pi / 64  # periodic over the image, as a photo black at its border is
    smooth = 0.3 * np.sin(3 * turn * xx) + 0.2 * np.cos(2 * turn * yy) + 0.5 * np.exp(-((xx - 30) ** 2 + (yy - 20) ** 2) / 50)
    checker = 0.1 * ((-1.0) ** (xx + yy)) * (1 + 0.5 * np.sin(turn * yy))  # a grid of slowly varying strength
    x = torch.from_numpy(np.stack([smooth + checker, smooth]))[:, None]
    out = degrid(x, 16 * 64 / 256).numpy()[:, 0]
    assert np.abs(out[0] - smooth).max() < 0.02 < np.abs(checker).min()  # the grid goes, the picture stays
    assert np.abs(out[1] - smooth).max() < 0.02  # a picture without a grid is left nearly as it was
    gains = nyquist_notch(64, 4.0)
    assert gains[32, 0] == gains[0, 32] == gains[32, 32] == 0 and gains[0, 0] > 0.999
    assert torch.equal(gains, gains.flip(0).roll(1, 0))  # symmetric in +/- frequency (a real image stays real)


def test_shipped_translator_photos_have_no_sub_pixel_grid():
    translator = FundusTranslator.load("checkpoints/pix2pix-grade")
    trees = np.zeros((2, 256, 256), dtype=bool)
    trees[:, 120:124, 40:220] = True
    trees[:, 40:220, 150:153] = True
    photos = translator.translate(trees, look_seed=[1, 2])
    translator.degrid_radius = 0
    raw = translator.translate(trees, look_seed=[1, 2])
    assert sum(nyquist_share(raw)) > 10 * sum(nyquist_share(photos))
    assert np.abs(photos.astype(int) - raw).mean() < 3  # a notch, not a blur
    assert photos[:, ~fov_disc(256)].max() == 0


def test_pairs_of_some_sources_only_keep_the_whole_sets_holdout(prepared_maps, tmp_path):
    from retinagan.errors import DatasetError

    arrays = dict(np.load(prepared_maps))
    rank = np.argsort(np.argsort(arrays["ids"]))  # by id: drive, eyepacs, drive, eyepacs, drive
    arrays["sources"] = np.where(rank % 2 == 0, "drive", "eyepacs")
    mixed = tmp_path / "mixed.npz"
    np.savez(mixed, **arrays)
    train_all, held_all, _ = load_pairs(str(mixed), 3)  # held out: the 1st and 4th by id
    train, held, info = load_pairs(str(mixed), 3, sources="drive")
    assert len(held.ids) == 1 and len(train.ids) == 2
    drive_ids = set(arrays["ids"][arrays["sources"] == "drive"])
    assert set(train.ids) | set(held.ids) == drive_ids
    assert set(held.ids) == set(held_all.ids) & drive_ids and set(train.ids) == set(train_all.ids) & drive_ids
    assert info["sources"] == {"drive": 3}
    with pytest.raises(DatasetError, match="no pairs from idrid"):
        load_pairs(str(mixed), 3, sources="drive,idrid")
    with pytest.raises(DatasetError, match="none held out"):
        load_pairs(str(mixed), 10, sources="eyepacs")  # every 10th of 5 by id: the first, a drive pair
    with pytest.raises(DatasetError, match="nothing to train on"):
        load_pairs(str(mixed), 2, sources="drive")  # the 1st, 3rd and 5th: every drive pair


def _disc_photo(colour, size=200) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size * 0.45) ** 2
    return (inside[..., None] * np.array(colour, dtype=np.uint8)).astype(np.uint8)


def test_generate_in_the_looks_of_given_photos(tmp_path):
    """generate --looks-from: each photo takes the colour and contrast of one of the given photos
    (photo_looks, as the training photos' were taken) instead of a training photo's."""
    from retinagan.checkpoint import save_model
    from retinagan.inference import photo_looks
    from retinagan.models.autoencoder import VesselAutoencoder

    look = photo_looks([_disc_photo((200, 100, 50))], 64)
    assert look.shape == (1, 6) and np.allclose(look[0, :3], np.array([200, 100, 50]) / 255, atol=0.02) and (look[0, 3:] < 0.05).all()
    torch.manual_seed(0)
    ae = VesselAutoencoder(AutoencoderConfig(latent_dim=8, base_channels=4, image_size=64))
    ae.decoder.head[0].bias.data.fill_(0.5)
    p2p = Pix2PixGenerator(Pix2PixConfig(base_channels=4, image_size=64, appearance_dim=6))
    torch.nn.init.normal_(p2p.condition[-1].weight, std=0.5)  # untrained: make the look matter
    save_model(tmp_path / "aae", ae.eval(), "aae")
    save_model(tmp_path / "p2p", p2p.eval(), "pix2pix", appearance_bank=[[0.5, 0.3, 0.1, 0.2, 0.1, 0.05]] * 3)
    photos = tmp_path / "camera"
    photos.mkdir()
    Image.fromarray(_disc_photo((60, 90, 200))).save(photos / "a.png")
    Image.fromarray(_disc_photo((90, 200, 60))).save(photos / "b.jpg")
    base = ["generate", "--checkpoint", str(tmp_path / "aae"), "--translator", str(tmp_path / "p2p"), "--n", "3"]
    assert main(base + ["--output", str(tmp_path / "plain")]) == 0
    assert main(base + ["--looks-from", str(photos), "--output", str(tmp_path / "cam")]) == 0
    assert main(base + ["--looks-from", str(photos), "--output", str(tmp_path / "cam2")]) == 0
    with open(tmp_path / "cam" / "manifest.csv") as f:
        assert {r["translator"] for r in csv.DictReader(f)} == {"p2p+looks:camera"}
    for k in range(3):
        plain, cam = (np.asarray(Image.open(tmp_path / d / "fundus" / f"{k:06d}.png")) for d in ("plain", "cam"))
        assert not np.array_equal(plain, cam)
        assert np.array_equal(cam, np.asarray(Image.open(tmp_path / "cam2" / "fundus" / f"{k:06d}.png")))  # deterministic
    # Bad input: a one-line message, nothing written.
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.png").write_text("not an image")
    assert main(base + ["--looks-from", str(tmp_path / "empty"), "--output", str(tmp_path / "e1")]) == 2
    assert main(base + ["--looks-from", str(tmp_path / "junk"), "--output", str(tmp_path / "e2")]) == 2
    assert main(base + ["--looks-from", str(tmp_path / "nowhere"), "--output", str(tmp_path / "e3")]) == 2
    assert main(base[:3] + ["--n", "1", "--looks-from", str(photos), "--output", str(tmp_path / "e4")]) == 2  # no translator
    assert not any((tmp_path / e).exists() for e in ("e1", "e2", "e3", "e4"))
    assert main(base + ["--looks-from", str(photos), "--output", str(tmp_path / "plain")]) == 2  # another export's folder
    with pytest.raises(ValueError, match="looks must be"):
        FundusTranslator.load(tmp_path / "p2p").use_looks(np.zeros((0, 6)))
