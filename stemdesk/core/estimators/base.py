"""The estimator interface: the one step a new separation method has to provide."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..masks import MASK_KINDS
from ..stft import STFTConfig

# Training objectives an estimator can declare (the trainer implements them):
#   magnitude_l1 / magnitude_mse: distance between masked mixture magnitudes and the sources' magnitudes;
#   dual: 0.9 · magnitude MSE + 0.1 · time-domain MSE (George et al.);
#   usdr: minus the mean uSDR of each example's masked-mixture stems, silent sources left out; usdr_silent: the
#            same with a silent source scored by how far below the mixture its estimate stays;
#   usdr_capped: usdr_silent with every source's term thresholded at 30 dB (split models, whose examples often
#            hold one child alone);
#   ibm_bce: binary cross-entropy against the ideal binary mask of the first source (soft targets from the
#            estimator's ``targets``, e.g. Lin et al.'s 0.02/0.98);
#   ibm_bce_windows: the same for each sliding excerpt's own prediction before they are averaged (Deep Karaoke:
#            the estimator's ``forward(mag, windows=True)``);
#   irm_mse: MSE between the masks and the ideal ratio masks; argmax_nll: NLL of the loudest source per bin.
OBJECTIVES = (
    "magnitude_l1",
    "magnitude_mse",
    "dual",
    "usdr",
    "usdr_silent",
    "usdr_capped",
    "ibm_bce",
    "ibm_bce_windows",
    "irm_mse",
    "argmax_nll",
)


class Estimator(torch.nn.Module):
    """Magnitude spectrogram in, raw masks out.

    Subclasses set ``kind`` (the registry name) and implement `forward`:
    mag (batch, channels, bins, frames) → raw (batch, predicted, channels, bins, frames), where ``predicted`` is
    ``len(sources) - 1`` under the residual policy and ``len(sources)`` otherwise. `Separator` turns the raw output
    into masks with `normalise_masks(raw, self.mask, self.residual)` (unless ``sums_to_one``), and the last stem is
    the mixture minus the others, so no estimator can break Σ stems = mix.

    Declared facts (also written to the model card): sources, STFT (sample rate, FFT size, hop), channels it is
    trained on (1 or 2; the separator groups a file's channels to match), mask policy, residual policy,
    ``context``: how many frames on each side the prediction for one frame looks at, and the training
    ``objective`` (see OBJECTIVES).
    """

    kind: ClassVar[str] = ""
    # True when `forward` already returns masks that sum to one (a cascade of normalised stages): the separator
    # then skips normalising them again (docs/architecture.md, "Measured choices").
    sums_to_one: ClassVar[bool] = False

    def __init__(
        self,
        sources: Sequence[str],
        stft: STFTConfig | dict,
        channels: int = 2,
        mask: str = "ratio",
        residual: bool = False,
        context: int = 0,
        objective: str = "magnitude_l1",
        **hyper: Any,
    ):
        super().__init__()
        if mask not in MASK_KINDS:
            raise ValueError(f"mask must be one of {MASK_KINDS}, not {mask!r}")
        if len(sources) < 2:
            raise ValueError("an estimator separates at least two sources")
        if channels not in (1, 2):
            raise ValueError("estimators work on mono (1) or stereo (2) groups of channels")
        self.sources = tuple(sources)
        self.stft_config = stft if isinstance(stft, STFTConfig) else STFTConfig(**stft)
        self.channels = channels
        self.mask = mask
        self.residual = residual
        self.context = context
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, not {objective!r}")
        self.objective = objective
        self.hyper = dict(hyper)

    @property
    def predicted(self) -> int:
        """How many mask channels `forward` returns."""
        return len(self.sources) - (1 if self.residual else 0)

    @property
    def bins(self) -> int:
        return self.stft_config.bins

    def config(self) -> dict[str, Any]:
        """The constructor arguments as plain JSON values; `build_estimator(kind, config)` rebuilds the network."""
        stft = self.stft_config
        return {
            "sources": list(self.sources),
            "stft": {
                "n_fft": stft.n_fft,
                "hop": stft.hop,
                "win_length": stft.win_length,
                "sample_rate": stft.sample_rate,
            },
            "channels": self.channels,
            "mask": self.mask,
            "residual": self.residual,
            "context": self.context,
            "objective": self.objective,
            **self.hyper,
        }

    def heard(self, spec: Tensor) -> Tensor:
        """What the network hears of a complex spectrogram (batch, channels, bins, frames): its magnitudes, or with
        the setting ``midside`` (stereo only) those of the mid (L + R) / 2 and the side (L − R) / 2, which tell a
        centred voice from a wide one where the left and right magnitudes alone do not. The masks still apply to
        left and right."""
        if self.hyper.get("midside") and spec.shape[1] == 2:
            left, right = spec[:, 0], spec[:, 1]
            return torch.stack([(left + right).abs(), (left - right).abs()], dim=1) / 2
        return spec.abs()

    def scaled_input(self) -> tuple[torch.nn.Module, Callable[[Tensor], Tensor]]:
        """The network whose input normalisation the trainer sets from data, and what it hears when the estimator
        hears some magnitudes: the estimator itself, unless it hands its input on (a cascade's second stage)."""
        return self, lambda mag: mag

    def forward(self, mag: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class WaveformEstimator(torch.nn.Module):
    """Audio in, stems out: a network that predicts each stem's waveform (HTDemucs) instead of masks.

    ``forward``: audio (batch, channels, length ≤ ``segment``) at ``sample_rate`` → stems (batch, sources, channels,
    length). The stems need not sum to the mixture; `Separator` spreads what they leave over them (the null rule).
    ``segment`` is the most samples the network takes at once (its training length); the chunker feeds it that.
    """

    kind: ClassVar[str] = ""
    # The chunker's crossfade for this network: its own segments overlap by a quarter, weighted by a triangle
    # (as the reference implementation does).
    overlap_fraction: ClassVar[float] = 0.25

    def __init__(
        self, sources: Sequence[str], sample_rate: int = 44100, channels: int = 2, segment: int = 343980, **hyper: Any
    ):
        super().__init__()
        if len(sources) < 2:
            raise ValueError("an estimator separates at least two sources")
        self.sources = tuple(sources)
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.segment = int(segment)
        self.hyper = dict(hyper)

    def config(self) -> dict[str, Any]:
        return {
            "sources": list(self.sources),
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "segment": self.segment,
            **self.hyper,
        }

    def forward(self, audio: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


# Either kind of estimator: what the registry builds, a model card describes and the separator runs.
AnyEstimator = Estimator | WaveformEstimator
