"""retinagan explorer (Gradio). UI wiring only: every model call goes through
retinagan.explorer.Explorer (no torch code here).

python app.py [--host 127.0.0.1] [--port 7860] [--share] [--data DIR] [--checkpoints checkpoints]
"""
from __future__ import annotations

import argparse
import collections
import functools
import hashlib
import io
import os
import tempfile
import threading
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from retinagan.data.imageio import read_mask, read_rgb  # noqa: E402
from retinagan.errors import RetinaganError  # noqa: E402
from retinagan.explorer import Explorer, OneThread, gif_bytes  # noqa: E402
from retinagan.lesions import LESION_TYPES, Lesion  # noqa: E402
from retinagan.visual import grid, overlay  # noqa: E402

MAX_UPLOAD = "40mb"
SLIDERS = 6  # latent-direction sliders shown (a model's atlas may offer fewer)
TREES = ("as the model draws it", "thin vessels learnt (detailer)", "fine vessels by rule (procedural)")
TREES_INFO = ("the vessel models leave out the thinnest vessels. The detailer, a diffusion model trained on DRIVE's "
              "hand-drawn maps, redraws the model's tree with them (a few seconds a tree on a CPU; the same seed, the same tree); the "
              "procedural option grows them by rule (retinagan.fine_vessels); its photos show small dark vessel ends that a "
              "lesion detector may count as microaneurysms")
PHOTO_DETAIL_INFO = ("the translator's photos lack real photos' fine grain, specks and sharp edges. The photo detailer, a "
                     "diffusion model trained on real photos, keeps each photo's coarse part and draws its detail finer than "
                     "4 px anew (under a second a photo on a CPU; the same seed, the same photo). More realistic to look at, but "
                     "a segmenter trained on such pairs did worse, and some of its specks read as lesions, so the grade orders the "
                     "lesions found less well (README): leave it off for segmentation or grading data. Lesions you ask for stay as painted")
GRADES = ["unknown", "0 no DR", "1 mild", "2 moderate", "3 severe", "4 proliferative"]
CSS = ".hidden-bridge {display: none !important}"
# Clicking a point on the plotly map writes its key into a hidden textbox (plotly's click
# events do not reach Python through gr.Plot), which then runs the pick callback.
MAP_CLICK_JS = """
(...inputs) => {
  const attach = () => {
    document.querySelectorAll('#latent-map .js-plotly-plot').forEach((div) => {
      if (div.__retinagan || !div.on) return;
      div.__retinagan = true;
      div.on('plotly_click', (event) => {
        const point = event.points && event.points[0];
        if (!point || point.customdata === undefined) return;
        const box = document.querySelector('#map-pick textarea, #map-pick input');
        if (!box) return;
        box.value = String(Array.isArray(point.customdata) ? point.customdata[0] : point.customdata);
        box.dispatchEvent(new Event('input', {bubbles: true}));
      });
    });
  };
  new MutationObserver(attach).observe(document.body, {childList: true, subtree: true});
  attach();
  return inputs;  // a js step's result replaces the event's inputs: hand them on unchanged
}
"""

state: dict = {"explorer": None, "data": None, "real_trees": None}


class PngFiles:
    """Image outputs as PNG files written at zlib level 1: a 256-px photo encodes in ~5 ms,
    against ~13 ms at the level 6 Gradio uses for arrays (lossless both ways, ~20% larger).
    They go straight into Gradio's file cache (so it serves them without hashing and copying
    each), named by content; only the newest `keep` are kept."""

    def __init__(self, keep: int = 256):
        self.folder: Path | None = None
        self.keep = keep
        self.written: collections.deque[Path] = collections.deque()
        self.lock = threading.Lock()

    def __call__(self, image: np.ndarray | None) -> str | None:
        if image is None:
            return None
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "png", compress_level=1)
        data = buffer.getvalue()
        with self.lock:
            if self.folder is None:
                root = Path(gr.utils.get_upload_folder())
                root.mkdir(parents=True, exist_ok=True)
                self.folder = Path(tempfile.mkdtemp(prefix="retinagan-png-", dir=root))
            path = self.folder / f"{hashlib.sha1(data).hexdigest()}.png"
            if not path.exists():
                path.write_bytes(data)
                self.written.append(path)
            while len(self.written) > self.keep:
                self.written.popleft().unlink(missing_ok=True)
        return str(path)


png_file = PngFiles()


SHIPPED = Path(__file__).resolve().parent / "checkpoints"  # whatever folder the app is started from


def explorer() -> Explorer:
    """The models, every call run on one thread (see OneThread: ~35% faster per call here)."""
    if state["explorer"] is None:
        state["explorer"] = OneThread(Explorer(state.get("checkpoints") or SHIPPED))
    return state["explorer"]


def _grade(label: str | None) -> int | None:
    return None if not label or label == "unknown" else int(label.split()[0])


def _error(exc: Exception) -> str:
    return f"**Could not do that:** {exc}"


def _no_models() -> str:
    return "No vessel model found in the checkpoints folder; see the README for how to train or download one."


# --- Generate -------------------------------------------------------------------------------
def tree_options(choice: str | None) -> dict:
    """The Thin vessels choice -> keyword flags for the explorer (fine_vessels, detail)."""
    return {"fine_vessels": choice == TREES[2], "detail": choice == TREES[1]}


