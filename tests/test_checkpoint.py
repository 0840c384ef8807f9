import json
import pickle

import pytest
import torch

from retinagan.checkpoint import FORMAT_VERSION, load_model, read_config, save_model
from retinagan.errors import CheckpointError
from retinagan.models import build_model, list_models
from retinagan.models.segmenter import SegmenterConfig, VesselSegmenter

TINY = SegmenterConfig(base_channels=4, depth=2)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    model = VesselSegmenter(TINY)
    # Non-trivial BatchNorm statistics, so the round trip covers buffers too.
    model.train()(torch.randn(2, 1, 32, 32))
    return model.eval()


TINY_CONFIGS = {
    "segmenter": {"base_channels": 4, "depth": 2},
    "vae": {"latent_dim": 8, "base_channels": 4, "image_size": 64, "feature_dim": 16},
    "aae": {"latent_dim": 8, "base_channels": 4, "image_size": 64, "feature_dim": 16},
    "pix2pix": {"base_channels": 4, "image_size": 64, "grades": 5},
    "detail": {"widths": "8,16", "image_size": 64},
    "photodetail": {"widths": "8,16", "image_size": 64},
}


def run_tiny(kind: str, model, x: torch.Tensor) -> torch.Tensor:
    if kind == "segmenter":
        return model(x)
    if kind == "pix2pix":
        return model(torch.cat([x, (x > 0.5).float()], dim=1), torch.tensor([0, -1]))
    if kind == "detail":
        return model(torch.cat([x, x, (x > 0.5).float(), x], dim=1), torch.tensor([0.2, 0.9]))
    if kind == "photodetail":  # noisy detail, coarse photo, vessels, FOV, estimate
        return model(torch.cat([x.repeat(1, 3, 1, 1), x.repeat(1, 3, 1, 1), x > 0.5, x > 0.2, x.repeat(1, 3, 1, 1)], dim=1).float(),
                     torch.tensor([0.2, 0.9]))
    return model.decode(model.encode(x))


def test_every_registered_model_builds_runs_and_round_trips(tmp_path):
    assert set(list_models()) == set(TINY_CONFIGS), "add a tiny config for each new model kind"
    for kind in list_models():
        model = build_model(kind, TINY_CONFIGS[kind]).eval()
        x = torch.rand(2, 1, 64, 64)
        out = run_tiny(kind, model, x)
        assert out.shape == (2, 3 if kind in ("pix2pix", "photodetail") else 1, 64, 64)
        save_model(tmp_path / kind, model, kind)
        loaded, _ = load_model(tmp_path / kind, expected_kind=kind)
        with torch.no_grad():
            again = run_tiny(kind, loaded, x)
        assert torch.equal(out, again)


def test_round_trip_gives_identical_outputs(tmp_path):
    model = tiny_model()
    save_model(tmp_path / "ck", model, "segmenter", training_data="synthetic", steps=3, metrics={"dice": 0.5})
    loaded, config = load_model(tmp_path / "ck", expected_kind="segmenter")
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert config["format_version"] == FORMAT_VERSION and config["steps"] == 3
    assert config["model_config"]["base_channels"] == 4 and config["metrics"]["dice"] == 0.5


def test_half_checkpoint_is_close_and_smaller(tmp_path):
    model = tiny_model()
    save_model(tmp_path / "full", model, "segmenter")
    save_model(tmp_path / "half", model, "segmenter", half=True)
    full, half = (tmp_path / "full" / "model.safetensors").stat().st_size, (tmp_path / "half" / "model.safetensors").stat().st_size
    assert half < 0.7 * full
    loaded, config = load_model(tmp_path / "half")
    assert config["dtype"] == "float16"
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x), atol=2e-2)


def test_overwrite_is_atomic_and_leaves_no_debris(tmp_path):
    save_model(tmp_path / "ck", tiny_model(0), "segmenter", steps=1)
    save_model(tmp_path / "ck", tiny_model(1), "segmenter", steps=2)
    assert read_config(tmp_path / "ck")["steps"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


@pytest.fixture
def saved(tmp_path):
    return save_model(tmp_path / "ck", tiny_model(), "segmenter")


def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="folder not found"):
        load_model(tmp_path / "nothing")


def test_missing_config(saved):
    (saved / "config.json").unlink()
    with pytest.raises(CheckpointError, match="not a retinagan checkpoint"):
        load_model(saved)


def test_damaged_config(saved):
    (saved / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="damaged"):
        load_model(saved)


def test_truncated_weights(saved):
    weights = saved / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        load_model(saved)


def test_pickle_in_place_of_weights_is_not_unpickled(saved, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (marker.write_text, ("ran",))

    (saved / "model.safetensors").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        load_model(saved)
    assert not marker.exists()


def test_wrong_kind(saved):
    with pytest.raises(CheckpointError, match="holds a 'segmenter' model, expected 'aae'"):
        load_model(saved, expected_kind="aae")


def test_unknown_kind(saved):
    config = json.loads((saved / "config.json").read_text())
    config["kind"] = "teleporter"
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unknown model kind 'teleporter'"):
        load_model(saved)


def test_newer_format(saved):
    config = json.loads((saved / "config.json").read_text())
    config["format_version"] = FORMAT_VERSION + 1
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="newer than this retinagan reads"):
        load_model(saved)


