"""Vessel segmenter: a U-Net from a preprocessed fundus photo to vessel logits."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from retinagan.models.layers import ConvBlock, UpBlock
from retinagan.models.registry import register_model


@dataclass
class SegmenterConfig:
    in_channels: int = 1  # contrast-normalised green channel
    base_channels: int = 16  # width of the first level; doubles per level
    depth: int = 4  # number of 2x downsamplings
    dropout: float = 0.1  # dropout in the bottleneck block
    fov_width: int = 540  # FOV width (px) of the training photos; inputs are rescaled to it


@register_model("segmenter", SegmenterConfig)
class VesselSegmenter(nn.Module):
    def __init__(self, config: SegmenterConfig):
        super().__init__()
        self.config = config
        widths = [config.base_channels * 2**i for i in range(config.depth + 1)]
        self.stem = ConvBlock(config.in_channels, widths[0])
        self.down = nn.ModuleList(
            ConvBlock(widths[i], widths[i + 1], dropout=config.dropout if i == config.depth - 1 else 0.0)
            for i in range(config.depth)
        )
        self.up = nn.ModuleList(UpBlock(widths[i + 1], widths[i], widths[i]) for i in reversed(range(config.depth)))
        self.head = nn.Conv2d(widths[0], 1, 1)
        self.pool = nn.MaxPool2d(2)

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return 2**self.config.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> vessel logits (B, 1, H, W)."""
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(self.pool(skips[-1])))
        h = skips.pop()
        for block in self.up:
            h = block(h, skips.pop())
        return self.head(h)
