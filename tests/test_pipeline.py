import time

import numpy as np
import pytest

from retinagan.data.readers import read_drive, read_graded
from retinagan.errors import DatasetError
from retinagan.pipeline import load_prepared, prepare, save_prepared

from conftest import make_fundus, save


class FakeSegmenter:
    """Stands in for the network: dark pixels inside the FOV are 'vessels'."""

    def segment(self, rgb, mask):
        return (rgb[..., 1] < 60) & mask


def test_prepare_round_trip(drive_like, tmp_path):
    samples = read_drive(drive_like, "training")
    prepared, failures = prepare(samples, segmenter=None, size=128, progress=False)
    assert not failures and len(prepared) == 3
    assert prepared.images.shape == (3, 128, 128, 3) and prepared.images.dtype == np.uint8
    assert prepared.vessels.dtype == bool and prepared.fov.shape == (3, 128, 128)
    assert list(prepared.vessel_sources) == ["manual"] * 3
    assert list(prepared.grades) == [-1] * 3
    # Laterality: synthetic photos 21, 23 have discs on the right, 22 on the left -> only 22 mirrored.
    assert list(prepared.mirrored) == [False, True, False]
    path = save_prepared(prepared, tmp_path / "set.npz")
    start = time.perf_counter()
    loaded = load_prepared(path)
    assert time.perf_counter() - start < 5  # sanity only; the real timing is in bench/
    assert np.array_equal(loaded.images, prepared.images) and np.array_equal(loaded.vessels, prepared.vessels)
    assert list(loaded.ids) == list(prepared.ids) and loaded.meta["size"] == 128


def test_prepare_segments_graded_photos_and_skips_bad_files(tmp_path):
    for name, side in (("1_left", "left"), ("1_right", "right")):
        save(tmp_path / "images" / f"{name}.png", make_fundus(disc_side=side)[0])
    (tmp_path / "images" / "2_left.png").write_text("not an image")
    (tmp_path / "labels.csv").write_text("image,level\n1_left,0\n1_right,3\n2_left,1\n")
    samples, _ = read_graded(tmp_path / "labels.csv")
    prepared, failures = prepare(samples, FakeSegmenter(), size=128, progress=False)
    assert len(prepared) == 2 and len(failures) == 1 and "not an image" in failures[0]
    assert list(prepared.grades) == [0, 3] and list(prepared.vessel_sources) == ["segmenter"] * 2
    assert all(prepared.vessels[i][prepared.fov[i]].mean() > 0.01 for i in range(2))
    # Both discs end on the right: the left eye was mirrored.
    assert list(prepared.mirrored) == [True, False]


def test_prepare_without_any_segmenter_fails_clearly(tmp_path):
    save(tmp_path / "images" / "a.png", make_fundus()[0])
    (tmp_path / "labels.csv").write_text("image,level\na,0\n")
    samples, _ = read_graded(tmp_path / "labels.csv")
    with pytest.raises(DatasetError, match="no vessel map and no segmenter"):
        prepare(samples, None, progress=False)


def test_damaged_cache(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(DatasetError, match="damaged"):
        load_prepared(tmp_path / "bad.npz")
    with pytest.raises(DatasetError, match="not found"):
        load_prepared(tmp_path / "absent.npz")


def test_prepare_real_photos_with_shipped_segmenter(tmp_path):
    from conftest import SEGMENTER, need_data
    from retinagan.cli import main

    data = need_data()
    if not (SEGMENTER / "model.safetensors").is_file():
        pytest.skip("shipped segmenter missing")
    labels = tmp_path / "labels.csv"  # three EyePACS photos, named through a label file of our own
    labels.write_text("image,level\n10_right,0\n13_left,0\n16_right,4\n")
    (tmp_path / "images").symlink_to(data / "eyepacs" / "images")
    out = tmp_path / "set.npz"
    assert main(["prepare", "--data", str(labels), "--data", str(data / "drive" / "test"), "--output", str(out), "--size", "128"]) == 0
    prepared = load_prepared(out)
    assert len(prepared) == 23 and prepared.images.shape[1:] == (128, 128, 3)
    assert sorted(set(prepared.vessel_sources)) == ["manual", "segmenter"]
    assert list(prepared.grades[:3]) == [0, 0, 4]
    share = [prepared.vessels[i][prepared.fov[i]].mean() for i in range(len(prepared))]
    assert all(0.03 < s < 0.2 for s in share), share
    # Every FOV fills the square's width after cropping.
    assert all(prepared.fov[i].any(0).mean() > 0.95 for i in range(len(prepared)))
