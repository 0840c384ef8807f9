"""Vessel-tree autoencoders: the VAE baseline and the adversarial autoencoder (AAE).

Both share one encoder (256x256x1 -> 512 features -> mu, log-variance of an l-dim latent)
and one decoder (latent -> 256x256x1 logits by nearest-upsample + conv stages, no
transposed convolutions, so no checkerboard). They differ in how the latent is regularised,
which is a training matter (KL term vs code discriminator); the saved model is the same.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from retinagan import distributed
from retinagan.models.registry import register_model


@dataclass
class AutoencoderConfig:
    latent_dim: int = 128  # size l of the latent code (16-256)
    base_channels: int = 16  # width of the 128-px stage; deeper stages are wider, up to 16x
    image_size: int = 256  # side of the vessel maps
    feature_dim: int = 512  # encoder output before the mu / log-variance heads
    fine_blocks: int = 0  # residual blocks at the decoder's finest (half-size) stage: capacity where thin vessels are drawn


def _widths(config: AutoencoderConfig) -> list[int]:
    """Channels per resolution from image_size/2 down to 8 px (8x8 is the decoder's start)."""
    stages = (config.image_size // 8).bit_length() - 1  # 256 -> 5 stages: 128, 64, 32, 16, 8
    return [config.base_channels * min(2**i, 16) for i in range(stages)]


def _conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.2, inplace=True),
    )


def reparameterise(mu: torch.Tensor, log_var: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A sample of N(mu, exp(log_var)) that gradients can flow through."""
    noise = torch.randn(mu.shape, generator=generator, device=mu.device) if generator else distributed.randn(mu)
    return mu + noise * torch.exp(0.5 * log_var)


class VesselEncoder(nn.Module):
    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        widths = _widths(config)
        # Space-to-depth first: the full-resolution stage costs nothing, details survive in channels.
        layers: list[nn.Module] = [nn.PixelUnshuffle(2), _conv(4, widths[0])]
        for a, b in zip(widths, widths[1:]):
            # An extra conv only where maps are small: cheap there, and where capacity pays.
            layers += ([_conv(a, a)] if a >= 4 * widths[0] else []) + [_conv(a, b, stride=2)]
        layers += [_conv(widths[-1], widths[-1], stride=2)]  # 8 -> 4 px
        self.features = nn.Sequential(*layers)
        self.dense = nn.Sequential(nn.Flatten(), nn.Linear(widths[-1] * 16, config.feature_dim), nn.LeakyReLU(0.2, inplace=True))
        self.mu = nn.Linear(config.feature_dim, config.latent_dim)
        self.log_var = nn.Linear(config.feature_dim, config.latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, S, S) in [0, 1] -> mu, log-variance, each (B, latent_dim)."""
        h = self.dense(self.features(x * 2 - 1))
        return self.mu(h), self.log_var(h).clamp(-12, 6)


class FineBlock(nn.Module):
    """x + conv(widen(x)): 4x wider inside; the last conv starts at zero, so a block added to a
    trained decoder (train.py aae --init ... --model.fine-blocks N) leaves its output unchanged."""

    def __init__(self, channels: int):
        super().__init__()
        self.widen = _conv(channels, 4 * channels)
        self.out = nn.Conv2d(4 * channels, channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.out(self.widen(x))


class VesselDecoder(nn.Module):
    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        widths = _widths(config)[::-1]  # 8 px stage first
        self.start = widths[0]
        self.dense = nn.Sequential(nn.Linear(config.latent_dim, widths[0] * 64), nn.LeakyReLU(0.2, inplace=True))
        layers: list[nn.Module] = [_conv(widths[0], widths[0])]
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), _conv(a, b)]
            if b >= 4 * widths[-1]:  # a second conv on the small (<= 32 px) stages only
                layers.append(_conv(b, b))
        for _ in range(config.fine_blocks):  # appended: a model without them keeps its layer names
            layers.append(FineBlock(widths[-1]))
        self.body = nn.Sequential(*layers)
        # Sub-pixel head: 4 channels at half resolution -> 1 channel at full resolution,
        # so no convolution runs at 256 px (the costliest, least efficient layers on a CPU).
        self.head = nn.Sequential(nn.Conv2d(widths[-1], 4, 3, padding=1), nn.PixelShuffle(2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> vessel logits (B, 1, S, S)."""
        h = self.dense(z).view(len(z), self.start, 8, 8)  # (B, C, 8, 8)
        return self.head(self.body(h))


class VesselAutoencoder(nn.Module):
    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.config = config
        self.encoder = VesselEncoder(config)
        self.decoder = VesselDecoder(config)

    def encode(self, x: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """Vessel maps (B, 1, S, S) in [0, 1] -> latent codes (B, l): the mean, or a reparameterised sample."""
        mu, log_var = self.encoder(x)
        return reparameterise(mu, log_var, generator) if sample else mu

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes (B, l) -> vessel probabilities (B, 1, S, S)."""
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> reconstruction logits, mu, log-variance."""
        mu, log_var = self.encoder(x)
        return self.decoder(reparameterise(mu, log_var)), mu, log_var

    def latents(self, seeds: list[int]) -> torch.Tensor:
        """Prior samples, one per seed: sample k depends on seeds[k] alone, not on the batch."""
        device = next(self.parameters()).device
        codes = [torch.randn(self.config.latent_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
        return torch.stack(codes).to(device)

    @torch.no_grad()
    def sample(self, seeds: list[int]) -> torch.Tensor:
        return self.decode(self.latents(seeds))


register_model("vae", AutoencoderConfig)(VesselAutoencoder)
register_model("aae", AutoencoderConfig)(VesselAutoencoder)


class CodeDiscriminator(nn.Module):
    """Tells prior samples from encoded codes."""

    def __init__(self, latent_dim: int, hidden: int = 512):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(hidden, hidden // 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(hidden // 2, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class MapDiscriminator(nn.Module):
    """PatchGAN on vessel maps: (B, 1, 256, 256) -> (B, 1, 16, 16) real/fake logits."""

    def __init__(self, base_channels: int = 16):
        super().__init__()
        c = base_channels
        self.net = nn.Sequential(
            nn.Conv2d(1, c, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(c, 2 * c, 4, 2, 1), nn.BatchNorm2d(2 * c), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * c, 4 * c, 4, 2, 1), nn.BatchNorm2d(4 * c), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(4 * c, 8 * c, 4, 2, 1), nn.BatchNorm2d(8 * c), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(8 * c, 1, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1)