def tree_source(model: str, fine_vessels: bool = False, detail: bool = False) -> str:
    return f"{model} + procedural fine vessels" if fine_vessels else f"{model} redrawn by the detailer" if detail else model


def generate(seed, grade, model, *offsets, fov_height=1.0, fine_vessels=False, detail=False, photo_detail=False):
    """(seed, grade, model[, slider offsets]) -> (vessel map, fundus photo, message). photo_detail:
    the photo's fine detail redrawn by the photo detailer."""
    try:
        ex = explorer()
        if not model:
            return None, None, _no_models()
        vessels, photo, _ = ex.generate(model, int(seed), _grade(grade), [float(o) for o in offsets], fov_height,
                                        fine_vessels=bool(fine_vessels), detail=bool(detail), photo_detail=bool(photo_detail))
    except (RetinaganError, ValueError) as exc:
        return None, None, _error(exc)
    source = tree_source(model, fine_vessels, detail)
    note = f"{source}, seed {int(seed)}, vessels cover {vessels.mean() * 100:.1f}% of the image"
    if photo is not None and photo_detail:
        note += "; the photo's fine detail drawn by the photo detailer"
    if photo is None:
        note += " (no translator in the checkpoints folder: vessel tree only)"
    elif _grade(grade) is not None and not explorer().translator(model).grades:
        note += f". This translator was trained without grades: grade {_grade(grade)} does not change the photo yet"
    return vessels.astype(np.uint8) * 255, photo, note


def generate_files(seed, grade, model, *offsets, fov_height=1.0, fine_vessels=False, detail=False, photo_detail=False):
    """generate() with the images as fast-encoded PNG files (the live Generate tab)."""
    vessels, photo, note = generate(seed, grade, model, *offsets, fov_height=fov_height, fine_vessels=fine_vessels, detail=detail,
                                    photo_detail=photo_detail)
    return png_file(vessels), png_file(photo), note


def generate_api(seed: float, grade: str, model: str):
    """The stable /generate endpoint: (seed, grade, model) -> (vessel map, photo) as PNG files."""
    vessels, photo, _ = generate_files(seed, grade, model)
    return vessels, photo


def random_seed():
    return int(np.random.default_rng().integers(0, 2**31 - 1))


def slider_updates(model: str):
    atlas = explorer().atlas(model) if model else None
    labels = atlas.labels if atlas is not None else []
    return [gr.update(label=labels[k] if k < len(labels) else f"direction {k + 1} (no atlas)", value=0, interactive=k < len(labels))
            for k in range(SLIDERS)]


def save_pair(vessels, photo):
    """The current pair as a zip of two PNGs, for the download button."""
    import zipfile

    from retinagan.data.imageio import write_png

    if vessels is None:
        return None
    folder = Path(tempfile.mkdtemp(prefix="retinagan-pair-"))
    write_png(folder / "vessels.png", np.asarray(vessels) > 127)
    if photo is not None:
        write_png(folder / "fundus.png", np.asarray(photo, dtype=np.uint8))
    target = folder / "retinagan-pair.zip"
    with zipfile.ZipFile(target, "w") as archive:
        for name in ("vessels.png", "fundus.png"):
            if (folder / name).is_file():
                archive.write(folder / name, name)
    return str(target)


# --- Trees from files -----------------------------------------------------------------------
def example_photo_path() -> str:
    """skimage's bundled retina photo, saved once to a temp file so it travels like an upload."""
    from PIL import Image
    from skimage import data

    path = os.path.join(tempfile.gettempdir(), "retinagan-skimage-retina.png")
    if not os.path.exists(path):
        Image.fromarray(data.retina()).save(path)
    return path


def real_trees() -> dict[str, str]:
    """Choices for the interpolation ends: skimage's retina, plus photos under --data."""
    if state["real_trees"] is None:
        choices = {"skimage retina photo": example_photo_path()}
        if state.get("data"):
            from retinagan.data.readers import read_dataset

            try:
                for sample in read_dataset(state["data"], strict=False)[:200]:
                    choices[f"{sample.source} {sample.id}"] = str(sample.image)
            except RetinaganError as exc:
                print(f"--data {state['data']}: {exc}")
        state["real_trees"] = choices
    return state["real_trees"]


@functools.lru_cache(maxsize=32)
def _tree_cached(path: str, mtime: float, size: int) -> np.ndarray:
    ex = explorer()
    rgb = read_rgb(path, name=os.path.basename(path))
    if _looks_like_map(rgb):
        return ex.tree_from_map(read_mask(path), size)
    return ex.tree_from_photo(rgb, size)


def tree_from_upload(path: str, model: str) -> np.ndarray:
    """A photo (segmented on the fly) or a binary vessel map -> the model's input tree (cached per file)."""
    if not os.path.isfile(path):
        raise RetinaganError(f"{os.path.basename(path)}: file not found")
    return _tree_cached(path, os.path.getmtime(path), explorer().size(model))


def _looks_like_map(rgb: np.ndarray) -> bool:
    """Black-and-white with few grey levels: a vessel map, not a photo."""
    grey = np.ptp(rgb.astype(np.int16), axis=2).max() < 8
    return bool(grey and np.isin(rgb[..., 0], (0, 255)).mean() > 0.98)


TRAINING_PREFIX = "training tree: "


