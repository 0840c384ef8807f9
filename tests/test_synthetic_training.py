"""Train on synthetic, test on real: the protocol end to end on a DRIVE-layout folder, tiny models."""
import json

import numpy as np
import torch

from retinagan.checkpoint import save_model
from retinagan.cli import main
from retinagan.metrics.synthetic_training import real_drive_pairs, segmenter_tensors, synthetic_pairs, translated_pairs
from retinagan.models.autoencoder import AutoencoderConfig, VesselAutoencoder
from retinagan.models.pix2pix import Pix2PixConfig, Pix2PixGenerator


def _tiny_models(root, size=64):
    torch.manual_seed(0)
    ae = VesselAutoencoder(AutoencoderConfig(latent_dim=8, base_channels=4, image_size=size))
    ae.decoder.head[0].bias.data.fill_(0.5)  # untrained: bias the output so some pixels are vessels
    p2p = Pix2PixGenerator(Pix2PixConfig(base_channels=4, image_size=size, appearance_dim=6))
    save_model(root / "aae", ae.eval(), "aae")
    save_model(root / "pix2pix", p2p.eval(), "pix2pix", appearance_bank=[[0.5, 0.3, 0.1, 0.2, 0.1, 0.05]] * 3)
    return root / "aae", root / "pix2pix"


def test_pairs_are_prepared_like_the_generators_data(drive_like, tmp_path):
    from retinagan.inference import FundusTranslator, VesselGenerator

    photos, fovs, maps = real_drive_pairs(drive_like, 64)
    assert photos.shape == (3, 64, 64, 3) and photos.dtype == np.uint8 and fovs.shape == maps.shape == (3, 64, 64)
    assert 0.01 < maps.mean() < 0.5 and not (maps & ~fovs).any()
    vessels, translator = _tiny_models(tmp_path)
    photos, fovs, maps = synthetic_pairs(VesselGenerator.load(vessels), FundusTranslator.load(translator), 5, seed=3)
    again = synthetic_pairs(VesselGenerator.load(vessels), FundusTranslator.load(translator), 2, seed=4)
    assert photos.shape == (5, 64, 64, 3) and maps.any() and not (maps & ~fovs).any()
    assert np.array_equal(again[0][0], photos[1]) and np.array_equal(again[2][0], maps[1])  # sample k: seed + k
    x, y = segmenter_tensors(photos, fovs, maps)
    assert x.shape == y.shape == (5, 1, 64, 64) and set(torch.unique(y).tolist()) <= {0.0, 1.0}


