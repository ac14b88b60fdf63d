"""Ensembles: several estimators on the same segment, averaged, then the null rule.

Mask estimators whose STFTs match at the audio's rate (and that group channels alike) have their masks averaged
(each member's masks sum to one, so a weighted mean of them does too) and applied once, so mask post-processing
and Wiener filtering see one set of masks. Everything else (waveform estimators such as HTDemucs, mask estimators
on another STFT) is averaged as stems. Every part sums to the mix, so the weighted mean does; the last stem then
takes the rounding (`project_onto_mixture`), as for a single model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .chunker import segment_weights
from .estimators.base import AnyEstimator, WaveformEstimator
from .masks import project_onto_mixture
from .postprocess import MaskStep
from .separator import MAX_SHIFT_SECONDS, Separator, SeparatorOutput, average_shifts


@dataclass
class Member:
    """One model of an ensemble: its estimator, its weight in the mean, and the merging of its sources into the
    stems it writes (a model card's ``outputs``). ``name`` is what errors call it (the model's id)."""

    estimator: AnyEstimator
    weight: float = 1.0
    outputs: Mapping[str, Sequence[str]] | None = None
    name: str = ""


def member_stems(estimator: AnyEstimator, outputs: Mapping[str, Sequence[str]] | None = None) -> tuple[str, ...]:
    """The stems a model writes: its ``outputs`` when it merges sources, else its estimator's sources."""
    return tuple(outputs) if outputs else tuple(estimator.sources)


def common_stems(stem_sets: Sequence[Sequence[str]], names: Sequence[str]) -> tuple[str, ...]:
    """The stems of an ensemble, in the first member's order. Members must separate the same stems (in any order):
    a stem only some of them make has no average, and leaving it out would break the null. Raises ValueError
    naming the members and the stems that are not shared."""
    first = list(stem_sets[0])
    if all(sorted(stems) == sorted(first) for stems in stem_sets[1:]):
        return tuple(first)
    shared = [stem for stem in first if all(stem in stems for stems in stem_sets)]
    described = "; ".join(f"{name}: {', '.join(stems)}" for name, stems in zip(names, stem_sets))
    unshared = sorted({stem for stems in stem_sets for stem in stems} - set(shared))
    raise ValueError(
        f"the models of an ensemble must separate the same stems, and these do not ({described}): "
        f"{', '.join(unshared)} {'is' if len(unshared) == 1 else 'are'} not made by every one"
        + (f" (shared: {', '.join(shared)})" if shared else "")
    )


