"""App callbacks called directly (the browser-driven tests come with the explorer app)."""
import numpy as np
import pytest
from PIL import Image

import app

from conftest import SEGMENTER, make_fundus, save

pytestmark = pytest.mark.skipif(not (SEGMENTER / "model.safetensors").is_file(), reason="shipped segmenter missing")


def test_segment_upload_returns_images(tmp_path):
    rgb, _ = make_fundus(400, 380)
    photo, vessels, combined, message = app.segment_upload(str(save(tmp_path / "photo.png", rgb)))
    assert photo.shape == rgb.shape and vessels.shape == rgb.shape[:2] and combined.shape == rgb.shape
    assert set(np.unique(vessels)) <= {0, 255}
    assert "400x380" in message


@pytest.mark.parametrize(
    "name,content,expected",
    [
        ("notes.png", b"plain text, not an image", "not an image"),
        ("tiny.png", None, "10x10"),
        ("black.png", "black", "field of view"),
    ],
)
def test_bad_uploads_give_a_message(tmp_path, name, content, expected):
    path = tmp_path / name
    if content is None:
        Image.new("RGB", (10, 10)).save(path)
    elif content == "black":
        Image.new("RGB", (300, 300)).save(path)
    else:
        path.write_bytes(content)
    photo, vessels, combined, message = app.segment_upload(str(path))
    assert photo is None and vessels is None and expected in message and message.startswith("**Could not")


def test_example_photo_is_skimage_retina():
    photo, vessels, _, message = app.segment_upload(app.example_photo_path())
    assert photo.shape == (1411, 1411, 3)
    assert 0.03 < (vessels > 0).mean() < 0.2


def test_ui_builds_with_stable_api_names():
    demo = app.build_ui()
    names = {fn.api_name for fn in demo.fns.values()}
    assert {"segment", "segment_example"} <= names


def test_repaint_paints_a_real_photos_own_tree_in_its_own_look(tmp_path):
    real, own, other, message = app.repaint_upload(app.example_photo_path(), 3)
    assert real.shape == own.shape == other.shape == (256, 256, 3) and real.dtype == own.dtype == np.uint8
    assert "own look" in message and "lesion maps" in message
    fov = real.max(2) > 0
    colour = lambda photo: photo[fov].mean(0)  # noqa: E731
    # Given the photo's own look, the painted photo's colour is nearer the real one than in another look.
    assert np.abs(colour(own) - colour(real)).sum() < np.abs(colour(other) - colour(real)).sum()
    again = app.repaint_upload(app.example_photo_path(), 3)
    assert np.array_equal(again[1], own) and np.array_equal(again[2], other)  # deterministic
    assert not np.array_equal(app.repaint_upload(app.example_photo_path(), 4)[2], other)  # the seed picks the other look
    assert app.repaint_upload(None)[0] is None
    assert "must be 0 or more" in app.repaint_upload(app.example_photo_path(), -1)[3]
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"plain text, not an image")
    result = app.repaint_upload(str(bad))
    assert result[0] is None and result[3].startswith("**Could not use this file:**") and "not an image" in result[3]
    names = {fn.api_name for fn in app.build_ui().fns.values()}
    assert "repaint" in names


def test_model_table_shows_the_translators_stored_scores():
    """The Compare tab's table reads each translator's evaluate fundus scores from its config.json."""
    from pathlib import Path

    from retinagan.checkpoint import read_config

    table = app.table_rows()
    row = table[table["model"] == "pix2pix-grade (translator)"].iloc[0]
    stored = read_config(Path(app.__file__).parent / "checkpoints" / "pix2pix-grade")["metrics"]["evaluate_fundus"]
    assert row["FID, photos of real trees"] == stored["fid_from_real_maps"]
    assert row["FID, ... with another real photo's lesions and grade"] == stored["fid_from_real_maps_drawn_conditions"]
    assert row["FID, real vs real (floor)"] == stored["fid_real_vs_real"] < row["FID, photos of real trees"]
    # the same translator with the photo detailer, and the first row's mean over sets of look seeds
    metrics = read_config(Path(app.__file__).parent / "checkpoints" / "pix2pix-grade")["metrics"]
    detailed = table[table["model"] == "pix2pix-grade (translator + photo detail)"].iloc[0]
    assert detailed["FID, photos of real trees"] == metrics["evaluate_fundus_photodetail"]["fid_from_real_maps"] < row["FID, photos of real trees"]
    assert detailed["FID, photos of real trees, mean over look sets"] == metrics["evaluate_fundus_photodetail"]["fid_from_real_maps_look_sets_mean"]
    assert detailed["look sets"] == len(metrics["evaluate_fundus_photodetail"]["fid_from_real_maps_look_sets"]) > 1
