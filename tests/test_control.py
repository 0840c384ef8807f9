"""Grade and lesion control: detector, lesion maps, grade recipes, lesion-conditioned translator,
insertion, the generate CLI's --lesions, and `evaluate control`."""
import csv
import json

import numpy as np
import pytest
import torch
from conftest import make_fundus
from PIL import Image

from retinagan.checkpoint import save_model
from retinagan.cli import main
from retinagan.errors import CheckpointError
from retinagan.inference import FundusTranslator, fov_disc
from retinagan.lesions import (
    GRADE_RECIPES, LESION_TYPES, Lesion, burden, compose_for_grade, detect_lesions, disc_from_vessels, edited_region,
    lesion_counts, lesion_maps, lesions_from_json, lesions_to_json,
)
from retinagan.losses import grade_loss
from retinagan.models.pix2pix import PatchDiscriminator, Pix2PixConfig, Pix2PixGenerator
from retinagan.training.pix2pix import Pix2PixTrainConfig, load_pairs, sampling_weights, start_generator, train_pix2pix

TINY_LESIONS = Pix2PixConfig(base_channels=4, image_size=128, grades=5, appearance_dim=6, lesions=3)


def photo_256(seed=0):
    """A 256-px synthetic fundus photo, its vessel map and FOV, laid out as prepared photos are."""
    rgb, vessels = make_fundus(256, 256, seed=seed)
    return rgb, vessels, rgb.max(axis=2) > 0


def spot(rgb, x, y, radius, colour):
    out = rgb.copy()
    yy, xx = np.mgrid[: rgb.shape[0], : rgb.shape[1]]
    out[np.hypot(yy - y, xx - x) <= radius] = colour
    return out


def test_detector_finds_drawn_lesions_where_they_are():
    rgb, vessels, fov = photo_256()
    assert burden(detect_lesions(rgb, fov, vessels)) == 0  # a clean photo: nothing found
    background = rgb[100, 60].astype(int)
    dark, bright = np.clip(background * 0.55, 0, 255), np.clip(background * 1.6 + 40, 0, 255)
    edited = spot(rgb, 60, 100, 1.6, dark)  # a microaneurysm
    edited = spot(edited, 90, 170, 4.5, dark)  # a haemorrhage
    edited = spot(edited, 70, 60, 3, bright)  # an exudate
    maps = detect_lesions(edited, fov, vessels)
    assert lesion_counts(maps) == {"microaneurysm": 1, "haemorrhage": 1, "exudate": 1}
    assert maps[0, 100, 60] and maps[1, 170, 90] and maps[2, 60, 70]
    # A dark line (a vessel the map missed) is not a lesion: too elongated.
    line = rgb.copy()
    line[150, 40:80] = dark
    assert burden(detect_lesions(line, fov, vessels)) == 0


def test_lesion_maps_follow_the_list():
    lesions = [Lesion("microaneurysm", 40, 50, 2), Lesion("haemorrhage", 100, 100, 5), Lesion("exudate", 200, 60, 4)]
    maps = lesion_maps(lesions, 256)
    assert maps.shape == (3, 256, 256) and maps.dtype == bool
    assert maps[0, 50, 40] and maps[1, 100, 100] and maps[2].any()
    assert maps[0].sum() < maps[1].sum() and not maps[0, 100, 100]
    assert np.array_equal(maps, lesion_maps(lesions, 256))  # the same list, the same maps
    assert not lesion_maps([], 256).any()
    region = edited_region(lesions, 256)
    assert region[maps.any(axis=0)].all() and not region[0, 0]  # every lesion pixel lies in its region