def tree_choices(model: str | None) -> list[str]:
    """skimage's photo and --data photos, then the model's encoded training trees (from its atlas)."""
    choices = list(real_trees())
    atlas = explorer().atlas(model) if model else None
    if atlas is not None:
        choices += [f"{TRAINING_PREFIX}{row['source']} {row['id']}" for row in atlas.meta]
    return choices


def _pick_code(choice: str | None, upload: str | None, model: str, refine: bool = False) -> np.ndarray:
    """The latent code of an interpolation end: stored for training trees (the encoder's code),
    else encoded now (refine: and refined through the decoder)."""
    if not upload and choice and choice.startswith(TRAINING_PREFIX):
        atlas = explorer().atlas(model)
        names = [f"{TRAINING_PREFIX}{row['source']} {row['id']}" for row in atlas.meta] if atlas else []
        if choice not in names:
            raise RetinaganError(f"{choice[len(TRAINING_PREFIX):]} is not in {model}'s atlas")
        return atlas.codes[names.index(choice)]
    return explorer().encode(model, _pick_tree(choice, upload, model), refine)


def _pick_tree(choice: str | None, upload: str | None, model: str) -> np.ndarray:
    if upload:
        return tree_from_upload(upload, model)
    if not choice:
        raise RetinaganError("choose a tree or upload a photo / vessel map for both ends")
    return tree_from_upload(real_trees()[choice], model)


# --- Interpolate ------------------------------------------------------------------------------
def interpolate(model, choice_a, upload_a, choice_b, upload_b, frames, mode, grade, refine=True, photo_detail=False,
                progress=gr.Progress()):
    """-> (frame strip, animation GIF path, photo strip, GIF file for download, message).
    refine: refine the codes of real trees through the decoder (closer to the trees; a few seconds
    a tree, then kept). photo_detail: the photos' fine detail redrawn by the photo detailer (one
    seed for every frame, so the detail changes only where the photo does)."""
    try:
        if not model:
            return None, None, None, None, _no_models()
        ex = explorer()
        refine = bool(refine)
        progress(0.0, desc="encoding tree A" + (" and refining its code" if refine else ""))
        za = _pick_code(choice_a, upload_a, model, refine)
        progress(0.5, desc="encoding tree B" + (" and refining its code" if refine else ""))
        zb = _pick_code(choice_b, upload_b, model, refine)
        progress(0.9, desc="decoding the path" + (" and drawing the photos' detail" if photo_detail else ""))
        _, maps = ex.interpolate(model, za, zb, int(frames), mode)
        photos = ex.photos(maps, _grade(grade), model=model, photo_detail=bool(photo_detail))
    except (RetinaganError, ValueError) as exc:
        return None, None, None, None, _error(exc)
    strip = grid(maps.astype(np.float32), columns=len(maps))
    frames_rgb = [np.repeat(m[..., None].astype(np.uint8) * 255, 3, 2) for m in maps]
    if photos is not None:
        frames_rgb = [np.concatenate([f, p], axis=1) for f, p in zip(frames_rgb, photos)]
    gif = Path(tempfile.mkdtemp(prefix="retinagan-gif-")) / f"interpolation-{mode}.gif"
    gif.write_bytes(gif_bytes(frames_rgb))
    photo_strip = grid(photos, columns=len(photos)) if photos is not None else None
    detailed = ", photos' fine detail by the photo detailer" if photo_detail and photos is not None else ""
    return strip, str(gif), photo_strip, str(gif), f"{len(maps)} frames, {mode} path in the {model} latent space{detailed}"


# --- Latent map -------------------------------------------------------------------------------
def latent_map(model, colour_by, current_seed):
    import plotly.graph_objects as go

    fig = go.Figure()
    if not model:
        return fig, _no_models()
    ex = explorer()
    atlas = ex.atlas(model)
    if atlas is None:
        return fig, f"{model} has no atlas yet: `python -m retinagan atlas --checkpoint checkpoints/{model} --data PREPARED.npz`"
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(atlas.meta):
        key = row["source"] if colour_by == "source" else ("grade unknown" if row["grade"] < 0 else f"grade {row['grade']}")
        groups.setdefault(key, []).append(i)
    for key in sorted(groups):
        idx = groups[key]
        fig.add_trace(go.Scatter(
            x=atlas.points[idx, 0], y=atlas.points[idx, 1], mode="markers", name=key, marker={"size": 8},
            customdata=[f"real:{i}" for i in idx], text=[f"{atlas.meta[i]['source']} {atlas.meta[i]['id']}" for i in idx],
            hovertemplate="%{text}<extra></extra>",
        ))
    fig.add_trace(go.Scatter(
        x=atlas.sample_points[:, 0], y=atlas.sample_points[:, 1], mode="markers", name="generated (seeds)",
        marker={"size": 5, "symbol": "x", "color": "grey"}, customdata=[f"seed:{i}" for i in range(len(atlas.sample_points))],
        text=[f"seed {i}" for i in range(len(atlas.sample_points))], hovertemplate="%{text}<extra></extra>",
    ))
    x, y = atlas.locate(ex.code(model, int(current_seed)))
    fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers", name=f"current (seed {int(current_seed)})",
                             marker={"size": 16, "symbol": "star", "color": "red"}, customdata=[f"seed:{int(current_seed)}"]))
    fig.update_layout(height=520, margin={"l": 10, "r": 10, "t": 30, "b": 10}, title=f"{atlas.method.upper()} of {model}'s latent space",
                      legend={"itemsizing": "constant"})
    return fig, f"{len(atlas.meta)} encoded real trees, {len(atlas.sample_points)} generated samples. Click a point to decode it."


