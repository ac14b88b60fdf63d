"""MIX: the baseline that gives every source an equal share of the mixture (Prétet et al. 2018)."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Estimator


class MixEstimator(Estimator):
    """No parameters: every bin is split uniformly. A lower bound for any real estimator."""

    kind = "mix"

    def forward(self, mag: Tensor) -> Tensor:
        """mag (batch, channels, bins, frames) → ones (batch, predicted, channels, bins, frames)."""
        batch, channels, bins, frames = mag.shape
        ones = torch.ones(batch, len(self.sources), channels, bins, frames, dtype=mag.dtype, device=mag.device)
        # Under the residual policy the residual source gets max(0, 1 − Σ others); 1/n each keeps the split uniform.
        return ones[:, : self.predicted] / len(self.sources)
