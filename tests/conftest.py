import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("RETINAGAN_DATA", ROOT.parent / "shared" / "data"))
SEGMENTER = ROOT / "checkpoints" / "segmenter"


def load_script(name: str):
    """scripts/NAME.py imported as a module (the scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def need_data(*parts: str) -> Path:
    """Path under the real data folder, or skip the test with the reason."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set RETINAGAN_DATA to the shared data folder)")
    return path


def make_fundus(width: int = 300, height: int = 280, disc_side: str = "right", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic fundus photo: orange FOV disc on black, a bright optic disc, dark vessels.

    Returns (rgb uint8 (H, W, 3), vessel map bool (H, W)).
    """
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width, height))
    vessels = Image.new("L", (width, height))
    draw, vdraw = ImageDraw.Draw(image), ImageDraw.Draw(vessels)
    cx, cy, r = width / 2, height / 2, min(width, height) * 0.45
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(190, 95, 45))
    disc_x = cx + (0.55 if disc_side == "right" else -0.55) * r
    dr = r * 0.12
    draw.ellipse([disc_x - dr, cy - dr, disc_x + dr, cy + dr], fill=(250, 220, 160))
    for _ in range(8):
        angle = rng.uniform(0, 2 * np.pi)
        end = (disc_x + np.cos(angle) * r * 1.2, cy + np.sin(angle) * r * 0.9)
        for d in (draw, vdraw):
            d.line([(disc_x, cy), end], fill=(90, 25, 15) if d is draw else 255, width=3)
    fov = Image.new("L", (width, height))
    ImageDraw.Draw(fov).ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    rgb = np.asarray(image).copy()
    rgb[np.asarray(fov) == 0] = 0
    noise = rng.normal(0, 3, rgb.shape)
    rgb = np.clip(rgb + noise * (np.asarray(fov)[..., None] > 0), 0, 255).astype(np.uint8)
    return rgb, (np.asarray(vessels) > 0) & (np.asarray(fov) > 0)


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def drive_like(tmp_path: Path) -> Path:
    """A DRIVE-layout folder with 3 training and 2 test synthetic photos."""
    return make_drive_like(tmp_path / "drive")


def make_drive_like(root: Path) -> Path:
    """Write the drive_like fixture's folder at root (for fixtures of a wider scope)."""
    for split, numbers in (("training", (21, 22, 23)), ("test", (1, 2))):
        for n in numbers:
            rgb, vessels = make_fundus(seed=n, disc_side="right" if n % 2 else "left")
            stem = f"{n:02d}_{split}" if split == "test" else f"{n}_{split}"
            save(root / split / "images" / f"{stem}.tif", rgb)
            save(root / split / "1st_manual" / f"{stem.split('_')[0]}_manual1.gif", vessels.astype(np.uint8) * 255)
            save(root / split / "mask" / f"{stem}_mask.gif", ((rgb.max(2) > 0) * 255).astype(np.uint8))
    return root


@pytest.fixture
def prepared_maps(drive_like, tmp_path):
    """A prepared set (.npz) of the 5 synthetic DRIVE-like photos at 128 px."""
    from retinagan.data.readers import read_drive
    from retinagan.pipeline import prepare, save_prepared

    samples = read_drive(drive_like, "training") + read_drive(drive_like, "test")
    prepared, _ = prepare(samples, None, size=128, progress=False)
    return save_prepared(prepared, tmp_path / "maps.npz")
