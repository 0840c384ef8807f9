"""Pictures for the README, made only from skimage's bundled retina photo and model outputs.

python scripts/make_figures.py segmenter|samples [checkpoint ...]|pairs VESSEL_CKPT TRANSLATOR|grades VESSEL_CKPT TRANSLATOR
                               |refine [checkpoint ...]|end2end LABEL=VESSEL_CKPT,TRANSLATOR ...
                               |fine VESSEL_CKPT TRANSLATOR|detail VESSEL_CKPT TRANSLATOR DETAILER
                               |photodetail VESSEL_CKPT TRANSLATOR PHOTO_DETAILER|looks VESSEL_CKPT TRANSLATOR
                               |keep VESSEL_CKPT TRANSLATOR PHOTO_DETAILER [K ...] (default: 0 0.15)
                               |curve RESULTS_JSON (its "learning_curve": Dice against the number of real pairs)
                               |steps RESULTS_JSON (its "by_steps": Dice against the segmenter's training steps)
                               |gap RESULTS_JSON (its "by_count": the seen-unseen gap and the synthetic gain against the number of real pairs)
                               |forest RESULTS_JSON (scripts/collect_mixing_summary.py's file: each mix minus its real-alone control)
                               |faithful TRANSLATOR SCORES_NPY [DRIVE_ROOT] (mixing_batchnorm.py --keep-faithful's scores: the least
                                and most faithful synthetic pairs, painted in DRIVE training's looks as the runs painted them)
(Never from the shared research data: its terms forbid committing copies.)
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retinagan.cli import DEFAULT_SEGMENTER
from retinagan.visual import grid, overlay

DOCS = Path(__file__).resolve().parent.parent / "docs"


def labelled(image: np.ndarray, text: str) -> np.ndarray:
    out = Image.fromarray(image).convert("RGB")
    ImageDraw.Draw(out).text((6, 4), text, fill=(255, 255, 0), font_size=18)
    return np.asarray(out)


def grey(vessels: np.ndarray) -> np.ndarray:
    """A (H, W) vessel map (bool or 0-1) as a (H, W, 3) uint8 tile."""
    return (np.repeat(vessels[..., None], 3, 2) * 255).astype(np.uint8)


def segmenter_figure() -> None:
    from skimage import data

    from retinagan.inference import Segmenter

    rgb = data.retina()
    vessels = Segmenter.load(DEFAULT_SEGMENTER).segment(rgb)
    side = 420
    panels = [np.asarray(Image.fromarray(p).convert("RGB").resize((side, side), Image.LANCZOS)) for p in (rgb, vessels.astype(np.uint8) * 255, overlay(rgb, vessels))]
    panels = [labelled(p, t) for p, t in zip(panels, ("photo", "vessel map", "overlay"))]
    Image.fromarray(grid(np.stack(panels), columns=3)).save(DOCS / "segmenter-skimage-retina.png")


def samples_figure(checkpoints: list[str], n: int = 6) -> None:
    from retinagan.inference import VesselGenerator

    rows = []
    for folder in checkpoints:
        maps = VesselGenerator.load(folder).sample(list(range(n)))
        tiles = [labelled(grey(m), Path(folder).name if i == 0 else f"seed {i}") for i, m in enumerate(maps)]
        rows.extend(tiles)
    Image.fromarray(grid(np.stack(rows), columns=n)).save(DOCS / "stage1-samples.png")


def pairs_figure(vessel_checkpoint: str, translator: str, n: int = 5) -> None:
    """Top: skimage's retina photo, its vessel tree (as the models see it), the translator's
    photo of that tree. Below: generated trees and their photos, seeds 0..n-1."""
    from skimage import data

    from retinagan.inference import FundusTranslator, Segmenter, VesselGenerator
    from retinagan.pipeline import prepare_arrays

    painter = FundusTranslator.load(translator)
    real = prepare_arrays(data.retina(), None, None, Segmenter.load(DEFAULT_SEGMENTER), painter.size)
    made = painter.translate(real["vessels"][None], real["fov"])[0]
    top = [labelled(real["images"] * real["fov"][..., None], "skimage photo"), labelled(grey(real["vessels"]), "its tree"), labelled(made, "translated")]
    maps = VesselGenerator.load(vessel_checkpoint).sample(list(range(n))) >= 0.5
    photos = painter.translate(maps, look_seed=list(range(n)))
    tiles = [labelled(grey(m), f"seed {i}") for i, m in enumerate(maps)] + [labelled(p, "photo") for p in photos]
    blank = np.full_like(top[0], 255)
    rows = top + [blank] * (n - 3) + tiles
    Image.fromarray(grid(np.stack(rows), columns=n)).save(DOCS / "stage2-pairs.png")


def end2end_figure(pairs: list[str], n: int = 4) -> None:
    """Per (vessel model, translator) pair: sampled trees (seeds 0..n-1) and their photos side by
    side, one row per pair, so joint and sequential training show on the same seeds."""
    from retinagan.inference import FundusTranslator, VesselGenerator

    tiles = []
    for spec in pairs:
        label, _, folders = spec.partition("=")
        vessel_checkpoint, translator = folders.split(",")
        maps = VesselGenerator.load(vessel_checkpoint).sample(list(range(n))) >= 0.5
        photos = FundusTranslator.load(translator).translate(maps, look_seed=list(range(n)))
        for i, (m, photo) in enumerate(zip(maps, photos)):
            tiles += [labelled(grey(m), label if i == 0 else f"seed {i}"), labelled(photo, "photo")]
    Image.fromarray(grid(np.stack(tiles), columns=2 * n)).save(DOCS / "end2end-vs-sequential.jpg", quality=88)


def fine_figure(vessel_checkpoint: str, translator: str, seeds: tuple[int, ...] = (0, 1, 2, 3)) -> None:
    """Per seed: the model's tree and its photo, then the same tree with procedural fine vessels
    (retinagan.fine_vessels) and its photo (same look)."""
    from retinagan.inference import FineVesselGenerator, FundusTranslator, VesselGenerator

    painter = FundusTranslator.load(translator)
    model = VesselGenerator.load(vessel_checkpoint)
    plain = model.sample(list(seeds)) >= 0.5
    fine = FineVesselGenerator(model).add_fine(plain, list(seeds))
    tiles = []
    for k, seed in enumerate(seeds):
        for label, tree in ((f"{Path(vessel_checkpoint).name}, seed {seed}", plain[k]), ("+ fine vessels", fine[k])):
            tiles += [labelled(grey(tree), label), labelled(painter.translate(tree[None], look_seed=[seed])[0], "photo")]
    Image.fromarray(grid(np.stack(tiles), columns=4)).save(DOCS / "fine-vessels.jpg", quality=88)


def outlined(photo: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """The photo with the lesion detector's finds outlined: red lesions cyan, bright ones magenta."""
    from scipy import ndimage

    out = photo.copy()
    for channels, colour in (((0, 1), (0, 255, 255)), ((2,), (255, 0, 255))):
        found = maps[list(channels)].any(axis=0)
        ring = ndimage.binary_dilation(found, iterations=2) & ~found
        out[ring] = colour
    return out


