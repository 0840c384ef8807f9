"""Photo detailer: a conditional diffusion model that draws a fundus photo's fine detail.

What keeps the translator's photos from real ones, by FID, is their fine detail (docs/stage2.md,
*Where the gap is*): the translator's photos with their own real photos' detail finer than a Gaussian
of 4 px score FID 49.4 against real photos (floor 42.1; as translated: 83.2). That detail is the
camera's grain, specks and the vessels' and the rim's sharp edges, which a GAN trained on 156
photos did not learn. The photo detailer keeps a photo's coarse part (its Gaussian blur) and
draws the fine part anew, given the coarse part, the vessel map and the field of view: a
diffusion model (v prediction, cosine schedule, self-conditioning, DDIM from seeded noise, so
the same photo and seed give the same result), trained on real photos alone (their own blur as
the coarse part), so it learns what real detail looks like under a given coarse photo.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from retinagan.losses import gaussian_blur
from retinagan.models.detail import TimeUNet, alpha_bar
from retinagan.models.registry import register_model

# noisy detail (3), coarse photo (3), vessel map (1), FOV (1), self-conditioning estimate (3)
INPUTS = 11


@dataclass
class PhotoDetailConfig:
    widths: str = "32,64,96"  # channels per level (comma-separated); the first level works at half the photo's side
    image_size: int = 256  # side of the photos it details
    sigma: float = 4.0  # Gaussian (px) that splits a photo into the coarse part kept and the fine detail drawn
    scale: float = 12.0  # the detail (photo in [-1, 1] minus its blur) times this is what the diffusion draws
    sample_steps: int = 50  # DDIM steps when drawing
    min_alpha: float = 1e-5  # the noise schedule's clip
    keep_detail: float = 0.0  # share of the photo's own fine detail kept beside the drawn (draw: (1 - k) drawn + k own)

    def levels(self) -> tuple[int, ...]:
        return tuple(int(w) for w in self.widths.split(","))


def split_photo(photos: torch.Tensor, fov: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, S, S) photos in [-1, 1] and (B, 1, S, S) FOV masks -> (coarse, detail), both zero
    outside the FOV: the Gaussian blur of the photo inside its FOV (normalised by the mask's, so
    the dark surround does not bleed into the rim) and the rest."""
    inside = fov.float()
    coarse = gaussian_blur(photos.float() * inside, sigma) / gaussian_blur(inside, sigma).clamp_min(1e-3) * inside
    return coarse, (photos.float() - coarse) * inside


def share(value: float, name: str) -> float:
    """value as a float within 0-1, else ValueError naming it (keep_detail, draw's keep)."""
    if not 0 <= float(value) <= 1:
        raise ValueError(f"{name} must be within 0-1, not {value}")
    return float(value)


