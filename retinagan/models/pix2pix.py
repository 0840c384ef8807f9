"""Stage 2: pix2pix translator from a vessel map (+ field-of-view mask) to a colour fundus photo.

Generator: the pix2pix U-Net (4x4 stride-2 convs down to 1x1, skips at every level), with
conv + bilinear upsampling on the way up instead of transposed convs (no checkerboard), and
dropout in the three deepest decoder levels as the noise source (kept on when sampling).
Optional conditions: a DR grade and a photo's look (per-channel shifts in every decoder level),
and lesion maps (microaneurysm, haemorrhage, exudate: extra input channels, so lesions appear
where the maps say). Optional texture noise: per-pixel Gaussian noise added, with a learned
strength per channel (zero at the start), to the finest decoder levels, so the generator has a
source for the grain of a real photo that no vessel map determines. Optional refiner: three
3x3 convolutions at full resolution on (photo so far, input maps, a noise map of its own), added
to the photo (its last convolution starts at zero): the sub-pixel head makes the full resolution
from 128-px features, so nothing else convolves at 256 px, where the finest grain and specks live.

Discriminator: PatchGAN on the (vessel map [+ lesion maps], photo) pair -> a 16x16 map of
real/fake logits for 256x256 inputs; with grades, a projection of the grade onto its features
(cGAN projection) and an auxiliary grade classifier head (AC-GAN). Optional detail
discriminator: a shallow PatchGAN (38-px patches) on the condition maps and the photo's luma
detail only (the photo minus its Gaussian blur), so the fine grain, specks and vessel edges are
judged where they lie, apart from colour and layout.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from retinagan.losses import gaussian_blur
from retinagan.models.registry import register_model


@dataclass
class Pix2PixConfig:
    in_channels: int = 2  # vessel map, field-of-view mask
    out_channels: int = 3  # RGB photo in [-1, 1]
    base_channels: int = 32  # width of the first level; doubles per level up to max_multiplier x
    max_multiplier: int = 4  # 4 (not pix2pix's 8): 2.7 M parameters, 5.4 MB in fp16, so every shipped model fits checkpoints/
    image_size: int = 256
    dropout: float = 0.5  # in the three deepest decoder levels; the generator's noise
    # Conditions default to off here, so configs stored before they existed load unchanged;
    # training turns them on (Pix2PixTrainConfig).
    grades: int = 0  # > 0: condition on a DR grade 0..grades-1 (plus one "unknown" slot)
    appearance_dim: int = 0  # 6: condition on the photo's look (per-channel FOV mean and spread)
    lesions: int = 0  # 3: lesion-map input channels after vessels and FOV (retinagan.lesions.LESION_TYPES)
    noise_levels: int = 0  # > 0: texture noise into this many of the finest decoder levels (2: 64 and 128 px)
    refine_channels: int = 0  # > 0: a residual refiner of this width at full resolution, with its own noise map


def _down(in_channels: int, out_channels: int, norm: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 4, 2, 1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


def _up(in_channels: int, out_channels: int, dropout: float, norm: bool = True) -> nn.Sequential:
    """3x3 conv at the lower resolution, then bilinear 2x upsampling: no checkerboard, and a
    quarter of the cost of upsample-then-conv (the skip concatenated next brings the detail)."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=not norm)]
    if norm:  # not at 1x1, where batch statistics of one value per channel are meaningless
        layers.append(nn.BatchNorm2d(out_channels))
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers += [nn.ReLU(inplace=True), nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)]
    return nn.Sequential(*layers)


