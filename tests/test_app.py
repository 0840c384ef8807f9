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
