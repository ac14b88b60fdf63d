"""Post-processing of masks (Prétet et al. 2018), as options of a separation, and the oracle masks.

Every step takes masks that sum to one and returns masks that sum to one (or, for Wiener filtering, stem spectra
that sum to the mixture), so Σ stems = mix survives; the separator's final projection absorbs float rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .masks import ratio_masks

# A mask post-processing step: (spec, masks, hop in seconds) → masks that still sum to one.
MaskStep = Callable[[Tensor, Tensor, float], Tensor]


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


@dataclass(frozen=True)
class PostProcessing:
    """What a separation does after the estimator: the energy gate on vocals (``vocal_gate``: (a seconds, ratio b)),
    binarisation (``binarise``: α) and multichannel Wiener filtering (``wiener`` iterations; 0: plain masks).

    A model card may ask for some of them (its "postprocessing" block, `from_card`): separation then applies them
    unless the user asks otherwise, so a method whose paper post-processes its masks (Prétet et al.) is used as it
    was trained and validated. An estimator's own thresholds (Deep Karaoke's α, Lin et al.'s θ) are part of the
    estimator and live in its config, not here."""

    wiener: int = 0
    vocal_gate: tuple[float, float] | None = None
    binarise: float | None = None

    def __post_init__(self) -> None:
        if self.wiener < 0:
            raise ValueError(f"Wiener iterations must be 0 or more, not {self.wiener}")
        if self.vocal_gate is not None:
            seconds, ratio = self.vocal_gate
            if not (seconds > 0 and 0 < ratio < 1):
                raise ValueError(
                    f"the vocal gate needs a duration > 0 s and a ratio between 0 and 1, not {list(self.vocal_gate)}"
                )
        if self.binarise is not None and not self.binarise > 0:
            raise ValueError(f"binarisation needs α > 0, not {self.binarise}")

    def steps(self, sources: Sequence[str]) -> list[MaskStep]:
        """The mask steps for an estimator with these sources, in the order they run (gate, then binarisation)."""
        steps: list[MaskStep] = []
        if self.vocal_gate is not None:
            if "vocals" not in sources:
                raise ValueError("the vocal gate needs a model with a vocals stem")
            steps.append(EnergyGate(list(sources).index("vocals"), *self.vocal_gate))
        if self.binarise is not None:
            steps.append(Binarise(self.binarise))
        return steps

    def __bool__(self) -> bool:
        return bool(self.wiener) or self.vocal_gate is not None or self.binarise is not None

    def over(self, base: PostProcessing) -> PostProcessing:
        """These settings where they are set, ``base``'s (a model card's) elsewhere."""
        return PostProcessing(
            wiener=self.wiener or base.wiener,
            vocal_gate=self.vocal_gate if self.vocal_gate is not None else base.vocal_gate,
            binarise=self.binarise if self.binarise is not None else base.binarise,
        )

    def as_dict(self) -> dict[str, Any]:
        """As a model card's "postprocessing" block (plain JSON values)."""
        return {
            "wiener": self.wiener,
            "vocal_gate": list(self.vocal_gate) if self.vocal_gate is not None else None,
            "binarise": self.binarise,
        }

    @classmethod
    def from_card(cls, block: Mapping[str, Any] | None) -> PostProcessing:
        """A card's "postprocessing" block (missing: none). Raises ValueError for a malformed one."""
        if not block:
            return cls()
        if not isinstance(block, Mapping) or set(block) - {"wiener", "vocal_gate", "binarise"}:
            raise ValueError(f"a postprocessing block holds wiener, vocal_gate and binarise, not {block!r}")
        gate = block.get("vocal_gate")
        binarise = block.get("binarise")
        try:
            return cls(
                wiener=int(block.get("wiener") or 0),
                vocal_gate=None if gate is None else (float(gate[0]), float(gate[1])),
                binarise=None if binarise is None else float(binarise),
            )
        except (TypeError, IndexError) as error:
            raise ValueError(f"malformed postprocessing block {dict(block)!r}: {error}") from None


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