def test_grade_recipes_follow_icdr_and_are_seeded():
    rgb, vessels, fov = photo_256()
    counts = []
    for grade in range(5):
        lesions = compose_for_grade(grade, 3, vessels, fov)
        kinds = {l.kind for l in lesions}  # noqa: E741
        counts.append(len(lesions))
        assert lesions == compose_for_grade(grade, 3, vessels, fov)  # seeded
        assert all(fov[int(l.y), int(l.x)] for l in lesions)  # noqa: E741
        if grade == 0:
            assert lesions == []
        if grade == 1:
            assert kinds == {"microaneurysm"}
        if grade >= 2:
            assert {"microaneurysm", "haemorrhage"} <= kinds
    assert counts == sorted(counts) and counts[4] > counts[3] > counts[2] > counts[1] > 0
    haem = [l for l in compose_for_grade(3, 3, vessels, fov) if l.kind == "haemorrhage"]  # noqa: E741
    quadrants = {(l.y > 127.5, l.x > 127.5) for l in haem}  # noqa: E741
    assert len(quadrants) == 4  # in all four quadrants
    disc_x, disc_y = disc_from_vessels(vessels)
    assert min(np.hypot(l.x - disc_x, l.y - disc_y) for l in compose_for_grade(4, 1, vessels, fov)) > 0.1 * 256  # noqa: E741
    assert compose_for_grade(3, 4, vessels, fov) != compose_for_grade(3, 3, vessels, fov)
    assert set(GRADE_RECIPES) == set(range(5))
    with pytest.raises(ValueError, match="grade must be 0-4"):
        compose_for_grade(5, 0, vessels, fov)


def test_lesions_json_round_trip_and_errors():
    lesions = [Lesion("exudate", 10.5, 20, 3), Lesion("microaneurysm", 1, 2, 1.5)]
    assert lesions_from_json(lesions_to_json(lesions), 256) == lesions
    assert lesions_from_json('[{"kind": "haemorrhage", "x": 5, "y": 6, "size": 4}]') == [Lesion("haemorrhage", 5, 6, 4)]
    for text, message in (("{", "not valid JSON"), ('{"type": "exudate"}', "JSON list"), ("[3]", "expected an object"),
                          ('[{"type": "exudate", "x": 1}]', "missing y, radius"), ('[{"type": "exudate", "x": "a", "y": 1, "radius": 2}]', "numbers"),
                          ('[{"type": "exudate", "x": 300, "y": 1, "radius": 2}]', "outside"), ('[{"type": "exudate", "x": 3, "y": 1, "radius": 0}]', "radius"),
                          ('[{"type": "drusen", "x": 3, "y": 1, "radius": 2}]', "unknown lesion type")):
        with pytest.raises(ValueError, match=message):
            lesions_from_json(text, 256)


def test_grade_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    p = torch.softmax(logits, dim=1)
    known = grade_loss(logits, torch.tensor([0, 1, -1]))
    assert torch.isclose(known, -(p[0, 0].log() + p[1, 1].log()) / 2)
    with_positive = grade_loss(logits, torch.tensor([0, 1, -1]), torch.tensor([False, False, True]))
    assert torch.isclose(with_positive, -(p[0, 0].log() + p[1, 1].log() + (p[2, 1] + p[2, 2]).log()) / 3)
    assert grade_loss(logits, torch.tensor([-1, -1, -1])) == 0  # nothing known: no loss


def test_discriminator_projection_and_classifier():
    torch.manual_seed(0)
    disc = PatchDiscriminator(1 + 3 + 3, 4, grades=5)
    condition, photo = torch.rand(2, 4, 64, 64), torch.rand(2, 3, 64, 64) * 2 - 1
    logits, classes = disc(condition, photo, torch.tensor([0, 4]), classify=True)
    assert logits.shape == (2, 1, 4, 4) and classes.shape == (2, 5)
    assert torch.equal(logits, disc(condition, photo))  # projection starts at zero
    with torch.no_grad():
        disc.embed.weight.normal_()
    assert not torch.allclose(disc(condition, photo, torch.tensor([0, 4])), disc(condition, photo, torch.tensor([1, 3])))
    assert PatchDiscriminator(4, 4)(torch.rand(1, 1, 64, 64), photo[:1], classify=True)[1] is None
    classes.sum().backward()  # the grade classifier has a trunk of its own: the real/fake trunk gets nothing
    assert all(p.grad is None for p in disc.trunk.parameters())
    assert all(p.grad is not None for p in disc.classifier_trunk.parameters())