def grades_figure(vessel_checkpoint: str, translator: str, seeds: tuple[int, ...] = (0, 3)) -> None:
    """Rows: for each seed, one generated tree at grades 0-4 (lesions composed for the grade),
    then the same photos with the detector's finds outlined. Last row: lesions inserted into
    skimage's retina photo (the rest of the photo unchanged)."""
    from skimage import data

    from retinagan.inference import FundusTranslator, Segmenter, VesselGenerator, fov_disc
    from retinagan.lesions import Lesion, detect_lesions
    from retinagan.pipeline import prepare_arrays

    painter = FundusTranslator.load(translator)
    fov = fov_disc(painter.size)
    tiles = []
    for seed in seeds:
        tree = VesselGenerator.load(vessel_checkpoint).sample([seed])[0] >= 0.5
        photos = []
        for grade in range(5):
            lesions = painter.plan_lesions(tree, fov, grade, seed)
            photos.append(painter.translate(tree[None], fov, grade, look_seed=seed, lesions=[lesions])[0])
        names = ["0 no DR", "1 mild", "2 moderate", "3 severe", "4 proliferative"]
        tiles += [labelled(p, f"grade {n}") for p, n in zip(photos, names)]
        tiles += [labelled(outlined(p, detect_lesions(p, fov, tree)), "lesions found") for p in photos]
    real = prepare_arrays(data.retina(), None, None, Segmenter.load(DEFAULT_SEGMENTER), painter.size)
    photo = (real["images"] * real["fov"][..., None]).astype(np.uint8)
    asked = [Lesion("haemorrhage", 70, 90, 4), Lesion("haemorrhage", 150, 190, 5), Lesion("microaneurysm", 110, 150, 1.8),
             Lesion("exudate", 95, 175, 5), Lesion("exudate", 140, 70, 4)]
    edited = painter.insert(photo, real["vessels"], asked, real["fov"])
    diff = np.abs(edited.astype(int) - photo.astype(int)).max(axis=2)
    tiles += [labelled(photo, "skimage photo"), labelled(edited, "5 lesions inserted"),
              labelled(outlined(edited, detect_lesions(edited, real["fov"], real["vessels"])), "lesions found"),
              labelled(np.repeat((np.clip(diff * 8, 0, 255)).astype(np.uint8)[..., None], 3, 2), "change x8"), np.full_like(photo, 255)]
    Image.fromarray(grid(np.stack(tiles), columns=5)).save(DOCS / "grades-and-lesions.jpg", quality=90)


