"""Vessel detailer: a conditional diffusion model that redraws a vessel model's coarse tree as a
hand-drawn-like one, thin vessels included.

The vessel autoencoders place wide vessels well but leave out the thin ones (a third of a real
tree's centre line): a decoder scored pixel by pixel cannot place a 1-px vessel, so it draws
none. The detailer is a generative model of the whole map given the coarse tree: trained on
DRIVE's hand-drawn maps (prepared at 256 px like every reference map) paired with the vessel
model's decoding of each, it predicts the clean binary map from a noisy one (x0 prediction with
binary cross-entropy, the "analog bits" recipe of Chen et al., ICLR 2023, with self-conditioning),
and draws by DDIM from seeded noise: the same seed and coarse tree give the same map.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from retinagan.models.registry import register_model

INPUTS = 4  # noisy map, coarse tree (probabilities), FOV mask, self-conditioning estimate


@dataclass
class DetailConfig:
    widths: str = "32,48,64"  # channels per level (comma-separated); the first level works at half the map's side
    image_size: int = 256  # side of the maps it draws
    sample_steps: int = 100  # DDIM steps when drawing (fewer leave more fragments: bench/bench_detail.py, README *The detailer*)
    min_alpha: float = 1e-5  # the noise schedule's clip (cosine schedule between min_alpha and 1 - min_alpha)

    def levels(self) -> tuple[int, ...]:
        return tuple(int(w) for w in self.widths.split(","))


class TimeBlock(nn.Module):
    """Residual block: GroupNorm, SiLU, 3x3 conv, the time embedding added in between."""

    def __init__(self, cin: int, cout: int, time_dim: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.time = nn.Linear(time_dim, cout)
        self.norm2, self.conv2 = nn.GroupNorm(8, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.time(t)[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


def alpha_bar(t: torch.Tensor, min_alpha: float = 1e-5) -> torch.Tensor:
    """Cosine schedule: the share of the clean map's signal left at time t in [0, 1]."""
    return (torch.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2).clamp(min_alpha, 1 - min_alpha)


class TimeUNet(nn.Module):
    """U-Net with a time input, shared by the diffusion models here and in
    retinagan.models.photodetail: space-to-depth in and sub-pixel out, so every convolution
    works at half the input's side (4x cheaper); one residual block per level, GroupNorm (an
    image's result does not depend on the others in its batch); `mid_blocks` blocks at the
    bottom (one: stored as `mid`, more: as `mid.0`, `mid.1`, ...)."""

    def __init__(self, widths: tuple[int, ...], inputs: int, outputs: int, mid_blocks: int = 1):
        super().__init__()
        self.base_width = widths[0]
        time_dim = widths[0] * 4
        self.time = nn.Sequential(nn.Linear(widths[0], time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.stem = nn.Conv2d(inputs * 4, widths[0], 3, padding=1)
        self.down, cin = nn.ModuleList(), widths[0]
        for width in widths:
            self.down.append(TimeBlock(cin, width, time_dim))
            cin = width
        blocks = [TimeBlock(cin, cin, time_dim) for _ in range(mid_blocks)]
        self.mid = blocks[0] if mid_blocks == 1 else nn.ModuleList(blocks)
        self.up = nn.ModuleList()
        for width in reversed(widths):
            self.up.append(TimeBlock(cin + width, width, time_dim))
            cin = width
        self.head = nn.Conv2d(cin, outputs * 4, 3, padding=1)

    def embed(self, t: torch.Tensor) -> torch.Tensor:
        half = self.base_width // 2
        freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device) / half)
        angles = t[:, None] * 1000.0 * freqs[None]
        return self.time(torch.cat([angles.sin(), angles.cos()], 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(B, inputs, S, S), (B,) times in [0, 1] -> (B, outputs, S, S)."""
        temb = self.embed(t)
        h = self.stem(F.pixel_unshuffle(x, 2))
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, temb)
            skips.append(h)
            if i < len(self.down) - 1:
                h = F.avg_pool2d(h, 2)
        for block in self.mid if isinstance(self.mid, nn.ModuleList) else [self.mid]:
            h = block(h, temb)
        for i, block in enumerate(self.up):
            if i > 0:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = block(torch.cat([h, skips.pop()], 1), temb)
        return F.pixel_shuffle(self.head(F.silu(h)), 2)


@register_model("detail", DetailConfig)
class VesselDetailer(TimeUNet):
    """TimeUNet on (noisy map in [-1, 1]-ish, coarse tree, FOV, estimate) + time -> (B, 1, S, S)
    logits of the clean map."""

    def __init__(self, config: DetailConfig):
        super().__init__(config.levels(), INPUTS, 1)
        self.config = config

    def noised(self, clean: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Binary maps (0/1) -> the diffusion's state at times t (one per map)."""
        ab = alpha_bar(t, self.config.min_alpha)[:, None, None, None]
        return ab.sqrt() * (clean * 2 - 1) + (1 - ab).sqrt() * noise

    @torch.no_grad()
    def draw(self, coarse: np.ndarray, fov: np.ndarray, seeds: list[int], steps: int | None = None, bf16: bool = False,
             progress=None) -> np.ndarray:
        """(N, S, S) coarse trees (probabilities) and FOV masks -> (N, S, S) bool maps. Map k
        depends on coarse[k], fov[k] and seeds[k] only (drawn one at a time). progress(done, total)
        is called after each map."""
        steps = steps or self.config.sample_steps
        device = next(self.parameters()).device
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        out = []
        for k, (tree, mask, seed) in enumerate(zip(coarse, fov, seeds)):
            generator = torch.Generator().manual_seed(int(seed))
            cond = torch.as_tensor(np.asarray(tree, np.float32), device=device)[None, None]
            mask_t = torch.as_tensor(np.asarray(mask, np.float32), device=device)[None, None]
            x = torch.randn(cond.shape, generator=generator).to(device)
            estimate = torch.zeros_like(x)
            times = torch.linspace(1, 0, steps + 1, device=device)
            for now, after in zip(times[:-1], times[1:]):
                ab, ab_next = alpha_bar(now, self.config.min_alpha), alpha_bar(after, self.config.min_alpha)
                with autocast:
                    logits = self(torch.cat([x, cond, mask_t, estimate], 1), now[None])
                estimate = torch.sigmoid(logits.float()) * 2 - 1
                eps = (x - ab.sqrt() * estimate) / (1 - ab).sqrt()
                x = ab_next.sqrt() * estimate + (1 - ab_next).sqrt() * eps  # DDIM, deterministic given the start
            out.append(((estimate[0, 0] > 0) & (mask_t[0, 0] > 0)).cpu().numpy())
            if progress:
                progress(k + 1, len(seeds))
        return np.array(out, dtype=bool).reshape(len(seeds), *np.shape(coarse)[1:])
