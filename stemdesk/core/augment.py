"""Training augmentations, applied to every source alike.

Each works on stems (sources, channels, length); the mixture is always recomputed as their sum, so it stays exact.
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


def resample_fft(audio: Tensor, factor: float) -> Tensor:
    """Band-limited resampling along the last axis to ``round(length · factor)`` samples (FFT zero-padding or
    truncation). Played at the original rate, factor > 1 slows the audio down and lowers its pitch."""
    length = audio.shape[-1]
    target = max(1, int(round(length * factor)))
    spectrum = torch.fft.rfft(audio, dim=-1)
    bins = target // 2 + 1
    if bins > spectrum.shape[-1]:
        spectrum = torch.nn.functional.pad(spectrum, (0, bins - spectrum.shape[-1]))
    else:
        spectrum = spectrum[..., :bins]
    return torch.fft.irfft(spectrum, n=target, dim=-1) * (target / length)


def time_stretch(audio: Tensor, rate: float, n_fft: int = 2048, hop: int = 512) -> Tensor:
    """Phase-vocoder time stretch: ``rate`` > 1 is faster (shorter), pitch unchanged. (…, length) → (…, length/rate)."""
    window = torch.hann_window(n_fft, dtype=audio.dtype, device=audio.device)
    shape = audio.shape
    flat = audio.reshape(-1, shape[-1])
    spec = torch.stft(flat, n_fft, hop, window=window, return_complex=True)  # (n, bins, frames)
    length = int(round(shape[-1] / rate))
    needed = length // hop + 1  # frames the centred iSTFT needs for `length`
    last = spec.shape[-1] - 1
    steps = (torch.arange(needed, dtype=torch.float64) * rate).clamp(max=last - 1e-6)
    expected = torch.linspace(0, torch.pi * hop, spec.shape[-2], dtype=audio.dtype, device=audio.device)
    phase = spec[..., :1].angle()
    frames = []
    for step in steps:
        i = int(step)
        frac = float(step - i)
        a, b = spec[..., i], spec[..., min(i + 1, last)]
        magnitude = (1 - frac) * a.abs() + frac * b.abs()
        frames.append(torch.polar(magnitude, phase[..., 0]))
        delta = b.angle() - a.angle() - expected
        delta = delta - 2 * torch.pi * torch.round(delta / (2 * torch.pi))
        phase = phase + (expected + delta).unsqueeze(-1)
    stretched = torch.stack(frames, dim=-1)
    out = torch.istft(stretched, n_fft, hop, window=window, length=length)
    return out.reshape(*shape[:-1], length)


def pitch_shift(audio: Tensor, semitones: float) -> Tensor:
    """Shift pitch by ``semitones`` keeping the duration: stretch time by the pitch ratio, then resample back."""
    ratio = 2 ** (semitones / 12)
    return resample_fft(time_stretch(audio, 1 / ratio), 1 / ratio)[..., : audio.shape[-1]]


def random_pitch_time(
    stems: Tensor, generator: torch.Generator, semitones: float = 2.0, tempo: float = 0.1, p: float = 0.3
) -> Tensor:
    """With probability ``p``, one random pitch shift (± semitones) and tempo change (± tempo) applied to every
    source alike. The phase vocoder is not linear, so the training mixture must be (and in `Sampler` is) the sum
    of the transformed sources, never the transformed mixture. Length is kept (cropped or zero-padded)."""
    if float(torch.rand(1, generator=generator)) >= p:
        return stems
    shift = float(torch.empty(1).uniform_(-semitones, semitones, generator=generator))
    rate = float(torch.empty(1).uniform_(1 - tempo, 1 + tempo, generator=generator))
    out = time_stretch(pitch_shift(stems, shift), rate)
    length = stems.shape[-1]
    if out.shape[-1] >= length:
        return out[..., :length]
    return torch.nn.functional.pad(out, (0, length - out.shape[-1]))