def test_train_on_synthetic_command(drive_like, tmp_path, capsys):
    vessels, translator = _tiny_models(tmp_path)
    code = main(["evaluate", "synthetic", "--vessels", str(vessels), "--translator", str(translator), "--drive", str(drive_like),
                 "--n", "4", "--seeds", "2", "--steps", "3", "--output", str(tmp_path / "runs"), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["condition"] for r in result["runs"]] == ["real", "synthetic", "mixed", "pretrained"] * 2
    assert [r["seed"] for r in result["runs"]] == [0] * 4 + [1] * 4
    assert {c: s["pairs"] for c, s in result["summary"].items()} == {"real": 3, "synthetic": 4, "mixed": 7, "pretrained": 3}
    pretrained = json.loads((tmp_path / "runs" / "pretrained-seed1" / "checkpoint" / "config.json").read_text())
    assert "fine-tuned from the segmenter trained on 4 synthetic pairs" in pretrained["training_data"]
    assert pretrained["train_config"]["init"] == str(tmp_path / "runs" / "synthetic-seed1" / "checkpoint")
    assert abs(result["pretrained_minus_real_dice"] - (result["summary"]["pretrained"]["dice_mean"] - np.mean(
        [r["dice"] for r in result["runs"] if r["condition"] == "real"]))) < 1e-9
    for run in result["runs"]:
        assert 0 <= run["dice"] <= 1 and 0 <= run["auc"] <= 1
        config = json.loads((tmp_path / "runs" / f"{run['condition']}-seed{run['seed']}" / "checkpoint" / "config.json").read_text())
        assert config["kind"] == "segmenter" and config["model_config"]["fov_width"] == 64 and config["steps"] == 3
    dice = [r["dice"] for r in result["runs"] if r["condition"] == "real"]
    assert abs(result["summary"]["real"]["dice_mean"] - np.mean(dice)) < 1e-9
    assert abs(result["synthetic_over_real_dice"] - result["summary"]["synthetic"]["dice_mean"] / np.mean(dice)) < 1e-9


def test_mixed_repeats_the_real_pairs_to_the_share_asked(drive_like, tmp_path, capsys):
    vessels, translator = _tiny_models(tmp_path)
    args = ["evaluate", "synthetic", "--vessels", str(vessels), "--translator", str(translator), "--drive", str(drive_like),
            "--n", "4", "--seeds", "1", "--steps", "2", "--output", str(tmp_path / "runs"), "--json"]
    assert main(args + ["--real-share", "0.8"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["mixed_real_repeats"] == 5 and result["summary"]["mixed"]["pairs"] == 3 * 5 + 4  # 15 of 19 draws: 0.79
    assert abs(result["mixed_real_share"] - 15 / 19) < 1e-9
    assert main(args + ["--real-share", "0"]) == 0  # each pair once
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["summary"]["mixed"]["pairs"] == 7
    assert main(args + ["--real-share", "1.5"]) == 2


def test_pretrained_segmenters_start_from_the_synthetic_ones(drive_like, tmp_path, capsys):
    from safetensors.torch import load_file

    vessels, translator = _tiny_models(tmp_path)
    args = ["evaluate", "synthetic", "--vessels", str(vessels), "--translator", str(translator), "--drive", str(drive_like),
            "--n", "4", "--seeds", "1", "--output", str(tmp_path / "runs"), "--json"]
    assert main(args + ["--steps", "0", "--conditions", "synthetic,pretrained"]) == 0  # no steps: the start itself
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(result["summary"]) == ["synthetic", "pretrained"] and "synthetic_over_real_dice" not in result
    weights = [load_file(str(tmp_path / "runs" / f"{c}-seed0" / "checkpoint" / "model.safetensors")) for c in ("synthetic", "pretrained")]
    assert weights[0].keys() == weights[1].keys() and all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert main(args + ["--steps", "1", "--conditions", "pretrained"]) == 2
    assert "run synthetic too" in capsys.readouterr().err
    assert main(args + ["--steps", "1", "--conditions", "real,fake"]) == 2


def test_translated_condition_photographs_the_real_trees(drive_like, tmp_path, capsys):
    """The translator's share of the gap: its photos of the real DRIVE trees, labelled with their
    hand-drawn maps, several looks per tree, each photo reproducible from its own seed."""
    from retinagan.inference import FundusTranslator

    vessels, translator = _tiny_models(tmp_path)
    torch.manual_seed(1)
    looks = [[0.1 + 0.04 * k, 0.3, 0.1, 0.2, 0.1, 0.05] for k in range(20)]  # twenty different looks
    save_model(translator, Pix2PixGenerator(Pix2PixConfig(base_channels=4, image_size=64, appearance_dim=6)).eval(), "pix2pix",
               appearance_bank=looks)
    painter = FundusTranslator.load(translator)
    _, fovs, maps = real_drive_pairs(drive_like, 64)
    photos, fov, labels = translated_pairs(painter, fovs, maps, looks=2, batch=3)
    assert photos.shape == (6, 64, 64, 3) and np.array_equal(labels[2], maps[1]) and np.array_equal(fov[5], fovs[2])
    alone = painter.translate(maps[2:3], fovs[2], look_seed=[5])
    assert np.array_equal(alone[0], photos[5]) and not np.array_equal(photos[4], photos[5])  # tree 2, looks 4 and 5
    args = ["evaluate", "synthetic", "--vessels", str(vessels), "--translator", str(translator), "--drive", str(drive_like),
            "--n", "4", "--seeds", "1", "--steps", "2", "--output", str(tmp_path / "runs"), "--json"]
    assert main(args + ["--conditions", "real,translated", "--looks", "2"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {c: s["pairs"] for c, s in result["summary"].items()} == {"real": 3, "translated": 6}
    assert abs(result["translated_over_real_dice"] - result["summary"]["translated"]["dice_mean"] / result["summary"]["real"]["dice_mean"]) < 1e-9
    config = json.loads((tmp_path / "runs" / "translated-seed0" / "checkpoint" / "config.json").read_text())
    assert "photos of the 3 DRIVE training trees (2 looks each)" in config["training_data"]
    assert main(args + ["--conditions", "real,augmented", "--looks", "2", "--real-share", "0.5"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["summary"]["augmented"]["pairs"] == 2 * 3 + 6 and result["augmented_real_repeats"] == 2  # real repeated to half the draws
    assert abs(result["augmented_minus_real_dice"] - (result["summary"]["augmented"]["dice_mean"] - result["summary"]["real"]["dice_mean"])) < 1e-9
    config = json.loads((tmp_path / "runs" / "augmented-seed0" / "checkpoint" / "config.json").read_text())
    assert "(each 2x) + the translator's photos of the 3 DRIVE training trees" in config["training_data"]
    assert main(args + ["--conditions", "augmented", "--looks", "2", "--real-share", "0"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["summary"]["augmented"]["pairs"] == 3 + 6
    assert main(args + ["--conditions", "translated", "--looks", "0"]) == 2
    assert main(args + ["--conditions", "augmented", "--looks", "0"]) == 2


def test_a_second_run_into_a_held_output_folder_is_refused(drive_like, tmp_path, capsys):
    """Runs score the segmenter they read back from --output: two at once in one folder could
    score each other's. A live holder refuses the second; a stale lock is taken over and released."""
    import os

    vessels, translator = _tiny_models(tmp_path)
    lock = tmp_path / "runs" / ".running"
    lock.parent.mkdir()
    lock.write_text(str(os.getpid()))  # a live process holds the folder
    args = ["evaluate", "synthetic", "--vessels", str(vessels), "--translator", str(translator), "--drive", str(drive_like),
            "--n", "2", "--seeds", "1", "--steps", "1", "--conditions", "synthetic", "--output", str(tmp_path / "runs"), "--json"]
    assert main(args) == 2
    assert f"(process {os.getpid()}) is writing into" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "synthetic-seed0").exists()
    lock.write_text("999999999")  # its process is gone
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["summary"]["synthetic"]["pairs"] == 2
    assert not lock.exists()


def test_chosen_threshold_is_chosen_on_drive_training_and_scored_on_test(drive_like, tmp_path, capsys):
    from retinagan.inference import Segmenter
    from retinagan.metrics.evaluate_segmenter import choose_threshold, score_drive

    vessels, translator = _tiny_models(tmp_path)
    args = ["evaluate", "synthetic", "--vessels", str(vessels), "--translator", str(translator), "--drive", str(drive_like),
            "--n", "4", "--seeds", "2", "--steps", "3", "--conditions", "real,mixed", "--output", str(tmp_path / "runs")]
    assert main(args + ["--json", "--chosen-threshold"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "threshold chosen on DRIVE training" in result["protocol"]
    for run in result["runs"]:
        segmenter = Segmenter.load(run["checkpoint"])
        threshold = choose_threshold(segmenter, drive_like, progress=False)
        assert run["threshold_chosen"] == threshold and 0 < threshold < 1
        assert abs(run["dice_chosen"] - score_drive(segmenter, drive_like, "test", threshold=threshold, progress=False)["dice"]) < 1e-9
        assert abs(run["dice"] - score_drive(segmenter, drive_like, "test", threshold=0.5, progress=False)["dice"]) < 1e-9
    chosen = {c: [r["dice_chosen"] for r in result["runs"] if r["condition"] == c] for c in ("real", "mixed")}
    assert abs(result["summary"]["mixed"]["dice_chosen_std"] - np.std(chosen["mixed"])) < 1e-9
    assert abs(result["mixed_minus_real_dice_chosen"] - (np.mean(chosen["mixed"]) - np.mean(chosen["real"]))) < 1e-9
    assert abs(result["mixed_minus_real_dice"] - (result["summary"]["mixed"]["dice_mean"] - result["summary"]["real"]["dice_mean"])) < 1e-9
    assert main(args + ["--output", str(tmp_path / "plain")]) == 0  # text, and without the option no chosen figures
    text = capsys.readouterr().out
    assert "at the chosen threshold" not in text and "mixed minus real dice:" in text
    assert main(args + ["--output", str(tmp_path / "text"), "--chosen-threshold"]) == 0
    text = capsys.readouterr().out
    assert text.count("at the chosen threshold") == 2 and "mixed minus real dice chosen:" in text


def test_threshold_chosen_on_some_training_photos_only(drive_like):
    """choose_threshold(images=...) looks only at those DRIVE training photos (a segmenter trained
    on a few of them, scripts/mixing_batchnorm.py --real-count); all of them: as without."""
    from retinagan.metrics.evaluate_segmenter import choose_threshold, drive_probabilities, score_test
    from retinagan.metrics.segmentation import best_threshold

    class Darkness:  # vessels are dark; raised to a power set by the photo's brightness, so each photo's best threshold differs
        def probability(self, rgb, mask):
            green = rgb[..., 1].astype(np.float64)
            return (1 - (green - green.min()) / max(1.0, np.ptp(green))) ** (1 + 3 * (rgb[mask > 0].mean() / 25.5 % 1))

    segmenter = Darkness()
    training = drive_probabilities(segmenter, drive_like, "training", progress=False)
    everything = choose_threshold(segmenter, drive_like, progress=False)
    assert choose_threshold(segmenter, drive_like, progress=False, images=list(range(len(training)))) == everything
    singles = [choose_threshold(segmenter, drive_like, progress=False, images=[k]) for k in range(len(training))]
    assert len(set(singles + [everything])) > 1  # so the photos chosen are seen to matter
    for k, (prob, truth, mask) in enumerate(training):
        assert singles[k] == best_threshold(prob[mask], truth[mask])
    one = score_test(segmenter, drive_like, chosen_threshold=True, training_images=[1])
    assert one["threshold_chosen"] == singles[1]
