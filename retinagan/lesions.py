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

import json
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

    @property
    def radius(self) -> float:
        """The radius it is drawn with: size clipped to its kind's range (SIZES)."""
        return float(np.clip(self.size, *SIZES[self.kind]))


def _blob(shape: tuple[int, int], lesion: Lesion, rng: np.random.Generator) -> tuple[tuple[slice, slice], np.ndarray]:
    """Soft mask in [0, 1] of one lesion, computed in a window around it (the mask is 0 beyond):
    (the window's (rows, columns) slices into an image of `shape`, the mask inside it)."""
    radius = lesion.radius
    reach = int(np.ceil(3.5 * radius + 6))  # exudate patches lie within ~5 sd (radius / 2) of the centre
    top, left = max(0, int(lesion.y) - reach), max(0, int(lesion.x) - reach)
    window = (slice(top, min(shape[0], int(lesion.y) + reach + 1)), slice(left, min(shape[1], int(lesion.x) + reach + 1)))
    yy, xx = np.mgrid[window].astype(np.float32)
    if lesion.kind == "microaneurysm":
        dist = np.hypot(yy - lesion.y, xx - lesion.x) / radius
        return window, np.clip(1.5 - dist, 0, 1)
    if lesion.kind == "haemorrhage":
        # An ellipse with a wobbly rim: radius modulated by a few random harmonics.
        angle = np.arctan2(yy - lesion.y, xx - lesion.x)
        rim = radius * (1 + sum(rng.uniform(0, 0.18) * np.cos(k * angle + rng.uniform(0, 6.3)) for k in (2, 3, 5)))
        stretch = rng.uniform(0.7, 1.0)
        dist = np.hypot((yy - lesion.y) / stretch, xx - lesion.x) / rim
        return window, ndimage.gaussian_filter(np.clip((1.15 - dist) * 4, 0, 1), 0.8, mode="constant")
    # Exudate: several small patches scattered within the radius.
    mask = np.zeros(yy.shape, np.float32)
    for _ in range(int(rng.integers(3, 8))):
        cx = lesion.x + rng.normal(0, radius / 2)
        cy = lesion.y + rng.normal(0, radius / 2)
        r = rng.uniform(0.8, 2.2) * max(1.0, radius / 5)
        mask = np.maximum(mask, np.clip((r - np.hypot(yy - cy, xx - cx)) * 1.5 + 0.5, 0, 1))
    return window, mask


