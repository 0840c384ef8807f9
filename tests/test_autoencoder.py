import csv
import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from retinagan.checkpoint import load_model, read_config
from retinagan.cli import main
from retinagan.inference import VesselGenerator
from retinagan.errors import CheckpointError
from retinagan.losses import bce_dice_per_map, discriminator_loss, generator_loss, kl_divergence
from retinagan.models.autoencoder import AutoencoderConfig, VesselAutoencoder
from retinagan.training.autoencoder import AutoencoderTrainConfig, augment, split_holdout, train_autoencoder

TINY = AutoencoderConfig(latent_dim=8, base_channels=4, image_size=128, feature_dim=32)


def test_shapes_for_each_latent_size():
    for latent in (16, 32, 128):
        model = VesselAutoencoder(AutoencoderConfig(latent_dim=latent, base_channels=4)).eval()
        x = torch.rand(2, 1, 256, 256)
        assert model.encode(x).shape == (2, latent)
        assert model.decode(torch.randn(2, latent)).shape == (2, 1, 256, 256)


def test_sample_depends_on_its_seed_only():
    model = VesselAutoencoder(TINY).eval()
    together = model.sample([5, 6, 7])
    alone = model.sample([6])
    assert torch.allclose(together[1], alone[0])
    assert not torch.allclose(together[0], together[1])


def test_losses_by_hand():
    assert kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0
    assert kl_divergence(torch.ones(1, 2), torch.zeros(1, 2)).item() == pytest.approx(1.0)
    big = torch.full((4, 1), 20.0)
    assert discriminator_loss(big, -big, "bce").item() < 1e-6
    assert discriminator_loss(torch.ones(4, 1), torch.zeros(4, 1), "lsgan").item() == 0
    assert generator_loss(torch.ones(4, 1), "lsgan").item() == 0
    assert generator_loss(-big, "bce").item() == pytest.approx(20.0, rel=1e-3)
    with pytest.raises(ValueError, match="unknown adversarial"):
        generator_loss(big, "wgan")


def test_holdout_split_is_stable_and_by_id():
    ids = np.array([f"s{i:02d}" for i in range(20)])
    held = split_holdout(ids, 5)
    assert held.sum() == 4
    assert np.array_equal(held, split_holdout(ids[::-1], 5)[::-1])


def test_augment_keeps_maps_binary():
    maps = torch.zeros(4, 1, 64, 64, dtype=torch.uint8)
    maps[:, :, 30:34] = 1
    out = augment(maps, torch.Generator().manual_seed(0))
    assert set(torch.unique(out).tolist()) <= {0.0, 1.0}
    assert 0.5 < out.mean() / maps.float().mean() < 1.5


