"""The explorer's callbacks called directly, on tiny models trained here (128 px)."""
import csv
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import app
from conftest import SEGMENTER, save
from retinagan.atlas import build_atlas
from retinagan.explorer import Explorer, slerp
from retinagan.lesions import Lesion, edited_region, paint
from retinagan.models.autoencoder import AutoencoderConfig
from retinagan.models.pix2pix import Pix2PixConfig
from retinagan.pipeline import load_prepared
from retinagan.training.autoencoder import AutoencoderTrainConfig, train_autoencoder
from retinagan.training.pix2pix import Pix2PixTrainConfig, train_pix2pix


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """aae-lsgan-128 (tiny, with a PCA atlas), vae-128 (no atlas), pix2pix, segmenter."""
    from conftest import make_fundus
    from retinagan.data.readers import read_drive
    from retinagan.pipeline import prepare, save_prepared

    root = tmp_path_factory.mktemp("app")
    for split, numbers in (("training", (21, 22, 23)), ("test", (1, 2))):
        for n in numbers:
            rgb, vessels = make_fundus(seed=n, disc_side="right" if n % 2 else "left")
            stem = f"{n:02d}_{split}" if split == "test" else f"{n}_{split}"
            save(root / "drive" / split / "images" / f"{stem}.tif", rgb)
            save(root / "drive" / split / "1st_manual" / f"{stem.split('_')[0]}_manual1.gif", vessels.astype(np.uint8) * 255)
            save(root / "drive" / split / "mask" / f"{stem}_mask.gif", ((rgb.max(2) > 0) * 255).astype(np.uint8))
    samples = read_drive(root / "drive", "training") + read_drive(root / "drive", "test")
    prepared, _ = prepare(samples, None, size=128, progress=False)
    data = save_prepared(prepared, root / "maps.npz")
    folder = root / "checkpoints"
    tiny = AutoencoderConfig(latent_dim=8, base_channels=4, image_size=128, feature_dim=32)
    for name, variant in (("aae-lsgan-128", "aae"), ("vae-128", "vae")):
        run = train_autoencoder(AutoencoderTrainConfig(data=str(data), output=str(root / name), model=tiny, variant=variant,
                                                       steps=3, batch_size=2, holdout_every=3))
        shutil.copytree(run, folder / name)
    p2p = train_pix2pix(Pix2PixTrainConfig(data=str(data), output=str(root / "p2p"), disc_channels=4, steps=3, batch_size=2, holdout_every=3,
                                           model=Pix2PixConfig(base_channels=4, image_size=128, grades=5, appearance_dim=6, lesions=3)))
    shutil.copytree(p2p, folder / "pix2pix-grade")  # as shipped: grades and lesion maps
    shutil.copytree(SEGMENTER, folder / "segmenter")
    from retinagan.inference import VesselGenerator

    build_atlas(VesselGenerator.load(folder / "aae-lsgan-128"), load_prepared(data), folder / "aae-lsgan-128", samples=20, directions=3, method="pca")
    (folder / "broken").mkdir()
    (folder / "broken" / "config.json").write_text("{not json")
    return folder


@pytest.fixture
def ui(checkpoints):
    app.state.update(explorer=None, checkpoints=str(checkpoints), real_trees=None, data=None)
    yield app
    app.state.update(explorer=None, checkpoints=None, real_trees=None)


def test_explorer_finds_models_and_reports_broken_ones(checkpoints):
    ex = Explorer(checkpoints)
    assert ex.names() == ["aae-lsgan-128", "vae-128"]
    assert any("broken" in p for p in ex.problems)
    assert ex.atlas("vae-128") is None and len(ex.atlas("aae-lsgan-128").labels) == 3


def test_generate_is_deterministic_and_sliders_move_the_tree(ui):
    v1, p1, msg = ui.generate(5, "2 moderate", "aae-lsgan-128")
    v2, p2, _ = ui.generate(5, "2 moderate", "aae-lsgan-128")
    assert v1.shape == (128, 128) and p1.shape == (128, 128, 3) and "seed 5" in msg
    assert np.array_equal(v1, v2) and np.array_equal(p1, p2)
    z0 = ui.explorer().code("aae-lsgan-128", 5)
    z1 = ui.explorer().code("aae-lsgan-128", 5, [3.0, 0, 0])
    assert not np.allclose(z0, z1)
    none, _, message = ui.generate(5, "unknown", "no-such-model")
    assert none is None and "no vessel model" in message


