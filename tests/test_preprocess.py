import numpy as np
import pytest

from retinagan.data.preprocess import (
    check_size,
    crop_to_square,
    find_optic_disc,
    fov_box,
    fov_mask,
    normalise_laterality,
    resize,
    segmenter_input,
)
from retinagan.errors import ImageError

from conftest import make_fundus


def test_fov_mask_matches_drawn_disc():
    rgb, _ = make_fundus(400, 300)
    truth = rgb.max(2) > 0
    mask = fov_mask(rgb)
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.97


def test_fov_mask_refuses_black_image():
    with pytest.raises(ImageError, match="field of view"):
        fov_mask(np.zeros((100, 100, 3), np.uint8))


def test_crop_to_square_centres_a_cut_fov():
    rgb, _ = make_fundus(400, 300)
    rgb[:60] = 0  # the FOV cut at the top, as in many real photos
    mask = fov_mask(rgb)
    top, bottom, left, right = fov_box(mask)
    square = crop_to_square(rgb, mask)
    assert square.shape == (right - left, right - left, 3)
    # The cut rows become black padding above the image, the FOV keeps its width.
    assert square[: (right - left - (bottom - top)) // 2].max() == 0
    assert crop_to_square(mask, mask).shape == square.shape[:2]


def test_resize_binary_stays_binary():
    _, vessels = make_fundus()
    small = resize(vessels, 128)
    assert small.dtype == bool and small.shape == (128, 128)
    assert 0.3 < small.mean() / vessels.mean() < 3


def test_check_size_range():
    assert check_size(256) == 256
    with pytest.raises(ValueError, match="128-1024"):
        check_size(64)
    with pytest.raises(ValueError):
        check_size(2048)


@pytest.mark.parametrize("side", ["left", "right"])
def test_optic_disc_side(side):
    rgb, _ = make_fundus(420, 380, disc_side=side, seed=3)
    disc = find_optic_disc(rgb, fov_mask(rgb))
    assert disc.side == side
    expected_x = 210 + (0.55 if side == "right" else -0.55) * 380 * 0.45
    assert abs(disc.x - expected_x) < 20 and abs(disc.y - 190) < 20


def test_laterality_mirrors_only_when_needed():
    rgb, _ = make_fundus(disc_side="left")
    mask = fov_mask(rgb)
    side = find_optic_disc(rgb, mask).side
    flipped, mirrored = normalise_laterality(rgb, side, "right")
    assert mirrored and np.array_equal(flipped, rgb[:, ::-1])
    assert find_optic_disc(flipped, mask[:, ::-1]).side == "right"
    same, mirrored = normalise_laterality(rgb, side, "left")
    assert not mirrored and same is rgb


def test_segmenter_input_is_standardised_inside_fov():
    rgb, _ = make_fundus()
    mask = fov_mask(rgb)
    x = segmenter_input(rgb, mask)
    assert x.dtype == np.float32 and x.shape == mask.shape
    assert abs(x[mask].mean()) < 1e-3 and abs(x[mask].std() - 1) < 1e-2
    assert np.all(x[~mask] == 0)
    # Exposure changes barely move the standardised input.
    darker = (rgb * 0.6).astype(np.uint8)
    assert np.abs(segmenter_input(darker, mask) - x)[mask].mean() < 0.3
