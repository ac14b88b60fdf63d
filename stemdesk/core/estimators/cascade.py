"""Two estimators in series: one splits a source (vocals) from the rest, the other divides the rest.

A cascade lets a strong two-stem network (Spleeter's vocal U-Net, trained on about 25,000 songs) decide what is
vocals while a four-stem network, trained here, decides how the accompaniment divides into drums, bass and other.
Both see the same mixture magnitudes on the same STFT grid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from ..masks import SILENT, normalise_masks, ratio_masks
from .base import Estimator


def _stage(kind: str, config: Mapping[str, Any]) -> Estimator:
    """One stage of a cascade, built from the registry: it must be a mask estimator."""
    from . import build_estimator  # the registry imports this module

    stage = build_estimator(kind, config)
    if not isinstance(stage, Estimator):
        raise ValueError(f"a cascade's stages estimate masks; {kind!r} predicts waveforms")
    return stage


class Cascade(Estimator):
    """masks: m₀ = ``first``'s mask of its first source, for the ``first_bins`` lowest bins (``second``'s own
    estimate of that source above them, where e.g. Spleeter's U-Net has no output); mᵢ = (1 − m₀) · sᵢ / Σⱼ sⱼ
    over ``second``'s other sources. They sum to one by construction, so the null holds as for any estimator.
    ``rest_exponent`` p divides the rest by sᵢᵖ / Σⱼ sⱼᵖ instead: p < 1 softens the second stage's split (more of
    each source's neighbours in every stem, fewer holes), p > 1 sharpens it; the lead's mask is not touched.
    With a softmax second stage that is its logits times p (softmax(p·z)ᵢ / Σⱼ softmax(p·z)ⱼ = sᵢᵖ / Σⱼ sⱼᵖ), one
    multiplication instead of a power per mask value (a power costs about 0.3 s of a 3-minute song on one thread);
    the second stage's own lead above ``first_bins`` is then tempered alike.

    ``second_input`` is what the second stage hears: "mix" (the mixture's magnitudes) or "rest" (the mixture with
    the lead masked out below ``first_bins``: (1 − m₀)·|X|, the mixture above them). With "rest" the second stage
    no longer has to find the vocals itself to divide what is left; the masks it returns are applied to the
    mixture as before, so the null is unchanged.

    ``first`` and ``second`` are {"kind": registry name, "config": its config}; the cascade's sources are the
    first's first source followed by the second's others, in the second's order. A stage's config inherits the
    cascade's STFT and channel count (and the second stage the cascade's sources) unless it states its own.
    """

    kind = "cascade"
    sums_to_one = True

    def __init__(
        self,
        *args,
        first: Mapping[str, Any],
        second: Mapping[str, Any],
        first_bins: int | None = None,
        rest_exponent: float = 1.0,
        second_input: str = "mix",
        **kwargs,
    ):
        kwargs.setdefault("mask", "ratio")
        if not rest_exponent > 0:
            raise ValueError(f"rest_exponent must be positive, not {rest_exponent}")
        if second_input not in ("mix", "rest"):
            raise ValueError(f'second_input must be "mix" or "rest", not {second_input!r}')
        super().__init__(
            *args,
            first=dict(first),
            second=dict(second),
            first_bins=first_bins,
            rest_exponent=float(rest_exponent),
            second_input=second_input,
            **kwargs,
        )
        self.rest_exponent = float(rest_exponent)
        self.second_input = second_input
        # A stage's config inherits the cascade's STFT and channels (and the second its sources) unless it sets them.
        stft = self.config()["stft"]
        self.first = _stage(first["kind"], {"stft": stft, "channels": self.channels, **first["config"]})
        self.second = _stage(
            second["kind"], {"sources": list(self.sources), "stft": stft, "channels": self.channels, **second["config"]}
        )
        lead = self.first.sources[0]
        if lead not in self.second.sources:
            raise ValueError(f"the second estimator must also estimate {lead!r}, the first's first source")
        expected = (lead, *(s for s in self.second.sources if s != lead))
        if self.sources != expected:
            raise ValueError(f"a cascade of these estimators has sources {list(expected)}, not {list(self.sources)}")
        for part in (self.first, self.second):
            same_grid = (part.stft_config.n_fft, part.stft_config.hop, part.stft_config.sample_rate) == (
                self.stft_config.n_fft,
                self.stft_config.hop,
                self.stft_config.sample_rate,
            )
            if not same_grid or part.channels != self.channels:
                raise ValueError("both estimators of a cascade must share its STFT and channel count")
        self.lead = self.second.sources.index(lead)
        self.first_bins = min(first_bins or getattr(self.first, "max_bins", self.bins), self.bins)

    def _lead_and_heard(self, mag: Tensor) -> tuple[Tensor, Tensor]:
        """The first stage's mask of the lead (its ``first_bins`` lowest bins) and what the second stage hears."""
        fb = self.first_bins
        lead = normalise_masks(self.first(mag)[:, :, :, :fb], self.first.mask, self.first.residual)[:, 0]
        if self.second_input == "rest":
            return lead, torch.cat([(1 - lead) * mag[:, :, :fb], mag[:, :, fb:]], dim=2)
        return lead, mag

    def scaled_input(self) -> tuple[torch.nn.Module, Callable[[Tensor], Tensor]]:
        """The second stage and what it hears: a second stage trained from scratch behind a trained first stage
        (the first's weights loaded, the second's not) gets its input normalisation from what it will hear."""
        part, hears = self.second.scaled_input()
        return part, lambda mag: hears(self._lead_and_heard(mag)[1])

    def forward(self, mag: Tensor) -> Tensor:
        fb = self.first_bins
        lead, heard = self._lead_and_heard(mag)
        raw, exponent = self.second(heard), self.rest_exponent
        if exponent != 1.0 and self.second.mask == "softmax" and not self.second.residual:
            raw = raw * exponent if torch.is_grad_enabled() else raw.mul_(exponent)
            exponent = 1.0
        second = normalise_masks(raw, self.second.mask, self.second.residual)
        if self.lead == 0 and not torch.is_grad_enabled():
            return self._combine_in_place(lead, second, exponent)
        lead = torch.cat([lead, second[:, self.lead, :, fb:]], dim=2)
        others = [i for i in range(second.shape[1]) if i != self.lead]
        rest = second[:, others]
        if exponent != 1.0:
            rest = rest.clamp_min(SILENT).pow(exponent)  # no infinite gradient at 0 for p < 1
        rest = ratio_masks(rest)
        return torch.cat([lead.unsqueeze(1), (1 - lead).unsqueeze(1) * rest], dim=1)

    @staticmethod
    def _combine_in_place(lead: Tensor, masks: Tensor, exponent: float = 1.0) -> Tensor:
        """The masks `forward` computes, written into ``masks``, the second stage's own (already in the cascade's
        order when the lead is its first source), without the copies autograd needs (measured on 30 s of audio,
        one thread: 105 ms instead of 367 ms)."""
        masks[:, 0, :, : lead.shape[2]] = lead
        rest = masks[:, 1:]
        if exponent != 1.0:
            rest.clamp_min_(SILENT).pow_(exponent)
        total = rest.sum(dim=1, keepdim=True)
        silent = total <= SILENT
        rest.mul_((1 - masks[:, :1]) / total.clamp_min_(SILENT))
        if silent.any():  # where the second stage left nothing to divide, the rest is shared equally
            rest.copy_(torch.where(silent, (1 - masks[:, :1]) / rest.shape[1], rest))
        return masks
