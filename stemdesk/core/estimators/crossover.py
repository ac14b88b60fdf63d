"""CROSSOVER: a fixed split by frequency bands, the signal-processing baseline of a split model (a drum kit's kick
below 150 Hz and cymbals above 5 kHz, the rest between)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from .base import Estimator


class Crossover(Estimator):
    """No parameters. ``bands`` gives some sources a frequency range ``[low, high]`` in Hz (``high`` None: up to
    Nyquist); a bin inside one or more sources' ranges goes to them in equal shares, any other bin to the sources
    without a range in equal shares (to every source when all have one)."""

    kind = "crossover"
    sums_to_one = True
    shares: Tensor  # (sources, bins): each source's share of each bin

    def __init__(self, *args, bands: Mapping[str, Sequence[float | None]] | None = None, **kwargs):
        kwargs.setdefault("mask", "ratio")
        bands = {str(k): [v[0], v[1]] for k, v in (bands or {}).items()}
        super().__init__(*args, bands=bands, **kwargs)
        unknown = sorted(set(bands) - set(self.sources))
        if unknown:
            raise ValueError(f"crossover bands name sources it does not separate: {unknown}")
        freqs = self.stft_config.bin_frequencies()
        claim = torch.zeros(len(self.sources), len(freqs))
        for index, source in enumerate(self.sources):
            if source in bands:
                low, high = bands[source]
                top = float("inf") if high is None else float(high)
                claim[index] = ((freqs >= float(low or 0.0)) & (freqs < top)).float()
        free = [i for i, s in enumerate(self.sources) if s not in bands] or list(range(len(self.sources)))
        unclaimed = claim.sum(0) == 0
        claim[free] += unclaimed.float()
        self.register_buffer("shares", claim / claim.sum(0, keepdim=True), persistent=False)

    def forward(self, mag: Tensor) -> Tensor:
        """mag (batch, channels, bins, frames) → masks (batch, sources, channels, bins, frames) that sum to one."""
        batch, channels, bins, frames = mag.shape
        shares = self.shares.to(mag.dtype)[None, :, None, :, None]
        return shares.expand(batch, -1, channels, bins, frames)
