"""`python -m retinagan <command>`: prepare, segment, evaluate, train, generate, export, info."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from retinagan.cliargs import add_dataclass_args, dataclass_from_args
from retinagan.errors import RetinaganError

DEFAULT_DATA = os.environ.get("RETINAGAN_DATA", "../shared/data")
DEFAULT_SEGMENTER = str(Path(__file__).resolve().parent.parent / "checkpoints" / "segmenter")


def _trainers() -> dict:
    """Kind -> (training config class, training function).

    A function, so that importing retinagan.cli (the app takes its defaults from it) does not
    load torch; building the parser does."""
    from retinagan.training.autoencoder import AutoencoderTrainConfig, train_autoencoder
    from retinagan.training.detail import DetailTrainConfig, train_detail
    from retinagan.training.end2end import End2EndTrainConfig, train_end2end
    from retinagan.training.photodetail import PhotoDetailTrainConfig, train_photodetail
    from retinagan.training.pix2pix import Pix2PixTrainConfig, train_pix2pix
    from retinagan.training.segmenter import SegmenterTrainConfig, train_segmenter

    return {
        "segmenter": (SegmenterTrainConfig, train_segmenter),
        "vae": (AutoencoderTrainConfig, train_autoencoder),  # the kind sets --variant
        "aae": (AutoencoderTrainConfig, train_autoencoder),
        "pix2pix": (Pix2PixTrainConfig, train_pix2pix),
        "end2end": (End2EndTrainConfig, train_end2end),
        "detail": (DetailTrainConfig, train_detail),
        "photodetail": (PhotoDetailTrainConfig, train_photodetail),
    }


FINE_HELP = "add procedural fine vessels to the sampled trees (retinagan.fine_vessels: thinned, with branches grown by rule)"
DEFAULT_DETAILER = str(Path(__file__).resolve().parent.parent / "checkpoints" / "detail")


def add_tree_options(parser: argparse.ArgumentParser) -> None:
    """--fine-vessels and --detail: what is done to the vessel model's sampled trees."""
    parser.add_argument("--fine-vessels", action="store_true", help=FINE_HELP)
    parser.add_argument("--detail", action="store_true",
                        help="redraw the sampled trees with the detailer (a diffusion model trained on DRIVE's hand-drawn maps: thin vessels learnt, not by rule)")
    parser.add_argument("--detailer", default=DEFAULT_DETAILER, help="the detailer checkpoint for --detail")


def add_photo_detail_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--photo-detail", metavar="CHECKPOINT",
                        help="a photodetail checkpoint (python train.py photodetail): every photo's fine detail is redrawn by it")
    parser.add_argument("--photo-detail-steps", type=int, metavar="N", help="its sampling steps (default: the checkpoint's)")
    parser.add_argument("--any-look", action="store_true",
                        help="pick each photo's look among every training photo's, whatever its FOV (as before 2026-11-28; "
                             "default: among those whose FOV is shaped like the photo's)")


def load_translator(folder: str, args):
    """The translator at folder, with the photo detailer and look matching of add_photo_detail_option."""
    from retinagan.inference import FundusTranslator

    if args.photo_detail_steps is not None and not args.photo_detail:
        raise RetinaganError("--photo-detail-steps needs --photo-detail")
    if args.photo_detail_steps is not None and args.photo_detail_steps < 1:
        raise RetinaganError("--photo-detail-steps must be at least 1")
    translator = FundusTranslator.load(folder, photo_detail=args.photo_detail, photo_detail_steps=args.photo_detail_steps)
    translator.match_look_to_fov = not args.any_look
    return translator


def tree_generator(args, folder: str):
    """The vessel model at folder, with the options of add_tree_options."""
    from retinagan.inference import load_vessel_generator

    return load_vessel_generator(folder, args.fine_vessels, detail=args.detailer if args.detail else None)


