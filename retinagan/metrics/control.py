"""How well a translator's grade and lesion controls work (`python -m retinagan evaluate control`).

- grade: photos of the same sampled trees at each requested grade 0-4 (lesions composed to
  match the grade, retinagan.lesions.compose_for_grade); the lesion detector's burden (lesions
  found) should rise with the grade (Spearman rho), in the range real photos of that grade have;
  a grade classifier trained on the real graded photos (detector counts + colour; its own
  cross-validated accuracy reported) should agree with the requested grade better than chance.
- placement: random lesions requested on sampled trees; recall = share of them with a detected
  lesion of their group (red: microaneurysm, haemorrhage; bright: exudate) within radius (as
  drawn) + 2 px of their centre; lesion area found outside every requested region, against the same photos
  made without lesions.
- insertion: lesions inserted into photos (real where a real set is given, else generated, and
  the scikit-image retina photo); change outside the edited regions (mean absolute difference,
  0-255) and the recall of the inserted lesions.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage, stats
from tqdm import tqdm

from retinagan.lesions import LESION_TYPES, Lesion, burden, detect_lesions, edited_region, lesion_counts

RED, BRIGHT = (0, 1), (2,)
TOLERANCE = 2.0  # pixels beyond a lesion's radius still count as "at" it


def photo_features(rgb: np.ndarray, fov: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Features of a photo for the grade classifier. For microaneurysms, haemorrhages, exudates and
    all red lesions: log count, log area, log counts of spots of >= 4, 10, 30, 80 px, quadrants
    reached; then the green channel's contrast percentiles (1, 5, 95, 99). Areas are for 256 px
    photos. No overall colour: it follows the camera and the photo's look more than the disease
    (with it, 5-fold accuracy on the real photos was 0.40 instead of 0.44)."""
    from retinagan.lesions import relative_contrast

    size = maps.shape[-1]
    scale = (size / 256) ** 2
    out = []
    for channels in ((0,), (1,), (2,), (0, 1)):
        found = maps[list(channels)].any(axis=0)
        labels, count = ndimage.label(found)
        areas = ndimage.sum(found, labels, range(1, count + 1)) / scale if count else np.zeros(0)
        ys, xs = np.nonzero(found)
        quadrants = len(set(zip((ys > (size - 1) / 2).tolist(), (xs > (size - 1) / 2).tolist())))
        out += [np.log1p(count), np.log1p(found.sum() / scale)] + [np.log1p((areas >= low).sum()) for low in (4, 10, 30, 80)] + [quadrants]
    contrast = relative_contrast(rgb[..., 1].astype(np.float32), fov)[fov] if fov.any() else np.zeros(1)
    return np.array(out + list(np.percentile(contrast, [1, 5, 95, 99])), dtype=np.float64)


class GradeClassifier:
    """Multinomial logistic regression on photo_features (strongly regularised: ~100 photos),
    classes weighted to balance grades."""

    def __init__(self, seed: int = 0):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced", max_iter=3000, random_state=seed))

    def fit(self, features: np.ndarray, grades: np.ndarray) -> "GradeClassifier":
        self.model.fit(features, grades)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.model.predict(features)


def cross_validated(features: np.ndarray, grades: np.ndarray, folds: int = 5, seed: int = 0) -> dict:
    """The classifier's own accuracy on the real photos: stratified k-fold, out-of-fold predictions."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold

    predicted = np.zeros_like(grades)
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(features, grades):
        predicted[test] = GradeClassifier(seed).fit(features[train], grades[train]).predict(features[test])
    return dict(
        accuracy=round(float((predicted == grades).mean()), 4),
        balanced_accuracy=round(float(balanced_accuracy_score(grades, predicted)), 4),
        within_one=round(float((np.abs(predicted - grades) <= 1).mean()), 4),
        majority_class_rate=round(float(np.bincount(grades).max() / len(grades)), 4),
        photos=int(len(grades)),
        folds=folds,
    )


def real_reference(prepared) -> dict:
    """Detector burden per grade on the real graded photos (grade >= 0), its Spearman rho with the
    grade, and the grade classifier fitted on them (with its cross-validated accuracy)."""
    graded = np.flatnonzero(prepared.grades >= 0)
    if len(graded) < 10 or len(np.unique(prepared.grades[graded])) < 2:
        raise ValueError("the real set needs >= 10 graded photos of >= 2 grades")
    maps = [detect_lesions(prepared.images[i], prepared.fov[i], prepared.vessels[i]) for i in tqdm(graded, desc="real photos", unit="img")]
    grades = prepared.grades[graded].astype(np.int64)
    burdens = np.array([burden(m) for m in maps])
    features = np.stack([photo_features(prepared.images[i], prepared.fov[i], m) for i, m in zip(graded, maps)])
    rho = stats.spearmanr(grades, burdens)[0]
    return dict(
        grades=grades, burdens=burdens, features=features, rho=float(rho),
        classifier=GradeClassifier().fit(features, grades), classifier_cv=cross_validated(features, grades),
    )


def per_grade(grades: np.ndarray, values: np.ndarray) -> dict[str, dict]:
    out = {}
    for g in np.unique(grades):
        v = values[grades == g]
        out[str(int(g))] = dict(n=int(len(v)), median=float(np.median(v)), p10=float(np.percentile(v, 10)), p90=float(np.percentile(v, 90)))
    return out


def found_at(lesion: Lesion, maps: np.ndarray) -> bool:
    """A detected lesion of the lesion's group (red / bright) within its radius + TOLERANCE."""
    group = BRIGHT if lesion.kind == "exudate" else RED
    size = maps.shape[-1]
    yy, xx = np.mgrid[:size, :size]
    near = np.hypot(yy - lesion.y, xx - lesion.x) <= lesion.radius + TOLERANCE
    return bool(maps[list(group)].any(axis=0)[near].any())


