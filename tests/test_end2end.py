"""End-to-end (joint) training of both stages, and its side-by-side control, on tiny models."""
import json
import shutil

import torch

from retinagan.checkpoint import load_model, read_config
from retinagan.cli import main
from retinagan.models.autoencoder import AutoencoderConfig, CodeDiscriminator, VesselAutoencoder
from retinagan.models.pix2pix import PatchDiscriminator, Pix2PixConfig, Pix2PixGenerator
from retinagan.training.end2end import End2EndTrainConfig, train_end2end, train_step

TINY_AE = AutoencoderConfig(latent_dim=8, base_channels=4, image_size=128, feature_dim=32)
TINY_P2P = Pix2PixConfig(base_channels=4, image_size=128, appearance_dim=6)


def short_config(prepared_maps, output, steps=20, **kwargs):
    return End2EndTrainConfig(data=str(prepared_maps), output=str(output), model=TINY_AE, translator_model=TINY_P2P,
                              disc_channels=4, steps=steps, batch_size=2, log_every=5, sample_every=steps, state_every=10,
                              holdout_every=3, device="cpu", **kwargs)


def test_joint_training_writes_both_stages_and_they_generate(prepared_maps, tmp_path):
    folder = train_end2end(short_config(prepared_maps, tmp_path / "run"))
    rows = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert {"recon", "l1", "fool_photo", "d_code", "fool_code", "d_photo"} <= set(rows[0])
    assert (tmp_path / "run" / "samples" / "step-000020.png").is_file()
    vessels, translator = read_config(folder / "vessels", "aae"), read_config(folder / "translator", "pix2pix")
    assert "end to end (joint)" in vessels["trained"] and 0 <= vessels["metrics"]["holdout_reconstruction_dice"] <= 1
    assert 0 < translator["metrics"]["holdout_l1"] < 255 and len(translator["appearance_bank"]) > 0
    assert len(translator["appearance_fov"]) == len(translator["appearance_bank"])  # each look with its FOV shape
    code = main(["generate", "--checkpoint", str(folder / "vessels"), "--translator", str(folder / "translator"),
                 "--n", "2", "--output", str(tmp_path / "out")])
    assert code == 0 and len(list((tmp_path / "out" / "fundus").glob("*.png"))) == 2


def _one_step(joint: bool, prepared_maps, tmp_path, **kwargs):
    """Decoder weights before and after one generator-side step with the reconstruction switched off."""
    from retinagan.training.pix2pix import load_pairs, to_float

    torch.manual_seed(0)
    model, translator = VesselAutoencoder(TINY_AE), Pix2PixGenerator(TINY_P2P)
    code_disc, photo_disc = CodeDiscriminator(8), PatchDiscriminator(4, 4)
    cfg = short_config(prepared_maps, tmp_path, recon_weight=0.0, joint=joint, **kwargs)
    optimizers = {name: torch.optim.Adam(module.parameters(), lr=1e-2) for name, module in
                  (("model", model), ("translator", translator), ("code_disc", code_disc), ("encoder_reg", model.encoder),
                   ("photo_disc", photo_disc))}
    train, _, _ = load_pairs(str(prepared_maps), 3)
    inputs, photos = to_float(train.inputs[:2], train.photos[:2])
    before = [p.detach().clone() for p in model.decoder.parameters()]
    train_step(cfg, model, translator, code_disc, photo_disc, optimizers, inputs, photos, None, train.appearance[:2])
    return sum(float((p.detach() - b).abs().sum()) for p, b in zip(model.decoder.parameters(), before))


def test_photo_losses_reach_the_vessel_decoder_only_when_joint(prepared_maps, tmp_path):
    assert _one_step(True, prepared_maps, tmp_path) > 0
    assert _one_step(False, prepared_maps, tmp_path) == 0
    # joint, but every photo painted from its real tree: nothing reaches the decoder; half of them: it does
    assert _one_step(True, prepared_maps, tmp_path, real_tree_share=1.0) == 0
    assert _one_step(True, prepared_maps, tmp_path, real_tree_share=0.5) > 0