def pick_point(model, key, grade):
    """A clicked point ('real:i' or 'seed:s') -> (decoded tree, photo, message)."""
    if not key or ":" not in key or not model:
        return None, None, ""
    try:
        ex = explorer()
        atlas = ex.atlas(model)
        kind, value = key.split(":", 1)
        if kind == "real" and atlas is not None:
            row = atlas.meta[int(value)]
            code, what = atlas.codes[int(value)], f"{row['source']} {row['id']} (grade {row['grade'] if row['grade'] >= 0 else 'unknown'}), decoded"
        else:
            code, what = ex.code(model, int(value)), f"generated sample, seed {int(value)}"
        vessels = ex.decode(model, code)
        photos = ex.photos(vessels, _grade(grade), model=model)
    except (RetinaganError, ValueError, IndexError) as exc:
        return None, None, _error(exc)
    return vessels[0].astype(np.uint8) * 255, None if photos is None else photos[0], what


# --- Compare ----------------------------------------------------------------------------------
def compare(choice, upload, seed, refine=True, progress=gr.Progress()):
    """The same input through every vessel model, and samples from the same seed. refine: the
    reconstruction comes from the refined code (the encoder's Dice is given beside it)."""
    try:
        ex = explorer()
        names = ex.names()
        if not names:
            return None, None, _no_models()
        tree = None
        if choice or upload:
            tree = _pick_tree(choice, upload, names[0])
        rows, recon_notes = [], []
        for k, name in enumerate(names):
            row = []
            if tree is not None:
                from retinagan.metrics.segmentation import dice

                progress(k / len(names), desc=f"{name}: encoding" + (" and refining the code" if refine else ""))
                code = ex.encode(name, tree)
                note = f"{name}: Dice {dice(ex.decode(name, code)[0], tree):.2f}"
                if refine:
                    code = ex.encode(name, tree, refine=True)
                    note += f" → {dice(ex.decode(name, code)[0], tree):.2f} refined"
                recon = ex.decode(name, code)[0]
                row.append(recon)
                recon_notes.append(note)
            row += [ex.generate(name, int(seed) + k)[0] for k in range(3)]
            rows.append(row)
    except (RetinaganError, ValueError) as exc:
        return None, None, _error(exc)
    columns = len(rows[0])
    images = [m.astype(np.float32) for row in rows for m in row]
    if tree is not None:
        images = [tree.astype(np.float32)] + [np.zeros_like(tree, dtype=np.float32)] * (columns - 1) + images
    header = "Rows: " + ("input tree, then " if tree is not None else "") + ", ".join(names)
    header += ". Columns: " + ("reconstruction, " if tree is not None else "") + f"samples of seeds {int(seed)}-{int(seed) + 2}."
    if recon_notes:
        header += " Reconstruction " + ("(encoder → code refined through the decoder) " if refine else "") + "; ".join(recon_notes)
    return grid(images, columns=columns), table_rows(), header


def compare_photos(seed, photo_detail=False, progress=gr.Progress()):
    """Every vessel model's samples of the Compare grid (seeds seed..seed+2) as photos, each
    painted by that model's translator: its own for an end-to-end pair, the shared one otherwise;
    photo_detail: their fine detail redrawn by the photo detailer."""
    try:
        ex = explorer()
        names = ex.names()
        if not names:
            return None, _no_models()
        photos, rows = [], []
        for k, name in enumerate(names):
            progress(k / len(names), desc=f"{name}: painting its samples")
            for offset in range(3):
                photo = ex.generate(name, int(seed) + offset, photo_detail=bool(photo_detail))[1]
                if photo is None:
                    return None, "No translator in the checkpoints folder: the trees above are all there is."
                photos.append(photo)
            rows.append(f"{name} (painted by {ex.translator_label(name)})")
    except (RetinaganError, ValueError) as exc:
        return None, _error(exc)
    detailed = ", fine detail by the photo detailer" if photo_detail else ""
    return grid(np.stack(photos), columns=3), "Photos, rows: " + "; ".join(rows) + f". Columns: seeds {int(seed)}-{int(seed) + 2}, grade unknown{detailed}."


def table_rows():
    import pandas as pd

    return pd.DataFrame(explorer().model_table())


# --- Lesions ----------------------------------------------------------------------------------
def lesion_base(model, seed, grade, photo_detail=False):
    """Start a lesion canvas from a sample with no lesions of its own (lesions are placed by hand):
    (canvas, base state {photo, vessels, grade}, lesion list, message). photo_detail: the photo's
    fine detail redrawn by the photo detailer (lesions placed later keep the translator's pixels)."""
    try:
        ex = explorer()
        if not model:
            return None, None, [], _no_models()
        vessels = ex.decode(model, ex.code(model, int(seed)))
        photos = ex.photos(vessels, _grade(grade), lesions=[], look_seed=int(seed), model=model, photo_detail=bool(photo_detail))
    except (RetinaganError, ValueError) as exc:
        return None, None, [], _error(exc)
    if photos is None:
        return None, None, [], "Lesions need a translator in the checkpoints folder."
    base = {"photo": photos[0], "vessels": vessels[0], "grade": _grade(grade), "model": model}
    how = "drawn by the translator" if ex.translator(model).draws_lesions else "painted on (this translator takes no lesion maps)"
    detailed = "; the photo's fine detail is the photo detailer's, the lesions' the translator's" if photo_detail else ""
    return photos[0], base, [], f"Click on the photo to place a lesion (lesions are {how}; the photo stays unchanged elsewhere{detailed})."


