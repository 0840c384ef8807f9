"""Location-controlled DR lesions painted onto a fundus photo.

A procedural renderer (no learned model): each lesion is a soft-edged blob whose colour is
taken relative to the photo's own local colour, so it sits in the image's lighting:
- microaneurysm: a small round dark-red dot (radius 1-3 px at 256 px);
- haemorrhage: a larger, irregular dark-red blot (dot-blot / flame);
- exudate: a cluster of small bright yellow-white patches with sharp edges.
The shape of a lesion depends only on its type, position and size, so the same list of
lesions gives the same picture.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

LESION_TYPES = ("microaneurysm", "haemorrhage", "exudate")
SIZES = {"microaneurysm": (1.0, 3.0), "haemorrhage": (4.0, 14.0), "exudate": (3.0, 12.0)}


@dataclass(frozen=True)
class Lesion:
    kind: str  # one of LESION_TYPES
    x: float  # column, pixels
    y: float  # row, pixels
    size: float  # radius, pixels (clipped to the kind's range)

    def __post_init__(self):
        if self.kind not in LESION_TYPES:
            raise ValueError(f"unknown lesion type {self.kind!r} (one of {', '.join(LESION_TYPES)})")


def _blob(shape: tuple[int, int], lesion: Lesion, rng: np.random.Generator) -> np.ndarray:
    """Soft mask in [0, 1] of one lesion."""
    low, high = SIZES[lesion.kind]
    radius = float(np.clip(lesion.size, low, high))
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    if lesion.kind == "microaneurysm":
        dist = np.hypot(yy - lesion.y, xx - lesion.x) / radius
        return np.clip(1.5 - dist, 0, 1)
    if lesion.kind == "haemorrhage":
        # An ellipse with a wobbly rim: radius modulated by a few random harmonics.
        angle = np.arctan2(yy - lesion.y, xx - lesion.x)
        rim = radius * (1 + sum(rng.uniform(0, 0.18) * np.cos(k * angle + rng.uniform(0, 6.3)) for k in (2, 3, 5)))
        stretch = rng.uniform(0.7, 1.0)
        dist = np.hypot((yy - lesion.y) / stretch, xx - lesion.x) / rim
        return ndimage.gaussian_filter(np.clip((1.15 - dist) * 4, 0, 1), 0.8)
    # Exudate: several small patches scattered within the radius.
    mask = np.zeros(shape, np.float32)
    for _ in range(int(rng.integers(3, 8))):
        cx = lesion.x + rng.normal(0, radius / 2)
        cy = lesion.y + rng.normal(0, radius / 2)
        r = rng.uniform(0.8, 2.2) * max(1.0, radius / 5)
        mask = np.maximum(mask, np.clip((r - np.hypot(yy - cy, xx - cx)) * 1.5 + 0.5, 0, 1))
    return mask


def paint(photo: np.ndarray, lesions: list[Lesion], fov: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) uint8 photo -> a copy with the lesions painted (never outside the FOV)."""
    out = photo.astype(np.float32)
    local = ndimage.uniform_filter(out, size=(15, 15, 1))  # the photo's own nearby colour
    for lesion in lesions:
        seed = zlib.crc32(f"{lesion.kind}:{lesion.x:.1f}:{lesion.y:.1f}:{lesion.size:.1f}".encode())  # not hash(): salted per process
        alpha = _blob(photo.shape[:2], lesion, np.random.default_rng(seed))[..., None]
        if lesion.kind == "exudate":
            colour = np.clip(local * np.array([1.25, 1.35, 0.7]) + np.array([60, 55, 0]), 0, 255)
            alpha = alpha * 0.9
        else:
            depth = 0.45 if lesion.kind == "microaneurysm" else 0.55
            colour = local * np.array([1 - depth * 0.6, 1 - depth, 1 - depth])
        out = out * (1 - alpha) + colour * alpha
    if fov is not None:
        out = np.where(fov[..., None], out, photo)
    return np.clip(out, 0, 255).round().astype(np.uint8)