@register_model("photodetail", PhotoDetailConfig)
class PhotoDetailer(TimeUNet):
    """TimeUNet (two middle blocks) on (noisy detail, coarse photo, vessels, FOV, estimate) + time
    -> (B, 3, S, S) v prediction of the detail."""

    def __init__(self, config: PhotoDetailConfig):
        share(config.keep_detail, "keep_detail")
        super().__init__(config.levels(), INPUTS, 3, mid_blocks=2)
        self.config = config

    def inputs(self, x: torch.Tensor, coarse: torch.Tensor, vessels: torch.Tensor, fov: torch.Tensor,
               estimate: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, coarse, vessels, fov, estimate], 1)

    def sample(self, coarse: torch.Tensor, vessels: torch.Tensor, fov: torch.Tensor, noise: torch.Tensor, steps: int,
               autocast=contextlib.nullcontext()) -> torch.Tensor:
        """DDIM in `steps` steps from `noise` (B, 3, S, S) -> the drawn detail times config.scale
        (B, 3, S, S). Differentiable: the adversarial fine-tune (retinagan.training.photodetail)
        backpropagates through every step; draw() runs it without gradients."""
        x, estimate = noise, torch.zeros_like(noise)
        times = torch.linspace(1, 0, steps + 1, device=noise.device)
        for now, after in zip(times[:-1], times[1:]):
            ab, ab_next = alpha_bar(now, self.config.min_alpha), alpha_bar(after, self.config.min_alpha)
            with autocast:
                v = self(self.inputs(x, coarse, vessels, fov, estimate), now.expand(len(x))).float()
            estimate = ab.sqrt() * x - (1 - ab).sqrt() * v
            eps = (1 - ab).sqrt() * x + ab.sqrt() * v
            x = ab_next.sqrt() * estimate + (1 - ab_next).sqrt() * eps  # DDIM, deterministic given the start
        return estimate

    @torch.no_grad()
    def draw(self, photos: np.ndarray, vessels: np.ndarray, fov: np.ndarray, seeds: list[int], steps: int | None = None,
             bf16: bool = False, batch: int = 1, progress=None, keep: float | None = None) -> np.ndarray:
        """(N, S, S, 3) uint8 photos, (N, S, S) vessel maps and FOV masks -> (N, S, S, 3) uint8
        photos: each photo's blur kept, its fine detail drawn anew (zero outside the FOV), or,
        with keep k > 0 (default: config.keep_detail), (1 - k) times the drawn detail plus k times
        the photo's own. Photo k depends on photos[k], vessels[k], fov[k] and seeds[k] only (for a
        given batch size: the default, one at a time, gives the same photo on every call).
        progress(done, total)."""
        steps = steps or self.config.sample_steps
        keep = self.config.keep_detail if keep is None else share(keep, "keep")
        device = next(self.parameters()).device
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        out = []
        for start in range(0, len(seeds), batch):
            part = slice(start, start + batch)
            rgb = torch.as_tensor(np.asarray(photos[part]), device=device).permute(0, 3, 1, 2).float() / 127.5 - 1
            maps = torch.as_tensor(np.asarray(vessels[part], np.float32), device=device)[:, None]
            mask = torch.as_tensor(np.asarray(fov[part], np.float32), device=device)[:, None]
            coarse, own = split_photo(rgb, mask, self.config.sigma)
            x = torch.cat([torch.randn((1, 3, *rgb.shape[2:]), generator=torch.Generator().manual_seed(int(s)))
                           for s in seeds[part]]).to(device)
            estimate = self.sample(coarse, maps, mask, x, steps, autocast)
            photo = (coarse + (1 - keep) * estimate / self.config.scale + keep * own) * mask + rgb * (1 - mask)
            out.append(((photo.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy())
            if progress:
                progress(min(start + batch, len(seeds)), len(seeds))
        return np.concatenate(out).reshape(np.shape(photos))


class DetailCritic(nn.Module):
    """(coarse photo, vessel map, FOV, detail times the detailer's scale) -> (B, 1, S/2^k, S/2^k)
    real/fake logits: a PatchGAN with spectral norm, `layers` stride-2 convolutions (3: each logit
    judges a 38-px patch), for the photo detailer's adversarial fine-tune. It sees the coarse part
    and the tree beside the detail, so it judges the detail as it fits them."""

    def __init__(self, width: int = 32, layers: int = 3):
        super().__init__()
        modules, channels = [spectral_norm(nn.Conv2d(8, width, 4, 2, 1)), nn.LeakyReLU(0.2)], width
        for _ in range(layers - 1):
            modules += [spectral_norm(nn.Conv2d(channels, 2 * channels, 4, 2, 1)), nn.LeakyReLU(0.2)]
            channels *= 2
        modules.append(spectral_norm(nn.Conv2d(channels, 1, 3, 1, 1)))
        self.net = nn.Sequential(*modules)

    def forward(self, coarse: torch.Tensor, vessels: torch.Tensor, fov: torch.Tensor, detail: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([coarse, vessels * 2 - 1, fov * 2 - 1, detail], 1))