def tree_suffix(args) -> str:
    from retinagan.inference import DETAIL_SUFFIX, FINE_SUFFIX

    return FINE_SUFFIX if args.fine_vessels else DETAIL_SUFFIX if args.detail else ""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m retinagan", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model (same as `python train.py KIND`)")
    kinds = train.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind, (config_cls, _) in _trainers().items():
        sub = kinds.add_parser(kind, help=f"train the {kind}")
        add_dataclass_args(sub, config_cls)
        sub.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")

    prep = commands.add_parser("prepare", help="build a prepared set (photos, FOV masks, vessel maps, grades) in one cache file")
    prep.add_argument("--data", action="append", required=True, help="dataset folder or label file; repeat for several")
    prep.add_argument("--output", required=True, help="cache file to write (.npz)")
    prep.add_argument("--segmenter", default=DEFAULT_SEGMENTER, help="segmenter checkpoint for photos without vessel maps")
    prep.add_argument("--size", type=int, default=256, help="side of the square output images (128-1024)")
    prep.add_argument("--laterality", choices=["right", "left", "none"], default="right", help="mirror so the optic disc lies on this side")
    prep.add_argument("--skip-bad", action="store_true", help="drop label rows naming missing files or bad grades instead of stopping")

    seg = commands.add_parser("segment", help="write a binary vessel map (PNG, 0/255) for each photo")
    seg.add_argument("--checkpoint", default=DEFAULT_SEGMENTER)
    seg.add_argument("--input", required=True, help="a photo or a folder of photos")
    seg.add_argument("--output", required=True, help="folder for the vessel maps (same file stems)")

    ev = commands.add_parser("evaluate", help="score a model; --json prints a JSON object as the last line")
    targets = ev.add_subparsers(dest="target", required=True, metavar="TARGET")
    ev_seg = targets.add_parser("segmenter", help="Dice, AUC and accuracy on DRIVE test inside the FOV at native size")
    ev_seg.add_argument("--checkpoint", default=DEFAULT_SEGMENTER)
    ev_seg.add_argument("--drive", default=f"{DEFAULT_DATA}/drive", help="DRIVE root")
    ev_seg.add_argument("--threshold", type=float, default=None, help="override the checkpoint's threshold")
    ev_seg.add_argument("--json", action="store_true")
    ev_ves = targets.add_parser("vessels", help="morphology distance to real maps, reconstruction Dice, diversity, memorisation")
    ev_ves.add_argument("--checkpoint", required=True)
    ev_ves.add_argument("--drive", default=f"{DEFAULT_DATA}/drive", help="DRIVE root (hand-drawn reference maps)")
    ev_ves.add_argument("--n", type=int, default=100, help="generated samples to compare")
    ev_ves.add_argument("--seed", type=int, default=0)
    ev_ves.add_argument("--refine", type=int, default=None, metavar="STEPS",
                        help="also score reconstructions from codes refined this many steps through the decoder, "
                             "as the app encodes real trees (default: the app's steps, 100; 0: encoder only)")
    ev_ves.add_argument("--json", action="store_true")
    add_tree_options(ev_ves)
    ev_ves.add_argument("--store", action="store_true", help="also write the result into the checkpoint's config.json metrics")
    ev_fun = targets.add_parser("fundus", help="FID/KID against real photos, vessel fidelity, anatomy checks of a pix2pix")
    ev_fun.add_argument("--checkpoint", required=True, help="a pix2pix checkpoint folder")
    ev_fun.add_argument("--real", required=True, help="the real set: a prepared .npz (python -m retinagan prepare), or dataset folders/label files to prepare now")
    ev_fun.add_argument("--vessels", help="a vae/aae checkpoint: also score photos made from its samples")
    ev_fun.add_argument("--n", type=int, default=100, help="samples from --vessels")
    ev_fun.add_argument("--seed", type=int, default=0)
    ev_fun.add_argument("--segmenter", default=DEFAULT_SEGMENTER, help="segmenter for vessel fidelity")
    ev_fun.add_argument("--look-sets", type=int, default=8, metavar="K",
                        help="also score the photos of the real half-B trees over K sets of look seeds (mean and spread; "
                             "one set's FID moves by about 1 from the seeds alone at n = 87; 1: the first set only)")
    ev_fun.add_argument("--json", action="store_true")
    add_tree_options(ev_fun)
    add_photo_detail_option(ev_fun)
    ev_fun.add_argument("--store", action="store_true", help="write the scores into the checkpoint's config.json")
    ev_syn = targets.add_parser("synthetic", help="train on synthetic, test on real: segmenters trained on real / synthetic / both pairs, scored on DRIVE test")
    ev_syn.add_argument("--vessels", default="checkpoints/aae-lsgan-128", help="the vae/aae checkpoint that makes the trees")
    ev_syn.add_argument("--translator", default="checkpoints/pix2pix-grade", help="the pix2pix checkpoint that makes the photos")
    ev_syn.add_argument("--drive", default=f"{DEFAULT_DATA}/drive", help="DRIVE root: training split = the real pairs, test split = the scoring")
    ev_syn.add_argument("--n", type=int, default=100, help="synthetic pairs")
    ev_syn.add_argument("--seeds", type=int, default=2, help="training seeds per condition")
    ev_syn.add_argument("--steps", type=int, default=600, help="optimiser steps per segmenter")
    ev_syn.add_argument("--real-share", type=float, default=0.5, help="mixed: real pairs repeated to about this share of the draws (0: each pair once)")
    ev_syn.add_argument("--conditions", default="real,synthetic,mixed,pretrained",
                        help="which segmenters: real, synthetic, mixed (both sets), pretrained (synthetic's, fine-tuned on the real pairs), "
                             "translated (the translator's photos of the real DRIVE trees, --looks per tree: the translator's share of the gap), "
                             "augmented (real + translated, the real repeated as for mixed)")
    ev_syn.add_argument("--looks", type=int, default=10, help="translated: photos (looks) per real tree")
    ev_syn.add_argument("--output", default="runs/train-on-synthetic", help="folder for the segmenters trained")
    ev_syn.add_argument("--chosen-threshold", action="store_true",
                        help="also score each segmenter at the threshold that maximises its Dice on DRIVE training (never test); "
                             "fair between real and mixed, but it shows the synthetic-only segmenters real photos")
    ev_syn.add_argument("--json", action="store_true")
    add_tree_options(ev_syn)
    add_photo_detail_option(ev_syn)
    ev_con = targets.add_parser("control", help="grade and lesion control of a lesion-drawing translator: burden vs grade, placement, insertion")
    ev_con.add_argument("--translator", default="checkpoints/pix2pix-grade", help="a pix2pix checkpoint trained with grades and lesion maps")
    ev_con.add_argument("--vessels", default="checkpoints/aae-lsgan-128", help="the vae/aae checkpoint that makes the trees")
    ev_con.add_argument("--real", help="real graded photos for the reference and the grade classifier: a prepared .npz or "
                        f"dataset folders / label files (e.g. {DEFAULT_DATA}/eyepacs); left out: those parts are skipped")
    ev_con.add_argument("--segmenter", default=DEFAULT_SEGMENTER, help="segmenter for --real folders")
    ev_con.add_argument("--n", type=int, default=50, help="samples per grade")
    ev_con.add_argument("--placement", type=int, default=50, help="photos with random requested lesions (6 each)")
    ev_con.add_argument("--seed", type=int, default=0)
    ev_con.add_argument("--json", action="store_true")
    add_tree_options(ev_con)
    add_photo_detail_option(ev_con)
    ev_con.add_argument("--store", action="store_true", help="write the scores into the translator's config.json")
    ev_lat = targets.add_parser("laterality", help="how often the detected optic-disc side agrees with _left/_right names")
    ev_lat.add_argument("--data", default=f"{DEFAULT_DATA}/eyepacs")
    ev_lat.add_argument("--json", action="store_true")

    export = commands.add_parser("export", help="copy a checkpoint as float16 (as shipped in checkpoints/)")
    export.add_argument("--checkpoint", required=True, help="a checkpoint folder, or an end2end run's checkpoint/ (vessels/ + translator/): "
                        "written as the vessel model OUTPUT with its own translator in OUTPUT/translator, which the app pairs with it "
                        "(a vessel model with its own translator, as checkpoints/end2end, is copied with it)")
    export.add_argument("--output", required=True)
    export.add_argument("--base", action="append", default=[], metavar="CHECKPOINT",
                        help="store only the tensors that differ from this checkpoint of the same kind (give one per kind for a pair); "
                        "the result loads only beside it")

    gen = commands.add_parser("generate", help="sample vessel trees [and fundus photos]: vessels/, fundus/, manifest.csv")
    gen.add_argument("--checkpoint", required=True, help="a vae or aae checkpoint folder")
    gen.add_argument("--translator", help="a pix2pix checkpoint folder: also write fundus/NNNNNN.png for each tree")
    gen.add_argument("--grade", type=grade_list, metavar="G[,G...]",
                     help="DR grade 0-4 for the photos (translators trained with grades), or several (0,1,2,3,4: sample k gets the "
                     "k-th, cycling, so one folder holds a balanced graded set); a lesion-drawing translator also gets lesions "
                     "composed to match each photo's grade, unless --lesions")
    gen.add_argument("--lesions", help='JSON file: [{"type": "microaneurysm|haemorrhage|exudate", "x": .., "y": .., "radius": ..}, ...] '
                     "in pixels of the photo; every photo gets these lesions")
    gen.add_argument("--fov-height", type=float, default=1.0, help="field of view cut at top and bottom to this fraction (0.5-1)")
    gen.add_argument("--noise", action="store_true", help="use the translator's dropout noise (seeded per sample)")
    gen.add_argument("--looks-from", metavar="PHOTOS", help="a fundus photo or a folder of them: each sample's colour and contrast is one of "
                     "these photos' (picked by its seed) instead of one of the translator's training photos': synthetic data in the look "
                     "of the camera it is meant for")
    gen.add_argument("--n", type=int, default=16, help="number of samples")
    gen.add_argument("--seed", type=int, default=0, help="sample k uses seed SEED+k, whatever N")
    gen.add_argument("--output", required=True, help="output folder (an interrupted export is continued)")
    add_tree_options(gen)
    add_photo_detail_option(gen)

    atlas = commands.add_parser("atlas", help="precompute a vessel model's latent atlas for the app (UMAP map, labelled directions)")
    atlas.add_argument("--checkpoint", required=True, help="a vae or aae checkpoint folder (the atlas is written into it)")
    atlas.add_argument("--data", required=True, help="prepared set (.npz) whose trees to encode: the model's training set")
    atlas.add_argument("--samples", type=int, default=200, help="prior samples placed on the map")
    atlas.add_argument("--directions", type=int, default=6, help="principal directions offered as sliders")
    atlas.add_argument("--method", choices=["umap", "pca"], default="umap")

    info = commands.add_parser("info", help="show a checkpoint's config.json")
    info.add_argument("checkpoint")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except RetinaganError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def cmd_train(args) -> int:
    config_cls, train = _trainers()[args.kind]
    config = dataclass_from_args(config_cls, args)
    if args.kind in ("vae", "aae"):
        if args.variant not in (None, args.kind):
            raise RetinaganError(f"--variant {args.variant} contradicts the kind {args.kind}")
        config.variant = args.kind
    if args.dry_run:
        print(json.dumps(dataclasses.asdict(config), indent=2))
        return 0
    print(f"checkpoint written to {train(config)}")
    return 0