def random_lesions(rng: np.random.Generator, vessels: np.ndarray, fov: np.ndarray, per_type: int = 2) -> list[Lesion]:
    """per_type lesions of each type at random places a user might pick: inside the FOV, away from
    the rim, the disc, the fovea and (red ones) the vessels, not overlapping each other."""
    from retinagan.lesions import LESION_SIZES, free_of_landmarks

    size = vessels.shape[0]
    free = free_of_landmarks(vessels, fov, size // 16)
    lesions = []
    for kind in LESION_TYPES:
        for _ in range(per_type):
            pool = free & ~ndimage.binary_dilation(vessels, iterations=2) if kind != "exudate" else free
            ys, xs = np.nonzero(pool if pool.any() else free)
            i = int(rng.integers(len(ys)))
            radius = float(rng.uniform(*LESION_SIZES[kind]))
            lesion = Lesion(kind, float(xs[i]), float(ys[i]), radius)
            lesions.append(lesion)
            free &= ~edited_region([lesion], size, margin=6)
    return lesions


def evaluate_control(translator, generator, prepared=None, per_grade_n: int = 50, placement_n: int = 50, seed: int = 0) -> dict:
    """The three checks (module docstring); prepared: a real graded set (None: no real reference,
    no classifier; insertion on generated photos and the scikit-image retina photo only)."""
    from retinagan.inference import fov_disc

    if not translator.draws_lesions or translator.grades == 0:
        raise ValueError("evaluate control needs a translator trained with grades and lesion maps (lesions=3)")
    size = translator.size
    fov = fov_disc(size)
    seeds = [seed + k for k in range(max(per_grade_n, placement_n))]
    trees = generator.sample(seeds) >= 0.5
    result: dict = {"translator_draws_lesions": True, "tolerance_px": TOLERANCE}

    # Grade: the same trees at every grade.
    requested, burdens, features, asked = [], [], [], []
    for grade in tqdm(range(translator.grades), desc="grades", unit="grade"):
        for k in range(per_grade_n):
            lesions = translator.plan_lesions(trees[k], fov, grade, seeds[k])
            photo = translator.translate(trees[k][None], fov, grade, look_seed=seeds[k], lesions=[lesions])[0]
            maps = detect_lesions(photo, fov, trees[k])
            requested.append(grade)
            asked.append(len(lesions))
            burdens.append(burden(maps))
            features.append(photo_features(photo, fov, maps))
    requested, burdens = np.array(requested), np.array(burdens)
    result["grade"] = dict(
        samples_per_grade=per_grade_n,
        spearman_rho=round(float(stats.spearmanr(requested, burdens)[0]), 4),
        burden_by_grade=per_grade(requested, burdens),
        lesions_requested_by_grade=per_grade(requested, np.array(asked)),
    )
    if prepared is not None:
        real = real_reference(prepared)
        synthetic_medians = {g: row["median"] for g, row in result["grade"]["burden_by_grade"].items()}
        real_rows = per_grade(real["grades"], real["burdens"])
        predicted = real["classifier"].predict(np.stack(features))
        result["real"] = dict(
            photos=int(len(real["grades"])), spearman_rho=round(real["rho"], 4), burden_by_grade=real_rows,
            synthetic_median_within_real_p10_p90={g: real_rows[g]["p10"] <= m <= real_rows[g]["p90"] for g, m in synthetic_medians.items() if g in real_rows},
        )
        result["classifier"] = dict(
            real_cross_validated=real["classifier_cv"],
            synthetic_agreement=round(float((predicted == requested).mean()), 4),
            synthetic_within_one=round(float((np.abs(predicted - requested) <= 1).mean()), 4),
            chance=round(1 / translator.grades, 4),
            confusion=[[int(((requested == g) & (predicted == p)).sum()) for p in range(translator.grades)] for g in range(translator.grades)],
        )

    # Placement: random lesions on sampled trees, grade unknown.
    rng = np.random.default_rng(seed)
    found = {kind: [] for kind in LESION_TYPES}
    outside, baseline = [], []
    fov_pixels = float(fov.sum())
    for k in tqdm(range(placement_n), desc="placement", unit="photo"):
        lesions = random_lesions(rng, trees[k], fov)
        photos = translator.translate(np.stack([trees[k], trees[k]]), fov, None, look_seed=seeds[k], lesions=[lesions, []])
        maps, plain = detect_lesions(photos[0], fov, trees[k]), detect_lesions(photos[1], fov, trees[k])
        for lesion in lesions:
            found[lesion.kind].append(found_at(lesion, maps))
        region = edited_region(lesions, size)
        outside.append(maps.any(axis=0)[~region].sum() / fov_pixels)
        baseline.append(plain.any(axis=0)[~region].sum() / fov_pixels)
    every = [hit for hits in found.values() for hit in hits]
    result["placement"] = dict(
        photos=placement_n, lesions=len(every), recall=round(float(np.mean(every)), 4),
        recall_by_type={kind: round(float(np.mean(hits)), 4) for kind, hits in found.items()},
        lesion_area_outside_share=round(float(np.mean(outside)), 5),
        lesion_area_outside_share_without_lesions=round(float(np.mean(baseline)), 5),
    )
    result["insertion"] = evaluate_insertion(translator, prepared, trees, seeds, rng)
    return result


def evaluate_insertion(translator, prepared, trees, seeds, rng, count: int = 20) -> dict:
    """Lesions inserted into real photos (held-out prepared photos; else the scikit-image retina
    photo) and generated ones: change outside / inside the edited regions, recall of the inserted."""
    from retinagan.inference import fov_disc

    size = translator.size
    cases = []  # (name, photo, vessels, fov)
    if prepared is not None:
        for i in np.linspace(0, len(prepared) - 1, min(count, len(prepared))).astype(int):
            cases.append(("real", prepared.images[i] * prepared.fov[i][..., None], prepared.vessels[i], prepared.fov[i]))
    else:
        cases.append(("real", *skimage_retina(size)))
    fov = fov_disc(size)
    for k in range(min(count, len(trees))):
        photo = translator.translate(trees[k][None], fov, 0, look_seed=seeds[k])[0]
        cases.append(("generated", photo, trees[k], fov))
    rows = {"real": [], "generated": []}
    for name, photo, vessels, f in tqdm(cases, desc="insertion", unit="photo"):
        lesions = random_lesions(rng, vessels, f)
        edited = translator.insert(photo, vessels, lesions, f)
        region = edited_region(lesions, size) & f
        diff = np.abs(edited.astype(np.int16) - photo.astype(np.int16)).mean(axis=2)
        maps = detect_lesions(edited, f, vessels)
        rows[name].append((diff[~region].mean(), diff[region].mean(), np.mean([found_at(l, maps) for l in lesions])))  # noqa: E741
    out = {}
    for name, values in rows.items():
        if values:
            v = np.array(values)
            out[name] = dict(photos=len(v), mad_outside=round(float(v[:, 0].mean()), 4), max_mad_outside=round(float(v[:, 0].max()), 4),
                             mad_inside=round(float(v[:, 1].mean()), 3), recall=round(float(v[:, 2].mean()), 4))
    return out


def skimage_retina(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-image's bundled fundus photo, prepared like the training photos (FOV crop, size), with
    a vessel map from its green channel's dark ridges (no segmenter needed)."""
    from skimage import data, filters

    from retinagan.data.preprocess import crop_to_square, fov_mask, resize

    rgb = data.retina()[..., :3]
    mask = fov_mask(rgb)
    photo = resize(crop_to_square(rgb, mask), size)
    fov = resize(crop_to_square(mask, mask), size)
    ridges = filters.sato(photo[..., 1].astype(np.float32) / 255, sigmas=[1, 2], black_ridges=True)
    vessels = (ridges > np.percentile(ridges[fov], 88)) & fov
    return (photo * fov[..., None]).astype(np.uint8), vessels, fov
