"""DenseNet and multi-band MMDenseNet mask estimators (Takahashi & Mitsufuji 2017), sized for a CPU.

Dense blocks (BN → ReLU → 3×3 conv, each layer adding ``growth`` channels and seeing all earlier ones) in an
encoder–decoder with skip connections, over (channels, frames, bins) log-magnitudes. MMDenseNet runs one DenseNet
per frequency band plus one over the full band, concatenates them along channels and ends in a dense block. One
network predicts every source's mask logits (softmax policy).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Estimator
from .layers import InputScaler


class DenseBlock(torch.nn.Module):
    def __init__(self, cin: int, growth: int, layers: int):
        super().__init__()
        self.layers = torch.nn.ModuleList(
            torch.nn.Sequential(
                torch.nn.BatchNorm2d(cin + i * growth),
                torch.nn.ReLU(),
                torch.nn.Conv2d(cin + i * growth, growth, 3, padding=1),
            )
            for i in range(layers)
        )
        self.out_channels = cin + layers * growth

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = torch.cat([x, layer(x)], dim=1)
        return x


class DenseNet(torch.nn.Module):
    """Encoder–decoder of dense blocks with ``levels`` 2× down/up-samplings. (batch, cin, T, F) → (batch, out, T, F)."""

    def __init__(self, cin: int, growth: int, layers: int, levels: int):
        super().__init__()
        self.first = torch.nn.Conv2d(cin, 2 * growth, 3, padding=1)
        channels = 2 * growth
        self.down_blocks = torch.nn.ModuleList()
        skips = []
        for _ in range(levels):
            block = DenseBlock(channels, growth, layers)
            self.down_blocks.append(block)
            channels = block.out_channels
            skips.append(channels)
        self.middle = DenseBlock(channels, growth, layers)
        channels = self.middle.out_channels
        self.ups = torch.nn.ModuleList()
        self.up_blocks = torch.nn.ModuleList()
        for skip in reversed(skips):
            self.ups.append(torch.nn.ConvTranspose2d(channels, growth * 2, 2, stride=2))
            block = DenseBlock(growth * 2 + skip, growth, layers)
            self.up_blocks.append(block)
            channels = block.out_channels
        self.out_channels = channels
        self.levels = levels

    def forward(self, x: Tensor) -> Tensor:
        t, f = x.shape[-2:]
        m = 2**self.levels
        x = F.pad(x, (0, (-f) % m, 0, (-t) % m))
        h = self.first(x)
        skips = []
        for block in self.down_blocks:
            h = block(h)
            skips.append(h)
            h = F.avg_pool2d(h, 2)
        h = self.middle(h)
        for up, block, skip in zip(self.ups, self.up_blocks, reversed(skips)):
            h = block(torch.cat([up(h), skip], dim=1))
        return h[..., :t, :f]


class DenseNetEstimator(Estimator):
    """A single full-band DenseNet (``bands`` empty) or MMDenseNet (band edges in bins, e.g. [0, 128, 512])."""

    kind = "densenet"

    def __init__(
        self,
        *args,
        growth: int = 8,
        layers: int = 2,
        levels: int = 3,
        max_bins: int = 1024,
        bands: tuple[int, ...] = (),
        **kwargs,
    ):
        kwargs.setdefault("mask", "softmax")
        super().__init__(
            *args, growth=growth, layers=layers, levels=levels, max_bins=max_bins, bands=list(bands), **kwargs
        )
        self.max_bins = min(max_bins, self.bins)
        self.scaler = InputScaler(self.bins)
        self.full = DenseNet(self.channels, growth, layers, levels)
        edges = list(bands) + [self.max_bins] if bands else []
        self.edges = list(zip(edges[:-1], edges[1:])) if bands else []
        band_nets = [DenseNet(self.channels, growth, layers, max(1, levels - 1)) for _ in self.edges]
        self.band_nets = torch.nn.ModuleList(band_nets)
        channels = self.full.out_channels
        if band_nets:
            width = band_nets[0].out_channels
            self.final = DenseBlock(channels + width, growth, layers)
            channels = self.final.out_channels
        self.head = torch.nn.Conv2d(channels, self.predicted * self.channels, 1)

    def forward(self, mag: Tensor) -> Tensor:
        batch, channels, bins, frames = mag.shape
        x = self.scaler(mag)[:, :, : self.max_bins].transpose(2, 3)  # (batch, ch, frames, max_bins)
        h = self.full(x)
        if self.edges:
            bands = torch.cat([net(x[..., lo:hi]) for net, (lo, hi) in zip(self.band_nets, self.edges)], dim=-1)
            h = self.final(torch.cat([h, bands], dim=1))
        logits = self.head(h)  # (batch, P·ch, frames, max_bins)
        logits = logits.reshape(batch, self.predicted, channels, frames, self.max_bins).transpose(3, 4)
        high = bins - self.max_bins
        if high:
            # Above max_bins every source gets the same logit: a uniform split.
            logits = torch.cat([logits, logits.new_zeros(*logits.shape[:3], high, frames)], dim=3)
        return logits


class MMDenseNet(DenseNetEstimator):
    kind = "mmdensenet"

    def __init__(self, *args, bands: tuple[int, ...] = (0, 128, 384), **kwargs):
        super().__init__(*args, bands=bands, **kwargs)