def refine_figure(checkpoints: list[str]) -> None:
    """skimage's retina tree (a tree no model trained on) reconstructed by each model from the
    encoder's code and from the refined code (inference.refine_codes, REFINE_STEPS steps)."""
    from skimage import data

    from retinagan.inference import REFINE_STEPS, Segmenter, VesselGenerator
    from retinagan.metrics.segmentation import dice
    from retinagan.pipeline import prepare_arrays

    tiles = []
    for folder in checkpoints:
        generator = VesselGenerator.load(folder)
        tree = prepare_arrays(data.retina(), None, None, Segmenter.load(DEFAULT_SEGMENTER), generator.model.config.image_size)["vessels"]
        plain = generator.decode(generator.encode(tree[None]))[0] >= 0.5
        refined = generator.decode(generator.encode(tree[None], refine=REFINE_STEPS))[0] >= 0.5
        tiles += [labelled(grey(tree), f"{Path(folder).name}: skimage tree"), labelled(grey(plain), f"encoder: Dice {dice(plain, tree):.2f}"),
                  labelled(grey(refined), f"refined {REFINE_STEPS} steps: Dice {dice(refined, tree):.2f}")]
    Image.fromarray(grid(np.stack(tiles), columns=3)).save(DOCS / "refined-codes.jpg", quality=90)

def detail_figure(vessel_checkpoint: str, translator: str, detailer: str, seeds: tuple[int, ...] = (0, 1, 2, 3)) -> None:
    """Per seed (a row): the model's tree, the detailer's redrawing of it, the procedural fine
    vessels for comparison, and the photo of the detailed tree."""
    from retinagan.inference import FineVesselGenerator, FundusTranslator, VesselGenerator, load_vessel_generator

    painter = FundusTranslator.load(translator)
    model = VesselGenerator.load(vessel_checkpoint)
    soft = model.sample(list(seeds))
    detailed = load_vessel_generator(vessel_checkpoint, detail=detailer).add_detail(soft, list(seeds))
    fine = FineVesselGenerator(model).add_fine(soft >= 0.5, list(seeds))
    tiles = []
    for k, seed in enumerate(seeds):
        tiles += [labelled(grey(soft[k] >= 0.5), f"{Path(vessel_checkpoint).name}, seed {seed}"), labelled(grey(detailed[k]), "detailer"),
                  labelled(grey(fine[k]), "procedural, for comparison"),
                  labelled(painter.translate(detailed[k][None], look_seed=[seed])[0], "photo of the detailed tree")]
    Image.fromarray(grid(np.stack(tiles), columns=4)).save(DOCS / "detail-samples.jpg", quality=88)


def photodetail_figure(vessel_checkpoint: str, translator: str, photo_detailers: list[str], seeds: tuple[int, ...] = (0, 1, 2)) -> None:
    """Per seed (a row): the translator's photo of a sampled tree, the same photo with its fine
    detail redrawn by each photo detailer (labelled by its folder), and the middle of each at 2x."""
    variants = [(f"detail: {Path(d).name}", d, None) for d in photo_detailers]
    detail_rows(vessel_checkpoint, translator, variants, seeds, "photodetail-samples.jpg")


