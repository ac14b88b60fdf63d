"""Post-processing of masks (Prétet et al. 2018), as options of a separation, and the oracle masks.

Every step takes masks that sum to one and returns masks that sum to one (or, for Wiener filtering, stem spectra
that sum to the mixture), so Σ stems = mix survives; the separator's final projection absorbs float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .masks import ratio_masks


@dataclass(frozen=True)
class EnergyGate:
    """Silence the vocal stream where it is quiet for long enough.

    Frames whose vocal energy is below ``ratio`` (b) times the mixture's, in runs of at least ``min_seconds`` (a),
    get a zero vocal mask; their vocal share goes to the other sources in proportion to their masks (uniformly
    where those are all zero).
    """

    source: int = 0
    min_seconds: float = 0.5
    ratio: float = 0.05

    def __call__(self, spec: Tensor, masks: Tensor, hop_seconds: float) -> Tensor:
        """spec complex (batch, channels, bins, frames); masks (batch, sources, channels, bins, frames)."""
        power = spec.abs().pow(2)
        vocal = (masks[:, self.source].pow(2) * power).sum(dim=(1, 2))  # (batch, frames)
        total = power.sum(dim=(1, 2)).clamp_min(1e-12)
        quiet = vocal / total < self.ratio
        gate = long_runs(quiet, max(1, int(round(self.min_seconds / hop_seconds))))
        if not gate.any():
            return masks
        others = torch.cat([masks[:, : self.source], masks[:, self.source + 1 :]], dim=1)
        others = ratio_masks(others)
        gated = torch.cat([others[:, : self.source], torch.zeros_like(masks[:, :1]), others[:, self.source :]], dim=1)
        return torch.where(gate[:, None, None, None, :], gated, masks)


def long_runs(flags: Tensor, minimum: int) -> Tensor:
    """flags (batch, frames) bool → True only inside runs of at least ``minimum`` consecutive True values."""
    out = torch.zeros_like(flags)
    for b in range(flags.shape[0]):
        row = flags[b].tolist()
        start = None
        for i, value in enumerate(row + [False]):
            if value and start is None:
                start = i
            elif not value and start is not None:
                if i - start >= minimum:
                    out[b, start:i] = True
                start = None
    return out


@dataclass(frozen=True)
class Binarise:
    """Push masks towards 0/1 with f_α(x) = 1 / (1 + exp(−α(x − 0.5))), then renormalise to sum to one."""

    alpha: float = 10.0

    def __call__(self, spec: Tensor, masks: Tensor, hop_seconds: float) -> Tensor:
        return ratio_masks(torch.sigmoid(self.alpha * (masks - 0.5)))


def wiener(spec: Tensor, masks: Tensor, iterations: int = 1, eps: float = 1e-10) -> Tensor:
    """Multichannel Wiener filtering (the norbert/Open-Unmix recipe) from the masks' magnitude estimates.

    spec complex (batch, channels, bins, frames); masks (batch, sources, channels, bins, frames).
    Returns complex stem spectra (batch, sources, channels, bins, frames) with Σ sources = spec: the gains
    Wᵢ = vᵢ Rᵢ (Σⱼ vⱼ Rⱼ)⁻¹ sum to the identity. Mono input reduces to power-ratio (Wiener) masks.
    """
    batch, sources, channels, bins, frames = masks.shape
    x = spec.permute(0, 2, 3, 1)  # (batch, bins, frames, ch)
    y = (masks * spec.unsqueeze(1)).permute(0, 1, 3, 4, 2)  # (batch, src, bins, frames, ch)
    eye = torch.eye(channels, dtype=spec.dtype, device=spec.device)
    for _ in range(max(1, iterations)):
        v = y.abs().pow(2).mean(dim=-1)  # (batch, src, bins, frames)
        outer = y.unsqueeze(-1) * y.conj().unsqueeze(-2)  # (b, s, bins, frames, ch, ch)
        r = outer.sum(dim=3) / v.sum(dim=3).clamp_min(eps)[..., None, None]  # (b, s, bins, ch, ch)
        cov = v[..., None, None] * r.unsqueeze(3)  # (b, s, bins, frames, ch, ch)
        total = cov.sum(dim=1)  # (b, bins, frames, ch, ch)
        # Regularise relative to the power in the bin: one panned source alone gives a rank-1 matrix.
        load = total.diagonal(dim1=-2, dim2=-1).real.mean(-1)[..., None, None]
        inverse = torch.linalg.inv(total + (1e-6 * load + eps) * eye)
        gains = cov @ inverse.unsqueeze(1)  # (b, s, bins, frames, ch, ch)
        y = (gains @ x.unsqueeze(1).unsqueeze(-1)).squeeze(-1)  # (b, s, bins, frames, ch)
    # Assign the rounding of Σ gains ≠ I to the last source so the stems sum to the mixture.
    y[:, -1] = x - y[:, :-1].sum(dim=1)
    return y.permute(0, 1, 4, 2, 3)


def oracle_masks(references: Tensor, kind: str, power: float = 1.0) -> Tensor:
    """Masks computed from the true sources: the upper bounds and baselines of a comparison.

    references complex (batch, sources, channels, bins, frames). kind "irm": |Sᵢ|^p / Σ|Sⱼ|^p; "ibm": 1 for the
    loudest source in each bin; "mix": 1/sources everywhere.
    """
    mag = references.abs()
    if kind == "irm":
        return ratio_masks(mag.pow(power))
    if kind == "ibm":
        return torch.nn.functional.one_hot(mag.argmax(dim=1), mag.shape[1]).movedim(-1, 1).to(mag.dtype)
    if kind == "mix":
        return torch.full_like(mag, 1.0 / mag.shape[1])
    raise ValueError(f"oracle kind must be irm, ibm or mix, not {kind!r}")
