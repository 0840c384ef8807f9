"""Reading images safely: every failure becomes a one-line ImageError."""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from retinagan.errors import ImageError

MIN_SIDE = 32  # smaller than this cannot hold a usable fundus or vessel map
MAX_PIXELS = 40_000_000  # 40 MP: well above fundus cameras (~18 MP), below decompression bombs

ImageFile.LOAD_TRUNCATED_IMAGES = False


def open_image(source: str | os.PathLike | bytes | Image.Image, name: str | None = None) -> Image.Image:
    """Open and fully decode an image, checking size; raises ImageError with the reason."""
    if isinstance(source, Image.Image):
        image, label = source, name or "image"
    else:
        label = name or (Path(source).name if not isinstance(source, bytes) else "upload")
        if not isinstance(source, bytes) and not Path(source).is_file():
            raise ImageError(f"{label}: no such file")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
                _check_size(image, label)
                image.load()
        except ImageError:
            raise
        except UnidentifiedImageError:
            raise ImageError(f"{label}: not an image file (or a format PIL cannot read)") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(f"{label}: image too large (limit {MAX_PIXELS // 1_000_000} megapixels)") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{label}: damaged or truncated image ({exc})") from None
    _check_size(image, label)
    return image


def _check_size(image: Image.Image, label: str) -> None:
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"{label}: image is {width}x{height}; at least {MIN_SIDE}x{MIN_SIDE} is needed")
    if width * height > MAX_PIXELS:
        raise ImageError(f"{label}: image is {width}x{height}, over the {MAX_PIXELS // 1_000_000} megapixel limit")


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Any PIL mode -> (H, W, 3) uint8. 16-bit and float images are rescaled, alpha dropped."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        values = _rescale_to_uint8(values)
        return np.repeat(values[..., None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))  # transparent -> black, like outside a FOV
        image = Image.alpha_composite(background, image)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def to_gray_array(image: Image.Image) -> np.ndarray:
    """Any PIL mode -> (H, W) uint8."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _rescale_to_uint8(np.asarray(image, dtype=np.float64))
    if image.mode == "LAB":  # PIL converts LAB to RGB but not straight to L
        image = image.convert("RGB")
    return np.asarray(image.convert("L"), dtype=np.uint8).copy()


def _rescale_to_uint8(values: np.ndarray) -> np.ndarray:
    """0-1 (float maps), 0-255 or 0-65535 ranges -> 0-255; NaN -> 0, +-inf clipped."""
    finite = np.isfinite(values)
    top = values[finite].max() if finite.any() else 0.0
    if top <= 0:
        return np.zeros(values.shape, np.uint8)
    scale = 255.0 if top <= 1 else 255.0 / (65535.0 if top > 255 else 255.0)
    return np.clip(np.nan_to_num(values * scale, nan=0.0), 0, 255).astype(np.uint8)


def read_rgb(source, name: str | None = None) -> np.ndarray:
    return to_rgb_array(open_image(source, name))


def read_mask(source, name: str | None = None) -> np.ndarray:
    """A binary map (vessel map, FOV mask) -> (H, W) bool."""
    return to_gray_array(open_image(source, name)) > 127


def write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write atomically: a temp file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(array).save(tmp, format="PNG")
    os.replace(tmp, path)