def paint(photo: np.ndarray, lesions: list[Lesion], fov: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) uint8 photo -> a copy with the lesions painted (never outside the FOV)."""
    out = photo.astype(np.float32)
    local = ndimage.uniform_filter(out, size=(15, 15, 1))  # the photo's own nearby colour
    for lesion in lesions:
        window, alpha = _blob(photo.shape[:2], lesion, np.random.default_rng(_seed_of(lesion)))
        alpha, near = alpha[..., None], local[window]
        if lesion.kind == "exudate":
            colour = np.clip(near * np.array([1.25, 1.35, 0.7]) + np.array([60, 55, 0]), 0, 255)
            alpha = alpha * 0.9
        else:
            depth = 0.45 if lesion.kind == "microaneurysm" else 0.55
            colour = near * np.array([1 - depth * 0.6, 1 - depth, 1 - depth])
        out[window] = out[window] * (1 - alpha) + colour * alpha
    if fov is not None:
        out = np.where(fov[..., None], out, photo)
    return np.clip(out, 0, 255).round().astype(np.uint8)


# --- lesion maps: the translator's extra input channels --------------------------------------
# One binary channel per type, in LESION_TYPES order. At 256 px a microaneurysm is a dot of
# radius 1-3 px; a red spot with more than MA_MAX_AREA pixels (at 256 px) counts as a haemorrhage.
MA_MAX_AREA = 16


def lesion_maps(lesions: list[Lesion], size: int) -> np.ndarray:
    """Lesions (positions in pixels of a size x size image) -> (3, size, size) bool maps."""
    maps = np.zeros((len(LESION_TYPES), size, size), dtype=bool)
    for lesion in lesions:
        window, alpha = _blob((size, size), lesion, np.random.default_rng(_seed_of(lesion)))
        maps[LESION_TYPES.index(lesion.kind)][window] |= alpha > 0.5
    return maps


def _seed_of(lesion: Lesion) -> int:
    return zlib.crc32(f"{lesion.kind}:{lesion.x:.1f}:{lesion.y:.1f}:{lesion.size:.1f}".encode())  # not hash(): salted per process


def edited_region(lesions: list[Lesion], size: int, margin: float = 3.0) -> np.ndarray:
    """(size, size) bool: the pixels an insertion may change (each lesion's disc, radius + margin;
    exudate clusters spread over about twice their radius)."""
    yy, xx = np.mgrid[:size, :size]
    region = np.zeros((size, size), dtype=bool)
    for lesion in lesions:
        reach = lesion.radius * (2.2 if lesion.kind == "exudate" else 1.5) + margin
        region |= np.hypot(yy - lesion.y, xx - lesion.x) <= reach
    return region


def lesions_from_json(text: str, size: int | None = None) -> list[Lesion]:
    """A JSON list of {"type" (or "kind"), "x", "y", "radius" (or "size")} -> lesions; clear errors."""
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"lesions: not valid JSON ({exc})") from None
    if not isinstance(rows, list):
        raise ValueError("lesions: expected a JSON list of objects with type, x, y, radius")
    lesions = []
    for k, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"lesions[{k}]: expected an object with type, x, y, radius")
        kind = row.get("type", row.get("kind"))
        radius = row.get("radius", row.get("size"))
        missing = [name for name, value in (("type", kind), ("x", row.get("x")), ("y", row.get("y")), ("radius", radius)) if value is None]
        if missing:
            raise ValueError(f"lesions[{k}]: missing {', '.join(missing)}")
        try:
            x, y, radius = float(row["x"]), float(row["y"]), float(radius)
        except (TypeError, ValueError):
            raise ValueError(f"lesions[{k}]: x, y and radius must be numbers") from None
        if size is not None and not (0 <= x < size and 0 <= y < size):
            raise ValueError(f"lesions[{k}]: ({x:g}, {y:g}) lies outside the {size}x{size} image")
        if not radius > 0:
            raise ValueError(f"lesions[{k}]: radius must be > 0")
        lesions.append(Lesion(str(kind), x, y, radius))
    return lesions


def lesions_to_json(lesions: list[Lesion]) -> str:
    return json.dumps([{"type": l.kind, "x": round(l.x, 1), "y": round(l.y, 1), "radius": round(l.size, 1)} for l in lesions])  # noqa: E741


# --- lesions composed to match a DR grade ------------------------------------------------------
# ICDR: 0 no abnormality; 1 microaneurysms only; 2 more than microaneurysms only (a few
# haemorrhages, exudates); 3 severe non-proliferative (> 20 intraretinal haemorrhages in each of
# the four quadrants at full resolution: here many in all four); 4 proliferative (here a large
# preretinal haemorrhage on top of grade 3's signs; neovascularisation is not drawn).
# Counts are (low, high) per 256-px image, drawn uniformly.
GRADE_RECIPES = {
    0: {},
    1: {"microaneurysm": (2, 6)},
    2: {"microaneurysm": (4, 10), "haemorrhage": (2, 5), "exudate": (1, 4)},
    3: {"microaneurysm": (8, 14), "haemorrhage": (16, 24), "exudate": (3, 7)},
    4: {"microaneurysm": (10, 16), "haemorrhage": (24, 34), "exudate": (5, 10), "preretinal": (1, 2)},
}
# Radii in pixels at 256 px. At this size one pixel is ~45 um of retina, so a true microaneurysm
# (25-125 um) is under 1.5 px across; the "microaneurysms" drawn here (radius 1.5-2.2) are the
# smallest red dots a 256-px photo shows, as the detector's microaneurysm class (<= 16 px) is
# on real 256-px photos. The translator draws dots of radius < 1.4 too faintly to be found.
LESION_SIZES = {"microaneurysm": (1.5, 2.2), "haemorrhage": (4.0, 5.0), "exudate": (3.0, 6.0), "preretinal": (10.0, 13.0)}  # within SIZES


def disc_from_vessels(vessels: np.ndarray) -> tuple[float, float]:
    """(x, y) of the optic disc of a vessel map: where the vessels are densest at the disc's scale."""
    size = vessels.shape[0]
    density = ndimage.gaussian_filter(vessels.astype(np.float32), size / 20)
    y, x = np.unravel_index(int(np.argmax(density)), density.shape)
    return float(x), float(y)