def cmd_prepare(args) -> int:
    from retinagan.data.readers import read_dataset
    from retinagan.inference import Segmenter
    from retinagan.pipeline import prepare, save_prepared

    samples = [s for path in args.data for s in read_dataset(path, strict=not args.skip_bad)]
    needs_segmenter = any(s.vessels is None for s in samples)
    segmenter = Segmenter.load(args.segmenter) if needs_segmenter else None
    laterality = None if args.laterality == "none" else args.laterality
    prepared, failures = prepare(samples, segmenter, args.size, laterality)
    for failure in failures:
        print(f"skipped {failure}", file=sys.stderr)
    path = save_prepared(prepared, args.output)
    print(f"{len(prepared)} samples ({len(failures)} skipped) written to {path}")
    return 0


def cmd_segment(args) -> int:
    from tqdm import tqdm

    from retinagan.data.imageio import read_rgb, write_png
    from retinagan.data.readers import IMAGE_SUFFIXES
    from retinagan.inference import Segmenter

    source = Path(args.input)
    if source.is_dir():
        photos = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    elif source.is_file():
        photos = [source]
    else:
        raise RetinaganError(f"--input {source}: no such file or folder")
    if not photos:
        raise RetinaganError(f"--input {source}: no images found")
    segmenter = Segmenter.load(args.checkpoint)
    failures = []
    for photo in tqdm(photos, desc="segment", unit="img"):
        try:
            write_png(Path(args.output) / f"{photo.stem}.png", segmenter.segment(read_rgb(photo)))
        except RetinaganError as exc:
            failures.append(str(exc))
            tqdm.write(f"skipped {exc}", file=sys.stderr)
    print(f"{len(photos) - len(failures)} vessel maps written to {args.output}, {len(failures)} skipped")
    return 1 if failures else 0