def test_fine_tune_start_keeps_the_checkpoint_and_learns_lesions(tmp_path):
    torch.manual_seed(0)
    old = Pix2PixGenerator(Pix2PixConfig(base_channels=4, image_size=128, grades=5, appearance_dim=6)).eval()
    save_model(tmp_path / "old", old, "pix2pix")
    new, source = start_generator(Pix2PixTrainConfig(model=TINY_LESIONS, init=str(tmp_path / "old")))
    assert source == str(tmp_path / "old")
    x = torch.rand(2, 2, 128, 128).round()
    lesions = torch.rand(2, 3, 128, 128).round()
    new.eval()
    with torch.no_grad():  # lesion channels start at zero weight: the start is the old model
        assert torch.allclose(new(torch.cat([x, lesions], 1)), old(x), atol=1e-6)
    with pytest.raises(CheckpointError, match="does not fit"):
        start_generator(Pix2PixTrainConfig(model=Pix2PixConfig(base_channels=4, image_size=128, in_channels=1, grades=5, appearance_dim=6),
                                           init=str(tmp_path / "old")))
    with pytest.raises(CheckpointError, match="does not fit this run"):
        start_generator(Pix2PixTrainConfig(model=Pix2PixConfig(base_channels=4, image_size=128, grades=5, appearance_dim=0, lesions=3),
                                           init=str(tmp_path / "old")))


def test_pairs_with_lesion_maps_and_balanced_draws(prepared_maps):
    train, _, _ = load_pairs(str(prepared_maps), 3, lesions=True)
    assert train.inputs.shape[1] == 5 and train.inputs.dtype == torch.uint8
    assert train.inputs[:, 2:].max() <= 1
    groups = torch.tensor([0, 0, 0, 1, 5, 6])
    weights = sampling_weights(groups, True)
    assert torch.allclose(weights[:3].sum(), weights[3]) and torch.allclose(weights[4], weights[5])
    assert torch.equal(sampling_weights(groups, False), torch.ones(6))


def lesion_translator(tmp_path, prepared_maps, steps=4) -> FundusTranslator:
    folder = train_pix2pix(Pix2PixTrainConfig(
        data=str(prepared_maps), output=str(tmp_path / "p2p"), model=TINY_LESIONS, disc_channels=4, steps=steps, batch_size=2,
        log_every=2, sample_every=steps, state_every=100, holdout_every=3,
    ))
    return FundusTranslator.load(folder)


def test_lesion_channels_reach_the_photo_and_insertion_keeps_the_rest(prepared_maps, tmp_path):
    translator = lesion_translator(tmp_path, prepared_maps)
    with torch.no_grad():  # make the lesion channels matter strongly (a trained model's behaviour)
        translator.model.down[0][0].weight[:, 2:] = 1.0
    assert translator.draws_lesions and translator.grades == 5
    rgb, vessels, fov = photo_256()
    vessels = np.asarray(Image.fromarray(vessels).resize((128, 128))) > 0
    fov = fov_disc(128)
    lesions = [Lesion("haemorrhage", 40, 64, 5), Lesion("exudate", 90, 50, 4)]
    plain, drawn = translator.translate(np.stack([vessels, vessels]), fov, 2, lesions=[[], lesions])
    region = edited_region(lesions, 128)
    assert np.abs(drawn.astype(int) - plain.astype(int))[region].mean() > 0
    photo = np.full((128, 128, 3), 120, np.uint8) * fov[..., None]
    edited = translator.insert(photo, vessels, lesions, fov)
    assert np.array_equal(edited[~region], photo[~region])  # unchanged, bit for bit
    assert not np.array_equal(edited[region], photo[region])
    assert np.array_equal(translator.insert(photo, vessels, [], fov), photo)
    with pytest.raises(ValueError, match="photo must be"):
        translator.insert(photo[:64], vessels, lesions, fov)
    # A grade with no lesions asked: lesions composed for it; explicit lesions win.
    assert translator.plan_lesions(vessels, fov, 0, 1) == [] and len(translator.plan_lesions(vessels, fov, 3, 1)) > 20
    assert translator.plan_lesions(vessels, fov, 3, 1, lesions) == lesions and translator.plan_lesions(vessels, fov, None, 1) == []


