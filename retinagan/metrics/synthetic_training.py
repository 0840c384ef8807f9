"""Train on synthetic, test on real: the field's headline check of a synthetic-pair generator.

Vessel segmenters of one recipe and one step budget, differing only in their training pairs:
  real       the DRIVE training photos with their hand-drawn maps,
  synthetic  N generated pairs (a vessel model's samples -> the translator's photos of them),
  mixed      both together, the real pairs repeated so they make about `real_share` of the
             draws (None: each pair once, so 20 real among 200 synthetic are 1 in 11);
  pretrained the synthetic segmenter of the same seed fine-tuned on the real pairs with the
             same step budget (synthetic pre-training, the other common way to use synthetic
             data; it has seen twice the steps, so `real` with 2x steps is its fair control);
  translated the translator's photos of the DRIVE training trees themselves, `looks` looks per
             tree (the real condition with the camera replaced, the trees held fixed): it
             separates the translator's share of the synthetic gap from the vessel model's;
  augmented  the real pairs plus the translated ones, the real repeated as in mixed (real_share
             of the draws; None: each pair once): the translator as an augmentation of
             annotated trees, new cameras for real trees;
each trained for several seeds and scored on DRIVE test (hand-drawn maps, native resolution,
inside the FOV). Everything works at the generator's scale: training photos are FOV-cropped to
the generator's size (256 px), and the segmenter rescales each test photo so its FOV is that
wide, so all compare like with like (the shipped segmenter, trained at DRIVE's native
scale, is not one of them). Dice at threshold 0.5 (choosing one on real photos would hand the
synthetic-only model real data) and AUC (threshold-free); with `chosen_threshold`, also Dice at
the threshold that maximises each segmenter's Dice on DRIVE *training* (never test): fair
between real and mixed segmenters, which both trained on those photos (a segmenter that
under- or over-calls at 0.5 is then judged by how it ranks pixels), but it hands the
synthetic-only one real data, so its figure there is no longer synthetic-only.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import torch

CONDITIONS = ("real", "synthetic", "mixed", "pretrained", "translated", "augmented")


def evenly_spread(total: int, count: int) -> np.ndarray:
    """COUNT indices spread evenly over range(TOTAL), first and last included (fewer if COUNT > TOTAL):
    which of DRIVE's training pairs a protocol with fewer annotated photos keeps."""
    return np.unique(np.round(np.linspace(0, total - 1, count)).astype(int))


def real_drive_pairs(drive_root: str | Path, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DRIVE training photos prepared as the generators' training photos were (FOV crop, square,
    `size` px, optic disc on the right) with their hand-drawn maps -> photos, FOV masks, maps."""
    from retinagan.data.imageio import read_mask, read_rgb
    from retinagan.data.readers import read_drive
    from retinagan.pipeline import prepare_arrays

    photos, fovs, maps = [], [], []
    for sample in read_drive(drive_root, "training"):
        arrays = prepare_arrays(read_rgb(sample.image), read_mask(sample.mask), read_mask(sample.vessels), None, size,
                                name=Path(sample.image).name)
        photos.append(arrays["images"])
        fovs.append(arrays["fov"])
        maps.append(arrays["vessels"])
    return np.stack(photos), np.stack(fovs), np.stack(maps)


def synthetic_pairs(generator, translator, n: int, seed: int = 0, batch: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n generated pairs, sample k from seed seed+k (its tree, and the look of its photo)."""
    from retinagan.inference import fov_disc

    if generator.model.config.image_size != translator.size:
        raise ValueError(f"the vessel model makes {generator.model.config.image_size} px trees, the translator {translator.size} px photos")
    seeds = [seed + k for k in range(n)]
    maps = np.concatenate([generator.sample(seeds[i : i + batch]) >= 0.5 for i in range(0, n, batch)])
    fov = fov_disc(translator.size)
    photos = np.concatenate([translator.translate(maps[i : i + batch], fov, look_seed=seeds[i : i + batch]) for i in range(0, n, batch)])
    return photos, np.broadcast_to(fov, maps.shape).copy(), maps & fov


