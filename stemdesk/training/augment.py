"""What the sampler does to each training example, as data a recipe and `stemdesk train` set, and the pitch and
tempo change, which runs through pedalboard (Rubber Band).

Gain, channel swap and polarity act on each source on its own (`stemdesk.core.augment`); a pitch and tempo change
acts on every source alike. The mixture is always the sum of the augmented sources, never an augmented mixture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class Augmentation:
    """Per example: a gain per source uniform in ``gain_db`` (None: no gain change), left and right swapped per
    source with probability ``channel_swap``, polarity inverted per source with probability ``polarity``; and with
    probability ``pitch_time`` one pitch shift (uniform in ±``semitones``) and tempo change (uniform in
    1 ± ``tempo``) of all sources alike, through pedalboard."""

    gain_db: tuple[float, float] | None = (-6.0, 3.0)
    channel_swap: float = 0.5
    polarity: float = 0.5
    pitch_time: float = 0.0
    semitones: float = 2.0
    tempo: float = 0.1

    def __post_init__(self) -> None:
        for name in ("channel_swap", "polarity", "pitch_time"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name.replace('_', ' ')} is a probability between 0 and 1, not {value}")
        if self.gain_db is not None and not self.gain_db[0] <= self.gain_db[1]:
            raise ValueError(f"the gain range must go from low to high (dB), not {list(self.gain_db)}")
        if not 0 <= self.semitones <= 12 or not 0 <= self.tempo < 1:
            raise ValueError("pitch shifts go up to ±12 semitones and tempo changes below ±100 %")


# No augmentation at all: each example as it was mixed (with the sampler's remix at 0, as in Prétet et al.'s
# baseline).
NO_AUGMENTATION = Augmentation(gain_db=None, channel_swap=0.0, polarity=0.0, pitch_time=0.0)


def pitch_time(stems: Tensor, rate: int, semitones: float, tempo: float) -> Tensor:
    """stems (sources, channels, length) shifted by ``semitones`` and played ``tempo`` times as fast, each source
    through pedalboard's Rubber Band stretcher with the same settings; the length is kept (cropped, or zero-padded
    when faster)."""
    import pedalboard

    length = stems.shape[-1]
    out = torch.zeros_like(stems)
    for index, source in enumerate(stems):
        moved = pedalboard.time_stretch(
            np.ascontiguousarray(source.numpy(), dtype=np.float32),
            float(rate),
            stretch_factor=float(tempo),
            pitch_shift_in_semitones=float(semitones),
        )
        n = min(length, moved.shape[-1])
        out[index, :, :n] = torch.from_numpy(moved[:, :n])
    return out


def random_pitch_time(stems: Tensor, rate: int, generator: torch.Generator, augmentation: Augmentation) -> Tensor:
    """With probability ``augmentation.pitch_time``, `pitch_time` by a random shift and tempo."""
    if float(torch.rand(1, generator=generator)) >= augmentation.pitch_time:
        return stems
    shift = float(torch.empty(1).uniform_(-augmentation.semitones, augmentation.semitones, generator=generator))
    tempo = float(torch.empty(1).uniform_(1 - augmentation.tempo, 1 + augmentation.tempo, generator=generator))
    return pitch_time(stems, rate, shift, tempo)
