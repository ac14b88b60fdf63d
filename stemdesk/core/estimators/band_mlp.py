"""A tiny band-wise mask network: fast enough for end-to-end tests, real enough to learn something."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Estimator


class BandMLP(Estimator):
    """Log-magnitudes pooled into ``bands`` learned bands, a temporal convolution over ``2·context + 1`` frames,
    and a per-band mask for each source expanded back to every bin.

    A few thousand parameters; registered so that tests, the jobs and the GUI run the real pipeline in seconds.
    """

    kind = "band_mlp"

    def __init__(self, *args, bands: int = 32, hidden: int = 32, **kwargs):
        kwargs.setdefault("context", 2)
        kwargs.setdefault("mask", "softmax")
        super().__init__(*args, bands=bands, hidden=hidden, **kwargs)
        bins = self.bins
        self.pool = torch.nn.Linear(bins, bands, bias=False)
        self.conv = torch.nn.Conv1d(
            self.channels * bands, hidden, kernel_size=2 * self.context + 1, padding=self.context
        )
        self.out = torch.nn.Conv1d(hidden, self.predicted * self.channels * bands, kernel_size=1)
        self.expand = torch.nn.Linear(bands, bins, bias=False)
        with torch.no_grad():
            # Start from triangular bands spaced on a log-frequency scale.
            edges = torch.logspace(0, torch.log10(torch.tensor(float(bins - 1))), bands + 2) - 1
            grid = torch.arange(bins, dtype=torch.float32)
            lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
            tri = torch.clamp(
                torch.minimum(
                    (grid[None] - lo[:, None]) / (mid - lo + 1)[:, None],
                    (hi[:, None] - grid[None]) / (hi - mid + 1)[:, None],
                ),
                min=0,
            )
            tri = tri + 1e-3
            self.pool.weight.copy_(tri / tri.sum(dim=1, keepdim=True))
            self.expand.weight.copy_((tri / tri.sum(dim=0, keepdim=True)).T)

    def forward(self, mag: Tensor) -> Tensor:
        batch, channels, bins, frames = mag.shape
        x = torch.log(mag + 1e-4)  # (batch, channels, bins, frames)
        x = self.pool(x.transpose(-1, -2))  # (batch, channels, frames, bands)
        x = x.permute(0, 1, 3, 2).reshape(batch, -1, frames)  # (batch, channels·bands, frames)
        x = torch.relu(self.conv(x))  # (batch, hidden, frames)
        x = self.out(x)  # (batch, predicted·channels·bands, frames)
        x = x.reshape(batch, self.predicted, channels, -1, frames)  # (batch, predicted, channels, bands, frames)
        x = self.expand(x.transpose(-1, -2)).transpose(-1, -2)  # (batch, predicted, channels, bins, frames)
        return x
