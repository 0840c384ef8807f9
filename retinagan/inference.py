"""The one facade the CLI and the app call: load models once, run them on numpy images."""
from __future__ import annotations

import copy
import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from retinagan.checkpoint import load_model
from retinagan.errors import RetinaganError
from retinagan.data.preprocess import fov_box, fov_disc, fov_mask, resize, segmenter_input
from retinagan.fine_vessels import FineVesselConfig, add_fine_vessels
from retinagan.lesions import Lesion, compose_for_grade, edited_region, paint
from retinagan.lesions import lesion_maps as lesion_maps_of
from retinagan.losses import bce_dice_per_map
from retinagan.models.layers import fold_batchnorm
from retinagan.models.pix2pix import fov_shape, read_fov_shapes


class Segmenter:
    """Vessel segmentation of a fundus photo of any size and camera."""

    def __init__(self, model: torch.nn.Module, config: dict):
        self.model = model
        self.config = config
        self.threshold = float(config.get("metrics", {}).get("threshold", 0.5))

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> "Segmenter":
        model, config = load_model(folder, expected_kind="segmenter", device=device)
        return cls(model, config)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def probability(self, rgb: np.ndarray, mask: np.ndarray | None = None, views: int = 8) -> np.ndarray:
        """(H, W, 3) uint8 -> (H, W) float32 vessel probability, 0 outside the FOV.

        The photo is rescaled so its FOV is as wide as the training photos' FOV: vessels then
        have the calibre the network learned, whatever the camera's resolution. views (1, 4
        or 8) averages the network over that many mirror/transpose images of the input: on
        DRIVE test 1 -> 8 views gives AUC 0.9769 -> 0.9781, Dice 0.821 -> 0.824.
        """
        mask = fov_mask(rgb) if mask is None else mask
        height, width = mask.shape
        top, bottom, left, right = fov_box(mask)
        scale = self.model.config.fov_width / (right - left)
        if abs(scale - 1) < 0.05:  # same camera scale as training: resampling would only blur
            scale = 1.0
        size = (max(16, round(height * scale)), max(16, round(width * scale)))
        small_rgb = resize(rgb, size) if scale != 1 else rgb
        small_mask = resize(mask, size) if scale != 1 else mask
        x = torch.from_numpy(segmenter_input(small_rgb, small_mask))[None, None].to(self.device)
        multiple = self.model.multiple
        pad_h, pad_w = -size[0] % multiple, -size[1] % multiple
        height_p, width_p = size[0] + pad_h, size[1] + pad_w
        if views > 4:  # transposed views need a square input
            height_p = width_p = max(height_p, width_p)
        x = F.pad(x, (0, width_p - size[1], 0, height_p - size[0]))
        prob = sum(self._view(x, i) for i in range(views)) / views
        prob = prob[..., : size[0], : size[1]]
        if scale != 1:
            prob = F.interpolate(prob, size=(height, width), mode="bilinear", align_corners=False)
        prob = prob[0, 0].cpu().numpy().astype(np.float32)
        return np.where(mask, prob, 0.0).astype(np.float32)

    def _view(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Network output on the index-th of the 8 mirror/transpose images, mapped back."""
        flips = ((), (3,), (2,), (2, 3))[index % 4]
        transpose = index >= 4
        v = x.transpose(2, 3) if transpose else x
        v = v.flip(flips) if flips else v
        p = torch.sigmoid(self.model(v))
        p = p.flip(flips) if flips else p
        return p.transpose(2, 3) if transpose else p

    def segment(self, rgb: np.ndarray, mask: np.ndarray | None = None, views: int = 4) -> np.ndarray:
        """(H, W, 3) uint8 -> (H, W) bool vessel map at the input's resolution."""
        return self.probability(rgb, mask, views) >= self.threshold


class VesselGenerator:
    """A trained VAE or AAE: sample, encode and decode 256x256 vessel trees."""

    def __init__(self, model: torch.nn.Module, config: dict):
        self.model = model
        self.config = config
        self.kind = config["kind"]

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> "VesselGenerator":
        model, config = load_model(folder, expected_kind=("vae", "aae"), device=device)
        return cls(fold_batchnorm(model), config)

    @property
    def latent_dim(self) -> int:
        return self.model.config.latent_dim

    @torch.no_grad()
    def sample(self, seeds: list[int]) -> np.ndarray:
        """One map per seed, (N, S, S) float32 probabilities; map k depends on seeds[k] only: decoded
        one at a time, as a batched decoder's probabilities can differ in the last bits with the
        batch's size on some CPUs (a map thresholded at 0.5 could then gain or lose a pixel)."""
        maps = [self.model.sample([seed])[:, 0].cpu().numpy() for seed in seeds]
        size = self.model.config.image_size
        return np.concatenate(maps) if maps else np.zeros((0, size, size), np.float32)

    @torch.no_grad()
    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(N, l) latent codes -> (N, S, S) float32 probabilities."""
        z = torch.as_tensor(np.asarray(codes, dtype=np.float32), device=next(self.model.parameters()).device)
        return self.model.decode(z)[:, 0].cpu().numpy()

    def encode(self, maps: np.ndarray, refine: int = 0, progress=None) -> np.ndarray:
        """(N, S, S) binary maps at the model's size -> (N, l) codes: the encoder's code means,
        then, with refine > 0, that many steps of refine_codes (closer reconstructions of trees
        the encoder never saw). progress(done, total) is called per batch of maps."""
        device = next(self.model.parameters()).device
        maps = np.asarray(maps, dtype=np.float32)
        codes = []
        for start in range(0, len(maps), ENCODE_BATCH):
            x = torch.as_tensor(maps[start : start + ENCODE_BATCH])[:, None].to(device)
            with torch.no_grad():
                z = self.model.encode(x)
            codes.append((refine_codes(self.model, x, z, refine) if refine > 0 else z).cpu().numpy())
            if progress:
                progress(min(start + ENCODE_BATCH, len(maps)), len(maps))
        return np.concatenate(codes) if codes else np.zeros((0, self.latent_dim), np.float32)


class FineVesselGenerator:
    """A vessel model whose samples get procedural fine vessels (retinagan.fine_vessels): the tree
    of seed k is thinned and grows branches drawn with seed k, so sample k still depends on seed k
    alone. Everything else (encode, decode, model, config) is the model's own: reconstruction
    scores stay the model's, and only `sample` and `add_fine` draw by rule."""

    def __init__(self, base: VesselGenerator, config: FineVesselConfig = FineVesselConfig()):
        self.base = base
        self.fine_config = config

    def __getattr__(self, name: str):
        return getattr(self.base, name)

    def add_fine(self, maps: np.ndarray, seeds: list[int]) -> np.ndarray:
        """(N, S, S) maps (bool, or probabilities >= 0.5) -> (N, S, S) bool, each with fine vessels of its seed."""
        maps = np.asarray(maps)
        if len(maps) != len(seeds):
            raise ValueError(f"{len(maps)} maps but {len(seeds)} seeds")
        if len(maps) == 0:
            return np.zeros(maps.shape, dtype=bool)
        return np.stack([add_fine_vessels(m >= 0.5, seed, config=self.fine_config) for m, seed in zip(maps, seeds)])

    def sample(self, seeds: list[int]) -> np.ndarray:
        """One map per seed, (N, S, S) float32 0/1 (binary: the fine vessels are drawn, not probabilities)."""
        return self.add_fine(self.base.sample(seeds), seeds).astype(np.float32)


class DetailedVesselGenerator:
    """A vessel model whose samples the detailer (retinagan.models.detail, a diffusion model
    trained on DRIVE's hand-drawn maps) redraws as hand-drawn-like trees, thin vessels included:
    tree k is drawn from the model's tree of seed k and noise of seed k, so it depends on seed k
    alone. Reconstructions (encode, decode) stay the model's own."""

    def __init__(self, base: VesselGenerator, detailer: torch.nn.Module, config: dict, steps: int | None = None):
        if detailer.config.image_size != base.model.config.image_size:
            raise RetinaganError(f"the detailer draws {detailer.config.image_size}-px maps, the vessel model "
                                 f"{base.model.config.image_size}-px ones")
        self.base, self.detailer, self.detail_config = base, detailer, config
        self.steps = steps or detailer.config.sample_steps

    def __getattr__(self, name: str):
        return getattr(self.base, name)

    def add_detail(self, maps: np.ndarray, seeds: list[int], fov: np.ndarray | None = None, progress=None) -> np.ndarray:
        """(N, S, S) coarse trees (probabilities) -> (N, S, S) bool detailed trees; fov: one
        (S, S) mask for all (default the full disc) or one per tree."""
        maps = np.asarray(maps, dtype=np.float32)
        if len(maps) != len(seeds):
            raise ValueError(f"{len(maps)} maps but {len(seeds)} seeds")
        fov = fov_disc(maps.shape[-1]) if fov is None else np.asarray(fov, dtype=bool)
        fovs = np.broadcast_to(fov, maps.shape) if fov.ndim == 2 else fov
        return self.detailer.draw(maps, fovs, seeds, self.steps, progress=progress)

    def sample(self, seeds: list[int]) -> np.ndarray:
        """One map per seed, (N, S, S) float32 0/1; a progress bar on stderr from 8 seeds up
        (seconds a tree on a CPU)."""
        from tqdm import tqdm

        with tqdm(total=len(seeds), desc="detailer", unit="tree", disable=len(seeds) < 8) as bar:
            drawn = self.add_detail(self.base.sample(seeds), seeds, progress=lambda done, total: bar.update(done - bar.n))
        return drawn.astype(np.float32)


FINE_SUFFIX = "+fine-vessels"  # appended to a model's name wherever its samples carry procedural fine vessels
DETAIL_SUFFIX = "+detail"  # ... and where the detailer redrew them


def load_detailer(folder: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    model, config = load_model(folder, expected_kind="detail", device=device)
    return model.eval(), config


def load_vessel_generator(folder: str | Path, fine_vessels: bool = False, device: str = "cpu", detail: str | Path | None = None):
    """VesselGenerator.load, wrapped in FineVesselGenerator when fine_vessels, or in
    DetailedVesselGenerator with the detailer checkpoint `detail` (not both)."""
    if fine_vessels and detail:
        raise RetinaganError("choose procedural fine vessels or the detailer, not both")
    generator = VesselGenerator.load(folder, device=device)
    if detail:
        return DetailedVesselGenerator(generator, *load_detailer(detail, device))
    return FineVesselGenerator(generator) if fine_vessels else generator


ENCODE_BATCH = 16
REFINE_STEPS = 100  # the app's and evaluate vessels' default (docs: held-out Dice vs steps)


def refine_codes(model: torch.nn.Module, x: torch.Tensor, z: torch.Tensor, steps: int, lr: float = 0.1,
                 prior_weight: float = 0.03) -> torch.Tensor:
    """Codes z (B, l) of maps x (B, 1, S, S) improved by gradient descent through the frozen
    decoder: each map's BCE + soft-Dice reconstruction loss plus prior_weight x |z|^2 / 2l (the
    prior's pull, which keeps the codes at the prior's scale, std ~1, so they stay in the
    region the decoder was trained on and interpolate as sampled codes do).

    The encoder is a one-shot guess fit to ~160 training trees; on trees it never saw its codes
    reconstruct at Dice ~0.35 while the decoder can draw them at ~0.57 (bench/bench_refine.py). Each map
    is refined on its own (per-map loss, Adam is per-coordinate): a map's code does not depend
    on the batch it came with. Deterministic. The model is left untouched (gradients are taken
    for z alone), so other threads may sample from it meanwhile."""
    z = z.detach().clone().float().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            loss = bce_dice_per_map(model.decoder(z), x).sum() + prior_weight * 0.5 * (z**2).mean(1).sum()
            (z.grad,) = torch.autograd.grad(loss, [z])
            optimizer.step()
    return z.detach()


def nyquist_notch(size: int, radius: float) -> torch.Tensor:
    """(size, size) gains over the 2-D FFT's frequencies: 0 at the three Nyquist points, (size/2, 0),
    (0, size/2) and (size/2, size/2), rising as 1 - exp(-d^2 / 2 radius^2) with the distance d (in
    frequency bins) from the nearest of them; 1 at DC."""
    return _notch(int(size), float(radius)).clone()


@functools.lru_cache(maxsize=8)
def _notch(size: int, radius: float) -> torch.Tensor:
    """nyquist_notch's gains, made once per (size, radius): degrid reads them, never writes."""
    freq = torch.fft.fftfreq(size, d=1.0 / size).abs()  # bins from DC: 0 ... size/2
    to_nyquist = size / 2 - freq
    gains = torch.ones(size, size)
    for dy, dx in ((to_nyquist[:, None], freq[None, :]), (freq[:, None], to_nyquist[None, :]), (to_nyquist[:, None], to_nyquist[None, :])):
        gains = gains * (1 - torch.exp(-(dy**2 + dx**2) / (2 * radius**2)))
    return gains


def degrid(photos: torch.Tensor, radius: float) -> torch.Tensor:
    """(N, C, S, S) images without the sub-pixel head's 2-px grid: each pixel of a 2x2 block comes
    from its own output channel (PixelShuffle), which leaves a checkerboard of power at the
    Nyquist frequencies (10-200x a real photo's there); a Gaussian notch of `radius` bins around
    each Nyquist point removes it and leaves the rest of the spectrum."""
    size = photos.shape[-1]
    gains = _notch(size, float(radius)).to(photos.device)
    return torch.fft.ifft2(torch.fft.fft2(photos.float()) * gains).real


def photo_looks(photos: list[np.ndarray], size: int) -> np.ndarray:
    """Fundus photos (H, W, 3) uint8, any size -> (N, 6) looks (models.pix2pix.appearance_of), each
    taken as the translator's training photos' were: inside the field of view, FOV-cropped to a
    square of `size` px. A photo without a field of view raises ImageError."""
    from retinagan.data.preprocess import crop_to_square, fov_mask, resize
    from retinagan.models.pix2pix import looks_of

    looks = []
    for rgb in photos:
        mask = fov_mask(rgb)
        looks.append(looks_of(resize(crop_to_square(rgb, mask), size)[None], resize(crop_to_square(mask, mask), size)[None])[0])
    return np.stack(looks) if looks else np.zeros((0, 6), np.float32)


def looks_from_files(files: list, size: int) -> np.ndarray:
    """photo_looks of image files, read one at a time so a bad one is named: (K, 6), or
    RetinaganError "NAME: why" for the first file that is not a readable fundus photo."""
    from retinagan.data.imageio import read_rgb

    looks = []
    for file in map(Path, files):
        try:
            looks.append(photo_looks([read_rgb(file, name=file.name)], size)[0])
        except RetinaganError as exc:
            raise RetinaganError(str(exc) if file.name in str(exc) else f"{file.name}: {exc}") from None
    return np.stack(looks) if looks else np.zeros((0, 6), np.float32)


LOOK_FOV_TOLERANCE = 0.01  # mean difference of two FOV shapes (fov_shape) under which their looks are interchangeable
LOOK_FOV_LEAST = 8  # a FOV unlike every training photo's still picks among the 8 nearest


class FundusTranslator:
    """A trained pix2pix: vessel map (+ FOV mask, + DR grade) -> colour fundus photo."""

    DEGRID_RADIUS = 16.0  # Nyquist notch width in frequency bins at 256 px; 0 keeps the raw output
    LESION_KEEP_PX = 3  # the photo detailer leaves the lesions asked for, and this margin around them, as painted

    def __init__(self, model: torch.nn.Module, config: dict):
        self.model = model
        self.config = config
        self.degrid_radius = self.DEGRID_RADIUS * model.config.image_size / 256
        self.photo_detailer = None  # a PhotoDetailer that redraws each photo's fine detail (use_photo_detailer)
        self.photo_detail_steps: int | None = None
        bank = config.get("appearance_bank") or []
        self.looks = np.asarray(bank, dtype=np.float32).reshape(len(bank), -1) if bank else np.zeros((0, model.config.appearance_dim), np.float32)
        # each bank look's FOV shape (fov_shape): looks are picked among the training photos whose FOV
        # is shaped like the one asked for (look); None (a bank stored without them): among all
        self.look_fovs = read_fov_shapes(config.get("appearance_fov"), len(self.looks))
        self.match_look_to_fov = True  # False: look_seed picks among every training photo's look, whatever the FOV

    def look(self, seed: int | None, fov: np.ndarray | None = None) -> np.ndarray | None:
        """The appearance input: a training photo's look picked by seed, or their mean (None).
        With a FOV mask (S, S), and the bank's FOV shapes known, the pick is among the training
        photos whose FOV is shaped like it (looks_for_fov): a camera's colours come with its FOV."""
        if self.model.config.appearance_dim == 0:
            return None
        if len(self.looks) == 0:
            return np.zeros(self.model.config.appearance_dim, np.float32)
        looks = self.looks if fov is None else self.looks[self.looks_for_fov(fov)]
        if seed is None:
            return looks.mean(0)
        return looks[np.random.default_rng(int(seed)).integers(len(looks))]

    def looks_for_fov(self, fov: np.ndarray) -> np.ndarray:
        """Indices of the bank's looks a photo with this FOV mask (S, S) picks among: the training
        photos whose FOV shape (fov_shape) differs from it by at most LOOK_FOV_TOLERANCE, and at
        least the LOOK_FOV_LEAST nearest; every look when the shapes are unknown or matching is off."""
        if self.look_fovs is None or not self.match_look_to_fov:
            return np.arange(len(self.looks))
        distance = np.abs(self.look_fovs - fov_shape(fov)).mean(1)
        order = np.argsort(distance, kind="stable")
        return order[: max(LOOK_FOV_LEAST, int((distance <= LOOK_FOV_TOLERANCE).sum()))]

    def use_looks(self, looks: np.ndarray) -> None:
        """Replace the looks that look_seed picks from (the training photos') by these (K, 6),
        e.g. photo_looks of photos from the camera the synthetic data is meant for."""
        if self.model.config.appearance_dim == 0:
            raise ValueError("this translator takes no look")
        looks = np.asarray(looks, dtype=np.float32)
        if looks.ndim != 2 or len(looks) == 0 or looks.shape[1] != self.model.config.appearance_dim:
            raise ValueError(f"looks must be (K >= 1, {self.model.config.appearance_dim}), got {looks.shape}")
        self.looks, self.look_fovs = looks, None  # the photos given are the camera asked for: picked among whatever the FOV

    def with_looks_from(self, files: list) -> "FundusTranslator":
        """A copy whose look_seed picks among these photos' looks (looks_from_files) instead of
        the training photos'; this one keeps its own. RetinaganError when the translator takes no
        look, or for the first file that is not a readable fundus photo."""
        if self.model.config.appearance_dim == 0:
            raise RetinaganError("this translator was trained without looks: it cannot take them from photos")
        painter = copy.copy(self)  # the model is shared, not copied
        painter.use_looks(looks_from_files(files, self.size))
        return painter

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu", photo_detail: str | Path | None = None,
             photo_detail_steps: int | None = None) -> "FundusTranslator":
        """photo_detail: a photodetail checkpoint that redraws every photo's fine detail, in
        photo_detail_steps sampling steps (default: its own; use_photo_detailer)."""
        model, config = load_model(folder, expected_kind="pix2pix", device=device)
        translator = cls(fold_batchnorm(model), config)
        if photo_detail:
            translator.use_photo_detailer(load_model(photo_detail, expected_kind="photodetail", device=device)[0], photo_detail_steps)
        return translator

    def use_photo_detailer(self, detailer: torch.nn.Module | None, steps: int | None = None) -> None:
        """From now on every photo's fine detail (finer than the detailer's Gaussian) is drawn by this
        photo detailer (retinagan.models.photodetail), seeded per photo as the grain is; None: off."""
        if detailer is not None and detailer.config.image_size != self.size:
            raise RetinaganError(f"the photo detailer works at {detailer.config.image_size} px; this translator makes {self.size} px")
        self.photo_detailer, self.photo_detail_steps = detailer, steps

    @property
    def size(self) -> int:
        return self.model.config.image_size

    @property
    def grades(self) -> int:
        return self.model.config.grades

    @property
    def draws_lesions(self) -> bool:
        """True when the model takes lesion maps (learned lesions); else lesions are painted on."""
        return self.model.config.lesions > 0

    def plan_lesions(self, vessels: np.ndarray, fov: np.ndarray, grade: int | None, seed: int,
                     requested: list[Lesion] | None = None) -> list[Lesion]:
        """The lesions a photo gets: those requested, else (a lesion-drawing model and a grade)
        lesions composed to match the grade, seeded; else none."""
        if requested is not None:
            return list(requested)
        if grade is None or not self.draws_lesions:
            return []
        return compose_for_grade(int(grade), int(seed), np.asarray(vessels) >= 0.5, np.asarray(fov, dtype=bool))

    @torch.no_grad()
    def translate(
        self,
        vessels: np.ndarray,
        fov: np.ndarray | None = None,
        grade: int | list[int | None] | None = None,
        noise_seed: int | None = None,
        look_seed: int | list[int] | None = None,
        lesions: list[list[Lesion]] | None = None,
        lesion_maps: np.ndarray | None = None,
        looks: np.ndarray | None = None,
    ) -> np.ndarray:
        """(N, S, S) vessel maps (bool or probabilities >= 0.5) -> (N, S, S, 3) uint8 photos.

        fov: (S, S) or (N, S, S) masks, default a full disc. grade: 0-4 or None (unknown), or
        one such per map.
        noise_seed: None runs the generator without its dropout noise (one photo per map);
        an int turns the dropout on with that seed, per map, so the result is reproducible.
        look_seed: the photo's overall look (colour, contrast) is a training photo's, picked by
        this seed (one per map, or one for all) among those with a FOV shaped like the map's
        (look); None gives their average look. A model with
        texture noise draws each photo's grain from the same seed (else from noise_seed, else 0),
        per map: the same seed gives the same photo whatever else is in the batch.
        lesions: one list of lesions per map (None: none). A lesion-drawing model takes them as
        its lesion-map inputs; any other model gets them painted on afterwards (retinagan.lesions.paint).
        lesion_maps: instead of lesions, (N, 3, S, S) maps (microaneurysm, haemorrhage, exudate)
        given to a lesion-drawing model as they are, e.g. the lesion detector's maps of a real
        photo (retinagan.lesions.detect_lesions), as the translator was trained.
        looks: instead of look_seed's picks, (N, appearance_dim) looks given as they are, e.g. a
        real photo's own (retinagan.models.pix2pix.appearance_of, as in training); look_seed
        still seeds the grain.
        """
        vessels = np.asarray(vessels)
        if vessels.ndim != 3 or vessels.shape[1:] != (self.size, self.size):
            raise ValueError(f"vessel maps must be (N, {self.size}, {self.size}), got {vessels.shape}")
        fov = fov_disc(self.size) if fov is None else np.asarray(fov, dtype=bool)
        fov = np.broadcast_to(fov, vessels.shape)
        if lesions is not None and len(lesions) != len(vessels):
            raise ValueError(f"{len(lesions)} lesion lists for {len(vessels)} maps")
        if lesion_maps is not None:
            if lesions is not None:
                raise ValueError("give lesions or lesion_maps, not both")
            if not self.draws_lesions:
                raise ValueError("this translator takes no lesion maps (it paints listed lesions on: pass lesions)")
            lesion_maps = np.asarray(lesion_maps)
            if lesion_maps.shape != (len(vessels), 3, self.size, self.size):
                raise ValueError(f"lesion maps must be ({len(vessels)}, 3, {self.size}, {self.size}), got {lesion_maps.shape}")
        channels = [np.stack([vessels >= 0.5, fov], axis=1)]
        if lesion_maps is not None:
            channels.append(lesion_maps >= 0.5)
        elif self.draws_lesions:
            channels.append(np.stack([lesion_maps_of(lesions[k] if lesions else [], self.size) for k in range(len(vessels))]))
        x = torch.from_numpy(np.concatenate(channels, axis=1).astype(np.float32))
        x = x.to(next(self.model.parameters()).device)
        grades = None
        if self.grades > 0:
            asked = list(grade) if isinstance(grade, (list, tuple, np.ndarray)) else [grade] * len(x)
            if len(asked) != len(x):
                raise ValueError(f"{len(asked)} grades for {len(x)} maps")
            values = [-1 if g is None else int(g) for g in asked]
            for g, value in zip(asked, values):
                if not -1 <= value < self.grades:
                    raise ValueError(f"grade must be 0-{self.grades - 1}, not {g}")
            grades = torch.tensor(values, dtype=torch.long, device=x.device)
        if looks is not None:
            if self.model.config.appearance_dim == 0:
                raise ValueError("this translator takes no look")
            looks = np.asarray(looks, dtype=np.float32)
            if looks.shape != (len(x), self.model.config.appearance_dim):
                raise ValueError(f"looks must be ({len(x)}, {self.model.config.appearance_dim}), got {looks.shape}")
            looks = torch.from_numpy(looks).to(x.device)
        elif self.model.config.appearance_dim > 0:
            seeds = look_seed if isinstance(look_seed, (list, tuple, np.ndarray)) else [look_seed] * len(x)
            if len(seeds) != len(x):
                raise ValueError(f"{len(seeds)} look seeds for {len(x)} maps")
            looks = torch.from_numpy(np.stack([self.look(s, f) for s, f in zip(seeds, fov)])).to(x.device)
        self.model.eval()
        grain_seed = look_seed if look_seed is not None else (noise_seed or 0)  # the texture noise's and the photo detailer's
        texture = self.texture(grain_seed, len(x), x.device)
        pick = lambda t, i: None if t is None else t[i : i + 1]  # noqa: E731
        # One map at a time: a batched convolution may round differently with the batch's size on
        # some CPUs (one grey level on a few pixels), and photo k must not depend on what else is asked.
        photos = []
        for i in range(len(x)):
            one = (x[i : i + 1], pick(grades, i), pick(looks, i))
            grain = texture and [pick(level, i) for level in texture]
            photos.append(self.model(*one, grain) if noise_seed is None else self._noisy(*one, noise_seed, grain))
        photos = torch.cat(photos)
        if self.degrid_radius > 0:
            photos = degrid(photos, self.degrid_radius)
        inside = torch.from_numpy(fov[:, None].copy()).to(photos.device)
        photos = torch.where(inside, photos, -1.0)  # black outside the FOV
        out = ((photos.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        if lesions and not self.draws_lesions:
            out = np.stack([paint(photo, list(found), f) if found else photo for photo, found, f in zip(out, lesions, fov)])
        if self.photo_detailer is not None:
            many = isinstance(grain_seed, (list, tuple, np.ndarray))
            seeds = [0 if s is None else int(s) for s in (grain_seed if many else [grain_seed] * len(out))]
            from tqdm import tqdm

            with tqdm(total=len(out), desc="photo detail", unit="photo", leave=False, disable=len(out) < 4) as bar:
                drawn = self.photo_detailer.draw(out, vessels >= 0.5, fov, seeds, steps=self.photo_detail_steps,
                                                 progress=lambda done, total: bar.update(done - bar.n))
            kept = self._lesion_regions(lesions, lesion_maps, len(out))
            out = drawn if kept is None else np.where(kept[..., None], out, drawn)
        return out

    def _lesion_regions(self, lesions: list[list[Lesion]] | None, lesion_maps: np.ndarray | None, count: int) -> np.ndarray | None:
        """(N, S, S) bool: where each photo's lesions lie (listed: each one's region as insert edits
        it, lesions.edited_region; given as maps: the maps grown by LESION_KEEP_PX), or None when
        there are none. The photo detailer redraws everything finer than 4 px, which erased
        microaneurysms and small exudates (placement recall 0.47 instead of 0.91)."""
        if lesion_maps is not None:
            from skimage.morphology import disk

            grow = disk(self.LESION_KEEP_PX).astype(bool)
            regions = [ndimage.binary_dilation(m, structure=grow) for m in np.asarray(lesion_maps).max(axis=1) >= 0.5]
        elif lesions and any(lesions):
            regions = [edited_region(found or [], self.size, self.LESION_KEEP_PX) for found in lesions]
        else:
            return None
        regions = np.stack(regions).reshape(count, self.size, self.size)
        return regions if regions.any() else None

    def insert(self, photo: np.ndarray, vessels: np.ndarray, lesions: list[Lesion], fov: np.ndarray | None = None,
               grade: int | None = None, look_seed: int | None = None) -> np.ndarray:
        """Lesions placed into an existing (S, S, 3) uint8 photo (real or generated) whose vessel
        map is `vessels`; pixels outside the lesions' edited regions (retinagan.lesions.edited_region)
        are returned unchanged, bit for bit.

        A lesion-drawing model translates the vessel map with and without the lesions; the
        difference (the lesions as the model draws them, in its lighting) is added to the photo,
        scaled to the photo's local brightness, inside the edited regions. Other models paint."""
        photo = np.asarray(photo)
        if photo.shape != (self.size, self.size, 3) or photo.dtype != np.uint8:
            raise ValueError(f"photo must be ({self.size}, {self.size}, 3) uint8, got {photo.shape} {photo.dtype}")
        fov = fov_disc(self.size) if fov is None else np.asarray(fov, dtype=bool)
        if not lesions:
            return photo.copy()
        region = edited_region(lesions, self.size) & fov
        if not self.draws_lesions:
            return np.where(region[..., None], paint(photo, lesions, fov), photo)
        pair = self.translate(np.stack([vessels, vessels]), fov, grade, look_seed=look_seed, lesions=[lesions, []])
        drawn, plain = pair.astype(np.float32)
        local = ndimage.uniform_filter(photo.astype(np.float32), size=(15, 15, 1))
        model_local = ndimage.uniform_filter(plain, size=(15, 15, 1))
        delta = (drawn - plain) * (local + 8) / (model_local + 8)  # the lesion's contrast, in the photo's lighting
        out = np.where(region[..., None], np.clip(photo + delta, 0, 255).round(), photo)
        return out.astype(np.uint8)

    def texture(self, seeds: int | list[int], count: int, device) -> list[torch.Tensor] | None:
        """The texture-noise maps for `count` photos, each drawn from its own seed (one seed
        for all, or one per photo); None for a model without texture noise."""
        sizes = self.model.noise_sizes()
        if not sizes:
            return None
        seeds = list(seeds) if isinstance(seeds, (list, tuple, np.ndarray)) else [seeds] * count
        maps = [[] for _ in sizes]
        for seed in seeds:
            rng = torch.Generator().manual_seed(int(seed))
            for level, size in enumerate(sizes):
                maps[level].append(torch.randn(1, 1, size, size, generator=rng))
        return [torch.cat(level).to(device) for level in maps]

    def _noisy(self, x: torch.Tensor, grades: torch.Tensor | None, looks: torch.Tensor | None, seed: int,
               texture: list[torch.Tensor] | None = None) -> torch.Tensor:
        dropouts = [m for m in self.model.modules() if isinstance(m, torch.nn.Dropout)]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for m in dropouts:
                m.train()
            try:
                return self.model(x, grades, looks, texture)
            finally:
                for m in dropouts:
                    m.eval()
