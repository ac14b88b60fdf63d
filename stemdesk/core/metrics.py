"""Separation quality metrics."""

from __future__ import annotations

import torch
from torch import Tensor


def usdr(reference: Tensor, estimate: Tensor, eps: float = 1e-8) -> Tensor:
    """Global SDR per track and source, the MDX challenge definition (“uSDR”), in dB.

    reference, estimate: (..., sources, channels, length) → (..., sources).
    10·log10(Σ s² + ε) / (Σ (s − ŝ)² + ε) summed over channels and time.
    """
    num, den = usdr_sums(reference, estimate)
    return 10 * torch.log10((num + eps) / (den + eps))


def usdr_sums(reference: Tensor, estimate: Tensor, block: int = 1 << 18) -> tuple[Tensor, Tensor]:
    """(Σ s², Σ (s − ŝ)²) per source in float64, over blocks of time so that a whole song needs no float64 copy
    of itself; sums over consecutive pieces of a song add up to the whole song's."""
    length = reference.shape[-1]
    num = torch.zeros(reference.shape[:-2], dtype=torch.float64)
    den = torch.zeros(reference.shape[:-2], dtype=torch.float64)
    for start in range(0, length, block):
        ref = reference[..., start : start + block].double()
        num += ref.pow(2).sum(dim=(-1, -2))
        den += (ref - estimate[..., start : start + block].double()).pow(2).sum(dim=(-1, -2))
    return num, den
