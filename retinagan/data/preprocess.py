"""Field of view, cropping, resizing, segmenter input and laterality normalisation.

All functions take and return numpy arrays; none uses a model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import exposure

from retinagan.errors import ImageError

MIN_SIZE, MAX_SIZE = 128, 1024


def fov_mask(rgb: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) bool field of view: the bright disc against a dark border."""
    red = rgb[..., 0].astype(np.float32)
    lum = np.maximum(red, rgb[..., 1].astype(np.float32))
    if threshold is None:
        # The border is near black (JPEG noise < ~15); the FOV's dimmest parts are well above.
        threshold = max(12.0, 0.08 * float(np.percentile(lum, 99)))
    step = max(1, max(rgb.shape[:2]) // 512)  # find the shape on a small copy: fast and smooth
    small = lum[::step, ::step] > threshold
    small = ndimage.binary_opening(small, iterations=2)
    labels, count = ndimage.label(small)
    if count == 0:
        raise ImageError("no field of view found: the image is (nearly) black")
    sizes = ndimage.sum(small, labels, index=range(1, count + 1))
    small = ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))
    if small.mean() < 0.05:
        raise ImageError("no field of view found: the bright region covers under 5% of the image")
    full = np.asarray(
        Image.fromarray(small.astype(np.uint8) * 255).resize(rgb.shape[1::-1], Image.BILINEAR)
    )
    return full > 127


def fov_disc(size: int, height: float = 1.0) -> np.ndarray:
    """A field-of-view mask as the prepared photos have it: a disc as wide as the image, cut at
    top and bottom to `height` (a fraction of the side; real cameras give 0.75-1)."""
    if not 0.5 <= height <= 1.0:
        raise ValueError(f"FOV height must be within 0.5-1, not {height}")
    centre = (size - 1) / 2
    y, x = np.mgrid[:size, :size]
    disc = (y - centre) ** 2 + (x - centre) ** 2 <= (size / 2) ** 2
    return disc & (np.abs(y - centre) <= height * size / 2)


def fov_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the FOV, bottom/right exclusive."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def crop_to_square(array: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Crop to the FOV box and pad with zeros to a square centred on it.

    The FOV's width is its diameter (photos are often cut at top and bottom, rarely at the
    sides), so the square's side is the larger of the box's sides.
    """
    top, bottom, left, right = fov_box(mask)
    crop = array[top:bottom, left:right]
    side = max(crop.shape[:2])
    out = np.zeros((side, side) + array.shape[2:], dtype=array.dtype)
    y, x = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    out[y : y + crop.shape[0], x : x + crop.shape[1]] = crop
    return out


def resize(array: np.ndarray, size: int | tuple[int, int], binary: bool = False) -> np.ndarray:
    """Resize to size (side, or (height, width)); binary maps are area-averaged then thresholded."""
    height, width = (size, size) if isinstance(size, int) else size
    if array.dtype == bool or binary:
        resized = Image.fromarray(array.astype(np.uint8) * 255).resize((width, height), Image.BILINEAR)
        return np.asarray(resized) > 127
    return np.asarray(Image.fromarray(array).resize((width, height), Image.LANCZOS))


def check_size(size: int) -> int:
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"image size {size} is outside the supported {MIN_SIZE}-{MAX_SIZE}")
    return size


def segmenter_input(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 photo -> (H, W) float32: CLAHE green channel, standardised in the FOV.

    The green channel carries the vessel contrast; CLAHE and standardisation make photos
    from different cameras and exposures look alike to the network.
    """
    green = rgb[..., 1].astype(np.float32) / 255.0
    # Fill the border with the FOV's mean so CLAHE does not see a hard black edge.
    fill = float(green[mask].mean()) if mask.any() else 0.0
    green = np.where(mask, green, fill)
    tile = max(8, int(round(min(green.shape) / 8)))
    enhanced = exposure.equalize_adapthist(green, kernel_size=tile, clip_limit=0.01).astype(np.float32)
    inside = enhanced[mask]
    out = (enhanced - inside.mean()) / (inside.std() + 1e-6)
    return np.where(mask, out, 0.0).astype(np.float32)


@dataclass
class DiscEstimate:
    x: float  # column of the optic disc centre, in pixels
    y: float  # row
    side: str  # "left" or "right" half of the image


def find_optic_disc(rgb: np.ndarray, mask: np.ndarray) -> DiscEstimate:
    """Locate the optic disc: the brightest disc-sized region of the FOV.

    Works on a 256-px copy. The disc is about 1/7 of the FOV width across; averaging over
    that size ignores small bright lesions, and eroding the FOV ignores glare at its rim.
    """
    height, width = mask.shape
    scale = 256.0 / max(height, width)
    small_h, small_w = max(1, round(height * scale)), max(1, round(width * scale))
    small = np.asarray(Image.fromarray(rgb).resize((small_w, small_h), Image.BILINEAR)).astype(np.float32)
    small_mask = resize(mask, (small_h, small_w))
    top, bottom, left, right = fov_box(small_mask)
    fov_width = right - left
    lum = 0.3 * small[..., 0] + 0.7 * small[..., 1]
    inside = small_mask
    lum = np.where(inside, lum, lum[inside].mean())
    # Remove slow illumination gradients (vignetting) so the disc stands out.
    background = ndimage.gaussian_filter(lum, fov_width / 4)
    detail = (lum - background) / (lum[inside].std() + 1e-6)
    radius = fov_width / 28
    brightness = ndimage.gaussian_filter(detail, radius)
    # The disc is crossed by the main vessels: strong local contrast, unlike flat glare.
    contrast = np.sqrt(np.maximum(ndimage.gaussian_filter(detail**2, radius) - ndimage.gaussian_filter(detail, radius) ** 2, 0))
    score = brightness + 0.5 * contrast
    # Prior: the disc lies near the horizontal meridian, away from the rim.
    rows = np.arange(small_h)[:, None]
    centre_y = (top + bottom) / 2
    score = score - 0.5 * ((rows - centre_y) / (0.25 * fov_width)) ** 2
    rim = ndimage.binary_erosion(inside, iterations=max(1, fov_width // 14))
    score = np.where(rim, score, -np.inf)
    y, x = np.unravel_index(int(np.argmax(score)), score.shape)
    centre = (left + right) / 2
    return DiscEstimate(x=x / scale, y=y / scale, side="left" if x < centre else "right")


def normalise_laterality(array: np.ndarray, disc_side: str, target_side: str = "right") -> tuple[np.ndarray, bool]:
    """Mirror left-right so the optic disc lies on target_side; returns (array, mirrored)."""
    if disc_side == target_side:
        return array, False
    return np.ascontiguousarray(array[:, ::-1]), True