def test_lesion_maps_and_per_map_grades_as_translate_inputs(prepared_maps, tmp_path):
    """Maps given as they are (a real photo's detected lesions) make the photo the same lesion
    list would; one grade per map is each map's own call; wrong inputs are refused."""
    translator = lesion_translator(tmp_path, prepared_maps)
    with torch.no_grad():
        translator.model.down[0][0].weight[:, 2:] = 1.0
    vessels = np.zeros((2, 128, 128), bool)
    vessels[:, 60:63] = True
    lesions = [[Lesion("haemorrhage", 40, 64, 5)], [Lesion("exudate", 90, 50, 4), Lesion("microaneurysm", 30, 30, 2)]]
    maps = np.stack([lesion_maps(found, 128) for found in lesions])
    listed = translator.translate(vessels, grade=[1, None], look_seed=[0, 1], lesions=lesions)
    given = translator.translate(vessels, grade=[1, None], look_seed=[0, 1], lesion_maps=maps)
    assert np.array_equal(listed, given)
    one_by_one = [translator.translate(vessels[k : k + 1], grade=g, look_seed=k, lesion_maps=maps[k : k + 1])[0] for k, g in enumerate((1, None))]
    assert np.array_equal(given, np.stack(one_by_one))
    assert not np.array_equal(given, translator.translate(vessels, grade=[1, None], look_seed=[0, 1]))  # the maps matter
    with pytest.raises(ValueError, match="not both"):
        translator.translate(vessels, lesions=lesions, lesion_maps=maps)
    with pytest.raises(ValueError, match="lesion maps must be"):
        translator.translate(vessels, lesion_maps=maps[:1])
    with pytest.raises(ValueError, match="3 grades for 2 maps"):
        translator.translate(vessels, grade=[0, 1, 2])
    with pytest.raises(ValueError, match="grade must be 0-4, not 7"):
        translator.translate(vessels, grade=[0, 7])
    painter = FundusTranslator(Pix2PixGenerator(Pix2PixConfig(base_channels=4, image_size=128)).eval(), {})
    with pytest.raises(ValueError, match="takes no lesion maps"):
        painter.translate(vessels, lesion_maps=maps)


def test_translator_without_lesion_maps_paints_them(prepared_maps, tmp_path):
    model = Pix2PixGenerator(Pix2PixConfig(base_channels=4, image_size=128)).eval()
    translator = FundusTranslator(model, {})
    vessels = np.zeros((1, 128, 128), bool)
    lesions = [Lesion("haemorrhage", 64, 64, 6)]
    plain = translator.translate(vessels)
    painted = translator.translate(vessels, lesions=[lesions])
    region = edited_region(lesions, 128)
    assert not translator.draws_lesions and translator.plan_lesions(vessels[0], fov_disc(128), 3, 0) == []
    assert np.array_equal(painted[0][~region], plain[0][~region]) and not np.array_equal(painted, plain)


