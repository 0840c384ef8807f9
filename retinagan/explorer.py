"""The explorer app's engine: every model call the app makes goes through here (app.py holds
UI wiring only). Models load once, lazily; nothing is recomputed per event that can be
precomputed (latent directions, UMAP positions: the atlas, built offline).

The atlas of a vessel model (`atlas.json` + `atlas.safetensors` beside its weights) holds
the encoded real trees of its training set with their source and grade, their 2-D UMAP
positions, prior samples with theirs, and the principal directions of the real codes with a
label saying what each changes. Latent codes and metrics, not images: no data is shipped.
"""
from __future__ import annotations

import collections
import contextvars
import copy
import functools
import hashlib
import io
import json
import math
import tempfile
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from retinagan.errors import CheckpointError, RetinaganError
from retinagan.lesions import Lesion

ATLAS_JSON = "atlas.json"
ATLAS_TENSORS = "atlas.safetensors"
FEATURE_WORDS = {
    "area_fraction": "vessel area",
    "skeleton_length": "total vessel length",
    "junctions": "branching density",
    "endpoints": "loose vessel ends",
    "components": "fragments",
    "largest_component_share": "connectedness",
    "fractal_dimension": "complexity",
    "tortuosity": "tortuosity",
}


class OneThread:
    """Runs every method call on the wrapped object on one dedicated thread; attributes pass through.

    torch runs its CPU kernels on an OpenMP team owned by the calling thread. A Gradio server
    calls back from a rotating pool of worker threads: once two of them have run the models,
    two teams contend for the cores and a /generate call takes ~47 ms instead of ~30 on this
    2-core CPU (every later call, whichever thread makes it). One thread, one team. The
    caller's context variables go along, so Gradio progress bars keep working.
    """

    def __init__(self, target):
        self._target = target
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="retinagan-models")
        self._ident = self._pool.submit(threading.get_ident).result()

    def __getattr__(self, name: str):
        value = getattr(self._target, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def call(*args, **kwargs):
            if threading.get_ident() == self._ident:  # already on it (a nested call)
                return value(*args, **kwargs)
            return self._pool.submit(contextvars.copy_context().run, value, *args, **kwargs).result()

        return call


@dataclass
class Atlas:
    codes: np.ndarray  # (N, l) encoded real trees
    points: np.ndarray  # (N, 2) their map positions
    meta: list[dict]  # per real tree: id, source, grade
    sample_codes: np.ndarray  # (M, l) prior samples (seeds 0..M-1)
    sample_points: np.ndarray  # (M, 2)
    directions: np.ndarray  # (K, l) unit principal directions of the real codes
    scales: np.ndarray  # (K,) standard deviation of the real codes along each
    labels: list[str]  # what moving along each direction changes
    method: str  # "umap" or "pca"

    def locate(self, code: np.ndarray, k: int = 8) -> tuple[float, float]:
        """Map position of any code: inverse-distance mean of its k nearest stored codes' positions."""
        every = np.concatenate([self.codes, self.sample_codes])
        where = np.concatenate([self.points, self.sample_points])
        dist = np.linalg.norm(every - code[None], axis=1)
        near = np.argsort(dist)[:k]
        weight = 1 / (dist[near] + 1e-6)
        x, y = (where[near] * weight[:, None]).sum(0) / weight.sum()
        return float(x), float(y)


def load_atlas(folder: Path) -> Atlas | None:
    if not (folder / ATLAS_JSON).is_file():
        return None
    from safetensors.numpy import load_file

    try:
        info = json.loads((folder / ATLAS_JSON).read_text())
        arrays = {k: v.astype(np.float32) for k, v in load_file(str(folder / ATLAS_TENSORS)).items()}  # stored in fp16
        return Atlas(
            codes=arrays["codes"], points=arrays["points"], meta=info["meta"], sample_codes=arrays["sample_codes"],
            sample_points=arrays["sample_points"], directions=arrays["directions"], scales=arrays["scales"],
            labels=info["labels"], method=info["method"],
        )
    except Exception as exc:  # a damaged atlas must not stop the app: it works without one
        raise CheckpointError(f"{folder}: atlas unreadable ({exc}); rebuild it with python -m retinagan atlas") from exc


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation (along the great circle, radius interpolated linearly)."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    ua, ub = a / max(na, 1e-8), b / max(nb, 1e-8)
    omega = math.acos(float(np.clip(ua @ ub, -1, 1)))
    if omega < 1e-4:
        return (1 - t) * a + t * b
    direction = (math.sin((1 - t) * omega) * ua + math.sin(t * omega) * ub) / math.sin(omega)
    return direction * ((1 - t) * na + t * nb)


TRANSLATORS = ("pix2pix-grade", "pix2pix")  # the grade- and lesion-conditioned translator first
VESSEL_MODELS = ("aae-lsgan-128", "end2end", "aae-bce-128", "aae-dual-128", "vae-128", "aae-lsgan-32")  # shipped, the expected best first
DETAILER = "detail"  # the detailer's folder in the checkpoints folder (retinagan.models.detail)
PHOTO_DETAILER = "photodetail"  # the photo detailer's folder in the checkpoints folder (retinagan.models.photodetail)


REFINED_KEPT = 64  # refined codes of real trees kept per app process (128 floats each)


class Explorer:
    """Models found in a checkpoints folder: vessel generators (vae/aae) and a translator (pix2pix)."""

    def __init__(self, checkpoints: str | Path = "checkpoints", translator: str | None = None, segmenter: str = "segmenter"):
        """translator: a folder name in `checkpoints`; None: the first of TRANSLATORS present."""
        from retinagan.checkpoint import read_config

        self.root = Path(checkpoints)
        self.vessel_models: dict[str, dict] = {}
        self.problems: list[str] = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []:
            try:
                config = read_config(folder)
            except RetinaganError as exc:
                self.problems.append(str(exc))
                continue
            if config["kind"] in ("vae", "aae"):
                sizes = config.get("model_config", {})
                if not all(isinstance(sizes.get(k), int) and sizes[k] > 0 for k in ("image_size", "latent_dim")):
                    self.problems.append(f"checkpoint {folder}: config.json lacks a valid image_size or latent_dim")
                    continue
                self.vessel_models[folder.name] = config
        present = [name for name in TRANSLATORS if (self.root / name / "config.json").is_file()]
        self.translator_name = translator or (present[0] if present else TRANSLATORS[0])
        self.segmenter_name = segmenter
        self._cache: dict = {}
        self._refined: collections.OrderedDict = collections.OrderedDict()  # (model, tree digest) -> refined code

    # --- models -------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Vessel models, the expected best first."""
        order = VESSEL_MODELS
        return sorted(self.vessel_models, key=lambda n: (order.index(n) if n in order else len(order), n))

    def generator(self, name: str, fine_vessels: bool = False, detail: bool = False):
        """The model `name`; fine_vessels: wrapped so its samples get procedural fine vessels;
        detail: so the detailer (checkpoints/detail) redraws them."""
        from retinagan.inference import DetailedVesselGenerator, FineVesselGenerator, VesselGenerator, load_detailer

        if name not in self.vessel_models:
            raise RetinaganError(f"no vessel model {name!r} in {self.root} (have: {', '.join(self.names()) or 'none'})")
        if fine_vessels and detail:
            raise RetinaganError("choose procedural fine vessels or the detailer, not both")
        base = self._load(("vessels", name), lambda: VesselGenerator.load(self.root / name))
        if detail:
            if not self.has_detailer():
                raise RetinaganError(f"no detailer in {self.root} (a checkpoint folder 'detail'; `python train.py detail` makes one)")
            detailer = self._load(("detailer",), lambda: load_detailer(self.root / DETAILER))
            return self._load(("detail", name), lambda: DetailedVesselGenerator(base, *detailer))
        return self._load(("fine", name), lambda: FineVesselGenerator(base)) if fine_vessels else base

    def has_detailer(self) -> bool:
        return (self.root / DETAILER / "config.json").is_file()

    def has_photo_detailer(self) -> bool:
        return (self.root / PHOTO_DETAILER / "config.json").is_file()

    def paired(self, model: str | None) -> bool:
        """Whether vessel model `model` brings its own translator (an end-to-end pair: the
        translator trained with it, in its folder's translator/)."""
        from retinagan.checkpoint import PAIRED_TRANSLATOR

        return model in self.vessel_models and (self.root / model / PAIRED_TRANSLATOR / "config.json").is_file()

    def translator_label(self, model: str | None = None) -> str:
        """The folder (in the checkpoints folder) of the translator that paints `model`'s trees."""
        from retinagan.checkpoint import PAIRED_TRANSLATOR

        return f"{model}/{PAIRED_TRANSLATOR}" if self.paired(model) else self.translator_name

    def translator(self, model: str | None = None, photo_detail: bool = False):
        """The translator for vessel model `model`: its own if it has one, else the shared one
        (None when there is none). photo_detail: one whose photos' fine detail the photo detailer
        (checkpoints/photodetail) redraws (the same network, loaded once)."""
        from retinagan.inference import FundusTranslator

        label = self.translator_label(model)
        if not (self.root / label / "config.json").is_file():
            return None
        translator = self._load(("translator", label), lambda: FundusTranslator.load(self.root / label))
        if not photo_detail:
            return translator
        if not self.has_photo_detailer():
            raise RetinaganError(f"no photo detailer in {self.root} (a checkpoint folder '{PHOTO_DETAILER}'; "
                                 "`python train.py photodetail` makes one)")

        def detailed():
            from retinagan.checkpoint import load_model

            detailer = self._load("photodetailer", lambda: load_model(self.root / PHOTO_DETAILER, expected_kind="photodetail")[0])
            painter = copy.copy(translator)  # shares the translator's network; the plain one stays plain
            painter.use_photo_detailer(detailer)  # one detailer network for every translator
            return painter

        return self._load(("translator+photodetail", label), detailed)

    def segmenter(self):
        from retinagan.inference import Segmenter

        return self._load("segmenter", lambda: Segmenter.load(self.root / self.segmenter_name))

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """A fundus photo (H, W, 3) uint8 -> its vessel map (H, W) bool, at the photo's size."""
        return self.segmenter().segment(rgb)

    def atlas(self, name: str) -> Atlas | None:
        self.generator(name)  # the name check
        try:
            return self._load(("atlas", name), lambda: load_atlas(self.root / name))
        except CheckpointError as exc:  # a damaged atlas must not stop the app: it works without one
            self.problems.append(str(exc))
            self._cache[("atlas", name)] = None
            return None

    def _load(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def size(self, name: str) -> int:
        return int(self.vessel_models[name]["model_config"]["image_size"])

    # --- generation -----------------------------------------------------------------------
    def code(self, name: str, seed: int, offsets: list[float] | None = None) -> np.ndarray:
        """The prior sample of `seed`, moved `offsets[k]` standard deviations along direction k."""
        generator = self.generator(name)
        z = generator.model.latents([int(seed)])[0].numpy().astype(np.float32)
        atlas = self.atlas(name)
        if offsets and atlas is not None:
            for offset, direction, scale in zip(offsets, atlas.directions, atlas.scales):
                z = z + float(offset) * float(scale) * direction
        return z

    def decode(self, name: str, codes: np.ndarray) -> np.ndarray:
        """(N, l) -> (N, S, S) bool vessel maps."""
        return self.generator(name).decode(np.atleast_2d(codes)) >= 0.5

    def photos(self, maps: np.ndarray, grade: int | None = None, fov_height: float = 1.0, lesions: list[Lesion] | None = None,
               look_seed: int | None = None, model: str | None = None, photo_detail: bool = False) -> np.ndarray | None:
        """Vessel maps (N, S, S) -> fundus photos (N, S, S, 3), or None without a translator.
        model: the vessel model that drew the maps (its own translator paints them, if it has one).
        look_seed picks the photos' overall look (a training photo's colour and contrast); None: the average look.
        lesions: drawn on every photo; None: a lesion-drawing translator gets lesions composed to
        match the grade (seeded by look_seed), others none. photo_detail: the photos' fine detail
        redrawn by the photo detailer (seeded by look_seed too)."""
        from retinagan.inference import fov_disc

        translator = self.translator(model, photo_detail)
        if translator is None:
            return None
        if maps.shape[-1] != translator.size:
            raise RetinaganError(f"the translator makes {translator.size} px photos; these maps are {maps.shape[-1]} px")
        grade = grade if translator.grades > 0 else None
        fov = fov_disc(translator.size, fov_height)
        seed = 0 if look_seed is None else int(look_seed)
        placed = [translator.plan_lesions(m, fov, grade, seed, lesions) for m in maps]
        return translator.translate(maps, fov, grade, look_seed=look_seed, lesions=placed)

    def _lesion_translator(self, model: str | None = None):
        translator = self.translator(model)
        if translator is None:
            raise RetinaganError("placing lesions needs a translator in the checkpoints folder")
        return translator

    def insert(self, photo: np.ndarray, vessels: np.ndarray, lesions: list[Lesion], grade: int | None = None,
               model: str | None = None) -> np.ndarray:
        """Lesions placed into a photo of this translator's size (FOV: its non-black pixels);
        the photo is unchanged outside the lesions' regions. model: as for photos()."""
        translator = self._lesion_translator(model)
        photo = np.asarray(photo, dtype=np.uint8)
        fov = photo.max(axis=2) > 12
        grade = grade if translator.grades > 0 else None
        return translator.insert(photo, np.asarray(vessels) > 0, lesions, fov, grade)

    def generate(self, name: str, seed: int, grade: int | None = None, offsets: list[float] | None = None,
                 fov_height: float = 1.0, lesions: list[Lesion] | None = None,
                 fine_vessels: bool = False, detail: bool = False, photo_detail: bool = False
                 ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """-> (vessel map (S, S) bool, photo (S, S, 3) uint8 or None, code (l,)). fine_vessels: the
        decoded tree thinned and given fine vessels grown with `seed` (retinagan.fine_vessels);
        detail: the decoded tree redrawn by the detailer from noise of `seed`. Either way moving a
        slider keeps the seed's growth or noise and reshapes only what the model draws. photo_detail:
        the photo's fine detail redrawn by the photo detailer (checkpoints/photodetail)."""
        if fine_vessels and detail:
            raise RetinaganError("choose procedural fine vessels or the detailer, not both")
        z = self.code(name, seed, offsets)
        if detail:
            from retinagan.inference import fov_disc

            generator = self.generator(name, detail=True)
            vessels = generator.add_detail(generator.decode(np.atleast_2d(z)), [int(seed)], fov_disc(self.size(name), fov_height))
        else:
            vessels = self.decode(name, z)
        if fine_vessels:
            vessels = self.generator(name, fine_vessels=True).add_fine(vessels, [int(seed)])
        photos = self.photos(vessels, grade, fov_height, lesions, look_seed=int(seed), model=name, photo_detail=photo_detail)
        return vessels[0], None if photos is None else photos[0], z

    # --- real trees -------------------------------------------------------------------------
    def tree_from_photo(self, rgb: np.ndarray, size: int) -> np.ndarray:
        """A fundus photo -> its vessel tree as the models saw them (segmented, FOV-cropped, disc on the right)."""
        from retinagan.pipeline import prepare_arrays

        return prepare_arrays(rgb, None, None, self.segmenter(), size)["vessels"]

    def prepared_photo(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A fundus photo -> (photo, vessel map) as the translator sees photos: FOV-cropped, at its
        size, disc on the right, black outside the FOV; for placing lesions into it."""
        from retinagan.pipeline import prepare_arrays

        translator = self._lesion_translator()
        arrays = prepare_arrays(rgb, None, None, self.segmenter(), translator.size)
        return (arrays["images"] * arrays["fov"][..., None]).astype(np.uint8), arrays["vessels"]

    def repaint(self, rgb: np.ndarray, seed: int = 0) -> dict:
        """A real fundus photo -> the translator's photo of its own tree, next to it: keys photo
        (the real one as the translator sees photos: FOV-cropped, disc on the right), vessels (its
        segmented tree), painted (the tree translated in the photo's own look and FOV, with the
        lesion detector's maps of the photo for a lesion-drawing translator, as `evaluate fundus`
        scores its own-conditions photos), painted_other_look (the same in the look of a training
        photo picked by `seed`, as generated photos get it) and lesions (spots found per type)."""
        from retinagan.lesions import detect_lesions, lesion_counts
        from retinagan.models.pix2pix import looks_of
        from retinagan.pipeline import prepare_arrays

        translator = self.translator()
        if translator is None:
            raise RetinaganError(f"no translator in {self.root}: repainting needs one")
        arrays = prepare_arrays(rgb, None, None, self.segmenter(), translator.size)
        photo, fov, vessels = arrays["images"], arrays["fov"], arrays["vessels"]
        own = {}
        found = None
        if translator.draws_lesions:
            found = detect_lesions(photo, fov, vessels)
            own["lesion_maps"] = found[None]
        look = None
        if translator.model.config.appearance_dim > 0:
            look = looks_of(photo[None], fov[None])
        painted = translator.translate(vessels[None], fov, look_seed=int(seed), looks=look, **own)[0]
        other = translator.translate(vessels[None], fov, look_seed=int(seed), **own)[0]
        return {"photo": (photo * fov[..., None]).astype(np.uint8), "vessels": vessels, "painted": painted, "painted_other_look": other,
                "lesions": lesion_counts(found) if found is not None else {}}

    @staticmethod
    def tree_from_map(mask: np.ndarray, size: int) -> np.ndarray:
        """A binary vessel map (any size; assumed FOV-cropped and disc-right already) -> (size, size) bool."""
        from retinagan.data.preprocess import resize

        if mask.shape[0] != mask.shape[1]:
            side = max(mask.shape)
            square = np.zeros((side, side), dtype=bool)
            top, left = (side - mask.shape[0]) // 2, (side - mask.shape[1]) // 2
            square[top : top + mask.shape[0], left : left + mask.shape[1]] = mask
            mask = square
        return resize(mask, size)

    def encode(self, name: str, tree: np.ndarray, refine: bool = False) -> np.ndarray:
        """A tree's latent code: the encoder's, or (refine) that code refined through the decoder
        (inference.refine_codes, REFINE_STEPS steps: closer reconstructions of unseen trees)."""
        from retinagan.inference import REFINE_STEPS

        if not refine:
            return self.generator(name).encode(tree[None])[0]
        # Refining takes 1-3 s a tree: keep the last codes, so changing frames, path or grade
        # between two interpolations of the same trees costs nothing.
        tree = np.ascontiguousarray(tree, dtype=bool)
        key = (name, tree.shape, hashlib.sha1(tree.tobytes()).hexdigest())
        if key in self._refined:
            self._refined.move_to_end(key)
        else:
            self._refined[key] = self.generator(name).encode(tree[None], refine=REFINE_STEPS)[0]
            while len(self._refined) > REFINED_KEPT:
                self._refined.popitem(last=False)
        return self._refined[key].copy()

    def interpolate(self, name: str, za: np.ndarray, zb: np.ndarray, frames: int = 8, mode: str = "linear"):
        """-> (codes (F, l), maps (F, S, S) bool) along the path from code A to code B."""
        if mode not in ("linear", "spherical"):
            raise ValueError(f"mode must be 'linear' or 'spherical', not {mode!r}")
        if not 2 <= frames <= 64:
            raise RetinaganError("frames must be within 2-64")
        steps = np.linspace(0, 1, frames)
        codes = np.stack([(1 - t) * za + t * zb if mode == "linear" else slerp(za, zb, t) for t in steps]).astype(np.float32)
        return codes, self.decode(name, codes)

    # --- export -------------------------------------------------------------------------------
    def export_zip(self, name: str, n: int, seed: int, grades: list[int] | None, progress=None, fine_vessels: bool = False,
                   look_photos: list | None = None, fov_height: float = 1.0, detail: bool = False, photo_detail: bool = False) -> Path:
        """n (vessel map, photo) pairs into a zip with manifest.csv; grades cycle over the list.
        The pairs are those `python -m retinagan generate [--fine-vessels] [--looks-from]` makes
        (retinagan.export); look_photos: image files whose looks (colour, contrast) the photos
        take, each sample one picked by its seed, instead of the translator's training photos';
        fov_height: the field of view cut at top and bottom to this share of its height (--fov-height);
        photo_detail: every photo's fine detail redrawn by the photo detailer (--photo-detail)."""
        from retinagan.export import export_samples
        from retinagan.inference import DETAIL_SUFFIX, FINE_SUFFIX, fov_disc

        if not 1 <= n <= 10000:
            raise RetinaganError("number of pairs must be within 1-10000")
        if not 0.5 <= fov_height <= 1:
            raise RetinaganError("field of view height must be within 0.5-1")
        translator = self.translator(name, photo_detail)
        label = self.translator_label(name) if translator is not None else ""
        if photo_detail and translator is not None:
            label += f"+photodetail:{PHOTO_DETAILER}"
        if look_photos:
            if translator is None:
                raise RetinaganError("photos for the looks need a translator; none is installed")
            translator = translator.with_looks_from(look_photos)  # a copy: the loaded one keeps its looks for the other tabs
            label += f"+looks:{len(look_photos)} photo{'s' if len(look_photos) > 1 else ''}"
        folder = Path(tempfile.mkdtemp(prefix="retinagan-export-"))
        export_samples(
            self.generator(name, fine_vessels, detail), name + (FINE_SUFFIX if fine_vessels else DETAIL_SUFFIX if detail else ""), seed, n, folder,
            translator=translator,
            translator_name=label, grades=grades or None,
            fov=fov_disc(translator.size, fov_height) if translator is not None else None, progress=progress,
        )
        target = folder.with_suffix(".zip")
        top = f"retinagan-{name}{'-fine-vessels' if fine_vessels else '-detail' if detail else ''}{'-looks' if look_photos else ''}{'-photodetail' if photo_detail else ''}-seed{seed}"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    archive.write(path, f"{top}/{path.relative_to(folder)}")
        return target

    def model_table(self) -> list[dict]:
        """The measured scores stored in each vessel model's config.json (and the translator's)."""
        table = []
        for name in self.names():
            metrics = self.vessel_models[name].get("metrics", {})
            vessels = metrics.get("evaluate_vessels", {})
            table.append({
                "model": name,
                "latent": self.vessel_models[name]["model_config"]["latent_dim"],
                "morphology distance": vessels.get("morphology_distance"),
                "x real-vs-real floor": vessels.get("ratio_to_floor"),
                "recon Dice, held-out training-set maps": metrics.get("holdout_reconstruction_dice"),
                "recon Dice, DRIVE test": vessels.get("reconstruction_dice_drive_test"),
                "recon Dice, held-out, refined codes": vessels.get("reconstruction_dice_holdout_refined"),
                "recon Dice, DRIVE test, refined codes": vessels.get("reconstruction_dice_drive_test_refined"),
                "diversity (pairwise Dice)": vessels.get("diversity_pairwise_dice"),
                "nearest-training Dice": vessels.get("nearest_training_dice_mean"),
            })
        from retinagan.checkpoint import read_config

        labels = [self.translator_name] + [self.translator_label(name) for name in self.names() if self.paired(name)]
        for label in labels:
            if not (self.root / label / "config.json").is_file():
                continue
            metrics = read_config(self.root / label).get("metrics", {})
            table.append(self._fundus_row(f"{label} (translator)", metrics.get("evaluate_fundus", {})))
            if "evaluate_fundus_photodetail" in metrics:  # measured with every photo's fine detail redrawn
                table.append(self._fundus_row(f"{label} (translator + photo detail)", metrics["evaluate_fundus_photodetail"]))
        return table

    @staticmethod
    def _fundus_row(model: str, fundus: dict) -> dict:
        """model_table's row of a translator's stored evaluate fundus scores."""
        return {
            "model": model,
            "FID, photos of real trees": fundus.get("fid_from_real_maps"),
            "FID, photos of real trees, mean over look sets": fundus.get("fid_from_real_maps_look_sets_mean"),
            "look sets": fundus.get("look_sets"),
            "FID, photos of real trees with their own lesions and grade": fundus.get("fid_from_real_maps_own_conditions"),
            "FID, ... with another real photo's lesions and grade": fundus.get("fid_from_real_maps_drawn_conditions"),
            "FID, ... and their own photo's look": fundus.get("fid_from_real_maps_own_look"),
            "FID, real vs real (floor)": fundus.get("fid_real_vs_real"),
            "KID, photos of real trees": fundus.get("kid_from_real_maps"),
            "vessel fidelity Dice (held-out)": fundus.get("fidelity_dice_holdout"),
        }


def gif_bytes(frames: list[np.ndarray], duration_ms: int = 160) -> bytes:
    """Frames (H, W[, 3]) uint8 -> an endlessly looping animated GIF, back and forth."""
    images = [Image.fromarray(f) for f in frames]
    images = images + images[-2:0:-1]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return buffer.getvalue()