@pytest.mark.parametrize("variant,adversarial,dual", [("vae", "bce", False), ("aae", "bce", False), ("aae", "lsgan", True)])
def test_short_training_lowers_reconstruction_loss(prepared_maps, tmp_path, variant, adversarial, dual):
    cfg = AutoencoderTrainConfig(
        data=str(prepared_maps), output=str(tmp_path / "run"), model=TINY, variant=variant, adversarial=adversarial,
        dual=dual, steps=30, batch_size=4, log_every=10, sample_every=30, state_every=20, holdout_every=3, lr=2e-3,
    )
    folder = train_autoencoder(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    recon = [r["recon"] for r in rows if "recon" in r]
    assert recon[-1] < recon[0]
    assert (tmp_path / "run" / "samples" / "step-000030.png").is_file()
    config = read_config(folder, variant)
    assert 0 <= config["metrics"]["holdout_reconstruction_dice"] <= 1
    model, _ = load_model(folder)
    assert model.config.latent_dim == 8


def test_resume_continues_exactly(prepared_maps, tmp_path, capsys):
    def cfg(output, steps):
        return AutoencoderTrainConfig(
            data=str(prepared_maps), output=str(output), model=TINY, dual=True, steps=steps, batch_size=2,
            log_every=5, sample_every=100, state_every=10, holdout_every=3,
        )

    straight = train_autoencoder(cfg(tmp_path / "a", 20))
    # A 20-step run writes a state at step 10; make it look killed after that state.
    train_autoencoder(cfg(tmp_path / "b", 20))
    assert [s.name for s in (tmp_path / "b").glob("state-*")] == ["state-00000010"]
    shutil.rmtree(tmp_path / "b" / "checkpoint")
    resumed = train_autoencoder(cfg(tmp_path / "b", 20))
    logged = [json.loads(line)["step"] for line in (tmp_path / "b" / "stats.jsonl").read_text().splitlines()]
    assert logged == [5, 10, 15, 20, 20]  # rows past the resumed state (step 10) were replaced
    a = (straight / "model.safetensors").read_bytes()
    assert (resumed / "model.safetensors").read_bytes() == a
    assert (tmp_path / "b" / "stats.jsonl").read_text() != "" and "resumed" in capsys.readouterr().out


def test_sigkill_mid_run_then_resume_matches_uninterrupted(prepared_maps, tmp_path):
    """A real training process killed with SIGKILL resumes from its last state, files intact."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parent.parent
    args = [sys.executable, "train.py", "aae", "--data", str(prepared_maps), "--steps", "60", "--batch-size", "2",
            "--state-every", "10", "--sample-every", "1000", "--log-every", "5", "--holdout-every", "3", "--dual",
            "--model.latent-dim", "8", "--model.base-channels", "4", "--model.image-size", "128", "--model.feature-dim", "32"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(args + ["--output", str(tmp_path / "straight")], cwd=root, env=env, check=True, capture_output=True)
    killed = tmp_path / "killed"
    process = subprocess.Popen(args + ["--output", str(killed)], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(killed.glob("state-00000020")) and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "checkpoint").exists(), "killed too late: the run had finished"
    states = sorted(killed.glob("state-*"))
    assert states, "no state was written before the kill"
    for state in states:  # whatever moment the kill hit, every state folder is complete
        assert {p.name for p in state.iterdir()} == {"state.json", "state.safetensors"}
    last = int(states[-1].name.split("-")[1])
    done = subprocess.run(args + ["--output", str(killed)], cwd=root, env=env, check=True, capture_output=True, text=True)
    assert f"(step {last})" in done.stdout
    straight_rows = (tmp_path / "straight" / "stats.jsonl").read_text().splitlines()
    resumed_rows = (killed / "stats.jsonl").read_text().splitlines()
    strip = lambda rows: [{k: v for k, v in json.loads(r).items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(resumed_rows) == strip(straight_rows)  # same losses, step for step
    assert (killed / "checkpoint" / "model.safetensors").read_bytes() == (tmp_path / "straight" / "checkpoint" / "model.safetensors").read_bytes()


def test_generate_cli_is_deterministic_and_resumable(prepared_maps, tmp_path):
    cfg = AutoencoderTrainConfig(data=str(prepared_maps), output=str(tmp_path / "run"), model=TINY, steps=4, batch_size=2, holdout_every=3)
    folder = train_autoencoder(cfg)
    assert main(["generate", "--checkpoint", str(folder), "--n", "5", "--seed", "10", "--output", str(tmp_path / "a")]) == 0
    assert main(["generate", "--checkpoint", str(folder), "--n", "2", "--seed", "11", "--output", str(tmp_path / "b")]) == 0
    a = np.asarray(Image.open(tmp_path / "a" / "vessels" / "000001.png"))
    b = np.asarray(Image.open(tmp_path / "b" / "vessels" / "000000.png"))
    assert a.shape == (128, 128) and set(np.unique(a)) <= {0, 255}
    assert np.array_equal(a, b)  # seed 11 both times, whatever N and position
    with open(tmp_path / "a" / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["seed"]) for r in rows] == [10, 11, 12, 13, 14]
    # An interrupted export: a file lost, the run repeated -> only the missing one is made again.
    (tmp_path / "a" / "vessels" / "000003.png").unlink()
    assert main(["generate", "--checkpoint", str(folder), "--n", "5", "--seed", "10", "--output", str(tmp_path / "a")]) == 0
    with open(tmp_path / "a" / "manifest.csv") as f:
        assert sorted(int(r["index"]) for r in csv.DictReader(f)) == [0, 1, 2, 3, 4]
    assert main(["generate", "--checkpoint", str(folder), "--n", "5", "--seed", "99", "--output", str(tmp_path / "a")]) == 2
    generator = VesselGenerator.load(folder)
    assert generator.sample([11]).shape == (1, 128, 128) and generator.sample([]).shape == (0, 128, 128)
    many = generator.sample(list(range(10, 19)))
    assert all(np.array_equal(many[k], generator.sample([10 + k])[0]) for k in range(9))  # to the last bit, whatever the batch


def test_strong_augment_warps_deterministically_and_keeps_maps_binary():
    maps = torch.zeros(4, 1, 64, 64, dtype=torch.uint8)
    maps[:, :, 30:34] = 1
    maps[:, :, :, 10:12] = 1
    strong = augment(maps, torch.Generator().manual_seed(0), "strong")
    assert torch.equal(strong, augment(maps, torch.Generator().manual_seed(0), "strong"))
    assert set(torch.unique(strong).tolist()) <= {0.0, 1.0}
    assert 0.5 < strong.mean() / maps.float().mean() < 1.5
    assert not torch.equal(strong, augment(maps, torch.Generator().manual_seed(0), "standard"))
    with pytest.raises(ValueError, match="augment must be one of"):
        augment(maps, torch.Generator(), "wild")


def test_fine_tune_starts_from_the_checkpoint(prepared_maps, tmp_path):
    base = dict(data=str(prepared_maps), model=TINY, batch_size=2, log_every=5, sample_every=100, state_every=100, holdout_every=3)
    start = train_autoencoder(AutoencoderTrainConfig(output=str(tmp_path / "a"), steps=10, **base))
    # lr 0: the weights cannot move, so the fine-tune's convolutions are the start's exactly
    # (the other model setting given here, a wider model, is replaced by the checkpoint's).
    wide = dataclasses.replace(TINY, base_channels=8)
    tuned = train_autoencoder(AutoencoderTrainConfig(output=str(tmp_path / "b"), steps=2, lr=0.0, init=str(start),
                                                     augment="strong", **{**base, "model": wide}))
    a, b = load_model(start)[0].state_dict(), load_model(tuned)[0].state_dict()
    assert load_model(tuned)[0].config == TINY
    convs = [k for k in a if k.endswith("weight") and a[k].dim() == 4]
    assert convs and all(torch.equal(a[k], b[k]) for k in convs)
    assert "fine-tuned from" in read_config(tuned)["training_data"]
    with pytest.raises(CheckpointError):
        train_autoencoder(AutoencoderTrainConfig(output=str(tmp_path / "c"), steps=1, init=str(tmp_path / "nothing"), **base))


def test_refined_codes_reconstruct_better_per_map_and_leave_the_model_alone():
    torch.manual_seed(0)
    model = VesselAutoencoder(TINY).eval()
    generator = VesselGenerator(model, {"kind": "aae"})
    maps = np.zeros((3, 128, 128), dtype=np.float32)
    maps[:, 60:66, :] = 1
    maps[1, :, 20:24] = 1
    maps[2, 10:40, 90:95] = 1
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.from_numpy(maps)[:, None]
    coded, refined = generator.encode(maps), generator.encode(maps, refine=30)
    with torch.no_grad():
        loss = lambda z: bce_dice_per_map(model.decoder(torch.from_numpy(z)), x)  # noqa: E731
        assert (loss(refined) < loss(coded)).all()
    np.testing.assert_allclose(generator.encode(maps[1:2], refine=30)[0], refined[1], atol=1e-4)  # not the batch's
    assert np.array_equal(generator.encode(maps, refine=30), refined)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_evaluate_vessels_cli_scores_held_out_maps_with_and_without_refinement(prepared_maps, drive_like, tmp_path, capsys):
    folder = train_autoencoder(AutoencoderTrainConfig(data=str(prepared_maps), output=str(tmp_path / "run"), model=TINY, steps=4,
                                                      batch_size=2, sample_every=100, state_every=100, holdout_every=2))
    assert main(["evaluate", "vessels", "--checkpoint", str(folder), "--drive", str(drive_like), "--n", "4", "--refine", "15", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["refine_steps"] == 15
    for key in ("reconstruction_dice_holdout", "reconstruction_dice_holdout_refined", "reconstruction_dice_drive_test_refined"):
        assert 0 <= result[key] <= 1, key
    assert main(["evaluate", "vessels", "--checkpoint", str(folder), "--drive", str(drive_like), "--n", "4", "--refine", "0", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert plain["reconstruction_dice_drive_test_refined"] is None
    assert plain["reconstruction_dice_holdout"] == pytest.approx(result["reconstruction_dice_holdout"])


def test_fine_blocks_grow_a_trained_decoder_without_changing_it(prepared_maps, tmp_path):
    from retinagan.checkpoint import save_model
    from retinagan.training.autoencoder import start_autoencoder

    start = train_autoencoder(AutoencoderTrainConfig(data=str(prepared_maps), output=str(tmp_path / "a"), model=TINY, steps=3,
                                                     batch_size=2, sample_every=100, state_every=100, holdout_every=3))
    cfg = AutoencoderTrainConfig(init=str(start), model=dataclasses.replace(TINY, fine_blocks=2))
    grown, before = start_autoencoder(cfg, torch.device("cpu")).eval(), load_model(start)[0]
    assert grown.config.fine_blocks == 2 and sum(p.numel() for p in grown.parameters()) > sum(p.numel() for p in before.parameters())
    z = torch.randn(3, TINY.latent_dim)
    torch.testing.assert_close(grown.decode(z), before.decode(z))  # the new blocks start as the identity
    with torch.no_grad():  # once trained (here: perturbed), the blocks count, and survive saving + BatchNorm folding
        for p in grown.decoder.body[-1].parameters():
            p.add_(0.1 * torch.randn_like(p))
    folder = save_model(tmp_path / "grown", grown, "aae")
    assert not torch.allclose(grown.decode(z), before.decode(z))
    torch.testing.assert_close(torch.from_numpy(VesselGenerator.load(folder).decode(z.numpy())), grown.decode(z)[:, 0], atol=1e-4, rtol=1e-3)
    other = start_autoencoder(AutoencoderTrainConfig(init=str(start), model=dataclasses.replace(TINY, fine_blocks=1, base_channels=8)),
                              torch.device("cpu"))
    assert other.config == dataclasses.replace(TINY, fine_blocks=1)  # the checkpoint's sizes win; only the blocks are added


def test_lowpass_reconstruction_forgives_a_one_pixel_shift_of_a_thin_vessel():
    from retinagan.losses import lowpass_reconstruction_loss, reconstruction_loss

    target = torch.zeros(1, 1, 64, 64)
    target[..., 20:44, 31] = 1  # a 1-px vessel
    shifted = torch.roll(target, 1, dims=-1)
    as_logits = lambda m: (m * 2 - 1) * 8  # noqa: E731  confident maps
    same_full, shift_full = reconstruction_loss(as_logits(target), target), reconstruction_loss(as_logits(shifted), target)
    same_low, shift_low = (lowpass_reconstruction_loss(as_logits(m), target, 1.5) for m in (target, shifted))
    far = torch.roll(target, 12, dims=-1)  # a vessel in another place
    far_full, far_low = reconstruction_loss(as_logits(far), target), lowpass_reconstruction_loss(as_logits(far), target, 1.5)
    assert shift_full == pytest.approx(far_full)  # at full size a 1-px shift costs as much as a vessel elsewhere
    assert shift_low - same_low < 0.15 * (far_low - same_low)  # blurred, it costs a small part of that
    assert far_low - same_low > 0.1


def test_cldice_counts_thin_vessels_by_length_and_trains():
    """A decoded map that misses five thin branches loses ~a tenth of its soft Dice but half of
    its clDice (the branches hold 120 of the 168 centre-line pixels); the loss has gradients; a grey
    plateau scores well softly and not thresholded (drawn_maps)."""
    from retinagan.losses import cldice_loss, soft_dice_loss, soft_skeleton
    from retinagan.training.common import drawn_maps

    wide = torch.zeros(1, 1, 64, 64)
    wide[..., 28:37, 4:60] = 1  # a 9-px arcade
    thin = torch.zeros_like(wide)
    for column in (8, 20, 32, 44, 56):
        thin[..., 38:62, column] = 1  # 1-px branches
    target = (wide + thin).clamp(0, 1)
    as_logits = lambda m: (m * 2 - 1) * 8  # noqa: E731  confident maps
    skeleton = soft_skeleton(target)
    assert float(skeleton[..., 32, 4:60].mean()) > 0.8 and float(skeleton[..., 29, 10:50].sum()) == 0  # the arcade's middle row only
    dice_gap = float(soft_dice_loss(as_logits(wide), target) - soft_dice_loss(as_logits(target), target))
    as_map = lambda m: torch.sigmoid(as_logits(m))  # noqa: E731
    cl_gap = float(cldice_loss(as_map(wide), target) - cldice_loss(as_map(target), target))
    assert cldice_loss(as_map(target), target) < 0.01 and cl_gap > 0.4 and cl_gap > 4 * dice_gap
    logits = as_logits(wide).requires_grad_(True)
    cldice_loss(torch.sigmoid(logits * 0.1), target).backward()
    assert logits.grad[..., 45, 20] < 0  # raising a missed branch's logit lowers the loss
    # A grey plateau (0.45 everywhere) covers the centre lines softly; thresholded it draws nothing.
    grey = torch.full_like(target, math.log(0.45 / 0.55)).requires_grad_(True)
    assert cldice_loss(torch.sigmoid(grey), target) < 0.5 and cldice_loss(drawn_maps(grey), target) > 0.95
    cldice_loss(drawn_maps(grey), target).backward()
    assert grey.grad[..., 45, 20] < 0  # still a gradient (straight through): draw the branch


def test_training_with_cldice_logs_it(prepared_maps, tmp_path):
    cfg = AutoencoderTrainConfig(data=str(prepared_maps), output=str(tmp_path / "run"), model=TINY, recon_cldice=1.0, steps=4, batch_size=2,
                                 log_every=2, sample_every=100, state_every=100, holdout_every=3)
    folder = train_autoencoder(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines() if '"recon"' in line]
    assert rows and all(0 < r["cldice"] <= 1 and r["recon"] > r["cldice"] for r in rows)
    assert read_config(folder, "aae")["train_config"]["recon_cldice"] == 1.0
    with pytest.raises(ValueError, match="recon_cldice"):
        train_autoencoder(dataclasses.replace(cfg, recon_cldice=-1.0, output=str(tmp_path / "bad")))
    with pytest.raises(ValueError, match="cldice_binary needs recon_cldice"):
        train_autoencoder(dataclasses.replace(cfg, recon_cldice=0.0, cldice_binary=True, output=str(tmp_path / "bad")))


def test_decoded_fakes_by_choice():
    from retinagan.training.autoencoder import decoded_fakes

    model = VesselAutoencoder(TINY).eval()
    logits, mu = torch.full((4, 1, 128, 128), 5.0), torch.zeros(4, 8)
    torch.manual_seed(0)
    recon = decoded_fakes(AutoencoderTrainConfig(map_fakes="recon"), model, logits, mu)
    assert torch.equal(recon, torch.sigmoid(logits))
    torch.manual_seed(0)
    prior = decoded_fakes(AutoencoderTrainConfig(map_fakes="prior"), model, logits, mu)
    torch.manual_seed(0)
    both = decoded_fakes(AutoencoderTrainConfig(map_fakes="both"), model, logits, mu)
    assert torch.equal(both[:2], prior[:2]) and torch.equal(both[2:], recon[2:])
    soft = torch.linspace(-3, 3, 4 * 128 * 128).view(4, 1, 128, 128).requires_grad_(True)
    binary = decoded_fakes(AutoencoderTrainConfig(map_fakes="recon", map_binary=True), model, soft, mu)
    assert set(binary.unique().tolist()) == {0.0, 1.0}  # judged as thresholded ...
    binary.sum().backward()
    assert torch.allclose(soft.grad, torch.sigmoid(soft) * (1 - torch.sigmoid(soft)))  # ... with the soft maps' gradient


def test_hand_drawn_map_discriminator_with_a_frozen_encoder(prepared_maps, tmp_path):
    """--map-real manual --map-fakes both --recon-lowpass with the encoder frozen: the frozen
    parameters stay as they started, the decoder and the map discriminator learn, and the code
    phases (which only move the encoder) are skipped."""
    start = train_autoencoder(AutoencoderTrainConfig(data=str(prepared_maps), output=str(tmp_path / "base"), model=TINY, steps=4,
                                                     batch_size=2, sample_every=100, state_every=100, holdout_every=3))
    cfg = AutoencoderTrainConfig(data=str(prepared_maps), output=str(tmp_path / "run"), init=str(start), dual=True, map_real="manual",
                                 map_fakes="both", recon_lowpass=1.5, freeze="encoder,decoder.dense", steps=10, batch_size=2,
                                 log_every=5, sample_every=100, state_every=100, holdout_every=3)
    folder = train_autoencoder(cfg)
    before, _ = load_model(start)
    after, _ = load_model(folder)
    b, a = before.state_dict(), after.state_dict()
    frozen = [k for k in b if (k.startswith("encoder.") or k.startswith("decoder.dense.")) and "running" not in k and "num_batches" not in k]
    assert frozen and all(torch.equal(b[k], a[k]) for k in frozen)
    assert not torch.equal(b["decoder.head.0.weight"], a["decoder.head.0.weight"])
    rows = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines() if '"recon"' in line]
    assert rows and all("d_map" in r and "fool_map" in r and "d_code" not in r for r in rows)
    train_config = read_config(folder, "aae")["train_config"]
    assert train_config["map_real"] == "manual" and train_config["recon_lowpass"] == 1.5


def test_hand_drawn_map_discriminator_needs_hand_drawn_maps(prepared_maps, tmp_path):
    arrays = dict(np.load(prepared_maps))
    arrays["vessel_sources"] = np.full(len(arrays["vessel_sources"]), "segmenter")
    segmented = tmp_path / "segmented.npz"
    np.savez(segmented, **arrays)
    cfg = AutoencoderTrainConfig(data=str(segmented), output=str(tmp_path / "run"), model=TINY, dual=True, map_real="manual", steps=2,
                                 batch_size=2, holdout_every=3)
    with pytest.raises(ValueError, match="no hand-drawn training maps"):
        train_autoencoder(cfg)
    with pytest.raises(ValueError, match="map_fakes"):
        train_autoencoder(dataclasses.replace(cfg, data=str(prepared_maps), map_fakes="samples"))
    with pytest.raises(ValueError, match="has no parameter under 'encodr'"):
        train_autoencoder(dataclasses.replace(cfg, data=str(prepared_maps), map_real="all", freeze="encodr"))


def test_r1_penalty_reaches_only_the_map_discriminator():
    """--map-r1: the penalty is reported and changes the map discriminator's update, and nothing
    else: the autoencoder's phase (and the code discriminator's) are the same step for step."""
    from retinagan.models.autoencoder import CodeDiscriminator, MapDiscriminator
    from retinagan.training.autoencoder import train_step

    def one_step(r1: float):
        torch.manual_seed(0)
        model, code_disc, map_disc = VesselAutoencoder(TINY), CodeDiscriminator(8), MapDiscriminator(4)
        optimizers = {"model": torch.optim.Adam(model.parameters(), lr=1e-3), "code_disc": torch.optim.Adam(code_disc.parameters(), lr=1e-3),
                      "encoder_reg": torch.optim.Adam(model.encoder.parameters(), lr=1e-3), "map_disc": torch.optim.Adam(map_disc.parameters(), lr=1e-3)}
        x = (torch.rand(2, 1, 128, 128) < 0.1).float()
        out = train_step(AutoencoderTrainConfig(model=TINY, dual=True, map_r1=r1), model, code_disc, map_disc, optimizers, x)
        return out, model.state_dict(), map_disc.state_dict()

    plain, model_plain, disc_plain = one_step(0.0)
    penalised, model_penalised, disc_penalised = one_step(10.0)
    assert "r1_map" not in plain and penalised["r1_map"] > 0
    assert torch.equal(plain["d_map"], penalised["d_map"]) and torch.equal(plain["recon"], penalised["recon"])  # the same losses before the update
    assert all(torch.equal(model_plain[k], model_penalised[k]) for k in model_plain)
    assert not torch.equal(disc_plain["net.0.weight"], disc_penalised["net.0.weight"])
