"""Mask policies and the null rule.

Every policy ends in masks of shape (batch, sources, channels, bins, frames) that sum to one over ``sources`` in every
bin, silent bins included (a uniform split, never a zero), so Σ stems = mix for every estimator.
"""

from __future__ import annotations

import torch
from torch import Tensor

MASK_KINDS = ("ratio", "softmax", "sigmoid")

# Below this total a bin is treated as silent and split uniformly.
SILENT = 1e-12


def normalise_masks(raw: Tensor, kind: str, residual: bool = False) -> Tensor:
    """Turn an estimator's raw output into masks that sum to one over dim 1.

    raw: (batch, predicted, channels, bins, frames).
    kind: "ratio" (non-negative weights, divided by their sum), "sigmoid" (values in [0, 1], renormalised to sum to
    one, Roma et al.'s cnn1), or "softmax" (logits).
    residual: the estimator predicts all sources but one; the last source gets what the others leave,
    ``max(0, 1 − Σ others)``, before renormalisation (e.g. vocals + residual = accompaniment).
    Returns masks (batch, sources, channels, bins, frames) with sources = predicted + residual.
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"unknown mask kind {kind!r}; expected one of {MASK_KINDS}")
    if kind == "softmax":
        if residual:
            # A zero logit for the residual source: softmax over [logits, 0].
            raw = torch.cat([raw, torch.zeros_like(raw[:, :1])], dim=1)
        return softmax_in_place_order(raw, 1)
    if kind == "sigmoid" and residual and raw.shape[1] == 1:
        weights = raw.clamp(0, 1)  # one mask and its complement: they sum to one as they are
        return torch.cat([weights, 1 - weights], dim=1)
    weights = raw.clamp_min(0)
    if kind == "sigmoid":
        weights = weights.clamp_max(1)
    if residual:
        weights = torch.cat([weights, (1 - weights.sum(dim=1, keepdim=True)).clamp_min(0)], dim=1)
    return ratio_masks(weights)


def ratio_masks(weights: Tensor) -> Tensor:
    """weights ≥ 0: (batch, sources, ...) → weights / Σ weights, with a uniform split where Σ is (almost) zero."""
    total = weights.sum(dim=1, keepdim=True)
    masks = weights / total.clamp_min(SILENT)
    return masks.masked_fill_(total <= SILENT, 1.0 / weights.shape[1])


def softmax_in_place_order(raw: Tensor, dim: int) -> Tensor:
    """torch.softmax over ``dim``, computed in the order ``raw`` is laid out in memory, so the result is laid out as
    ``raw`` is (torch.softmax of a permuted view copies it into the view's order first)."""
    order = sorted(range(raw.dim()), key=raw.stride, reverse=True)
    laid = raw.permute(order)
    if not laid.is_contiguous():
        return torch.softmax(raw, dim=dim)
    return torch.softmax(laid, dim=order.index(dim)).permute([order.index(d) for d in range(raw.dim())])


def apply_mask(spec: Tensor, mask: Tensor) -> Tensor:
    """complex spec × real mask of broadcastable shapes (a real factor multiplies the real and imaginary parts:
    the same numbers as multiplying them one by one)."""
    return spec * mask


def project_onto_mixture(stems: Tensor, mix: Tensor, in_place: bool = False) -> Tensor:
    """Make Σ stems equal the mix in the time domain by giving the last stem what the others leave.

    stems: (..., sources, channels, length); mix: (..., channels, length). The masks already sum to one, so the
    residual moved here is only iSTFT and float rounding (about −140 dBFS); the projection makes the null exact
    to the rounding of one subtraction. Returns a new tensor, or ``stems`` itself with ``in_place``.
    """
    out = stems if in_place else stems.clone()
    out[..., -1, :, :] = mix - stems[..., :-1, :, :].sum(dim=-3)
    return out


RESIDUAL_SPREADS = ("spectral", "even", "last")


def spread_residual(stems: Tensor, mix: Tensor, how: str = "spectral", stft=None) -> Tensor:
    """Make stems that a network predicted as waveforms (and that need not sum to the mix) sum to the mix, moving
    only what they leave, r = mix − Σ stems, and moving it where it belongs.

    stems: (sources, channels, length); mix: (channels, length).
    "spectral": r is split bin by bin in proportion to each stem's power there (|Sᵢ|² / Σ|Sⱼ|², a uniform split
    where all are silent) on ``stft``'s grid, so a drum's leftover goes back to the drums; "even": every stem gets
    r / sources; "last": the last stem gets all of r. The rounding left after the spectral split (iSTFT, about
    −140 dBFS) goes to the last stem, so Σ stems = mix to the rounding of one subtraction in every case.
    """
    if how not in RESIDUAL_SPREADS:
        raise ValueError(f"unknown residual spread {how!r}; expected one of {RESIDUAL_SPREADS}")
    residual = mix - stems.sum(dim=0)
    out = stems.clone()
    if how == "even":
        out += residual / stems.shape[0]
    elif how == "spectral":
        spec = stft(stems.to(torch.float32))  # (sources, channels, bins, frames)
        power = spec.real.square() + spec.imag.square()
        # Every stem's share but the last: the projection below gives the last stem what the others leave, which
        # is its share to the rounding of the iSTFT, so its share is never made (a quarter of the iSTFTs).
        weights = ratio_masks(power.unsqueeze(0))[0, :-1]
        shares = stft.inverse(apply_mask(stft(residual.to(torch.float32)), weights), mix.shape[-1])
        out[:-1] += shares.to(out.dtype)
    return project_onto_mixture(out, mix)
