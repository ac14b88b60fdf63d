"""Separation quality metrics."""

from __future__ import annotations

import torch
from torch import Tensor


def usdr(reference: Tensor, estimate: Tensor, eps: float = 1e-8) -> Tensor:
    """Global SDR per track and source, the MDX challenge definition (“uSDR”), in dB.

    reference, estimate: (..., sources, channels, length) → (..., sources).
    10·log10(Σ s² + ε) / (Σ (s − ŝ)² + ε) summed over channels and time.
    """
    num = reference.double().pow(2).sum(dim=(-1, -2))
    den = (reference.double() - estimate.double()).pow(2).sum(dim=(-1, -2))
    return 10 * torch.log10((num + eps) / (den + eps))