def translated_pairs(translator, fovs: np.ndarray, maps: np.ndarray, looks: int = 10, batch: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The translator's photos of given trees (with their FOV masks), `looks` per tree: photo
    k*looks + j is tree k with look (and grain) seed k*looks + j -> photos, FOV masks, maps."""
    trees, fov = np.repeat(maps, looks, axis=0), np.repeat(fovs, looks, axis=0)
    seeds = list(range(len(trees)))
    photos = np.concatenate([translator.translate(trees[i : i + batch], fov[i : i + batch], look_seed=seeds[i : i + batch])
                             for i in range(0, len(trees), batch)])
    return photos, fov, trees & fov


def segmenter_tensors(photos: np.ndarray, fovs: np.ndarray, maps: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Photos (N, S, S, 3) uint8 + FOV masks + maps -> the segmenter's inputs and labels, (N, 1, S, S)."""
    from retinagan.data.preprocess import segmenter_input

    inputs = np.stack([segmenter_input(photo, fov) for photo, fov in zip(photos, fovs)])
    return torch.from_numpy(inputs).float()[:, None], torch.from_numpy(np.asarray(maps, dtype=np.float32))[:, None]


def fit_and_score(images: torch.Tensor, labels: torch.Tensor, described: str, output: str | Path, drive_root: str | Path, seed: int,
                  steps: int, batch_size: int = 16, patch: int = 64, init: str = "", chosen_threshold: bool = False) -> dict:
    """One segmenter of the protocol: trained on these pairs (from init's weights, if given) into
    output, scored on DRIVE test -> {"dice", "auc", "checkpoint"} (+ "threshold_chosen",
    "dice_chosen": Dice at the threshold that maximises Dice on DRIVE training)."""
    from retinagan.inference import Segmenter
    from retinagan.metrics.evaluate_segmenter import score_test
    from retinagan.training.segmenter import SegmenterTrainConfig, fit_segmenter

    cfg = SegmenterTrainConfig(output=str(output), steps=steps, batch_size=batch_size, patch=patch, seed=seed, device="cpu",
                               log_every=max(1, min(50, steps)), init=init)
    cfg.model.fov_width = images.shape[-1]  # prepared and generated photos: the FOV spans the image
    folder = fit_segmenter(cfg, images, labels, described, progress=False)
    return {**score_test(Segmenter.load(folder), drive_root, chosen_threshold), "checkpoint": str(folder)}


def train_on_synthetic(generator, translator, drive_root: str | Path, n: int = 100, seeds: tuple[int, ...] = (0, 1),
                       steps: int = 600, output: str | Path = "runs/train-on-synthetic", batch_size: int = 16,
                       patch: int = 64, progress: bool = True, real_share: float | None = 0.5,
                       conditions: tuple[str, ...] = CONDITIONS, looks: int = 10, chosen_threshold: bool = False) -> dict:
    """Train the segmenters of `conditions` per seed and score each on DRIVE test; returns every
    run and, per condition, the mean and spread over seeds, with synthetic / real and mixed -
    real (and pretrained - real) where both were run. chosen_threshold: also Dice at each
    segmenter's threshold chosen on DRIVE training (the module docstring says what that costs)."""
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown or not conditions:
        raise ValueError(f"conditions must be among {', '.join(CONDITIONS)}, not {', '.join(unknown) or 'none'}")
    if "pretrained" in conditions and "synthetic" not in conditions:
        raise ValueError("the pretrained condition starts from the synthetic segmenters: run synthetic too")
    conditions = tuple(c for c in CONDITIONS if c in conditions)  # synthetic before pretrained
    if {"translated", "augmented"} & set(conditions) and looks < 1:
        raise ValueError(f"looks must be at least 1, not {looks}")
    if real_share is not None and not 0 < real_share < 1:
        raise ValueError(f"real_share must be within 0-1 (exclusive), not {real_share}")
    with claimed(Path(output)):
        return _train_on_synthetic(generator, translator, drive_root, n, seeds, steps, output, batch_size, patch, progress, real_share,
                                   conditions, looks, chosen_threshold)


LOCK = ".running"  # in the output folder while a run writes into it: its process id


@contextlib.contextmanager
def claimed(output: Path):
    """Hold `output` for this process: every run writes its segmenter into output/CONDITION-seedS
    and scores what it reads back from there, so two runs sharing a folder could score each
    other's segmenters. A second run into a held folder is refused; a lock left by a process
    that is gone is taken over."""
    from retinagan.errors import RetinaganError

    output.mkdir(parents=True, exist_ok=True)
    lock = output / LOCK
    for _ in range(2):
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            holder = lock.read_text().strip()
            if holder.isdigit() and _alive(int(holder)):
                raise RetinaganError(f"another `evaluate synthetic` (process {holder}) is writing into {output}; give this one its own --output") from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
    else:
        raise RetinaganError(f"cannot claim {output} ({lock} keeps reappearing); give this run its own --output")
    os.write(handle, str(os.getpid()).encode())
    os.close(handle)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True


def _train_on_synthetic(generator, translator, drive_root, n, seeds, steps, output, batch_size, patch, progress, real_share, conditions,
                        looks, chosen_threshold) -> dict:
    from tqdm import tqdm

    size = translator.size
    photos, fovs, maps = real_drive_pairs(drive_root, size)
    real = segmenter_tensors(photos, fovs, maps)
    synthetic = segmenter_tensors(*synthetic_pairs(generator, translator, n)) if {"synthetic", "mixed"} & set(conditions) else real
    translated = segmenter_tensors(*translated_pairs(translator, fovs, maps, looks)) if {"translated", "augmented"} & set(conditions) else real
    repeats_for = lambda other: 1 if real_share is None else max(1, round(real_share / (1 - real_share) * len(other[0]) / len(real[0])))  # noqa: E731
    with_real = lambda other, times: tuple(torch.cat([r.repeat(times, 1, 1, 1), o]) for r, o in zip(real, other))  # noqa: E731
    repeats, augmented_repeats = repeats_for(synthetic), repeats_for(translated)
    sets = {"real": real, "synthetic": synthetic, "mixed": with_real(synthetic, repeats), "pretrained": real, "translated": translated,
            "augmented": with_real(translated, augmented_repeats)}
    described = {
        "real": f"DRIVE training split ({len(real[0])} photos, 1st_manual maps) at {size} px",
        "synthetic": f"{n} synthetic pairs: {generator.config.get('kind')} samples (seeds 0-{n - 1})"
                     f"{' with procedural fine vessels' if hasattr(generator, 'fine_config') else ''} through a pix2pix translator",
    }
    described["mixed"] = f"{described['real']} (each {repeats}x: {repeats * len(real[0]) / (repeats * len(real[0]) + len(synthetic[0])):.0%} of draws) + {described['synthetic']}"
    described["pretrained"] = f"{described['real']}, fine-tuned from the segmenter trained on {described['synthetic']}"
    described["translated"] = f"the translator's photos of the {len(maps)} DRIVE training trees ({looks} looks each), with their hand-drawn maps"
    described["augmented"] = f"{described['real']} (each {augmented_repeats}x) + {described['translated']}"
    runs = []
    jobs = [(condition, seed) for seed in seeds for condition in conditions]
    for condition, seed in (bar := tqdm(jobs, desc="train on synthetic", unit="run", disable=not progress)):
        bar.set_postfix(run=f"{condition} seed {seed}")
        init = str(Path(output) / f"synthetic-seed{seed}" / "checkpoint") if condition == "pretrained" else ""
        images, labels = sets[condition]
        score = fit_and_score(images, labels, described[condition], Path(output) / f"{condition}-seed{seed}", drive_root, seed,
                              steps, batch_size, patch, init, chosen_threshold)
        runs.append({"condition": condition, "seed": seed, "pairs": len(images), **score})
    summary = {}
    for condition in conditions:
        rows = [r for r in runs if r["condition"] == condition]
        summary[condition] = {
            "pairs": rows[0]["pairs"],  # mixed: the real pairs counted once per repeat
            "dice_mean": float(np.mean([r["dice"] for r in rows])),
            "dice_std": float(np.std([r["dice"] for r in rows])),
            "auc_mean": float(np.mean([r["auc"] for r in rows])),
            "auc_std": float(np.std([r["auc"] for r in rows])),
        }
        if chosen_threshold:
            summary[condition].update(dice_chosen_mean=float(np.mean([r["dice_chosen"] for r in rows])),
                                      dice_chosen_std=float(np.std([r["dice_chosen"] for r in rows])))
    return {
        "protocol": "train a segmenter on each set, score it on DRIVE test (native size, inside the FOV, Dice at 0.5"
                    + (" and at the threshold chosen on DRIVE training)" if chosen_threshold else ")"),
        "image_size": size,
        "steps": steps,
        "seeds": list(seeds),
        "synthetic_pairs": n,
        "mixed_real_repeats": repeats,
        "mixed_real_share": repeats * len(real[0]) / (repeats * len(real[0]) + len(synthetic[0])),
        "translated_looks": looks,
        "augmented_real_repeats": augmented_repeats,
        "summary": summary,
        **compared(summary),
        "runs": runs,
    }


def compared(summary: dict) -> dict:
    """synthetic / real, translated / real, mixed - real, pretrained - real and augmented - real Dice, for the conditions present."""
    out = {}
    if "real" not in summary:
        return out
    real = summary["real"]["dice_mean"]
    for condition in ("synthetic", "translated"):
        if condition in summary:
            out[f"{condition}_over_real_dice"] = summary[condition]["dice_mean"] / max(real, 1e-9)
    for condition in ("mixed", "pretrained", "augmented"):
        if condition in summary:
            out[f"{condition}_minus_real_dice"] = summary[condition]["dice_mean"] - real
            if "dice_chosen_mean" in summary[condition]:
                out[f"{condition}_minus_real_dice_chosen"] = summary[condition]["dice_chosen_mean"] - summary["real"]["dice_chosen_mean"]
    return out
