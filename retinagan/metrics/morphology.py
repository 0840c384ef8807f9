"""Vessel-tree morphology: features of binary vessel maps and distances between sets of maps."""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.stats import wasserstein_distance
from skimage.morphology import skeletonize

FEATURES = (
    "area_fraction",  # vessel pixels / FOV pixels
    "skeleton_length",  # centre-line pixels / image side (comparable across sizes)
    "junctions",  # centre-line pixels with 3+ neighbours, per 1000 centre-line pixels
    "endpoints",  # centre-line pixels with 1 neighbour, per 1000 centre-line pixels
    "components",  # 8-connected vessel pieces
    "largest_component_share",  # share of vessel pixels in the largest piece
    "fractal_dimension",  # box-counting dimension of the vessel map
    "tortuosity",  # mean arc/chord ratio of centre-line segments between branch points
)
_EIGHT = np.ones((3, 3), dtype=bool)


def _neighbour_count(skeleton: np.ndarray) -> np.ndarray:
    kernel = np.ones((3, 3), dtype=np.int32)
    kernel[1, 1] = 0
    return ndimage.convolve(skeleton.astype(np.int32), kernel, mode="constant") * skeleton


def fractal_dimension(vessels: np.ndarray) -> float:
    """Box-counting dimension: slope of log(boxes hit) against log(1/box size)."""
    side = 2 ** int(np.floor(np.log2(min(vessels.shape))))
    image = vessels[:side, :side]
    sizes, counts = [], []
    size = side // 2
    while size >= 2:
        boxes = image.reshape(side // size, size, side // size, size).any(axis=(1, 3)).sum()
        if boxes > 0:
            sizes.append(size)
            counts.append(boxes)
        size //= 2
    if len(sizes) < 2:
        return 0.0
    slope = np.polyfit(np.log(1.0 / np.array(sizes)), np.log(np.array(counts)), 1)[0]
    return float(slope)


def tortuosity(skeleton: np.ndarray, neighbours: np.ndarray, min_length: int = 10) -> float:
    """Mean arc length / chord length over the segments left when branch points are removed."""
    segments = skeleton & (neighbours < 3)
    labels, count = ndimage.label(segments, structure=_EIGHT)
    if count == 0:
        return 1.0
    ratios = []
    ends = segments & (_neighbour_count(segments) == 1)
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        piece = labels[region] == index
        length = int(piece.sum())
        if length < min_length:
            continue
        end_points = np.argwhere(ends[region] & piece)
        if len(end_points) < 2:
            continue  # a closed loop has no chord
        chord = float(np.linalg.norm(end_points[0] - end_points[-1]))
        if chord > 0:
            ratios.append(length / chord)
    return float(np.mean(ratios)) if ratios else 1.0


def vessel_features(vessels: np.ndarray, fov: np.ndarray | None = None) -> dict[str, float]:
    """Features of one (H, W) bool vessel map; fov (H, W) bool defaults to the whole image."""
    vessels = vessels.astype(bool)
    fov_pixels = float(fov.sum()) if fov is not None else float(vessels.size)
    skeleton = skeletonize(vessels)
    neighbours = _neighbour_count(skeleton)
    length = int(skeleton.sum())
    labels, count = ndimage.label(vessels, structure=_EIGHT)
    sizes = np.bincount(labels.ravel())[1:] if count else np.array([0])
    per_thousand = 1000.0 / max(length, 1)
    return {
        "area_fraction": float(vessels.sum() / max(fov_pixels, 1.0)),
        "skeleton_length": length / vessels.shape[0],
        "junctions": float((neighbours >= 3).sum() * per_thousand),
        "endpoints": float((neighbours == 1).sum() * per_thousand),
        "components": float(count),
        "largest_component_share": float(sizes.max() / max(sizes.sum(), 1)),
        "fractal_dimension": fractal_dimension(vessels),
        "tortuosity": tortuosity(skeleton, neighbours),
    }


def feature_table(maps: np.ndarray, fovs: np.ndarray | None = None, desc: str | None = None) -> dict[str, np.ndarray]:
    """(N, H, W) maps -> feature name -> (N,) values; desc shows a progress bar."""
    from tqdm import tqdm

    rows = [vessel_features(m, None if fovs is None else fovs[i]) for i, m in enumerate(tqdm(maps, desc=desc, disable=desc is None))]
    return {name: np.array([r[name] for r in rows]) for name in FEATURES}


def morphology_distance(reference: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> dict[str, float]:
    """Per feature: 1-Wasserstein distance between the two sets, in units of the reference's spread.

    "mean" averages the features: one number per pair of sets.
    """
    out = {}
    for name in FEATURES:
        spread = float(np.std(reference[name])) or 1.0
        out[name] = float(wasserstein_distance(reference[name], other[name]) / spread)
    out["mean"] = float(np.mean([out[name] for name in FEATURES]))
    return out
