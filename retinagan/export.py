"""Writing synthetic datasets: image files plus a manifest.csv that always matches them."""
from __future__ import annotations

import csv
from pathlib import Path

from tqdm import tqdm

from retinagan.data.imageio import write_png
from retinagan.errors import RetinaganError

MANIFEST_FIELDS = ["index", "seed", "model", "vessels"]


def _done_rows(manifest: Path) -> dict[int, dict]:
    """Rows already in the manifest whose files exist (an interrupted export is continued)."""
    if not manifest.is_file():
        return {}
    with manifest.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {int(r["index"]): r for r in rows if (manifest.parent / r["vessels"]).is_file()}


def export_vessels(generator, model_name: str, seed: int, n: int, output: Path, batch: int = 8) -> int:
    """Sample k (seed + k) -> output/vessels/{k:06d}.png; a manifest row is added only after its file."""
    output.mkdir(parents=True, exist_ok=True)
    manifest = output / "manifest.csv"
    done = _done_rows(manifest)
    foreign = [r for k, r in done.items() if int(r["seed"]) != seed + k or r["model"] != model_name]
    if foreign:
        raise RetinaganError(f"{output} holds another export (model {foreign[0]['model']}, seed {foreign[0]['seed']}); choose a new folder")
    with manifest.open("w", newline="") as f:  # rewrite: drop rows whose files vanished
        writer = csv.DictWriter(f, MANIFEST_FIELDS)
        writer.writeheader()
        for index in sorted(done):
            writer.writerow(done[index])
    todo = [k for k in range(n) if k not in done]
    with manifest.open("a", newline="") as f, tqdm(total=len(todo), desc="generate", unit="img") as bar:
        writer = csv.DictWriter(f, MANIFEST_FIELDS)
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            maps = generator.sample([seed + k for k in chunk]) >= 0.5
            for k, vessel_map in zip(chunk, maps):
                name = f"vessels/{k:06d}.png"
                write_png(output / name, vessel_map)
                writer.writerow({"index": k, "seed": seed + k, "model": model_name, "vessels": name})
                f.flush()
                bar.update()
    return len(todo)