class Ensemble:
    """Separates a block of audio with several estimators, each on the same block, and averages them (see the
    module docstring). The same interface as `Separator` for the chunker: `sources`, `chunking` and a call that
    returns stems summing to the audio."""

    def __init__(
        self,
        members: Sequence[Member],
        device: str | torch.device = "cpu",
        postprocess: Sequence[MaskStep] = (),
        wiener_iterations: int = 0,
        residual_spread: str = "spectral",
        shifts: int = 0,
        seed: int = 0,
    ):
        """``postprocess`` and ``wiener_iterations`` act on the averaged masks of each group of mask estimators;
        with a waveform estimator among the members they are refused, as for that estimator alone. ``shifts``
        passes are made of the whole ensemble (every member sees the same delayed audio)."""
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two models")
        if shifts < 0:
            raise ValueError("shifts must be 0 or more")
        if any(not member.weight > 0 for member in members):  # also refuses NaN
            raise ValueError("the weight of every model in an ensemble must be more than 0")
        names = [member.name or member.estimator.kind for member in members]
        waveform = [name for name, m in zip(names, members) if isinstance(m.estimator, WaveformEstimator)]
        if waveform and (postprocess or wiener_iterations):
            raise ValueError(
                f"{waveform[0]} predicts waveforms, not masks: mask post-processing and Wiener filtering do not "
                "apply to an ensemble with it"
            )
        stem_sets = [member_stems(m.estimator, m.outputs) for m in members]
        self.sources = common_stems(stem_sets, names)
        self.separators = [
            Separator(m.estimator, device, outputs=m.outputs, residual_spread=residual_spread) for m in members
        ]
        # each member's stems in the ensemble's order
        self.orders = [torch.tensor([list(stems).index(s) for s in self.sources]) for stems in stem_sets]
        self.weights = [float(m.weight) for m in members]
        self.postprocess = tuple(postprocess)
        self.wiener_iterations = wiener_iterations
        self.shifts, self.seed = shifts, seed

    def mask_groups(self, sample_rate: int) -> list[list[int]]:
        """Members (by index) whose masks are averaged together at this rate: mask estimators with the same STFT
        at the rate and the same channel grouping. Every other member is a group of its own."""
        groups: dict[object, list[int]] = {}
        for index, separator in enumerate(self.separators):
            if separator.waveform:
                key: object = index
            else:
                est = separator.mask_estimator
                key = (est.stft_config.at_rate(sample_rate), est.channels)
            groups.setdefault(key, []).append(index)
        return list(groups.values())

    def chunking(self, sample_rate: int, segment_seconds: float, overlap_seconds: float) -> dict:
        """The chunker's settings: mask estimators alone take the segment asked for; with a waveform estimator
        the segment is a whole number of that estimator's own segments (about ``segment_seconds``), overlapped as
        it overlaps them, so it costs no more runs of the network than it does alone. With ``shifts`` the block
        is `MAX_SHIFT_SECONDS` shorter than those segments, so a delayed pass still fits in them."""
        n_fft = max(
            (s.mask_estimator.stft_config.at_rate(sample_rate).n_fft for s in self.separators if not s.waveform),
            default=0,
        )
        waveform = [s for s in self.separators if s.waveform]
        if not waveform:
            segment = max(int(segment_seconds * sample_rate), 4 * n_fft)
            return {
                "segment": segment,
                "overlap": min(int(overlap_seconds * sample_rate), segment // 4),
                "window": segment_weights,
            }
        plan = waveform[0].waveform_segments(sample_rate)
        stride = plan["segment"] - plan["overlap"]
        most = int(MAX_SHIFT_SECONDS * sample_rate) if self.shifts else 0
        count = max(1, round((segment_seconds * sample_rate + most - plan["overlap"]) / stride))
        block = max(plan["segment"] + (count - 1) * stride - most, 4 * n_fft, 2 * plan["overlap"] + 1)
        return {"segment": block, "overlap": plan["overlap"], "window": segment_weights}

    @torch.inference_mode()
    def __call__(self, audio: Tensor, sample_rate: int) -> SeparatorOutput:
        """audio (channels, length) on the host → stems (sources, channels, length) on the host, Σ stems = audio."""
        if not self.shifts:
            return SeparatorOutput(stems=self.separate_once(audio, sample_rate))

        def separate(delayed: Tensor) -> Tensor:
            return self.separate_once(delayed, sample_rate)

        return SeparatorOutput(stems=average_shifts(separate, audio, sample_rate, self.shifts, self.seed))

    def separate_once(self, audio: Tensor, sample_rate: int) -> Tensor:
        """One pass of every member over ``audio`` (channels, length) → the weighted mean of their stems."""
        total = torch.zeros(len(self.sources), *audio.shape, dtype=torch.float64)
        for group in self.mask_groups(sample_rate):
            weight = sum(self.weights[i] for i in group)
            lead = self.separators[group[0]]
            if lead.waveform:
                stems = lead.separate_once(audio, sample_rate).stems[self.orders[group[0]]]
            else:
                spec, order = lead.spectrogram(audio, sample_rate)
                masks = sum(
                    self.weights[i]
                    * self.separators[i].merge_outputs(self.separators[i].estimate_masks(spec, sample_rate), dim=1)[
                        :, self.orders[i].to(spec.device)
                    ]
                    for i in group
                )
                assert isinstance(masks, Tensor)
                stems, _ = lead.stems_from_masks(
                    spec, masks / weight, audio, sample_rate, order, self.postprocess, self.wiener_iterations
                )
            total += weight * stems.to(torch.float64)
        return project_onto_mixture((total / sum(self.weights)).to(audio.dtype), audio)