def keep_figure(vessel_checkpoint: str, translator: str, photo_detailer: str, keeps: list[float], seeds: tuple[int, ...] = (0, 1, 2)) -> None:
    """As photodetail_figure, one photo detailer at several keep_detail shares (the translator's own
    fine detail kept beside the drawn): docs/photodetail-keep.jpg."""
    variants = [(f"detail, keep {k:g}", photo_detailer, k) for k in keeps]
    detail_rows(vessel_checkpoint, translator, variants, seeds, "photodetail-keep.jpg")


def detail_rows(vessel_checkpoint: str, translator: str, variants: list[tuple[str, str, float | None]], seeds: tuple[int, ...], output: str) -> None:
    """Per seed (a row): the translator's photo of a sampled tree, then each (label, photo detailer,
    keep share or None for its own) variant's, then the middle of each at 2x; saved as docs/OUTPUT."""
    from retinagan.inference import FundusTranslator, VesselGenerator

    trees = VesselGenerator.load(vessel_checkpoint).sample(list(seeds))
    photos = [FundusTranslator.load(translator).translate(trees, look_seed=list(seeds))]
    for _, folder, keep in variants:
        painter = FundusTranslator.load(translator, photo_detail=folder)
        if keep is not None:
            painter.photo_detailer.config.keep_detail = keep
        photos.append(painter.translate(trees, look_seed=list(seeds)))
    names = ["translated"] + [label for label, _, _ in variants]
    side = photos[0].shape[1]
    zoom = lambda photo: np.asarray(Image.fromarray(photo[side // 4: 3 * side // 4, side // 4: 3 * side // 4]).resize((side, side), Image.NEAREST))
    tiles = []
    for k, seed in enumerate(seeds):
        tiles += [labelled(p[k], f"{name}, seed {seed}" if i == 0 else name) for i, (p, name) in enumerate(zip(photos, names))]
        tiles += [labelled(zoom(p[k]), "middle, 2x") for p in photos]
    Image.fromarray(grid(np.stack(tiles), columns=2 * len(photos))).save(DOCS / output, quality=90)


def looks_figure(vessel_checkpoint: str, translator: str, heights: tuple[float, ...] = (1.0, 0.9, 0.85, 0.8), seeds: tuple[int, ...] = (0, 1)) -> None:
    """Per seed, two rows: one sampled tree in FOVs of these heights, its look picked (look seed =
    the seed) among every training photo's (--any-look, as before 2026-11-28), then among those
    whose FOV is shaped like it (the default)."""
    from retinagan.data.preprocess import fov_disc
    from retinagan.inference import FundusTranslator, VesselGenerator

    painter = FundusTranslator.load(translator)
    tiles = []
    for seed in seeds:
        tree = VesselGenerator.load(vessel_checkpoint).sample([seed])
        for match in (False, True):
            painter.match_look_to_fov = match
            for height in heights:
                fov = fov_disc(painter.size, height)
                photo = painter.translate(tree, fov, look_seed=seed)[0]
                text = f"seed {seed}, FOV {height:g}: " + (f"fitted ({len(painter.looks_for_fov(fov))})" if match else "any")
                tiles.append(labelled(photo, text))
    Image.fromarray(grid(np.stack(tiles), columns=len(heights))).save(DOCS / "looks-by-fov.jpg", quality=90)


def curve_figure(results: str, output: str = "docs/mixing-learning-curve.png", section: str = "learning_curve",
                 x_label: str = "real DRIVE training pairs used", mixed_label: str = "real + 200 synthetic pairs",
                 title: str = "Vessel Dice on DRIVE test (threshold chosen on the real pairs seen)",
                 series: tuple = (("real", "real pairs alone"), ("mixed", None))) -> None:
    """Segmenter Dice on DRIVE test against a setting of the training (by default the number of
    real training pairs; the results file's SECTION["rows"], keyed by the setting), real alone and
    real + synthetic (or the two SERIES named, each a key of the rows and its legend): every seed a
    small dot, the mean a large one joined across settings."""
    import json

    rows = json.loads(Path(results).read_text())[section]["rows"]
    counts = sorted(rows, key=int)
    series = tuple((key, label or mixed_label, colour) for (key, label), colour in zip(series, ((60, 60, 60), (200, 60, 40))))
    values = [v for k in counts for key, _, _ in series for v in rows[k].get(key, [])]  # a series may skip a setting
    low, high = np.floor(min(values) * 100 - 0.5) / 100, np.ceil(max(values) * 100 + 0.5) / 100
    width, height, left, right, top, bottom = 640, 400, 70, 20, 50, 60
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    x_of = {k: left + 40 + i * (width - left - right - 80) / max(1, len(counts) - 1) for i, k in enumerate(counts)}
    y_of = lambda v: top + (high - v) / (high - low) * (height - top - bottom)
    draw.line([(left, top), (left, height - bottom), (width - right, height - bottom)], fill="black")
    for tick in np.arange(low, high + 1e-9, 0.01):
        y = y_of(tick)
        draw.line([(left - 4, y), (width - right, y)], fill=(120, 120, 120) if abs(tick) < 1e-9 else (225, 225, 225))
        draw.text((left - 40, y - 6), f"{tick:.2f}", fill="black")
    for k in counts:
        draw.text((x_of[k] - 4, height - bottom + 8), k, fill="black")
    draw.text((width // 2 - 110, height - 24), x_label, fill="black")
    draw.text((left, 10), title, fill="black")
    for offset, (key, label, colour) in zip((-6, 6), series):
        means = []
        for k in (k for k in counts if rows[k].get(key)):
            for v in rows[k][key]:
                x, y = x_of[k] + offset, y_of(v)
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
            means.append((x_of[k] + offset, y_of(float(np.mean(rows[k][key])))))
        draw.line(means, fill=colour, width=2)
        for x, y in means:
            draw.ellipse([x - 5, y - 5, x + 5, y + 5], outline=colour, width=2)
        legend_y = top + 8 + (0 if key == series[0][0] else 16)
        draw.line([(width - 230, legend_y + 6), (width - 210, legend_y + 6)], fill=colour, width=2)
        draw.text((width - 205, legend_y), label, fill="black")
    image.save(output)
    print(output)


def faithful_figure(translator: str, scores_path: str, drive_root: str = "../shared/data/drive", shown: int = 3,
                    output: str = "docs/mixing-faithful-pairs.jpg") -> None:
    """The synthetic pairs of scripts/mixing_batchnorm.py --keep-faithful (fine-vessel trees of
    checkpoints/aae-lsgan-128, seed k the pair k, in DRIVE training's looks) that its scores rank
    lowest (top row) and highest (bottom row). Per pair: the photo, and where the shipped segmenter (one view, 0.5) reads
    the tree in it: white both, red in the tree but not read (the photo lost it), cyan read where
    the tree has none (the photo drew a vessel the label lacks). Uses DRIVE's training photos only
    for their six colour statistics (the looks); no DRIVE pixel is drawn."""
    from retinagan.inference import FundusTranslator, Segmenter, load_vessel_generator
    from retinagan.metrics.segmentation import dice
    from retinagan.metrics.synthetic_training import real_drive_pairs, synthetic_pairs
    from retinagan.models.pix2pix import looks_of

    scores = np.load(scores_path)
    painter = FundusTranslator.load(translator)
    photos, fovs, _ = real_drive_pairs(drive_root, painter.size)
    painter.use_looks(looks_of(photos, fovs))
    trees, judge = load_vessel_generator("checkpoints/aae-lsgan-128", fine_vessels=True), Segmenter.load(DEFAULT_SEGMENTER)
    order = np.argsort(scores, kind="stable")
    tiles = []
    for rank, k in enumerate([*order[:shown], *order[::-1][:shown]]):
        photo, fov, tree = (array[0] for array in synthetic_pairs(trees, painter, 1, seed=int(k)))
        read = (judge.probability(photo, fov, views=1) >= 0.5) & fov
        score = dice(read[fov], tree[fov])
        if abs(score - scores[k]) > 0.01:  # not the photo the runs scored: another translator, looks or trees
            raise SystemExit(f"pair {k} reads at Dice {score:.3f} here, {scores[k]:.3f} in {scores_path}: not the same translator or looks")
        agreement = np.zeros(photo.shape, np.uint8)
        agreement[tree & read] = 255
        agreement[tree & ~read] = (255, 60, 60)
        agreement[read & ~tree] = (0, 220, 255)
        tiles += [labelled(photo, f"{'least' if rank < shown else 'most'} faithful: {scores[k]:.3f}"), labelled(agreement, f"pair {k}: tree vs read")]
    Image.fromarray(grid(np.stack(tiles), columns=2 * shown)).save(output, quality=88)
    print(output)


def forest_figure(summary_path: str, output: str = "docs/mixing-forest.png") -> None:
    """A forest plot of scripts/collect_mixing_summary.py's file: one row per way of adding synthetic
    pairs to DRIVE's 20 real ones (grouped), the Dice on DRIVE test of the mix minus that of its
    real-alone control; each seed's paired difference a small dot, their mean a diamond, coloured by
    the Dice measured (threshold chosen on DRIVE training, or 0.5), real alone's seed spread a grey band."""
    import json

    from PIL import ImageFont

    summary = json.loads(Path(summary_path).read_text())
    rows, std = summary["rows"], summary["band"]["std"]
    try:
        font = ImageFont.load_default(size=13)
    except TypeError:  # Pillow before 10.1: the bitmap font only
        font = ImageFont.load_default()
    colours = {"dice_chosen": (30, 90, 170), "dice_05": (205, 95, 25)}
    title = "Adding synthetic pairs to DRIVE's 20: mix minus real alone (Dice on DRIVE test)"
    lines, group = [], None  # ("group", name) or ("row", row), in the file's order
    for r in rows:
        if r["group"] != group:
            group = r["group"]
            lines.append(("group", group))
        lines.append(("row", r))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_width = lambda text: measure.textlength(text, font=font)
    pad, indent, row_h = 12, 14, 19
    left = pad + indent + max(text_width(r["label"]) for r in rows) + 16
    right_w = text_width("mean -0.0000 (0)") + 16
    width = max(900, int(left + 420 + right_w + pad))
    plot_l, plot_r = left, width - right_w - pad
    top = 118
    height = top + len(lines) * row_h + 74
    diffs = [d for r in rows for d in r.get("paired_diff", [])]
    low = np.floor(min(r["mean_diff"] for r in rows) * 100 - 2) / 100  # room for an off-scale seed's arrow and value
    high = max(0.01, np.ceil(max(diffs + [r["mean_diff"] for r in rows] + [std]) * 100 + 0.5) / 100)
    x_of = lambda v: plot_l + (v - low) / (high - low) * (plot_r - plot_l)
    bottom = top + len(lines) * row_h
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)

    draw.text((pad, 8), title, fill="black", font=font)
    # legend: two lines under the title
    y = 32
    x = pad
    draw.ellipse([x + 2, y + 4, x + 8, y + 10], fill=(90, 90, 90))
    draw.text((x + 14, y), "one seed: mix - real alone, same seed number", fill="black", font=font)
    x += 14 + text_width("one seed: mix - real alone, same seed number") + 24
    draw.polygon([(x + 6, y + 1), (x + 12, y + 7), (x + 6, y + 13), (x, y + 7)], fill=(90, 90, 90), outline="black")
    draw.text((x + 18, y), "mean over the seeds", fill="black", font=font)
    y = 52
    x = pad
    for key, text in (("dice_chosen", "Dice at the threshold chosen on DRIVE training"), ("dice_05", "Dice at 0.5")):
        draw.rectangle([x, y + 3, x + 10, y + 11], fill=colours[key])
        draw.text((x + 16, y), text, fill="black", font=font)
        x += 16 + text_width(text) + 24
    draw.rectangle([x, y + 1, x + 14, y + 13], fill=(222, 222, 222))
    band_text = f"real alone's seed spread: +/- {std:.4f} (1 std, real at 2,400 steps, 5 seeds)"
    draw.text((x + 20, y), band_text, fill="black", font=font)

    # axes: band, grid every 0.01 (labelled every 0.01 or 0.02 as room allows), zero line
    draw.rectangle([x_of(-std), top, x_of(std), bottom], fill=(222, 222, 222))
    ticks = np.round(np.arange(low, high + 1e-9, 0.01), 2)
    every = 1 if x_of(ticks[1]) - x_of(ticks[0]) >= 44 else 2
    for tick in ticks:
        x = x_of(tick)
        draw.line([(x, top), (x, bottom)], fill=(236, 236, 236) if tick else (0, 0, 0))
        draw.line([(x, top - 4), (x, top)], fill="black")
        draw.line([(x, bottom), (x, bottom + 4)], fill="black")
        if round(tick * 100) % every == 0:
            label = f"{tick:+.2f}" if tick else "0"
            w = text_width(label)
            draw.text((x - w / 2, bottom + 6), label, fill="black", font=font)
            draw.text((x - w / 2, top - 20), label, fill="black", font=font)
    draw.rectangle([plot_l, top, plot_r, bottom], outline="black")
    zero = x_of(0)
    draw.text((zero - text_width("real alone") / 2, top - 38), "real alone", fill="black", font=font)
    draw.text((plot_r + 8, top - 38), "mean (seeds)", fill="black", font=font)
    x_label = "Dice on DRIVE test: mix minus its real-alone control (same script, steps and width)"
    draw.text(((plot_l + plot_r) / 2 - text_width(x_label) / 2, bottom + 28), x_label, fill="black", font=font)

    for i, (kind, item) in enumerate(lines):
        y = top + i * row_h + row_h / 2
        if kind == "group":
            if i:
                draw.line([(pad, top + i * row_h), (width - pad, top + i * row_h)], fill=(190, 190, 190))
            draw.text((pad, y - 8), item, fill=(0, 0, 0), font=font)
            draw.text((pad + 1, y - 8), item, fill=(0, 0, 0), font=font)  # a poor man's bold
            continue
        colour = colours[item["measure"]]
        draw.text((pad + indent, y - 8), item["label"], fill=(40, 40, 40), font=font)
        draw.line([(plot_l + 1, y), (plot_r - 1, y)], fill=(246, 246, 246))
        x = x_of(item["mean_diff"])
        draw.polygon([(x, y - 6), (x + 6, y), (x, y + 6), (x - 6, y)], fill=colour, outline="black")
        for d in item.get("paired_diff", []):  # over the mean, ringed in white so that each shows
            if d < low:  # off the scale: an arrow at the edge with its value
                x = plot_l + 2
                draw.polygon([(x, y), (x + 6, y - 4), (x + 6, y + 4)], fill=colour)
                draw.text((x + 9, y - 8), f"{d:+.3f}", fill=colour, font=font)
                continue
            x = x_of(d)
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour, outline="white")
        n = len(item.get("paired_diff", item["mix"]))
        draw.text((plot_r + 8, y - 8), f"{item['mean_diff']:+.4f} ({n})", fill="black", font=font)
    image.save(output)
    print(output)


if __name__ == "__main__":
    DOCS.mkdir(exist_ok=True)
    if sys.argv[1] == "segmenter":
        segmenter_figure()
    elif sys.argv[1] == "grades":
        grades_figure(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "refine":
        refine_figure(sys.argv[2:])
    elif sys.argv[1] == "pairs":
        pairs_figure(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "fine":
        fine_figure(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "detail":
        detail_figure(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "photodetail":
        photodetail_figure(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif sys.argv[1] == "keep":
        keep_figure(sys.argv[2], sys.argv[3], sys.argv[4], [float(k) for k in (sys.argv[5:] or ["0", "0.15"])])
    elif sys.argv[1] == "curve":
        curve_figure(sys.argv[2])
    elif sys.argv[1] == "steps":
        curve_figure(sys.argv[2], "docs/mixing-longer-training.png", "by_steps", "segmenter training steps (batches of 16 real patches)",
                     "real + synthetic added on top", "Vessel Dice on DRIVE test (threshold chosen on DRIVE training)")
    elif sys.argv[1] == "gap":
        curve_figure(sys.argv[2], "docs/segmenter-gap.png", "by_count", "real DRIVE training pairs seen (K), 1,200 steps",
                     title="Dice lost on the photos not seen, and Dice won by adding the synthetic pairs",
                     series=(("gap", "seen - unseen photos (net of difficulty)"), ("gain", "synthetic + real - real alone")))
    elif sys.argv[1] == "forest":
        forest_figure(sys.argv[2])
    elif sys.argv[1] == "faithful":
        faithful_figure(*sys.argv[2:5])
    elif sys.argv[1] == "looks":
        looks_figure(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "end2end":
        end2end_figure(sys.argv[2:])
    else:
        samples_figure(sys.argv[2:])