def _metrics_key(name: str, args) -> str:
    """Where --store keeps a result: scores of trees with procedural fine vessels or the detailer, or of photos redrawn by a
    photo detailer, never replace the model's own."""
    name = f"{name}_fine_vessels" if args.fine_vessels else f"{name}_detail" if args.detail else name
    name = f"{name}_photodetail" if getattr(args, "photo_detail", None) else name
    return f"{name}_anylook" if getattr(args, "any_look", False) else name


def cmd_evaluate(args) -> int:
    if args.target == "segmenter":
        from retinagan.inference import Segmenter
        from retinagan.metrics.evaluate_segmenter import score_drive

        result = score_drive(Segmenter.load(args.checkpoint), args.drive, "test", args.threshold)
    elif args.target == "vessels":
        from retinagan.inference import REFINE_STEPS
        from retinagan.metrics.evaluate_vessels import evaluate_generator

        if args.refine is not None and args.refine < 0:
            raise RetinaganError(f"--refine takes a number of steps >= 0, not {args.refine}")
        generator = tree_generator(args, args.checkpoint)
        train_data = generator.config.get("train_config", {}).get("data")
        result = evaluate_generator(generator, args.drive, args.n, args.seed, train_data,
                                    REFINE_STEPS if args.refine is None else args.refine)
        result["fine_vessels"], result["detail"] = args.fine_vessels, args.detail
        if args.store:
            from retinagan.checkpoint import update_metrics

            update_metrics(args.checkpoint, {_metrics_key("evaluate_vessels", args): result})
    elif args.target == "fundus":
        from retinagan.inference import Segmenter
        from retinagan.metrics.evaluate_fundus import evaluate_translator

        if (args.fine_vessels or args.detail) and not args.vessels:
            raise RetinaganError("--fine-vessels and --detail act on the trees of --vessels: name a vessel model")
        if args.look_sets < 1:
            raise RetinaganError(f"--look-sets must be 1 or more, not {args.look_sets}")
        translator = load_translator(args.checkpoint, args)
        segmenter = Segmenter.load(args.segmenter)
        prepared = _real_set(args.real, segmenter, translator.size)
        generator = tree_generator(args, args.vessels) if args.vessels else None
        holdout_every = translator.config.get("train_config", {}).get("holdout_every", 10)  # the training split
        result = evaluate_translator(translator, prepared, segmenter, generator, args.n, args.seed, holdout_every, args.look_sets)
        result["fine_vessels"], result["detail"], result["photo_detail"] = args.fine_vessels, args.detail, args.photo_detail
        if args.store:
            from retinagan.checkpoint import update_metrics

            update_metrics(args.checkpoint, {_metrics_key("evaluate_fundus", args): result})
    elif args.target == "synthetic":
        from retinagan.metrics.synthetic_training import train_on_synthetic

        if not 0 <= args.real_share < 1:
            raise RetinaganError(f"--real-share must be within 0-1 (0: each pair once), not {args.real_share}")
        conditions = tuple(c.strip() for c in args.conditions.split(",") if c.strip())
        try:
            result = train_on_synthetic(tree_generator(args, args.vessels), load_translator(args.translator, args), args.drive,
                                        args.n, tuple(range(args.seeds)), args.steps, args.output, real_share=args.real_share or None,
                                        conditions=conditions, looks=args.looks, chosen_threshold=args.chosen_threshold)
        except ValueError as exc:  # conditions, sizes
            raise RetinaganError(f"evaluate synthetic: {exc}") from None
        if not args.json:
            for condition, row in result["summary"].items():
                chosen = f", at the chosen threshold {row['dice_chosen_mean']:.4f} ± {row['dice_chosen_std']:.4f}" if "dice_chosen_mean" in row else ""
                print(f"{condition:>10}: {row['pairs']:4d} pairs, Dice {row['dice_mean']:.4f} ± {row['dice_std']:.4f}{chosen}, "
                      f"AUC {row['auc_mean']:.4f} ± {row['auc_std']:.4f}")
            for key in ("synthetic_over_real_dice", "translated_over_real_dice", "mixed_minus_real_dice", "pretrained_minus_real_dice",
                        "augmented_minus_real_dice", "mixed_minus_real_dice_chosen", "pretrained_minus_real_dice_chosen",
                        "augmented_minus_real_dice_chosen"):
                if key in result:
                    print(f"{key.replace('_', ' ')}: {result[key]:+.4f}")
            return 0
    elif args.target == "control":
        from retinagan.metrics.control import evaluate_control

        translator = load_translator(args.translator, args)
        prepared = None
        if args.real:
            from retinagan.inference import Segmenter

            segmenter = None if args.real.endswith(".npz") else Segmenter.load(args.segmenter)
            prepared = _real_set(args.real, segmenter, translator.size)
        try:
            result = evaluate_control(translator, tree_generator(args, args.vessels), prepared, args.n, args.placement, args.seed)
        except ValueError as exc:
            raise RetinaganError(str(exc)) from None
        result["fine_vessels"], result["detail"] = args.fine_vessels, args.detail
        if args.store:
            from retinagan.checkpoint import update_metrics

            update_metrics(args.translator, {_metrics_key("evaluate_control", args): result})
        if not args.json:
            print(json.dumps(result, indent=1))
            return 0
    else:
        from retinagan.metrics.laterality import laterality_agreement

        result = laterality_agreement(args.data)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value:.4f}" if isinstance(value, float) else f"{key:>24}: {value}")
    return 0


