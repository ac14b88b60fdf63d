"""Short-time Fourier transform pair used by every estimator.

Shapes use one vocabulary: batch, sources, channels, bins, frames, length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class STFTConfig:
    """An STFT at a given sample rate.

    ``n_fft`` is the FFT size, ``win_length`` the analysis window (≤ n_fft: the rest is zero padding,
    as in Lin et al. 2018), ``hop`` the step between frames, all in samples at ``sample_rate``.
    """

    n_fft: int = 4096
    hop: int = 1024
    win_length: int | None = None
    sample_rate: int = 44100

    @property
    def window_length(self) -> int:
        return self.win_length or self.n_fft

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    def at_rate(self, sample_rate: int) -> STFTConfig:
        """The same analysis in seconds and hertz at another sample rate.

        Bins keep (almost) the same spacing in Hz and frames the same spacing in seconds; the estimator sees
        magnitudes interpolated onto its own bins (see `Separator`), and its masks are applied at the native rate.
        """
        if sample_rate == self.sample_rate:
            return self
        ratio = sample_rate / self.sample_rate
        n_fft = max(16, int(round(self.n_fft * ratio)))
        win = None if self.win_length is None else max(16, min(n_fft, int(round(self.win_length * ratio))))
        hop = max(1, int(round(self.hop * ratio)))
        return STFTConfig(n_fft=n_fft, hop=hop, win_length=win, sample_rate=sample_rate)

    def bin_frequencies(self) -> Tensor:
        """Centre frequency of every bin in Hz, shape (bins,)."""
        return torch.arange(self.bins, dtype=torch.float64) * (self.sample_rate / self.n_fft)


class STFT(torch.nn.Module):
    """Forward and inverse STFT with a periodic Hann window, centred frames.

    ``forward``: real (..., length) → complex (..., bins, frames).
    ``inverse``: complex (..., bins, frames) → real (..., length); ``length`` is required because the frame grid
    alone does not determine it.
    """

    window: Tensor  # a buffer

    def __init__(self, config: STFTConfig):
        super().__init__()
        self.config = config
        self.register_buffer("window", torch.hann_window(config.window_length, periodic=True), persistent=False)
        self._envelopes: dict[tuple, Tensor] = {}  # the inverse's windows' squared sum, by frame count

    def forward(self, audio: Tensor) -> Tensor:
        shape = audio.shape
        flat = audio.reshape(-1, shape[-1])
        spec = torch.stft(
            flat,
            n_fft=self.config.n_fft,
            hop_length=self.config.hop,
            win_length=self.config.window_length,
            window=self.window.to(flat.dtype),
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        return spec.reshape(*shape[:-1], *spec.shape[-2:])

    def inverse(self, spec: Tensor, length: int) -> Tensor:
        shape = spec.shape
        flat = spec.reshape(-1, *shape[-2:])
        audio = self._overlap_add_inverse(flat, length)
        if audio is None:
            audio = torch.istft(
                flat,
                n_fft=self.config.n_fft,
                hop_length=self.config.hop,
                win_length=self.config.window_length,
                window=self.window.to(flat.real.dtype),
                center=True,
                length=length,
            )
        return audio.reshape(*shape[:-2], length)

    def _overlap_add_inverse(self, flat: Tensor, length: int) -> Tensor | None:
        """torch.istft's result (the same numbers at 50 % overlap, within a rounding at 75 %) for a hop that divides
        the FFT, two to three times quicker on a CPU: each frame's inverse FFT, windowed, added into place in
        ``n_fft / hop`` strided sums, divided by the windows' squared sum (kept per frame count). None where it does
        not apply (a hop that does not divide the FFT, or a length beyond the frames), for torch.istft to do."""
        n_fft, hop = self.config.n_fft, self.config.hop
        frames = flat.shape[-1]
        start = n_fft // 2
        if n_fft % hop or start + length > n_fft + hop * (frames - 1):
            return None
        dtype = flat.real.dtype
        window = self._padded_window(dtype)
        key = (frames, dtype, flat.device)
        if key not in self._envelopes:
            squares = (window * window).expand(1, frames, n_fft)
            self._envelopes = {key: _overlap_add(squares, hop)[0]}  # one frame count kept: the chunks'
        envelope = self._envelopes[key][start : start + length]
        if envelope.min() < 1e-11:  # windows that leave a gap: torch.istft says so
            return None
        parts = torch.fft.irfft(flat.transpose(1, 2), n=n_fft)  # (count, frames, n_fft)
        parts *= window
        return _overlap_add(parts, hop)[:, start : start + length] / envelope

    def _padded_window(self, dtype: torch.dtype) -> Tensor:
        """The window centred in ``n_fft`` samples, as torch.stft pads a shorter one."""
        window = self.window.to(dtype)
        pad = self.config.n_fft - window.shape[0]
        return torch.nn.functional.pad(window, (pad // 2, pad - pad // 2)) if pad else window


def _overlap_add(frames: Tensor, hop: int) -> Tensor:
    """frames (count, frames, n_fft) with ``hop`` dividing n_fft → their overlap-add (count, n_fft + hop·(frames−1))."""
    count, total, n_fft = frames.shape
    overlap = n_fft // hop
    out = frames.new_zeros(count, total + overlap - 1, hop)
    parts = frames.reshape(count, total, overlap, hop)
    for index in range(overlap):
        out[:, index : index + total] += parts[:, :, index]
    return out.reshape(count, -1)


def interpolate_bins(values: Tensor, source: Tensor, target: Tensor) -> Tensor:
    """Linear interpolation along the bins axis (dim -2) from frequencies ``source`` to ``target`` (Hz).

    values: (..., bins_source, frames) → (..., bins_target, frames). Frequencies beyond the source range take the
    edge value. Used to feed native-rate magnitudes to an estimator and to bring its masks back.
    """
    if source.shape == target.shape and torch.equal(source, target):
        return values
    src = source.to(values.device, torch.float64)
    tgt = target.to(values.device, torch.float64).clamp(src[0], src[-1])
    upper = torch.searchsorted(src, tgt).clamp(1, len(src) - 1)
    lower = upper - 1
    frac = ((tgt - src[lower]) / (src[upper] - src[lower])).to(values.dtype).unsqueeze(-1)
    return values[..., lower, :] * (1 - frac) + values[..., upper, :] * frac
