"""Building prepared sets: photos + FOV masks + vessel maps, cropped, resized, one orientation.

This step sits above data/ and models/: it reads photos with the data readers and segments
those without hand-drawn vessel maps with the segmenter.
"""
from __future__ import annotations

import json
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from retinagan.data.imageio import read_mask, read_rgb
from retinagan.data.preprocess import check_size, crop_to_square, find_optic_disc, fov_mask, normalise_laterality, resize
from retinagan.data.readers import Sample
from retinagan.errors import DatasetError, RetinaganError

CACHE_VERSION = 1


@dataclass
class PreparedSet:
    images: np.ndarray  # (N, S, S, 3) uint8 photos, FOV cropped, padded square
    fov: np.ndarray  # (N, S, S) bool field-of-view masks
    vessels: np.ndarray  # (N, S, S) bool vessel maps
    grades: np.ndarray  # (N,) int8 ICDR grade, -1 where unknown
    ids: np.ndarray  # (N,) str sample ids
    sources: np.ndarray  # (N,) str dataset names
    vessel_sources: np.ndarray  # (N,) str "manual" or "segmenter"
    mirrored: np.ndarray  # (N,) bool: flipped left-right for laterality
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def select(self, keep: np.ndarray) -> "PreparedSet":
        arrays = {k: getattr(self, k)[keep] for k in ARRAY_FIELDS}
        return PreparedSet(**arrays, meta=self.meta)


ARRAY_FIELDS = ("images", "fov", "vessels", "grades", "ids", "sources", "vessel_sources", "mirrored")


def prepare_arrays(
    rgb: np.ndarray,
    mask: np.ndarray | None,
    vessels: np.ndarray | None,
    segmenter,
    size: int,
    laterality: str | None = "right",
    name: str = "photo",
) -> dict:
    """A photo (and its FOV mask and vessel map, where known) -> FOV-cropped square arrays at
    `size`, mirrored so the optic disc lies on the `laterality` side; vessels made by the
    segmenter when not given. Keys: images, fov, vessels, vessel_sources, mirrored."""
    mask = fov_mask(rgb) if mask is None else mask
    if mask.shape != rgb.shape[:2]:
        raise DatasetError(f"{name}: FOV mask is {mask.shape[::-1]}, photo is {rgb.shape[1::-1]}")
    if vessels is not None:
        vessel_source = "manual"
    elif segmenter is not None:
        vessels, vessel_source = segmenter.segment(rgb, mask), "segmenter"
    else:
        raise DatasetError(f"{name}: no vessel map and no segmenter given to make one")
    disc_side = find_optic_disc(rgb, mask).side
    image = resize(crop_to_square(rgb, mask), size)
    fov = resize(crop_to_square(mask, mask), size)
    vessels = resize(crop_to_square(vessels & mask, mask), size)
    mirrored = False
    if laterality:
        image, mirrored = normalise_laterality(image, disc_side, laterality)
        fov, _ = normalise_laterality(fov, disc_side, laterality)
        vessels, _ = normalise_laterality(vessels, disc_side, laterality)
    return dict(images=image, fov=fov, vessels=vessels, vessel_sources=vessel_source, mirrored=mirrored)


def prepare_one(sample: Sample, segmenter, size: int, laterality: str | None = "right") -> dict:
    """One sample -> dict of prepared arrays; raises RetinaganError for a bad input."""
    rgb = read_rgb(sample.image)
    mask = read_mask(sample.mask) if sample.mask else None
    vessels = read_mask(sample.vessels) if sample.vessels is not None else None
    arrays = prepare_arrays(rgb, mask, vessels, segmenter, size, laterality, name=sample.id)
    return dict(
        **arrays,
        grades=-1 if sample.grade is None else sample.grade,
        ids=sample.id,
        sources=sample.source,
    )


def prepare(
    samples: list[Sample], segmenter, size: int = 256, laterality: str | None = "right", progress: bool = True
) -> tuple[PreparedSet, list[str]]:
    """Prepare every sample; bad ones are skipped and returned as messages."""
    check_size(size)
    rows, failures = [], []
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise DatasetError(f"sample ids repeat across the inputs: {', '.join(dupes[:5])}")
    for sample in tqdm(samples, desc="prepare", unit="img", disable=not progress):
        try:
            rows.append(prepare_one(sample, segmenter, size, laterality))
        except RetinaganError as exc:
            failures.append(f"{sample.image}: {exc}")
    if not rows:
        raise DatasetError("no sample could be prepared:\n" + "\n".join(failures[:10]))
    arrays = {k: np.array([r[k] for r in rows]) for k in ARRAY_FIELDS}  # stacks the image arrays
    arrays["grades"] = arrays["grades"].astype(np.int8)
    meta = dict(cache_version=CACHE_VERSION, size=size, laterality=laterality, created=time.strftime("%Y-%m-%d %H:%M:%S"))
    return PreparedSet(**arrays, meta=meta), failures


def save_prepared(prepared: PreparedSet, path: str | os.PathLike) -> Path:
    """One uncompressed .npz (loads in milliseconds), written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    arrays = {k: getattr(prepared, k) for k in ARRAY_FIELDS}
    with tmp.open("wb") as f:
        np.savez(f, meta=np.array(json.dumps(prepared.meta)), **arrays)
    os.replace(tmp, path)
    return path


def load_prepared(path: str | os.PathLike) -> PreparedSet:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"prepared set {path} not found (make one with `python -m retinagan prepare`)")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in (*ARRAY_FIELDS, "meta") if k not in data.files]
            if missing:
                raise DatasetError(f"prepared set {path}: lacks {', '.join(missing)}")
            arrays = {k: data[k] for k in ARRAY_FIELDS}
            meta = json.loads(str(data["meta"]))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DatasetError(f"prepared set {path}: damaged file ({exc})") from None
    if meta.get("cache_version", 0) > CACHE_VERSION:
        raise DatasetError(f"prepared set {path}: made by a newer retinagan (cache version {meta['cache_version']})")
    return PreparedSet(**arrays, meta=meta)