def expected_fovea_x(disc_x: float, size: int) -> float:
    """Where the fovea lies across the image: about 2.5 disc diameters (a third of the FOV width)
    from the disc, towards the centre (level with the disc)."""
    return disc_x + (0.33 if disc_x < (size - 1) / 2 else -0.33) * size


def free_of_landmarks(vessels: np.ndarray, fov: np.ndarray, rim: int) -> np.ndarray:
    """Where lesions are placed: inside the FOV (rim pixels in), off the optic disc (found from
    the vessels) and the fovea (a third of the image from the disc towards the centre), where the
    detector does not look."""
    size = vessels.shape[0]
    disc_x, disc_y = disc_from_vessels(vessels)
    fovea_x = expected_fovea_x(disc_x, size)
    yy, xx = np.mgrid[:size, :size]
    return (ndimage.binary_erosion(fov, iterations=rim) & (np.hypot(yy - disc_y, xx - disc_x) > size * 0.12)
            & (np.hypot(yy - disc_y, xx - fovea_x) > size * 0.1))


def compose_for_grade(grade: int, seed: int, vessels: np.ndarray, fov: np.ndarray) -> list[Lesion]:
    """Random (seeded) lesions matching ICDR grade 0-4 on this vessel tree: away from the optic
    disc and the FOV rim, red lesions off the vessels, haemorrhages spread over all four quadrants."""
    if grade not in GRADE_RECIPES:
        raise ValueError(f"grade must be 0-4, not {grade}")
    if not GRADE_RECIPES[grade]:
        return []
    size = vessels.shape[0]
    rng = np.random.default_rng([int(seed), int(grade)])
    allowed = free_of_landmarks(vessels, fov, max(2, size // 20))
    yy, xx = np.mgrid[:size, :size]
    off_vessels = allowed & ~ndimage.binary_dilation(vessels, iterations=2)
    centre = (size - 1) / 2
    quadrant = (yy > centre).astype(int) * 2 + (xx > centre)
    lesions: list[Lesion] = []
    for kind, (low, high) in GRADE_RECIPES[grade].items():
        count = int(rng.integers(low, high + 1))
        pool = off_vessels if kind in ("microaneurysm", "haemorrhage") else allowed
        for k in range(count):
            where = pool & (quadrant == k % 4) if kind == "haemorrhage" else pool  # round-robin over the quadrants
            ys, xs = np.nonzero(where if where.any() else allowed)
            if len(ys) == 0:
                break
            i = int(rng.integers(len(ys)))
            radius = float(rng.uniform(*LESION_SIZES[kind]))
            lesions.append(Lesion("haemorrhage" if kind == "preretinal" else kind, float(xs[i]), float(ys[i]), radius))
    return lesions


# --- detector: lesion maps of real (or generated) photos -----------------------------------
def relative_contrast(channel: np.ndarray, fov: np.ndarray) -> np.ndarray:
    """(channel - local background) / background; background = median over ~1/10 of the image."""
    fill = np.where(fov, channel, np.median(channel[fov]) if fov.any() else channel.mean())
    step = max(1, channel.shape[0] // 128)
    small = ndimage.median_filter(fill[::step, ::step], size=13)
    background = ndimage.zoom(small, (channel.shape[0] / small.shape[0], channel.shape[1] / small.shape[1]), order=1)
    return (channel - background) / np.maximum(background, 8.0)


def find_fovea(green: np.ndarray, fov: np.ndarray, disc_x: float, disc_y: float) -> tuple[float, float]:
    """(x, y) of the fovea: the darkest smoothed spot about 2.5 disc diameters (a third of the
    FOV width) from the disc towards the FOV centre, level with the disc."""
    size = green.shape[0]
    expected_x = expected_fovea_x(disc_x, size)
    smooth = ndimage.gaussian_filter(np.where(fov, green, green[fov].max() if fov.any() else 0), size / 16)  # broader than lesions
    yy, xx = np.mgrid[:size, :size]
    window = (np.hypot(yy - disc_y, xx - expected_x) <= 0.1 * size) & fov
    if not window.any():
        return expected_x, disc_y
    y, x = np.unravel_index(int(np.argmin(np.where(window, smooth, np.inf))), smooth.shape)
    return float(x), float(y)


def detect_lesions(rgb: np.ndarray, fov: np.ndarray, vessels: np.ndarray | None = None,
                   red_contrast: float = 0.10, bright_contrast: float = 0.30) -> np.ndarray:
    """A (S, S, 3) uint8 photo (FOV-cropped, as prepared) -> (3, S, S) bool lesion maps.

    Red lesions: compact spots whose green is >= 10% darker than the local background, off the
    (given) vessel map; small ones are microaneurysms, larger ones haemorrhages. Bright lesions
    (exudates, cotton-wool spots): spots >= 30% brighter than the background, away from the
    optic disc. Red spots centred on the fovea (dark in every photo) are not counted.
    Thresholds chosen on the EyePACS photos (grade vs lesion count, README).
    A classical detector: no learned weights, the same on real and generated photos.
    """
    from retinagan.data.preprocess import find_optic_disc

    size = rgb.shape[0]
    scale = (size / 256) ** 2  # areas are set for 256 px
    green = rgb[..., 1].astype(np.float32)
    contrast = relative_contrast(green, fov)
    inside = ndimage.binary_erosion(fov, iterations=max(1, round(6 * size / 256)))
    maps = np.zeros((3, size, size), dtype=bool)
    red = (contrast < -red_contrast) & inside
    if vessels is not None:
        red &= ~ndimage.binary_dilation(vessels, iterations=1)
    disc = find_optic_disc(rgb, fov)
    fovea_x, fovea_y = find_fovea(green, fov, disc.x, disc.y)
    labels, count = ndimage.label(red)
    for i, box in enumerate(ndimage.find_objects(labels), 1):
        part = labels[box] == i
        area, (h, w) = int(part.sum()), part.shape
        if area < 2 * scale or area / (h * w) <= 0.35 or max(h, w) > 3 * min(h, w) + 2:  # specks and vessel bits
            continue
        cy, cx = box[0].start + (h - 1) / 2, box[1].start + (w - 1) / 2
        if np.hypot(cy - fovea_y, cx - fovea_x) <= 0.06 * size:  # the fovea itself
            continue
        maps[0 if area <= MA_MAX_AREA * scale else 1][box] |= part
    yy, xx = np.mgrid[:size, :size]
    bright = (contrast > bright_contrast) & inside & (np.hypot(yy - disc.y, xx - disc.x) > 24 * size / 256)
    labels, count = ndimage.label(bright)
    if count:
        areas = ndimage.sum(bright, labels, range(1, count + 1))
        maps[2] = np.isin(labels, 1 + np.flatnonzero(areas >= 2 * scale))
    return maps


def detect_all(images: np.ndarray, fovs: np.ndarray, vessels: np.ndarray) -> np.ndarray:
    """detect_lesions over a set of photos -> (N, 3, S, S) bool: the lesion maps a translator is
    trained on (retinagan.training.pix2pix.load_pairs) and scored with (evaluate fundus)."""
    return np.stack([detect_lesions(rgb, f, v) for rgb, f, v in zip(images, fovs, vessels)])


def lesion_counts(maps: np.ndarray) -> dict[str, int]:
    """Connected spots per type of (3, S, S) lesion maps."""
    return {kind: int(ndimage.label(maps[k])[1]) for k, kind in enumerate(LESION_TYPES)}


def burden(maps: np.ndarray) -> int:
    """Lesion burden: the number of lesions (spots of any type) found."""
    return sum(lesion_counts(maps).values())
