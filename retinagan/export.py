"""Writing synthetic datasets: image files plus a manifest.csv that always matches them."""
from __future__ import annotations

import csv
from pathlib import Path

from tqdm import tqdm

from retinagan.data.imageio import write_png
from retinagan.errors import RetinaganError
from retinagan.lesions import lesions_to_json

MANIFEST_FIELDS = ["index", "seed", "model", "translator", "grade", "lesions", "vessels", "fundus"]


def _done_rows(manifest: Path) -> dict[int, dict]:
    """Rows already in the manifest whose files exist (an interrupted export is continued)."""
    if not manifest.is_file():
        return {}
    with manifest.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {
        int(r["index"]): r
        for r in rows
        if all((manifest.parent / r[key]).is_file() for key in ("vessels", "fundus") if r.get(key))
    }


def export_samples(
    generator,
    model_name: str,
    seed: int,
    n: int,
    output: Path,
    translator=None,
    translator_name: str = "",
    grades: list[int | None] | None = None,
    fov=None,
    noise: bool = False,
    lesions: list | None = None,
    batch: int = 8,
    progress=None,
) -> int:
    """Sample k (seed + k) -> output/vessels/{k:06d}.png [and output/fundus/{k:06d}.png].

    A manifest row is added only after its files are written, so an interrupted export keeps
    every finished sample and a repeated command makes only the missing ones.
    grades: the photos' DR grades, cycled over the samples (sample k gets grades[k % len]).
    noise: use the translator's dropout noise, seeded by the sample's seed.
    lesions: lesions (retinagan.lesions.Lesion) for every photo; None: with a grade and a
    lesion-drawing translator, lesions composed to match the grade, seeded per sample. The
    manifest's `lesions` column lists each photo's lesions as JSON (type, x, y, radius).
    progress: called as progress(share done, text) after each sample (the app's progress bar).
    """
    output.mkdir(parents=True, exist_ok=True)
    manifest = output / "manifest.csv"
    done = _done_rows(manifest)
    grades = grades or [None]
    grade_of = lambda k: grades[k % len(grades)]  # noqa: E731
    expected = lambda k: {  # noqa: E731
        "seed": str(seed + k), "model": model_name, "translator": translator_name, "grade": "" if grade_of(k) is None else str(grade_of(k)),
    }
    foreign = [r for k, r in done.items() if any(r.get(key, "") != value for key, value in expected(k).items())]
    if foreign:
        row = foreign[0]
        raise RetinaganError(
            f"{output} holds another export (model {row['model']}, translator {row.get('translator') or '-'}, "
            f"seed {row['seed']}, grade {row.get('grade') or '-'}); choose a new folder"
        )
    with manifest.open("w", newline="") as f:  # rewrite: drop rows whose files vanished
        writer = csv.DictWriter(f, MANIFEST_FIELDS)
        writer.writeheader()
        for index in sorted(done):
            writer.writerow({key: done[index].get(key, "") for key in MANIFEST_FIELDS})
    todo = [k for k in range(n) if k not in done]
    with manifest.open("a", newline="") as f, tqdm(total=len(todo), desc="generate", unit="sample") as bar:
        writer = csv.DictWriter(f, MANIFEST_FIELDS)
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            maps = generator.sample([seed + k for k in chunk]) >= 0.5
            photos, placed = None, [[] for _ in chunk]
            if translator is not None:
                placed = [translator.plan_lesions(m, fov, grade_of(k), seed + k, lesions) for k, m in zip(chunk, maps)]
                if noise:  # one map at a time: its own noise seed
                    photos = [translator.translate(m[None], fov, grade_of(k), noise_seed=seed + k, look_seed=seed + k, lesions=[found])[0]
                              for k, m, found in zip(chunk, maps, placed)]
                else:  # batched as with one grade, so sample k is the same photo whatever grades the others have
                    photos = translator.translate(maps, fov, [grade_of(k) for k in chunk], look_seed=[seed + k for k in chunk], lesions=placed)
            for i, (k, vessel_map) in enumerate(zip(chunk, maps)):
                row = {**expected(k), "index": k, "lesions": lesions_to_json(placed[i]), "vessels": f"vessels/{k:06d}.png", "fundus": ""}
                write_png(output / row["vessels"], vessel_map)
                if photos is not None:
                    row["fundus"] = f"fundus/{k:06d}.png"
                    write_png(output / row["fundus"], photos[i])
                writer.writerow(row)
                f.flush()
                bar.update()
                if progress is not None:
                    progress(bar.n / max(len(todo), 1), f"{bar.n}/{len(todo)} pairs")
    return len(todo)