def test_weights_that_do_not_fit_the_config(saved):
    config = json.loads((saved / "config.json").read_text())
    config["model_config"]["base_channels"] = 8
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(saved)


def test_unknown_config_field(saved):
    config = json.loads((saved / "config.json").read_text())
    config["model_config"]["warp_drive"] = True
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="warp_drive"):
        load_model(saved)


def test_shipped_checkpoints_are_fp16_and_fit_the_budget():
    """checkpoints/ stays under 80 MB (10^6 bytes) and every shipped model is stored in fp16."""
    from pathlib import Path

    from safetensors import safe_open

    root = Path(__file__).resolve().parent.parent / "checkpoints"
    total = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    assert total < 80e6, f"checkpoints/ holds {total / 1e6:.1f} MB"
    folders = [f.parent for f in root.rglob("model.safetensors")]
    assert len(folders) >= 7  # segmenter, five vessel models, pix2pix (and the end-to-end pair)
    for folder in folders:
        config = read_config(folder)
        assert config["dtype"] == "float16", folder.name
        if "base" in config:  # stored as differences: its base is shipped too, with the very weights it was made from
            load_model(folder)
        with safe_open(folder / "model.safetensors", "pt") as weights:
            assert all(weights.get_slice(k).get_dtype() in ("F16", "I64") for k in weights.keys()), folder.name


# --- checkpoints stored as their differences from another one ----------------------------------

@pytest.fixture
def base_and_delta(tmp_path):
    """A base checkpoint and one of the same model with one layer changed, stored as differences."""
    base = tiny_model()
    save_model(tmp_path / "base", base, "segmenter", half=True)
    changed = load_model(tmp_path / "base")[0]
    with torch.no_grad():
        first = next(changed.parameters())
        first.copy_((first + 0.5).half().float())  # as stored, so the comparisons below are exact
    save_model(tmp_path / "pair" / "delta", changed, "segmenter", half=True, base=tmp_path / "base", note="fine-tuned")
    return tmp_path / "base", tmp_path / "pair" / "delta", changed


def test_differences_only_checkpoint_stores_the_changed_tensors_and_loads_whole(base_and_delta):
    from safetensors.torch import load_file

    base, delta, changed = base_and_delta
    config = read_config(delta)
    assert config["base"]["checkpoint"] == "../../base" and config["base"]["stored_tensors"] == 1
    assert list(load_file(str(delta / "model.safetensors"))) == [next(iter(changed.state_dict()))]
    assert (delta / "model.safetensors").stat().st_size < (base / "model.safetensors").stat().st_size / 4
    loaded, info = load_model(delta)
    assert info["note"] == "fine-tuned"
    for (name, a), b in zip(loaded.state_dict().items(), changed.state_dict().values()):
        assert torch.equal(a, b), name
    # a copy of both folders, side by side as shipped, still loads
    import shutil

    shutil.copytree(base.parent, base.parent.parent / "copy")
    assert torch.equal(next(load_model(base.parent.parent / "copy" / "pair" / "delta")[0].parameters()), next(changed.parameters()))


def test_differences_only_checkpoint_without_its_base(base_and_delta):
    import shutil

    base, delta, _ = base_and_delta
    shutil.rmtree(base)
    with pytest.raises(CheckpointError, match="stores only its differences from ../../base, which is not there"):
        load_model(delta)


def test_differences_only_checkpoint_over_a_changed_base(base_and_delta):
    base, delta, _ = base_and_delta
    save_model(base, tiny_model(seed=1), "segmenter", half=True)
    with pytest.raises(CheckpointError, match="other weights than the ones it was made from"):
        load_model(delta)


def test_differences_only_checkpoint_with_a_damaged_base_entry(base_and_delta):
    _, delta, _ = base_and_delta
    config = json.loads((delta / "config.json").read_text())
    config["base"] = "../../base"
    (delta / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="invalid 'base'"):
        load_model(delta)


def test_differences_are_not_chained_and_the_base_is_of_the_same_kind(base_and_delta, tmp_path):
    base, delta, changed = base_and_delta
    with pytest.raises(CheckpointError, match="itself stored as differences"):
        save_model(tmp_path / "second", changed, "segmenter", half=True, base=delta)
    with pytest.raises(CheckpointError, match="expected 'aae'"):
        save_model(tmp_path / "other", build_model("aae", TINY_CONFIGS["aae"]), "aae", half=True, base=base)
    # the export command: a re-export keeps the differences form only when asked
    from retinagan.cli import main

    assert main(["export", "--checkpoint", str(delta), "--output", str(tmp_path / "whole")]) == 0
    assert "base" not in read_config(tmp_path / "whole")
    assert main(["export", "--checkpoint", str(delta), "--output", str(tmp_path / "again"), "--base", str(base)]) == 0
    assert read_config(tmp_path / "again")["base"]["stored_tensors"] == 1
