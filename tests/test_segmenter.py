"""The shipped segmenter through the command line, on synthetic photos and on real DRIVE."""
import json

import numpy as np
import pytest
from PIL import Image

from retinagan.cli import main
from retinagan.inference import Segmenter

from conftest import SEGMENTER, make_fundus, need_data, save

pytestmark = pytest.mark.skipif(not (SEGMENTER / "model.safetensors").is_file(), reason="shipped segmenter missing")


def test_segment_command_writes_binary_maps_at_input_size(tmp_path):
    for i, (w, h) in enumerate([(300, 280), (900, 700)]):
        save(tmp_path / "in" / f"photo{i}.jpg", make_fundus(w, h, seed=i)[0])
    (tmp_path / "in" / "broken.png").write_text("not an image")
    code = main(["segment", "--checkpoint", str(SEGMENTER), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")])
    assert code == 1  # one input failed; the others are written
    outputs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert outputs == ["photo0.png", "photo1.png"]
    big = np.asarray(Image.open(tmp_path / "out" / "photo1.png"))
    assert big.shape == (700, 900) and set(np.unique(big)) <= {0, 255}


def test_scale_normalisation_makes_outputs_agree_across_sizes():
    """skimage's retina photo at full size and at half size gives (nearly) the same vessel map."""
    from skimage import data

    rgb = data.retina()  # 1411x1411, real photo shipped with scikit-image
    segmenter = Segmenter.load(SEGMENTER)
    half = np.asarray(Image.fromarray(rgb).resize((705, 705), Image.LANCZOS))
    full_map = np.asarray(Image.fromarray(segmenter.probability(rgb, views=1)).resize((705, 705), Image.BILINEAR))
    half_map = segmenter.probability(half, views=1)
    a, b = full_map >= segmenter.threshold, half_map >= segmenter.threshold
    assert 0.05 < a.mean() < 0.2
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.8


def test_drive_test_scores(capsys):
    drive = need_data("drive")
    assert main(["evaluate", "segmenter", "--checkpoint", str(SEGMENTER), "--drive", str(drive), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["images"] == 20
    assert result["dice"] >= 0.80 and result["auc"] >= 0.97 and result["accuracy"] > 0.95


def test_real_photos_from_other_cameras():
    """EyePACS / IDRiD photos (1024 px, other cameras): plausible vessel density inside the FOV."""
    from retinagan.data.imageio import read_rgb
    from retinagan.data.preprocess import fov_mask

    segmenter = Segmenter.load(SEGMENTER)
    for folder in ("eyepacs", "idrid"):
        photo = sorted(need_data(folder, "images").iterdir())[0]
        rgb = read_rgb(photo)
        mask = fov_mask(rgb)
        share = segmenter.segment(rgb, mask)[mask].mean()
        assert 0.04 < share < 0.2, (photo.name, share)