def _real_set(source: str, segmenter, size: int):
    """A prepared .npz, or dataset folders / label files (comma-separated) prepared now."""
    from retinagan.pipeline import load_prepared, prepare

    if source.endswith(".npz"):
        prepared = load_prepared(source)
    else:
        from retinagan.data.readers import read_dataset

        samples = [s for path in source.split(",") for s in read_dataset(path)]
        prepared, failures = prepare(samples, segmenter, size)
        for failure in failures:
            print(f"skipped {failure}", file=sys.stderr)
    if prepared.images.shape[1] != size:
        raise RetinaganError(f"{source}: photos are {prepared.images.shape[1]} px, the translator makes {size} px")
    return prepared


def cmd_export(args) -> int:
    from retinagan.checkpoint import PAIRED_TRANSLATOR, load_model, read_config, save_model, stored_info

    source, output = Path(args.checkpoint), Path(args.output)
    if not (source / "config.json").is_file() and (source / "vessels").is_dir() and (source / "translator").is_dir():
        jobs = [(source / "vessels", output), (source / "translator", output / PAIRED_TRANSLATOR)]  # an end2end run's checkpoint/
    else:
        jobs = [(source, output)] + ([(source / PAIRED_TRANSLATOR, output / PAIRED_TRANSLATOR)]  # a pair as shipped: both
                                     if (source / PAIRED_TRANSLATOR / "config.json").is_file() else [])
    bases = {read_config(base)["kind"]: base for base in args.base}
    for folder, target in jobs:  # the vessel model first: writing it replaces the whole output folder
        model, config = load_model(folder)
        if args.base and config["kind"] not in bases:
            raise RetinaganError(f"--base: none of {', '.join(args.base)} holds a {config['kind']} model like {folder}")
        written = save_model(target, model, config["kind"], half=True, base=bases.get(config["kind"]), **stored_info(config))
        stored = read_config(written).get("base")
        print(f"written {written}" + (f" ({stored['stored_tensors']} of {stored['tensors']} tensors, the rest from {stored['checkpoint']})"
                                      if stored else ""))
    return 0


