"""Image grids and overlays with numpy and PIL (no torchvision)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def grid(images: np.ndarray, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """(N, H, W) or (N, H, W, 3) images in [0, 1] or uint8 -> one uint8 grid image."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = (np.clip(images, 0, 1) * 255).round().astype(np.uint8)
    count, height, width = images.shape[:3]
    columns = columns or int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    shape = (rows * (height + pad) + pad, columns * (width + pad) + pad) + images.shape[3:]
    out = np.full(shape, 255, dtype=np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        y, x = pad + r * (height + pad), pad + c * (width + pad)
        out[y : y + height, x : x + width] = image
    return out


def save_grid(path: str | Path, images: np.ndarray, columns: int | None = None) -> Path:
    from retinagan.data.imageio import write_png

    write_png(path, grid(images, columns))
    return Path(path)


def overlay(rgb: np.ndarray, vessels: np.ndarray) -> np.ndarray:
    """Vessels drawn in bright green over the darkened photo; (H, W, 3) uint8."""
    out = (rgb * 0.6).astype(np.uint8)
    out[vessels] = (40, 255, 90)
    return out
