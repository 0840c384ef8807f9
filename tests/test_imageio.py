import numpy as np
import pytest
from PIL import Image

from retinagan.data.imageio import open_image, read_mask, read_rgb, write_png
from retinagan.errors import ImageError

from conftest import make_fundus, save


def test_reads_rgb_photo(tmp_path):
    rgb, _ = make_fundus()
    path = save(tmp_path / "photo.png", rgb)
    assert np.array_equal(read_rgb(path), rgb)


def test_text_file_renamed_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image")
    with pytest.raises(ImageError, match="not an image"):
        read_rgb(path)


def test_truncated_jpeg(tmp_path):
    rgb, _ = make_fundus()
    path = tmp_path / "photo.jpg"
    Image.fromarray(rgb).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        read_rgb(path)


def test_rgba_composited_on_black(tmp_path):
    rgb, _ = make_fundus()
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:10] = 0
    path = save(tmp_path / "rgba.png", np.dstack([rgb, alpha]))
    out = read_rgb(path)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert out[:10].max() == 0 and np.array_equal(out[10:], rgb[10:])


def test_16bit_gray_rescaled(tmp_path):
    values = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    path = tmp_path / "gray16.png"
    Image.fromarray(values).save(path)
    out = read_rgb(path)
    assert out.shape == (64, 64, 3) and out.max() == 255 and out.min() == 0


def test_palette_and_cmyk(tmp_path):
    rgb, _ = make_fundus()
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    for name in ("p.png", "cmyk.jpg"):
        out = read_rgb(tmp_path / name)
        assert out.shape == rgb.shape
        assert abs(out.astype(int) - rgb).mean() < 20


def test_tiny_image(tmp_path):
    path = save(tmp_path / "tiny.png", np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ImageError, match="10x10"):
        read_rgb(path)


def test_huge_image_rejected_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("L", (8000, 8000)).save(path)
    with pytest.raises(ImageError, match="megapixel"):
        read_rgb(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        read_rgb(tmp_path / "absent.png")


def test_bytes_upload():
    with pytest.raises(ImageError, match="upload: not an image"):
        open_image(b"GIF89a but not really")


def test_write_png_binary_round_trip(tmp_path):
    _, vessels = make_fundus()
    write_png(tmp_path / "v.png", vessels)
    raw = np.asarray(Image.open(tmp_path / "v.png"))
    assert set(np.unique(raw)) <= {0, 255}
    assert np.array_equal(read_mask(tmp_path / "v.png"), vessels)
    assert not list(tmp_path.glob(".*tmp"))
