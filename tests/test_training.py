import json

import torch

from retinagan.checkpoint import read_config
from retinagan.cli import main
from retinagan.models.segmenter import SegmenterConfig
from retinagan.training.segmenter import SegmenterTrainConfig, random_patches, train_segmenter


def test_random_patches_keep_labels_binary_and_aligned():
    images = torch.zeros(1, 1, 100, 120)
    images[..., 40:60, :] = 1.0  # a horizontal band, labelled where it is
    labels = images.clone()
    generator = torch.Generator().manual_seed(0)
    x, y = random_patches(images, labels, 6, 32, generator)
    assert x.shape == y.shape == (6, 1, 32, 32)
    assert set(torch.unique(y).tolist()) <= {0.0, 1.0}
    # The photometric jitter is mild: thresholding the input recovers the label almost everywhere.
    assert ((x > 0.5).float() == y).float().mean() > 0.9


def test_short_training_lowers_the_loss_and_writes_a_checkpoint(drive_like, tmp_path):
    cfg = SegmenterTrainConfig(
        drive=str(drive_like),
        output=str(tmp_path / "run"),
        model=SegmenterConfig(base_channels=4, depth=2),
        steps=60,
        batch_size=4,
        patch=64,
        log_every=10,
        lr=1e-2,
    )
    folder = train_segmenter(cfg)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert len(losses) == 6 and losses[-1] < 0.8 * losses[0]
    config = read_config(folder, "segmenter")
    assert 0.2 <= config["metrics"]["threshold"] <= 0.8
    assert set(config["metrics"]["drive_test"]) >= {"dice", "auc", "accuracy"}
    assert config["steps"] == 60 and "DRIVE" in config["training_data"]
    assert config["model_config"]["fov_width"] > 200  # measured on the synthetic photos


def test_same_seed_same_weights(drive_like, tmp_path):
    def run(name):
        cfg = SegmenterTrainConfig(
            drive=str(drive_like), output=str(tmp_path / name), model=SegmenterConfig(base_channels=4, depth=2),
            steps=3, batch_size=2, patch=32,
        )
        return (tmp_path / name / "checkpoint" / "model.safetensors").read_bytes() if train_segmenter(cfg) else None

    assert run("a") == run("b")


def test_train_dry_run_prints_resolved_config(capsys):
    assert main(["train", "segmenter", "--dry-run", "--steps", "7", "--model.base-channels", "8", "--no-bf16"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["steps"] == 7 and config["model"]["base_channels"] == 8 and config["bf16"] is False
    assert config["batch_size"] == SegmenterTrainConfig().batch_size


def test_nested_config_defaults_come_from_the_parent(capsys):
    """The training config's default for a nested model config (its default_factory) must hold
    on the command line unless an option overrides it: pix2pix trains with grade and look on."""
    assert main(["train", "pix2pix", "--dry-run"]) == 0
    model = json.loads(capsys.readouterr().out)["model"]
    assert model["grades"] == 5 and model["appearance_dim"] == 6
    assert main(["train", "pix2pix", "--dry-run", "--model.grades", "0"]) == 0
    model = json.loads(capsys.readouterr().out)["model"]
    assert model["grades"] == 0 and model["appearance_dim"] == 6


def test_every_command_has_help(capsys):
    import pytest

    for argv in (["--help"], ["train", "segmenter", "--help"], ["train", "vae", "--help"], ["train", "aae", "--help"],
                 ["generate", "--help"], ["evaluate", "vessels", "--help"], ["prepare", "--help"], ["segment", "--help"],
                 ["evaluate", "segmenter", "--help"], ["evaluate", "laterality", "--help"], ["export", "--help"], ["info", "--help"],
                 ["train", "pix2pix", "--help"], ["evaluate", "fundus", "--help"], ["atlas", "--help"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 0
        assert "usage:" in capsys.readouterr().out