def lesion_base_upload(path, grade):
    """Start a lesion canvas from the user's own fundus photo (cropped to its FOV, disc on the right)."""
    if not path:
        return None, None, [], "Upload a fundus photo to place lesions on it."
    try:
        rgb = read_rgb(path, name=os.path.basename(path))
        photo, vessels = explorer().prepared_photo(rgb)
    except (RetinaganError, ValueError) as exc:
        return None, None, [], f"**Could not use this file:** {exc}"
    base = {"photo": photo, "vessels": vessels, "grade": _grade(grade)}
    return photo, base, [], "Your photo, cropped to its field of view and turned disc-right. Click on it to place a lesion."


def place_lesion(base, lesions, kind, size, evt: gr.SelectData):
    if base is None:
        return None, lesions, "Make a photo first (button above)."
    x, y = evt.index
    lesions = (lesions or []) + [{"kind": kind, "x": float(x), "y": float(y), "size": float(size)}]
    try:
        return _render(base, lesions), lesions, f"{len(lesions)} lesion(s); last: {kind} at ({x}, {y})"
    except (RetinaganError, ValueError) as exc:
        return base["photo"], lesions[:-1], _error(exc)


def lesions_api(model: str, seed: float, grade: str, lesions_json: str, photo_detail: bool = False):
    """/lesions: (model, seed, grade, lesions as JSON [{"type" | "kind", "x", "y", "radius" | "size"}, ...],
    photo detail) -> (photo, message)."""
    from retinagan.lesions import lesions_from_json

    _, base, _, message = lesion_base(model, seed, grade, photo_detail)
    if base is None:
        return None, message
    try:
        lesions = lesions_from_json(lesions_json or "[]", base["photo"].shape[0])
        return _render(base, lesions), f"{len(lesions)} lesion(s) on {model}, seed {int(seed)}"
    except (RetinaganError, ValueError, TypeError) as exc:
        return None, _error(exc)


def undo_lesion(base, lesions):
    lesions = (lesions or [])[:-1]
    return (None if base is None else _render(base, lesions)), lesions, f"{len(lesions)} lesion(s)"


def _render(base: dict, lesions: list) -> np.ndarray:
    """The base photo with these lesions (dicts or Lesion) inserted."""
    lesions = [d if isinstance(d, Lesion) else Lesion(**d) for d in lesions]
    return explorer().insert(base["photo"], base["vessels"], lesions, base["grade"], model=base.get("model"))


# --- Export -----------------------------------------------------------------------------------
def export(model, n, seed, grades, fine_vessels=False, look_files=None, fov_height=1.0, detail=False, photo_detail=False,
           progress=gr.Progress()):
    """Export callback: (zip, message). Bad input -> message; the zip shown before stays."""
    try:
        if not model:
            return gr.skip(), _no_models()
        chosen = [_grade(g) for g in grades] if grades else None
        looks = list(look_files or [])  # file paths (type="filepath")
        path = explorer().export_zip(model, int(n), int(seed), chosen, progress=lambda f, d: progress(f, desc=d),
                                     fine_vessels=bool(fine_vessels), look_photos=looks, fov_height=float(fov_height),
                                     detail=bool(detail), photo_detail=bool(photo_detail))
    except (RetinaganError, ValueError) as exc:
        return gr.skip(), _error(exc)
    source = tree_source(model, fine_vessels, detail)
    looked = f", in the looks of {len(looks)} uploaded photo{'s' if len(looks) > 1 else ''}" if looks else ""
    looked += ", fine detail by the photo detailer" if photo_detail else ""
    caution = (". **Note:** some of the photo detailer's specks read as lesions, so these photos' lesions follow their "
               "grades less closely (README, *The photo detailer*); for graded data export without it") if photo_detail and chosen else ""
    return str(path), f"{int(n)} pairs from {source}{looked}, seeds {int(seed)}-{int(seed) + int(n) - 1}: {path.name}{caution}"


# --- Segment (kept from the first release) --------------------------------------------------------
def segment_upload(path: str | None):
    """Upload callback: (photo, vessel map, overlay, message). Bad input -> message, no crash."""
    if not path:
        return None, None, None, "Upload a fundus photo, or click *Try skimage's retina photo*."
    try:
        rgb = read_rgb(path, name=os.path.basename(path))
        vessels = explorer().segment(rgb)
    except RetinaganError as exc:
        return None, None, None, f"**Could not use this file:** {exc}"
    share = vessels.mean() * 100
    return rgb, vessels.astype(np.uint8) * 255, overlay(rgb, vessels), f"{rgb.shape[1]}x{rgb.shape[0]} photo, vessels cover {share:.1f}% of it."