@register_model("pix2pix", Pix2PixConfig)
class Pix2PixGenerator(nn.Module):
    def __init__(self, config: Pix2PixConfig):
        super().__init__()
        self.config = config
        depth = config.image_size.bit_length() - 1  # 256 -> 8 levels, down to 1x1
        widths = [config.base_channels * min(2**i, config.max_multiplier) for i in range(depth)]
        self.down = nn.ModuleList(
            [_down(config.in_channels + config.lesions, widths[0], norm=False)]
            + [_down(a, b, norm=i < depth - 2) for i, (a, b) in enumerate(zip(widths, widths[1:]))]
        )
        ups, up_widths = [], []
        for level in reversed(range(1, depth)):  # from the bottleneck up to level 1
            in_channels = widths[level] * (1 if level == depth - 1 else 2)
            ups.append(_up(in_channels, widths[level - 1], config.dropout if level >= depth - 3 else 0.0, norm=level < depth - 1))
            up_widths.append(widths[level - 1])
        self.up = nn.ModuleList(ups)
        # Sub-pixel head: the last conv runs at half resolution, PixelShuffle makes the full one.
        self.head = nn.Sequential(nn.Conv2d(widths[0] * 2, 4 * config.out_channels, 3, 1, 1), nn.PixelShuffle(2))
        # Conditions (grade, look) enter every decoder level as per-channel shifts and the output
        # as a per-colour scale and shift. Added at the bottleneck only, they were ignored: a
        # pix2pix U-Net learns to rely on its skips, and its deepest levels carry dropout.
        self.grade = nn.Embedding(config.grades + 1, 32) if config.grades > 0 else None
        cond_dim = (32 if config.grades > 0 else 0) + config.appearance_dim
        self.condition = None
        if cond_dim:
            self.condition = nn.ModuleList([nn.Linear(cond_dim, w) for w in up_widths] + [nn.Linear(cond_dim, 2 * config.out_channels)])
            nn.init.zeros_(self.condition[-1].weight)
            nn.init.zeros_(self.condition[-1].bias)
        if not 0 <= config.noise_levels <= len(up_widths):
            raise ValueError(f"noise_levels must be 0-{len(up_widths)}, not {config.noise_levels}")
        # Noise strengths per channel of the features after each of the finest levels' skip
        # concatenation; zero at the start, so adding noise to a trained model changes nothing.
        self.noise_strength = nn.ParameterList(
            [nn.Parameter(torch.zeros(2 * w)) for w in up_widths[len(up_widths) - config.noise_levels :]]
        )
        if config.refine_channels < 0:
            raise ValueError(f"refine_channels must be >= 0, not {config.refine_channels}")
        self.refine = None
        if config.refine_channels:
            c, inputs = config.refine_channels, config.out_channels + config.in_channels + config.lesions + 1
            self.refine = nn.Sequential(nn.Conv2d(inputs, c, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
                                        nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
                                        nn.Conv2d(c, config.out_channels, 3, 1, 1))
            nn.init.zeros_(self.refine[-1].weight)  # a trained model gains a refiner without changing
            nn.init.zeros_(self.refine[-1].bias)

    def noise_sizes(self) -> list[int]:
        """Side lengths of the texture-noise maps, finest last (empty without texture noise);
        the refiner's full-resolution map comes last, so adding it leaves the others' draws as
        they were for the same seed."""
        levels = len(self.up)
        sizes = [self.config.image_size >> (levels - k) for k in range(levels - self.config.noise_levels, levels)]
        return sizes + ([self.config.image_size] if self.refine is not None else [])

    def _condition(self, x: torch.Tensor, grade: torch.Tensor | None, appearance: torch.Tensor | None) -> torch.Tensor | None:
        parts = []
        if self.grade is not None:
            if grade is None:
                grade = torch.full((len(x),), -1, dtype=torch.long, device=x.device)
            parts.append(self.grade(torch.where(grade < 0, self.config.grades, grade)))  # the last slot is "unknown"
        if self.config.appearance_dim > 0:
            if appearance is None:
                appearance = torch.zeros(len(x), self.config.appearance_dim, device=x.device)
            parts.append(appearance * 4 - 1)  # looks lie in [0, 1]: centre them roughly
        return torch.cat(parts, dim=1) if parts else None

    def forward(self, x: torch.Tensor, grade: torch.Tensor | None = None, appearance: torch.Tensor | None = None,
                noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """(B, in_channels + lesions, S, S) in [0, 1] -> photo (B, 3, S, S) in [-1, 1].

        grade: (B,) long, 0..grades-1, or -1 for unknown; ignored when the model has no grades.
        appearance: (B, appearance_dim) (see `appearance_of`); zeros when not given.
        noise: texture noise, one (B, 1, s, s) map per size in `noise_sizes()`; None draws it
        from torch's global generator (training); ignored by a model without texture noise.
        """
        cond = self._condition(x, grade, appearance)
        first_noisy = len(self.up) - self.config.noise_levels
        if noise is None:  # empty without texture noise or a refiner
            noise = [torch.randn(len(x), 1, s, s, device=x.device) for s in self.noise_sizes()]
        skips = []
        h = inputs = x * 2 - 1
        for block in self.down:
            h = block(h)
            skips.append(h)
        skips.pop()
        for k, block in enumerate(self.up):
            h = block(h)
            if cond is not None:
                h = h + self.condition[k](cond)[:, :, None, None]
            h = torch.cat([h, skips.pop()], dim=1)
            if k >= first_noisy:
                h = h + self.noise_strength[k - first_noisy][:, None, None] * noise[k - first_noisy].to(h.dtype)
        out = self.head(h)
        if cond is not None:
            scale, shift = self.condition[-1](cond).chunk(2, dim=1)
            out = out * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        if self.refine is not None:
            out = out + self.refine(torch.cat([out, inputs, noise[-1].to(out.dtype)], dim=1))
        return torch.tanh(out)


APPEARANCE_DIM = 6


def appearance_of(photos: torch.Tensor, fov: torch.Tensor) -> torch.Tensor:
    """A photo's overall look: per-channel mean and standard deviation inside the FOV.

    photos (B, 3, S, S) uint8 or in [0, 255]; fov (B, S, S) bool -> (B, 6) in [0, 1]."""
    x = photos.float() / 255
    w = fov[:, None].float()
    count = w.sum(dim=(2, 3)).clamp(min=1)
    mean = (x * w).sum(dim=(2, 3)) / count
    var = (((x - mean[..., None, None]) ** 2) * w).sum(dim=(2, 3)) / count
    return torch.cat([mean, var.sqrt()], dim=1)


def fov_shape(fov: np.ndarray) -> np.ndarray:
    """(..., S, S) FOV masks -> (..., 256) float32: the share of each cell of a 16 x 16 grid inside
    the FOV, what a translator matches looks on (FundusTranslator.look): a full disc, a disc cut at
    top and bottom, a smaller disc lie far apart; two photos of one camera lie close."""
    f = np.asarray(fov, dtype=np.float32)
    cell = f.shape[-1] // 16
    cells = f[..., : 16 * cell, : 16 * cell].reshape(*f.shape[:-2], 16, cell, 16, cell)
    return cells.mean(axis=(-3, -1)).reshape(*f.shape[:-2], 256)


def look_bank(looks: np.ndarray, fovs: np.ndarray) -> dict:
    """A translator checkpoint's config entries for the looks it samples: each training photo's
    look (appearance_of, `appearance_bank`) and its FOV's shape (fov_shape, `appearance_fov`: one
    hex string a photo, a byte a cell)."""
    shapes = np.rint(fov_shape(fovs) * 255).astype(np.uint8)
    return {"appearance_bank": [[round(float(v), 4) for v in row] for row in np.asarray(looks)],
            "appearance_fov": [row.tobytes().hex() for row in shapes]}


def read_fov_shapes(stored: list[str] | None, count: int) -> np.ndarray | None:
    """A config's `appearance_fov` (look_bank) -> (count, 256) float32 FOV shapes, or None when
    absent (a bank stored before them). CheckpointError when they do not fit the bank."""
    if not stored:
        return None
    from retinagan.errors import CheckpointError

    try:
        shapes = np.stack([np.frombuffer(bytes.fromhex(text), dtype=np.uint8) for text in stored])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"the checkpoint's appearance_fov is not a list of hex strings ({error})") from None
    if shapes.shape != (count, 256):
        raise CheckpointError(f"the checkpoint's appearance_fov holds {shapes.shape} FOV shapes for {count} looks; expected ({count}, 256)")
    return shapes.astype(np.float32) / 255


def looks_of(photos: np.ndarray, fovs: np.ndarray) -> np.ndarray:
    """appearance_of for arrays: (N, S, S, 3) uint8 photos and (N, S, S) FOV masks -> (N, 6) float32."""
    return appearance_of(torch.from_numpy(np.array(photos)).permute(0, 3, 1, 2), torch.from_numpy(np.array(fovs, dtype=bool))).numpy()


class PatchDiscriminator(nn.Module):
    """(condition maps, photo) pairs (B, C + 3, S, S) -> (B, 1, S/16, S/16) real/fake logits.

    The condition is the vessel map, plus the lesion maps for a lesion-conditioned translator.
    grades > 0: the grade (0..grades-1, -1 unknown) is projected onto the features (its
    embedding's inner product with each patch's features is added to that patch's logit), and
    `forward(..., classify=True)` also returns (B, grades) grade logits from a trunk of its own:
    sharing the real/fake trunk, the grade loss took it over and real/fake stayed at chance
    (loss 0.693 for 3,500 steps; with its own trunk the real/fake loss falls within 250 steps).

    scales > 1 (as in pix2pixHD): more PatchGANs of the same shape judge the pair average-pooled
    2x, 4x, ...: their patches span 2x, 4x the area, so blotches and the layout of disc and macula
    are judged too, not only the grain. Their patch maps are repeated back up to the first's size
    and stacked as channels, (B, scales, S/16, S/16): every loss, a mean over the map, weighs the
    scales equally. The grade projection and classifier stay with the first scale.
    """

    def __init__(self, in_channels: int = 4, base_channels: int = 32, grades: int = 0, scales: int = 1):
        super().__init__()
        if scales < 1:
            raise ValueError(f"scales must be >= 1, not {scales}")
        c = base_channels
        trunk = lambda: nn.Sequential(_down(in_channels, c, norm=False), _down(c, 2 * c), _down(2 * c, 4 * c), _down(4 * c, 8 * c))  # noqa: E731
        self.trunk = trunk()
        self.head = nn.Conv2d(8 * c, 1, 3, 1, 1)
        self.coarse = nn.ModuleList([nn.Sequential(trunk(), nn.Conv2d(8 * c, 1, 3, 1, 1)) for _ in range(scales - 1)])
        self.grades = grades
        if grades > 0:
            self.embed = nn.Embedding(grades + 1, 8 * c)  # the last slot is "unknown"
            nn.init.zeros_(self.embed.weight)
            self.classifier_trunk = nn.Sequential(_down(in_channels, c, norm=False), _down(c, 2 * c), _down(2 * c, 4 * c), _down(4 * c, 4 * c))
            self.classifier = nn.Linear(4 * c, grades)

    def forward(self, condition: torch.Tensor, photo: torch.Tensor, grade: torch.Tensor | None = None, classify: bool = False):
        pair = torch.cat([condition * 2 - 1, photo], dim=1)
        features = self.trunk(pair)
        logits = self.head(features)
        if self.grades > 0 and grade is not None:
            slot = torch.where(grade < 0, self.grades, grade)
            logits = logits + (self.embed(slot)[:, :, None, None] * features).sum(dim=1, keepdim=True)
        if self.coarse:
            maps, pooled = [logits], pair
            for judge in self.coarse:
                pooled = F.avg_pool2d(pooled, 2)
                maps.append(F.interpolate(judge(pooled), size=logits.shape[-2:], mode="nearest"))
            logits = torch.cat(maps, dim=1)
        if classify:
            return logits, (self.classifier(self.classifier_trunk(pair).mean(dim=(2, 3))) if self.grades > 0 else None)
        return logits


LUMA = (0.299, 0.587, 0.114)


def luma_detail(photo: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, 3, S, S) photo -> (B, 1, S, S) its luma minus the luma blurred by a Gaussian of sigma px."""
    weights = torch.tensor(LUMA, dtype=torch.float32, device=photo.device).view(1, 3, 1, 1)
    luma = (photo.float() * weights).sum(dim=1, keepdim=True)
    return luma - gaussian_blur(luma, sigma)


class DetailDiscriminator(nn.Module):
    """(condition maps, photo) -> (B, 1, S/8, S/8) real/fake logits judging only the photo's
    luma detail (`luma_detail`, scaled by `gain` so it spans about +-1) beside the condition maps.

    Three stride-2 layers and a 3x3 head: each logit sees a 38-px patch, 1,024 of them per
    256-px photo, so it can learn what fine texture and vessel edges look like but not remember
    whole photos (the full PatchGAN's patches span 78 px and more at its coarser scales). The
    colour and layout, removed by the blur, are the main discriminator's to judge.
    """

    def __init__(self, condition_channels: int = 1, base_channels: int = 32, sigma: float = 4.0, gain: float = 10.0):
        super().__init__()
        c = base_channels
        self.sigma, self.gain = sigma, gain
        self.trunk = nn.Sequential(_down(condition_channels + 1, c, norm=False), _down(c, 2 * c), _down(2 * c, 4 * c))
        self.head = nn.Conv2d(4 * c, 1, 3, 1, 1)

    def forward(self, condition: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
        detail = luma_detail(photo, self.sigma) * self.gain
        return self.head(self.trunk(torch.cat([condition.float() * 2 - 1, detail], dim=1)))
