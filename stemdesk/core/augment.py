"""Training augmentations that act on each source on its own: gain, channel swap, polarity.

Each works on stems (sources, channels, length); the mixture is always recomputed as their sum, so it stays exact.
The pitch and tempo change, which acts on every source alike, runs through pedalboard in
`stemdesk.training.augment` (the core uses torch and numpy only).
"""

from __future__ import annotations

import torch
from torch import Tensor


def random_gain(stems: Tensor, generator: torch.Generator, low_db: float = -6.0, high_db: float = 3.0) -> Tensor:
    """An independent gain per source, uniform in dB."""
    db = torch.empty(stems.shape[0], 1, 1).uniform_(low_db, high_db, generator=generator)
    return stems * (10 ** (db / 20)).to(stems.dtype)


def channel_swap(stems: Tensor, generator: torch.Generator, p: float = 0.5) -> Tensor:
    """Swap left and right of each source with probability ``p`` (stereo only)."""
    if stems.shape[1] != 2:
        return stems
    swap = torch.rand(stems.shape[0], generator=generator) < p
    out = stems.clone()
    out[swap] = stems[swap].flip(1)
    return out


def polarity(stems: Tensor, generator: torch.Generator, p: float = 0.5) -> Tensor:
    """Invert each source's polarity with probability ``p``."""
    sign = torch.where(torch.rand(stems.shape[0], generator=generator) < p, -1.0, 1.0).to(stems.dtype)
    return stems * sign[:, None, None]