def test_a_translator_with_lesions_grades_and_texture_trains_end_to_end(prepared_maps, tmp_path):
    """The shipped translator's kind (lesion-map inputs, DR grade, texture noise) judged at two
    scales with the low-pass L1: the pix2pix loop's losses, run jointly with the autoencoder."""
    full = Pix2PixConfig(base_channels=4, image_size=128, appearance_dim=6, grades=5, lesions=3, noise_levels=1)
    cfg = short_config(prepared_maps, tmp_path / "run", steps=6, disc_scales=2, l1_lowpass=1.0, l1_detail_weight=0.1,
                       disc_augment="translation,cutout")
    cfg.translator_model = full
    folder = train_end2end(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert {"lesion_l1", "g_grade", "d_grade", "d_photo", "recon"} <= set(rows[0])
    assert all(torch.isfinite(torch.tensor(v)) for row in rows for v in row.values())
    translator = read_config(folder / "translator", "pix2pix")
    assert translator["model_config"]["lesions"] == 3 and translator["train_config"]["disc_scales"] == 2
    assert translator["train_config"]["disc_augment"] == "translation,cutout"
    code = main(["generate", "--checkpoint", str(folder / "vessels"), "--translator", str(folder / "translator"),
                 "--n", "2", "--grade", "3", "--output", str(tmp_path / "out")])
    assert code == 0 and len(list((tmp_path / "out" / "fundus").glob("*.png"))) == 2
    # and it continues from that checkpoint, as from the shipped pair
    again = short_config(prepared_maps, tmp_path / "again", steps=2, disc_scales=2, init_vessels=str(folder / "vessels"),
                         init_translator=str(folder / "translator"))
    assert (train_end2end(again) / "translator" / "model.safetensors").is_file()


def test_starts_from_checkpoints_and_resumes_exactly(prepared_maps, tmp_path, capsys):
    start = train_end2end(short_config(prepared_maps, tmp_path / "start", steps=4))
    init = dict(init_vessels=str(start / "vessels"), init_translator=str(start / "translator"), joint=False)
    other = AutoencoderConfig(latent_dim=16, base_channels=8, image_size=128)  # overridden by the init's config
    straight = train_end2end(short_config(prepared_maps, tmp_path / "a", **init))
    config = read_config(straight / "vessels", "aae")
    assert config["model_config"]["latent_dim"] == 8 and "side by side" in config["trained"] and str(start / "vessels") in config["trained"]
    cfg = short_config(prepared_maps, tmp_path / "b", **init)
    cfg.model = other
    train_end2end(cfg)
    shutil.rmtree(tmp_path / "b" / "checkpoint")  # looks killed after its step-10 state
    resumed = train_end2end(short_config(prepared_maps, tmp_path / "b", **init))
    assert "resumed" in capsys.readouterr().out
    for part in ("vessels", "translator"):
        assert (resumed / part / "model.safetensors").read_bytes() == (straight / part / "model.safetensors").read_bytes()
    assert load_model(straight / "translator")[0].config.base_channels == 4


def test_frozen_layers_stay_as_they_start_and_the_pair_exports_as_differences(prepared_maps, tmp_path):
    import pytest

    from safetensors.torch import load_file

    start = train_end2end(short_config(prepared_maps, tmp_path / "start", steps=2))
    for part in ("vessels", "translator"):  # the shipped starts are float16
        assert main(["export", "--checkpoint", str(start / part), "--output", str(tmp_path / "fp16" / part)]) == 0
    init = dict(init_vessels=str(tmp_path / "fp16" / "vessels"), init_translator=str(tmp_path / "fp16" / "translator"))
    with pytest.raises(ValueError, match="has no parameter under 'decoder.nothing'"):
        train_end2end(short_config(prepared_maps, tmp_path / "bad", steps=2, freeze="vessels:decoder.nothing", **init))
    with pytest.raises(ValueError, match="expected vessels:PREFIX"):
        train_end2end(short_config(prepared_maps, tmp_path / "bad2", steps=2, freeze="encoder", **init))
    folder = train_end2end(short_config(prepared_maps, tmp_path / "run", steps=6, freeze="vessels:encoder,vessels:decoder.dense,translator:down",
                                        **init))
    rows = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert "d_code" not in rows[0] and "recon" in rows[0]  # a frozen encoder has no regularisation phase
    for part, frozen in (("vessels", ("encoder.", "decoder.dense.")), ("translator", ("down.",))):
        before, after = load_model(tmp_path / "fp16" / part)[0], load_model(folder / part)[0]
        changed = {name for (name, a), b in zip(after.named_parameters(), before.parameters()) if not torch.equal(a.half(), b.half())}
        assert changed and not any(name.startswith(frozen) for name in changed), part
        assert any(name.startswith("decoder.body" if part == "vessels" else "up.") for name in changed)
    assert main(["export", "--checkpoint", str(folder), "--output", str(tmp_path / "end2end"),
                 "--base", str(tmp_path / "fp16" / "vessels"), "--base", str(tmp_path / "fp16" / "translator")]) == 0
    statistics = ("running_mean", "running_var", "num_batches_tracked")  # BatchNorm buffers follow the batches even when frozen
    for target, frozen in ((tmp_path / "end2end", ("encoder.", "decoder.dense.")), (tmp_path / "end2end" / "translator", ("down.",))):
        stored = load_file(str(target / "model.safetensors"))
        assert stored and all(k.endswith(statistics) for k in stored if k.startswith(frozen)), target
    for part, target in (("vessels", tmp_path / "end2end"), ("translator", tmp_path / "end2end" / "translator")):
        for a, b in zip(load_model(target)[0].state_dict().values(), load_model(folder / part)[0].state_dict().values()):
            assert torch.equal(a, b.half().float() if b.is_floating_point() else b)
    # a shipped pair exports whole (both models, self-contained) unless a base is given
    assert main(["export", "--checkpoint", str(tmp_path / "end2end"), "--output", str(tmp_path / "whole")]) == 0
    for target in (tmp_path / "whole", tmp_path / "whole" / "translator"):
        assert "base" not in read_config(target)
    for a, b in zip(load_model(tmp_path / "whole" / "translator")[0].state_dict().values(),
                    load_model(tmp_path / "end2end" / "translator")[0].state_dict().values()):
        assert torch.equal(a, b)
