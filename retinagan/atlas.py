"""Building a vessel model's atlas (see retinagan.explorer): encoded real trees, their 2-D
UMAP map with prior samples placed on it, and labelled principal latent directions.

Built once, offline (`python -m retinagan atlas`), so the app never fits UMAP (its first fit
in a process spends ~7 s compiling) or encodes a dataset at start-up.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from retinagan.explorer import ATLAS_JSON, ATLAS_TENSORS, FEATURE_WORDS
from retinagan.metrics.morphology import FEATURES, feature_table


def project_2d(codes: np.ndarray, method: str = "umap", seed: int = 0) -> tuple[np.ndarray, str]:
    if method == "umap":
        try:
            import umap
        except ImportError:
            method = "pca"
        else:
            reducer = umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=seed, n_jobs=1)
            return reducer.fit_transform(codes).astype(np.float32), "umap"
    centred = codes - codes.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return (centred @ vt[:2].T).astype(np.float32), method


def label_directions(generator, codes: np.ndarray, directions: np.ndarray, scales: np.ndarray, bases: int = 6) -> list[str]:
    """For each direction, the morphology feature that changes most (in units of its spread over
    the real trees) between -2 and +2 standard deviations, averaged over a few real codes."""
    base = codes[np.linspace(0, len(codes) - 1, bases).astype(int)]
    real = feature_table(generator.decode(codes[: min(len(codes), 60)]) >= 0.5)
    spread = {name: float(np.std(real[name])) or 1.0 for name in FEATURES}
    labels = []
    for k, (direction, scale) in enumerate(zip(directions, scales)):
        low = feature_table(generator.decode(base - 2 * scale * direction) >= 0.5)
        high = feature_table(generator.decode(base + 2 * scale * direction) >= 0.5)
        change = {name: float(np.mean(high[name] - low[name])) / spread[name] for name in FEATURES}
        name = max(change, key=lambda n: abs(change[n]))
        labels.append(f"PC{k + 1}: {'more' if change[name] > 0 else 'less'} {FEATURE_WORDS[name]}")
    return labels


def build_atlas(generator, prepared, folder: str | Path, samples: int = 200, directions: int = 6, method: str = "umap") -> dict:
    """Write atlas.json + atlas.safetensors into the model's folder; returns the JSON part."""
    from safetensors.numpy import save_file

    folder = Path(folder)
    codes = generator.encode(prepared.vessels).astype(np.float32)
    sample_codes = generator.model.latents(list(range(samples))).numpy().astype(np.float32)
    points, method = project_2d(np.concatenate([codes, sample_codes]), method)
    centred = codes - codes.mean(0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    dirs = vt[:directions].astype(np.float32)
    scales = (singular[:directions] / np.sqrt(max(len(codes) - 1, 1))).astype(np.float32)
    labels = label_directions(generator, codes, dirs, scales)
    meta = [{"id": str(i), "source": str(s), "grade": int(g)} for i, s, g in zip(prepared.ids, prepared.sources, prepared.grades)]
    info = {"method": method, "labels": labels, "meta": meta, "samples": samples,
            "explained_variance": [float(v) for v in (singular[:directions] ** 2 / (singular**2).sum())]}
    arrays = {"codes": codes, "points": points[: len(codes)], "sample_codes": sample_codes,
              "sample_points": points[len(codes):], "directions": dirs, "scales": scales}
    save_file({k: v.astype(np.float16) for k, v in arrays.items()}, str(folder / ATLAS_TENSORS))  # fp16, as shipped weights
    (folder / ATLAS_JSON).write_text(json.dumps(info, indent=1))
    return info