def test_generate_cli_lesions_and_manifest(prepared_maps, tmp_path):
    from retinagan.models.autoencoder import AutoencoderConfig
    from retinagan.training.autoencoder import AutoencoderTrainConfig, train_autoencoder

    vae = train_autoencoder(AutoencoderTrainConfig(
        data=str(prepared_maps), output=str(tmp_path / "vae"), model=AutoencoderConfig(latent_dim=8, base_channels=4, image_size=128, feature_dim=32),
        variant="vae", steps=2, batch_size=2, holdout_every=3,
    ))
    lesion_translator(tmp_path, prepared_maps, steps=2)
    p2p = tmp_path / "p2p" / "checkpoint"
    spec = tmp_path / "lesions.json"
    spec.write_text(json.dumps([{"type": "haemorrhage", "x": 40, "y": 60, "radius": 4}, {"type": "exudate", "x": 80, "y": 50, "radius": 3}]))
    base = ["generate", "--checkpoint", str(vae), "--translator", str(p2p), "--n", "2"]
    assert main(base + ["--lesions", str(spec), "--output", str(tmp_path / "a")]) == 0
    with open(tmp_path / "a" / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    assert [json.loads(r["lesions"]) for r in rows] == [json.loads(spec.read_text())] * 2
    assert main(base + ["--grade", "3", "--output", str(tmp_path / "b")]) == 0
    with open(tmp_path / "b" / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["grade"] == "3" and len(json.loads(rows[0]["lesions"])) > 20 and rows[0]["lesions"] != rows[1]["lesions"]
    assert main(base + ["--grade", "0", "--output", str(tmp_path / "c")]) == 0
    with open(tmp_path / "c" / "manifest.csv") as f:
        assert [r["lesions"] for r in csv.DictReader(f)] == ["[]", "[]"]
    # several grades in one folder: sample k gets the k-th (cycling), the same pair as an export of that grade alone
    assert main(base + ["--grade", "0,3", "--output", str(tmp_path / "mix")]) == 0
    with open(tmp_path / "mix" / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["grade"] for r in rows] == ["0", "3"] and rows[0]["lesions"] == "[]" and len(json.loads(rows[1]["lesions"])) > 20
    with open(tmp_path / "b" / "manifest.csv") as f:
        assert rows[1]["lesions"] == list(csv.DictReader(f))[1]["lesions"]
    assert (tmp_path / "mix" / "fundus" / "000001.png").read_bytes() == (tmp_path / "b" / "fundus" / "000001.png").read_bytes()
    assert main(base + ["--grade", "0,3", "--output", str(tmp_path / "mix")]) == 0  # complete: nothing redone
    assert main(base + ["--grade", "3,0", "--output", str(tmp_path / "mix")]) == 2  # another export's grades: refused
    assert main(base + ["--grade", "0,7", "--output", str(tmp_path / "w")]) == 2
    for malformed in ("1,x", ""):
        with pytest.raises(SystemExit) as stop:  # argparse: usage and the reason, exit status 2
            main(base + ["--grade", malformed, "--output", str(tmp_path / "w")])
        assert stop.value.code == 2
    assert not (tmp_path / "w").exists()
    bad = tmp_path / "bad.json"
    bad.write_text('[{"type": "exudate", "x": 500, "y": 1, "radius": 3}]')
    assert main(base + ["--lesions", str(bad), "--output", str(tmp_path / "d")]) == 2
    assert main(base + ["--lesions", str(tmp_path / "missing.json"), "--output", str(tmp_path / "e")]) == 2
    assert not (tmp_path / "d" / "manifest.csv").exists()


def test_evaluate_control_reports_every_part(prepared_maps, tmp_path):
    from retinagan.inference import VesselGenerator
    from retinagan.metrics.control import evaluate_control
    from retinagan.models.autoencoder import AutoencoderConfig
    from retinagan.pipeline import load_prepared
    from retinagan.training.autoencoder import AutoencoderTrainConfig, train_autoencoder

    vae = train_autoencoder(AutoencoderTrainConfig(
        data=str(prepared_maps), output=str(tmp_path / "vae"), model=AutoencoderConfig(latent_dim=8, base_channels=4, image_size=128, feature_dim=32),
        variant="vae", steps=2, batch_size=2, holdout_every=3,
    ))
    translator = lesion_translator(tmp_path, prepared_maps)
    prepared = load_prepared(prepared_maps)
    prepared.grades[:] = [0, 1, 2, 0, 1]  # graded, for the reference and classifier
    with pytest.raises(ValueError, match=">= 10 graded photos"):
        evaluate_control(translator, VesselGenerator.load(vae), prepared, per_grade_n=2, placement_n=2)
    result = evaluate_control(translator, VesselGenerator.load(vae), None, per_grade_n=3, placement_n=2)
    assert set(result) >= {"grade", "placement", "insertion"} and "classifier" not in result
    assert set(result["grade"]["burden_by_grade"]) == {"0", "1", "2", "3", "4"}
    assert result["grade"]["lesions_requested_by_grade"]["0"]["median"] == 0
    assert result["placement"]["lesions"] == 2 * 2 * len(LESION_TYPES) and 0 <= result["placement"]["recall"] <= 1
    assert result["insertion"]["real"]["mad_outside"] == 0 and result["insertion"]["generated"]["mad_outside"] == 0
    untrained = FundusTranslator(Pix2PixGenerator(Pix2PixConfig(base_channels=4, image_size=128, grades=5)).eval(), {})
    with pytest.raises(ValueError, match="lesion maps"):
        evaluate_control(untrained, VesselGenerator.load(vae), None, per_grade_n=1, placement_n=1)


def test_masked_l1_by_hand():
    from retinagan.losses import masked_l1

    fake, real = torch.zeros(1, 3, 2, 2), torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2).repeat(1, 3, 1, 1)
    mask = torch.tensor([[1.0, 0.0], [0.0, 1.0]])[None, None]
    assert masked_l1(fake, real, mask) == pytest.approx((1 + 4) / 2)
    assert masked_l1(fake, real, torch.zeros_like(mask)) == 0


def test_composed_sizes_are_drawn_as_composed():
    from retinagan.lesions import LESION_SIZES, SIZES

    for kind, (low, high) in LESION_SIZES.items():
        drawn = SIZES["haemorrhage" if kind == "preretinal" else kind]
        assert drawn[0] <= low <= high <= drawn[1], kind  # no silent clipping of composed lesions
    assert Lesion("haemorrhage", 1, 1, 2).radius == SIZES["haemorrhage"][0] and Lesion("exudate", 1, 1, 5).radius == 5