def _look_files(path: Path) -> list[Path]:
    """--looks-from: a photo, or every photo in a folder (sorted by name)."""
    from retinagan.data.readers import IMAGE_SUFFIXES

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise RetinaganError(f"--looks-from {path}: no image files in it")
        return files
    if path.is_file():
        return [path]
    raise RetinaganError(f"--looks-from {path}: no such file or folder")


def grade_list(text: str) -> list[int]:
    """--grade's value: one DR grade or several, comma-separated ("2", "0,1,2,3,4")."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a grade 0-4 or several, comma-separated (0,1,2,3,4)") from None


def cmd_generate(args) -> int:
    from retinagan.export import export_samples
    from retinagan.inference import fov_disc

    if args.n < 1:
        raise RetinaganError("--n must be at least 1")
    generator = tree_generator(args, args.checkpoint)
    translator = load_translator(args.translator, args) if args.translator else None
    if translator is None and (args.grade is not None or args.noise or args.lesions or args.photo_detail):
        raise RetinaganError("--grade, --lesions, --noise and --photo-detail need --translator")
    lesions = None
    if args.lesions:
        from retinagan.lesions import lesions_from_json

        try:
            lesions = lesions_from_json(Path(args.lesions).read_text(encoding="utf-8"), translator.size)
        except (OSError, UnicodeDecodeError) as exc:
            raise RetinaganError(f"--lesions {args.lesions}: cannot read ({exc})") from None
        except ValueError as exc:
            raise RetinaganError(f"--lesions {args.lesions}: {exc}") from None
    if translator is not None and args.grade is not None:
        if translator.grades == 0:
            raise RetinaganError(f"--grade: {args.translator} was trained without grades")
        for grade in args.grade:
            if not 0 <= grade < translator.grades:
                raise RetinaganError(f"--grade {grade}: {args.translator} takes grades 0-{translator.grades - 1}")
    if translator is not None and translator.size != generator.model.config.image_size:
        raise RetinaganError(f"{args.translator} translates {translator.size} px maps; {args.checkpoint} makes {generator.model.config.image_size} px")
    if not 0.5 <= args.fov_height <= 1:
        raise RetinaganError("--fov-height must be within 0.5-1")
    translator_name = Path(args.translator).name if args.translator else ""
    if args.photo_detail:
        translator_name += f"+photodetail:{Path(args.photo_detail).name}"
    if args.any_look:
        translator_name += "+anylook"
    if args.looks_from:
        if translator is None:
            raise RetinaganError("--looks-from needs --translator")
        files = _look_files(Path(args.looks_from))
        try:
            translator = translator.with_looks_from(files)
        except RetinaganError as exc:
            raise RetinaganError(f"--looks-from {args.looks_from}: {exc}") from None
        translator_name += f"+looks:{Path(args.looks_from).name}"  # in the manifest: these photos are not in the translator's looks
    fov = fov_disc(translator.size, args.fov_height) if translator is not None else None
    written = export_samples(
        generator, Path(args.checkpoint).name + tree_suffix(args), args.seed, args.n, Path(args.output),
        translator=translator, translator_name=translator_name,
        grades=args.grade, fov=fov, noise=args.noise, lesions=lesions,
    )
    print(f"{written} new samples; {args.n} in {args.output}/manifest.csv")
    return 0


def cmd_atlas(args) -> int:
    from retinagan.atlas import build_atlas
    from retinagan.inference import VesselGenerator
    from retinagan.pipeline import load_prepared

    generator = VesselGenerator.load(args.checkpoint)
    prepared = load_prepared(args.data)
    if prepared.vessels.shape[1] != generator.model.config.image_size:
        raise RetinaganError(f"{args.data} holds {prepared.vessels.shape[1]} px maps; the model makes {generator.model.config.image_size} px")
    info = build_atlas(generator, prepared, args.checkpoint, args.samples, args.directions, args.method)
    print(f"atlas ({info['method']}, {len(info['meta'])} trees, {info['samples']} samples) written to {args.checkpoint}")
    for label in info["labels"]:
        print(f"  {label}")
    return 0


def cmd_info(args) -> int:
    from retinagan.checkpoint import read_config

    print(json.dumps(read_config(args.checkpoint), indent=2))
    return 0


COMMANDS = {"train": cmd_train, "prepare": cmd_prepare, "segment": cmd_segment, "evaluate": cmd_evaluate, "export": cmd_export, "generate": cmd_generate, "atlas": cmd_atlas, "info": cmd_info}