def test_generate_api_serves_lossless_png_files(ui):
    vessels, photo, _ = ui.generate(7, "unknown", "aae-lsgan-128")
    v_path, p_path = ui.generate_api(7, "unknown", "aae-lsgan-128")
    assert v_path.endswith(".png") and p_path.endswith(".png")
    assert np.array_equal(np.asarray(Image.open(v_path)), vessels) and np.array_equal(np.asarray(Image.open(p_path)), photo)
    assert ui.generate_files(7, "unknown", "aae-lsgan-128")[:2] == (v_path, p_path)  # named by content
    assert ui.generate_files(1, "unknown", "no-such-model")[:2] == (None, None)


def test_png_files_keep_only_the_newest(tmp_path):
    files = app.PngFiles(keep=3)
    paths = [files(np.full((4, 4), k, np.uint8)) for k in range(5)]
    assert [Path(p).exists() for p in paths] == [False, False, True, True, True]
    assert files(None) is None


def test_models_run_on_one_thread_with_the_callers_context():
    import contextvars
    import threading

    from retinagan.explorer import OneThread

    where = contextvars.ContextVar("where", default="unset")

    class Probe:
        label = "attribute"

        def ident(self):
            return threading.get_ident(), where.get()

        def nested(self, proxy):
            return proxy.ident()  # a call from the model thread itself must not wait on it

        def fail(self):
            raise ValueError("bad input")

    proxy = OneThread(Probe())
    where.set("caller")
    results = []
    threads = [threading.Thread(target=lambda: results.append(proxy.ident())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({ident for ident, _ in results}) == 1 and results[0][0] != threading.get_ident()
    assert proxy.ident() == results[0][:1] + ("caller",)
    assert proxy.nested(proxy)[0] == results[0][0] and proxy.label == "attribute"
    with pytest.raises(ValueError, match="bad input"):
        proxy.fail()


def test_slider_labels_come_from_the_atlas(ui):
    updates = ui.slider_updates("aae-lsgan-128")
    assert updates[0]["label"].startswith("PC1:") and updates[0]["interactive"]
    assert not updates[-1]["interactive"]  # the atlas has 3 directions, the page 6 sliders
    assert "no atlas" in ui.slider_updates("vae-128")[0]["label"]


def test_interpolation_between_photo_map_and_training_tree(ui, tmp_path):
    choices = ui.tree_choices("aae-lsgan-128")
    assert choices[0] == "skimage retina photo" and any(c.startswith(ui.TRAINING_PREFIX) for c in choices)
    vessel_map = np.zeros((200, 200), np.uint8)
    vessel_map[90:100, 20:180] = 255
    upload = str(save(tmp_path / "map.png", vessel_map))
    strip, gif, photo_strip, gif_file, message = ui.interpolate("aae-lsgan-128", None, upload, choices[-1], None, 5, "spherical", "unknown")
    assert strip.shape[1] > 5 * 128 and photo_strip.shape[2] == 3 and "5 frames" in message
    frames = Image.open(gif)
    total = 0
    for k in range(frames.n_frames):  # Pillow merges identical neighbours into one longer frame
        frames.seek(k)
        total += frames.info["duration"]
    assert total == (5 + 3) * 160  # there and back, 160 ms a frame
    strip2 = ui.interpolate("aae-lsgan-128", None, upload, choices[-1], None, 5, "linear", "unknown")[0]
    assert strip2.shape == strip.shape
    # The uploaded end's code is refined by default; without, it is the encoder's: another frame 0.
    plain = ui.interpolate("aae-lsgan-128", None, upload, choices[-1], None, 5, "linear", "unknown", False)[0]
    assert plain.shape == strip.shape and not np.array_equal(plain, strip2)
    assert np.array_equal(plain[:, -128:], strip2[:, -128:])  # the training tree's stored code, both times


def test_bad_uploads_give_messages_and_the_app_goes_on(ui, tmp_path):
    (tmp_path / "notes.png").write_bytes(b"not an image")
    Image.new("RGB", (10, 10)).save(tmp_path / "tiny.png")
    for bad, expected in ((tmp_path / "notes.png", "not an image"), (tmp_path / "tiny.png", "10x10")):
        out = ui.interpolate("aae-lsgan-128", None, str(bad), "skimage retina photo", None, 4, "linear", "unknown")
        assert out[0] is None and expected in out[-1] and out[-1].startswith("**Could not")
    assert ui.generate(1, "unknown", "aae-lsgan-128")[0] is not None


def test_latent_map_and_picking(ui):
    fig, message = ui.latent_map("aae-lsgan-128", "source", 3)
    names = [trace.name for trace in fig.data]
    assert "drive" in names and "generated (seeds)" in names and names[-1].startswith("current")
    assert "5 encoded real trees" in message
    tree, photo, what = ui.pick_point("aae-lsgan-128", "real:2", "unknown")
    assert tree.shape == (128, 128) and photo.shape == (128, 128, 3) and "decoded" in what
    assert "seed 7" in ui.pick_point("aae-lsgan-128", "seed:7", "unknown")[2]
    assert ui.pick_point("aae-lsgan-128", "real:99", "unknown")[2].startswith("**Could not")
    _, message = ui.latent_map("vae-128", "grade", 0)
    assert "no atlas" in message


def test_compare_reconstructs_with_every_model(ui, tmp_path):
    vessel_map = np.zeros((128, 128), np.uint8)
    vessel_map[60:66, 10:120] = 255
    picture, table, header = ui.compare(None, str(save(tmp_path / "map.png", vessel_map)), 0)
    assert picture.shape[0] > 3 * 128  # input row + one row per model
    assert "aae-lsgan-128: Dice" in header and "vae-128: Dice" in header
    encoder, refined = (float(v) for v in re.search(r"aae-lsgan-128: Dice ([\d.]+) → ([\d.]+) refined", header).groups())
    assert refined >= encoder
    plain = ui.compare(None, str(save(tmp_path / "map.png", vessel_map)), 0, False)[2]
    assert "refined" not in plain and f"aae-lsgan-128: Dice {encoder:.2f}" in plain
    assert list(table["model"]) == ["aae-lsgan-128", "vae-128", "pix2pix-grade (translator)"]
    photos, note = ui.compare_photos(0, progress=lambda *a, **k: None)
    assert photos.shape[:2] == (2 * 130 + 2, 3 * 130 + 2) and photos.ndim == 3  # a row of 3 photos per model
    assert "aae-lsgan-128 (painted by pix2pix-grade)" in note and "seeds 0-2" in note
    # the photos are those of the samples the tree grid shows (same seeds)
    assert np.array_equal(photos[2:130, 2:130], ui.explorer().generate("aae-lsgan-128", 0)[1])


def test_lesions_place_and_undo(ui):
    canvas, base, placed, note = ui.lesion_base("aae-lsgan-128", 0, "unknown")
    assert "drawn by the translator" in note
    event = type("Select", (), {"index": (64, 60)})()
    painted, placed, message = ui.place_lesion(base, placed, "haemorrhage", 8, event)
    assert len(placed) == 1 and "1 lesion" in message and not np.array_equal(painted, base["photo"])
    assert np.array_equal(canvas, base["photo"]) and base["vessels"].shape == canvas.shape[:2]
    outside = ~edited_region([Lesion(**placed[0])], canvas.shape[0])
    assert np.array_equal(painted[outside], base["photo"][outside])  # the rest of the photo is untouched
    again, placed2, _ = ui.place_lesion(base, placed, "exudate", 6, type("Select", (), {"index": (40, 70)})())
    undone, placed3, _ = ui.undo_lesion(base, placed2)
    assert placed3 == placed and np.array_equal(undone, painted)


def test_lesion_painter():
    photo = np.full((64, 64, 3), (180, 90, 40), np.uint8)
    fov = np.ones((64, 64), bool)
    fov[:, :10] = False
    dark = paint(photo, [Lesion("microaneurysm", 30, 30, 2)], fov)
    bright = paint(photo, [Lesion("exudate", 30, 30, 6)], fov)
    assert dark[30, 30].sum() < photo[30, 30].sum() and bright[30, 30, 1] > photo[30, 30, 1]
    assert np.array_equal(paint(photo, [Lesion("haemorrhage", 5, 30, 10)], fov)[:, :10], photo[:, :10])  # never outside the FOV
    assert np.array_equal(bright, paint(photo, [Lesion("exudate", 30, 30, 6)], fov))
    with pytest.raises(ValueError, match="unknown lesion"):
        Lesion("drusen", 1, 1, 1)


def test_export_zip_with_manifest(ui):
    path, message = ui.export("aae-lsgan-128", 3, 10, ["1 mild", "3 severe"], progress=lambda *a, **k: None)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        manifest = [n for n in names if n.endswith("manifest.csv")][0]
        rows = list(csv.DictReader(archive.read(manifest).decode().splitlines()))
    assert [r["seed"] for r in rows] == ["10", "11", "12"] and [r["grade"] for r in rows] == ["1", "3", "1"]
    assert sum(n.endswith(".png") for n in names) == 6 and "3 pairs" in message
    kept, message = ui.export("aae-lsgan-128", 0, 0, [], progress=lambda *a, **k: None)
    assert not isinstance(kept, str) and "1-10000" in message  # no new zip; the one shown stays (gr.skip)


def test_export_in_the_looks_of_uploaded_photos(ui, tmp_path):
    """Export with photos for the looks: the synthetic photos take their colours (seeded, so the
    same upload gives the same zip), the manifest says so; a bad upload is named, nothing made."""
    yy, xx = np.mgrid[:200, :200]
    disc = ((yy - 100) ** 2 + (xx - 100) ** 2 < 85**2)[..., None]
    files = []
    for k, colour in enumerate(((40, 160, 220), (220, 200, 40))):
        files.append(str(tmp_path / f"camera{k}.png"))
        Image.fromarray((disc * np.array(colour) + disc * np.random.default_rng(k).integers(0, 30, (200, 200, 3))).astype(np.uint8)).save(files[-1])

    def photos_of(path):
        with zipfile.ZipFile(path) as archive:
            names = sorted(n for n in archive.namelist() if "/fundus/" in n)
            manifest = [n for n in archive.namelist() if n.endswith("manifest.csv")][0]
            rows = list(csv.DictReader(archive.read(manifest).decode().splitlines()))
            return [np.asarray(Image.open(archive.open(n))) for n in names], rows, names

    quiet = dict(progress=lambda *a, **k: None)
    plain, plain_rows, _ = photos_of(ui.export("aae-lsgan-128", 2, 0, [], False, None, **quiet)[0])
    path, message = ui.export("aae-lsgan-128", 2, 0, [], False, files, **quiet)
    looked, rows, names = photos_of(path)
    assert "in the looks of 2 uploaded photos" in message and names[0].startswith("retinagan-aae-lsgan-128-looks-seed0/")
    assert {r["translator"] for r in rows} == {plain_rows[0]["translator"] + "+looks:2 photos"}
    assert all(not np.array_equal(a, b) for a, b in zip(plain, looked))
    assert all(np.array_equal(a, b) for a, b in zip(looked, photos_of(ui.export("aae-lsgan-128", 2, 0, [], False, files, **quiet)[0])[0]))
    assert all(np.array_equal(a, b) for a, b in zip(plain, photos_of(ui.export("aae-lsgan-128", 2, 0, [], False, [], **quiet)[0])[0]))  # the other tabs' looks untouched
    (tmp_path / "notes.png").write_text("not an image")
    kept, message = ui.export("aae-lsgan-128", 2, 0, [], False, [files[0], str(tmp_path / "notes.png")], **quiet)
    assert not isinstance(kept, str) and "notes.png" in message


def test_export_with_a_cut_field_of_view(ui):
    """Export's FOV height: the photos are black above and below the cut, as generate --fov-height makes them."""
    quiet = dict(progress=lambda *a, **k: None)
    path, _ = ui.export("aae-lsgan-128", 1, 0, [], False, None, 0.75, **quiet)
    with zipfile.ZipFile(path) as archive:
        photo = np.asarray(Image.open(archive.open([n for n in archive.namelist() if "/fundus/" in n][0])))
    rows = photo.max(axis=(1, 2)) > 0
    assert rows.mean() == pytest.approx(0.75, abs=0.05) and not rows[:5].any() and not rows[-5:].any()
    kept, message = ui.export("aae-lsgan-128", 1, 0, [], False, None, 0.3, **quiet)
    assert not isinstance(kept, str) and "0.5-1" in message


def test_slerp_keeps_the_ends_and_the_radius():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    assert np.allclose(slerp(a, b, 0), a) and np.allclose(slerp(a, b, 1), b)
    assert np.linalg.norm(slerp(a, b, 0.5)) == pytest.approx(1.5)


def test_api_names_are_stable(ui):
    demo = ui.build_ui()
    names = {fn.api_name for fn in demo.fns.values()}
    assert {"generate", "interpolate", "latent_map", "pick_point", "compare", "compare_photos", "lesions", "export", "segment",
            "segment_example"} <= names


def test_lesions_api(ui):
    photo, message = ui.lesions_api("aae-lsgan-128", 0, "unknown", '[{"kind": "exudate", "x": 60, "y": 64, "size": 6}]')
    plain = ui.generate(0, "unknown", "aae-lsgan-128")[1]
    assert photo.shape == plain.shape and not np.array_equal(photo, plain) and "1 lesion" in message
    assert ui.lesions_api("aae-lsgan-128", 0, "unknown", '{"kind": 1}')[0] is None
    assert "unknown lesion" in ui.lesions_api("aae-lsgan-128", 0, "unknown", '[{"kind": "drusen", "x": 1, "y": 1, "size": 1}]')[1]
    assert "outside" in ui.lesions_api("aae-lsgan-128", 0, "unknown", '[{"type": "exudate", "x": 900, "y": 1, "radius": 3}]')[1]


def _bad_file(path, kind):
    if kind == "text":
        path.write_bytes(b"plain text, not an image")
    elif kind == "truncated":
        from io import BytesIO

        buffer = BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(buffer, "JPEG")
        path.write_bytes(buffer.getvalue()[:2000])
    elif kind == "rgba":
        Image.new("RGBA", (128, 128), (0, 0, 0, 0)).save(path)
    elif kind == "16bit":
        Image.fromarray((np.eye(128, dtype=np.uint16) * 65535)).save(path)
    elif kind == "tiny":
        Image.new("RGB", (10, 10)).save(path)
    else:  # huge
        Image.new("L", (8000, 8000)).save(path, optimize=False)
    return str(path)


@pytest.mark.parametrize("kind,expected", [
    ("text", "not an image"), ("truncated", "truncated"), ("tiny", "10x10"), ("huge", "8000x8000"),
    ("rgba", None), ("16bit", None),
])
def test_every_bad_upload_gets_a_message(ui, tmp_path, kind, expected):
    """Broken files get a one-line reason; RGBA and 16-bit maps are converted and used."""
    path = _bad_file(tmp_path / ("upload.jpg" if kind == "truncated" else "upload.png"), kind)
    out = ui.interpolate("aae-lsgan-128", None, path, "skimage retina photo", None, 3, "linear", "unknown")
    if expected is None:
        assert out[0] is not None, out[-1]
    else:
        assert out[0] is None and out[-1].startswith("**Could not") and expected in out[-1].lower().replace(" x ", "x")
    compared = ui.compare(None, path, 0)
    assert (compared[0] is None) == (expected is not None)
    assert ui.generate(2, "unknown", "aae-lsgan-128")[0] is not None  # still serving


def test_data_folder_trees_are_offered(ui, drive_like):
    ui.state.update(data=str(drive_like / "training"), real_trees=None)
    choices = ui.tree_choices("aae-lsgan-128")
    assert any(c.startswith("drive ") for c in choices)
    first = next(c for c in choices if c.startswith("drive "))
    out = ui.interpolate("aae-lsgan-128", first, None, "skimage retina photo", None, 3, "linear", "unknown")
    assert out[0] is not None, out[-1]


def test_grade_composes_lesions_in_generated_photos(ui):
    _, healthy, _ = ui.generate(0, ui.GRADES[1], "aae-lsgan-128")
    _, severe, _ = ui.generate(0, ui.GRADES[-1], "aae-lsgan-128")
    assert healthy.shape == severe.shape and not np.array_equal(healthy, severe)
    assert np.array_equal(severe, ui.generate(0, ui.GRADES[-1], "aae-lsgan-128")[1])  # seeded


def test_lesions_on_an_uploaded_photo(ui, tmp_path):
    from conftest import make_fundus

    rgb, _ = make_fundus(400, 360, disc_side="left", seed=5)
    canvas, base, placed, message = ui.lesion_base_upload(str(save(tmp_path / "mine.png", rgb)), "unknown")
    assert canvas.shape == (128, 128, 3) and base["vessels"].shape == (128, 128) and placed == [] and "disc-right" in message
    event = type("Select", (), {"index": (40, 64)})()
    edited, placed, message = ui.place_lesion(base, placed, "haemorrhage", 4, event)
    outside = ~edited_region([Lesion(**placed[0])], 128)
    assert np.array_equal(edited[outside], canvas[outside]) and not np.array_equal(edited, canvas)
    (tmp_path / "notes.png").write_bytes(b"not an image at all")
    canvas, base, placed, message = ui.lesion_base_upload(str(tmp_path / "notes.png"), "unknown")
    assert canvas is None and base is None and "Could not use this file" in message
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    assert ui.lesion_base_upload(str(save(tmp_path / "rgba.png", rgba)), "2 moderate")[0].shape == (128, 128, 3)
    assert "Upload" in ui.lesion_base_upload(None, "unknown")[3]


def test_refined_codes_are_kept_per_model_and_tree(checkpoints, monkeypatch):
    import retinagan.explorer as explorer_module
    from retinagan.inference import REFINE_STEPS, VesselGenerator

    calls = []
    encode = VesselGenerator.encode
    monkeypatch.setattr(VesselGenerator, "encode", lambda self, maps, refine=0, progress=None: calls.append(refine) or encode(self, maps, refine, progress))
    monkeypatch.setattr(explorer_module, "REFINED_KEPT", 2)
    ex = Explorer(checkpoints)
    trees = [np.zeros((128, 128), bool) for _ in range(3)]
    for k, tree in enumerate(trees):
        tree[40 + 10 * k : 44 + 10 * k, 10:120] = True
    first = ex.encode("aae-lsgan-128", trees[0], refine=True)
    first[:] = 99  # the caller's copy: the kept code stays as it was
    again = ex.encode("aae-lsgan-128", trees[0], refine=True)
    assert len(calls) == 1 and not np.allclose(again, 99)
    assert not np.array_equal(again, ex.encode("aae-lsgan-128", trees[0]))  # unrefined: the encoder's code
    ex.encode("vae-128", trees[0], refine=True)  # another model: its own code
    ex.encode("aae-lsgan-128", trees[1], refine=True)  # the third kept code pushes out the oldest
    assert calls.count(REFINE_STEPS) == 3
    ex.encode("aae-lsgan-128", trees[0], refine=True)
    assert calls.count(REFINE_STEPS) == 4


def test_a_vessel_model_with_its_own_translator_is_painted_by_it(checkpoints, tmp_path):
    """An end-to-end pair as shipped: a vessel model stored as its differences from another, with
    its own translator (also differences) in translator/; the explorer paints its trees with that
    translator, and every other model's with the shared one."""
    import torch

    from retinagan.checkpoint import load_model, read_config, save_model, stored_info

    root = tmp_path / "checkpoints"
    shutil.copytree(checkpoints, root, ignore=shutil.ignore_patterns("broken"))
    vessels, config = load_model(root / "aae-lsgan-128")
    with torch.no_grad():
        vessels.decoder.head[0].bias.add_(0.25)
    save_model(root / "end2end", vessels, "aae", half=True, base=root / "aae-lsgan-128", **stored_info(config))
    translator, config = load_model(root / "pix2pix-grade")
    save_model(root / "pix2pix-grade", translator, "pix2pix", half=True, **stored_info(config))  # float16, as shipped
    translator = load_model(root / "pix2pix-grade")[0]
    with torch.no_grad():
        translator.head[0].bias.add_(0.5)  # a visibly brighter painter
    save_model(root / "end2end" / "translator", translator, "pix2pix", half=True, base=root / "pix2pix-grade", **stored_info(config))
    assert read_config(root / "end2end" / "translator")["base"]["stored_tensors"] == 1
    ex = Explorer(root)
    assert ex.names() == ["aae-lsgan-128", "end2end", "vae-128"]
    assert ex.paired("end2end") and not ex.paired("aae-lsgan-128") and ex.translator_label("end2end") == "end2end/translator"
    maps = ex.decode("aae-lsgan-128", ex.code("aae-lsgan-128", 3))
    own, shared = ex.photos(maps, 0, model="end2end"), ex.photos(maps, 0, model="aae-lsgan-128")
    assert own.mean() > shared.mean() + 5
    assert np.array_equal(ex.photos(maps, 0), shared)
    _, photo, _ = ex.generate("end2end", 3, grade=0)
    assert photo.shape == (128, 128, 3)
    path = ex.export_zip("end2end", 2, 0, None)
    with zipfile.ZipFile(path) as archive:
        manifest = [n for n in archive.namelist() if n.endswith("manifest.csv")][0]
        rows = list(csv.DictReader(archive.read(manifest).decode().splitlines()))
    assert [r["translator"] for r in rows] == ["end2end/translator"] * 2 and rows[0]["model"] == "end2end"
    assert "end2end/translator (translator)" in [row["model"] for row in ex.model_table()]