def repaint_upload(path: str | None, seed=0):
    """The translator's photo of a real photo's own tree, beside the real one: (real photo as the
    translator sees photos, painted in its own look, painted in a training photo's look, message)."""
    if not path:
        return None, None, None, "Upload a fundus photo above (or try skimage's), then repaint it."
    seed = int(seed or 0)
    if seed < 0:
        return None, None, None, f"**Could not do that:** the look seed must be 0 or more, not {seed}."
    try:
        rgb = read_rgb(path, name=os.path.basename(path))
        out = explorer().repaint(rgb, seed)
    except (RetinaganError, ValueError) as exc:
        return None, None, None, f"**Could not use this file:** {exc}"
    found = ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in out["lesions"].items() if n) or "no lesions"
    return out["photo"], out["painted"], out["painted_other_look"], (
        f"The photo's vessel tree (segmented), painted by `{explorer().translator_name}`: in the photo's own look (colour and "
        f"contrast) and, right, in the look that seed {seed} picks among the training photos'; the lesion detector's spots in the photo were given "
        f"as lesion maps ({found}).")


def build_ui() -> gr.Blocks:
    ex = explorer()
    names = ex.names()
    default = names[0] if names else None
    thin_choices = list(TREES) if ex.has_detailer() else [TREES[0], TREES[2]]
    has_photo_detailer = ex.has_photo_detailer()
    paired = [name for name in names if ex.paired(name)]
    # Models that bring their own translator (end-to-end pairs) say so where they are chosen.
    model_info = f"{', '.join(paired)}: painted by its own translator, trained jointly with it" if paired else None
    trees = tree_choices(default)
    # Gradio keeps a copy of every image it serves: hourly, drop those older than a day.
    with gr.Blocks(title="retinagan explorer", delete_cache=(3600, 86400)) as demo:
        gr.Markdown(
            "# retinagan explorer\nSynthetic retinal vessel trees (VAE / adversarial autoencoders) and the colour fundus "
            "photos a pix2pix translator paints from them. Everything runs locally on the shipped checkpoints."
            + ("" if names else "\n\n**" + _no_models() + "**")
        )
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column(scale=1):
                    model = gr.Dropdown(names, value=default, label="Vessel model", info=model_info)
                    seed = gr.Number(value=0, precision=0, label="Seed")
                    grade = gr.Dropdown(GRADES, value="unknown", label="DR grade")
                    fov_height = gr.Slider(0.75, 1.0, value=1.0, step=0.05, label="Field of view height (1 = full circle)")
                    fine = gr.Radio(thin_choices, value=TREES[0], label="Thin vessels", info=TREES_INFO, elem_id="gen-fine")
                    grain = gr.Checkbox(value=False, label="Photo detail learnt (photo detailer)", info=PHOTO_DETAIL_INFO,
                                        visible=has_photo_detailer, elem_id="gen-photodetail")
                    with gr.Row():
                        shuffle = gr.Button("Random seed")
                        save = gr.Button("Download pair")
                    first = slider_updates(default)
                    sliders = [gr.Slider(-3, 3, value=0, step=0.25, label=u["label"], interactive=u["interactive"]) for u in first]
                    reset = gr.Button("Reset sliders")
                with gr.Column(scale=2):
                    with gr.Row():
                        vessels = gr.Image(label="Vessel tree", image_mode="L", interactive=False, elem_id="gen-vessels", format="png")
                        photo = gr.Image(label="Fundus photo", interactive=False, elem_id="gen-photo", format="png")
                    message = gr.Markdown(elem_id="gen-message")
                    download = gr.File(label="Pair (zip)")
            inputs = [seed, grade, model, *sliders]
            outputs = [vessels, photo, message]
            run = lambda s, g, m, *rest: generate_files(s, g, m, *rest[:-3], fov_height=rest[-3], photo_detail=rest[-1],  # noqa: E731
                                                        **tree_options(rest[-2]))
            options = [fov_height, fine, grain]
            for control in (seed, grade, *sliders, *options):
                control.change(run, inputs + options, outputs, show_progress="hidden", trigger_mode="always_last", api_visibility="undocumented")
            model.change(slider_updates, model, sliders).then(run, inputs + options, outputs, api_visibility="undocumented")
            shuffle.click(random_seed, None, seed, api_visibility="undocumented")
            reset.click(lambda: [0] * SLIDERS, None, sliders, api_visibility="undocumented")
            save.click(save_pair, [vessels, photo], download, api_visibility="undocumented")
            hidden_seed = gr.Number(visible=False)
            hidden_grade = gr.Textbox(visible=False)
            hidden_model = gr.Textbox(visible=False)
            api_vessels = gr.Image(visible=False, format="png")
            api_photo = gr.Image(visible=False, format="png")
            # Off the queue: a plain request/response, ~50 ms less per call than queue + stream.
            gr.Button(visible=False).click(generate_api, [hidden_seed, hidden_grade, hidden_model], [api_vessels, api_photo],
                                           api_name="generate", queue=False)

        with gr.Tab("Interpolate"):
            with gr.Row():
                with gr.Column():
                    choice_a = gr.Dropdown(trees, value=trees[0], label="Tree A")
                    upload_a = gr.File(label="…or upload a photo / vessel map for A", file_types=["image"], type="filepath")
                with gr.Column():
                    choice_b = gr.Dropdown(trees, value=trees[-1], label="Tree B")
                    upload_b = gr.File(label="…or upload a photo / vessel map for B", file_types=["image"], type="filepath")
                with gr.Column():
                    i_model = gr.Dropdown(names, value=default, label="Vessel model", info=model_info)
                    frames = gr.Slider(3, 16, value=8, step=1, label="Frames")
                    mode = gr.Radio(["linear", "spherical"], value="spherical", label="Path")
                    i_grade = gr.Dropdown(GRADES, value="unknown", label="DR grade of the photos")
                    i_refine = gr.Checkbox(value=True, label="Refine the codes of real trees",
                                           info="closer to the trees (aae-lsgan-128, held-out trees: Dice ~0.43 → ~0.60), a few seconds a tree, then kept")
                    i_grain = gr.Checkbox(value=False, label="Photo detail learnt (photo detailer)", info=PHOTO_DETAIL_INFO,
                                          visible=has_photo_detailer, elem_id="interp-photodetail")
                    go_button = gr.Button("Interpolate", variant="primary")
            strip = gr.Image(label="Vessel trees along the path", interactive=False, elem_id="interp-strip")
            with gr.Row():
                animation = gr.Image(label="Animation", type="filepath", interactive=False)
                gif_file = gr.File(label="GIF")
            photo_strip = gr.Image(label="Fundus photos along the path", interactive=False)
            i_message = gr.Markdown()
            i_model.change(lambda m: [gr.update(choices=tree_choices(m))] * 2, i_model, [choice_a, choice_b], api_visibility="undocumented")
            go_button.click(interpolate, [i_model, choice_a, upload_a, choice_b, upload_b, frames, mode, i_grade, i_refine, i_grain],
                            [strip, animation, photo_strip, gif_file, i_message], api_name="interpolate")

        with gr.Tab("Latent map"):
            with gr.Row():
                m_model = gr.Dropdown(names, value=default, label="Vessel model", info=model_info)
                colour_by = gr.Radio(["grade", "source"], value="source", label="Colour by")
                m_seed = gr.Number(value=0, precision=0, label="Current sample (seed)")
                m_grade = gr.Dropdown(GRADES, value="unknown", label="DR grade of the photo")
            with gr.Row():
                plot = gr.Plot(label="Latent map", elem_id="latent-map")
                with gr.Column():
                    picked_tree = gr.Image(label="Picked tree", image_mode="L", interactive=False, elem_id="map-tree")
                    picked_photo = gr.Image(label="Its photo", interactive=False)
                    m_message = gr.Markdown(elem_id="map-message")
            pick = gr.Textbox(elem_id="map-pick", elem_classes="hidden-bridge", label="picked point")
            for control in (m_model, colour_by):
                control.change(latent_map, [m_model, colour_by, m_seed], [plot, m_message], api_visibility="undocumented")
            m_seed.change(latent_map, [m_model, colour_by, m_seed], [plot, m_message], api_name="latent_map")
            demo.load(latent_map, [m_model, colour_by, m_seed], [plot, m_message], js=MAP_CLICK_JS, api_visibility="undocumented")
            pick.change(pick_point, [m_model, pick, m_grade], [picked_tree, picked_photo, m_message], api_name="pick_point")

        with gr.Tab("Compare"):
            with gr.Row():
                c_choice = gr.Dropdown(list(real_trees()), value=list(real_trees())[0], label="Input tree")
                c_upload = gr.File(label="…or upload a photo / vessel map", file_types=["image"], type="filepath")
                c_seed = gr.Number(value=0, precision=0, label="First seed")
                c_refine = gr.Checkbox(value=True, label="Refine the codes", info="reconstruct from refined codes, a few seconds a model")
                c_button = gr.Button("Compare models", variant="primary")
            c_grid = gr.Image(label="Each model: reconstruction of the input, then samples", interactive=False, elem_id="compare-grid")
            c_message = gr.Markdown()
            c_photos = gr.Image(label="Each model's samples as photos, painted by its translator", interactive=False, elem_id="compare-photos")
            c_grain = gr.Checkbox(value=False, label="Photo detail learnt (photo detailer)", info=PHOTO_DETAIL_INFO,
                                  visible=has_photo_detailer, elem_id="compare-photodetail")
            c_photos_message = gr.Markdown(elem_id="compare-photos-message")
            c_table = gr.Dataframe(label="Measured scores (from each checkpoint's config.json)", value=table_rows() if names else None)
            c_button.click(compare, [c_choice, c_upload, c_seed, c_refine], [c_grid, c_table, c_message], api_name="compare").then(
                compare_photos, [c_seed, c_grain], [c_photos, c_photos_message], api_name="compare_photos")
            c_grain.change(compare_photos, [c_seed, c_grain], [c_photos, c_photos_message], api_visibility="undocumented")

        with gr.Tab("Lesions"):
            with gr.Row():
                l_model = gr.Dropdown(names, value=default, label="Vessel model", info=model_info)
                l_seed = gr.Number(value=0, precision=0, label="Seed")
                l_grade = gr.Dropdown(GRADES, value="unknown", label="DR grade")
                l_start = gr.Button("Make the photo", variant="primary")
                l_upload = gr.File(label="…or place lesions on your own photo", file_types=["image"], type="filepath")
            l_grain = gr.Checkbox(value=False, label="Photo detail learnt (photo detailer)", info=PHOTO_DETAIL_INFO,
                                  visible=has_photo_detailer, elem_id="lesion-photodetail")
            with gr.Row():
                kind = gr.Radio(list(LESION_TYPES), value="haemorrhage", label="Lesion type")
                size = gr.Slider(1, 14, value=4, step=1, label="Size (radius, px; microaneurysms 1-3)")
                undo = gr.Button("Undo")
            canvas = gr.Image(label="Click to place a lesion", interactive=False, elem_id="lesion-canvas")
            l_message = gr.Markdown()
            base, placed = gr.State(None), gr.State([])
            l_start.click(lesion_base, [l_model, l_seed, l_grade, l_grain], [canvas, base, placed, l_message], api_visibility="undocumented")
            l_upload.upload(lesion_base_upload, [l_upload, l_grade], [canvas, base, placed, l_message], api_visibility="undocumented")
            canvas.select(place_lesion, [base, placed, kind, size], [canvas, placed, l_message], api_visibility="undocumented")
            undo.click(undo_lesion, [base, placed], [canvas, placed, l_message], api_visibility="undocumented")
            lesion_json = gr.Textbox(visible=False)
            gr.Button(visible=False).click(lesions_api, [l_model, l_seed, l_grade, lesion_json, l_grain], [canvas, l_message], api_name="lesions")

        with gr.Tab("Export"):
            with gr.Row():
                e_model = gr.Dropdown(names, value=default, label="Vessel model", info=model_info)
                e_n = gr.Number(value=16, precision=0, label="Pairs", elem_id="export-n")
                e_seed = gr.Number(value=0, precision=0, label="First seed")
                e_grades = gr.CheckboxGroup(GRADES[1:], label="Grades (cycled; none = unknown)")
            with gr.Row():
                with gr.Column():
                    e_fine = gr.Radio(thin_choices, value=TREES[0], label="Thin vessels", info=TREES_INFO, elem_id="export-fine")
                    e_fov = gr.Slider(0.75, 1.0, value=1.0, step=0.05, label="Field of view height (1 = full circle)")
                    e_grain = gr.Checkbox(value=False, label="Photo detail learnt (photo detailer)", info=PHOTO_DETAIL_INFO,
                                          visible=has_photo_detailer, elem_id="export-photodetail")
                e_looks = gr.File(label="Looks from your camera's photos (optional)", file_count="multiple", file_types=["image"],
                                  type="filepath", elem_id="export-looks")
            gr.Markdown("With photos given, each synthetic photo takes the colour and contrast of one of them (picked by its "
                        "seed) instead of one of the translator's training photos': data for the camera they came from. "
                        "On DRIVE, segmenters trained on photos in DRIVE's looks did as well as on a translator "
                        "fine-tuned to DRIVE (*Train on synthetic* in the README).")
            e_button = gr.Button("Export zip", variant="primary")
            e_file = gr.File(label="Dataset (zip with manifest.csv)")
            e_message = gr.Markdown(elem_id="export-message")
            e_button.click(lambda m, n, sd, g, trees, looks, fov, grain, progress=gr.Progress(): export(
                               m, n, sd, g, look_files=looks, fov_height=fov, photo_detail=grain, progress=progress, **tree_options(trees)),
                           [e_model, e_n, e_seed, e_grades, e_fine, e_looks, e_fov, e_grain], [e_file, e_message], api_name="export")

        with gr.Tab("Segment vessels"):
            with gr.Row():
                upload = gr.File(label="Fundus photo", file_types=["image"], type="filepath")
                with gr.Column():
                    example = gr.Button("Try skimage's retina photo")
                    s_message = gr.Markdown()
            with gr.Row():
                s_photo = gr.Image(label="Photo", interactive=False)
                s_vessels = gr.Image(label="Vessel map", interactive=False, image_mode="L")
                combined = gr.Image(label="Overlay", interactive=False, elem_id="segment-overlay")
            outs = [s_photo, s_vessels, combined, s_message]
            upload.change(segment_upload, upload, outs, api_name="segment")
            example.click(lambda: segment_upload(example_photo_path()), None, outs, api_name="segment_example")
            gr.Markdown("**Repaint**: the translator's photo of this photo's own tree, beside the real one: how close the "
                        "synthetic photos come to a real photo when the tree, look and lesions are the real ones.")
            with gr.Row():
                shown = gr.State(None)  # the photo last segmented (an upload or skimage's)
                r_seed = gr.Number(value=0, precision=0, label="Training-photo look (seed)")
                r_button = gr.Button("Repaint its tree", variant="primary")
            with gr.Row():
                r_real = gr.Image(label="Real (FOV-cropped, disc right)", interactive=False)
                r_own = gr.Image(label="Translator, the photo's own look", interactive=False, elem_id="repaint-own")
                r_other = gr.Image(label="Translator, a training photo's look", interactive=False)
            r_message = gr.Markdown()
            upload.change(lambda path: path, upload, shown, api_visibility="undocumented")
            example.click(example_photo_path, None, shown, api_visibility="undocumented")
            r_button.click(repaint_upload, [shown, r_seed], [r_real, r_own, r_other, r_message], api_visibility="undocumented")
            r_path = gr.Textbox(visible=False)
            gr.Button(visible=False).click(repaint_upload, [r_path, r_seed], [r_real, r_own, r_other, r_message], api_name="repaint")
        demo.load(run, inputs + options, outputs, api_visibility="undocumented")
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description="retinagan explorer")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="ask Gradio for a public share link")
    parser.add_argument("--data", help="a dataset folder or label file whose photos to offer as real trees")
    parser.add_argument("--checkpoints", default=str(SHIPPED), help="folder of the model checkpoints (default: the shipped ones, beside app.py)")
    args = parser.parse_args()
    state["data"], state["checkpoints"] = args.data, args.checkpoints
    build_ui().queue().launch(server_name=args.host, server_port=args.port, share=args.share, max_file_size=MAX_UPLOAD, css=CSS)


if __name__ == "__main__":
    main()
