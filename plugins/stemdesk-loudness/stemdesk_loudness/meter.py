"""ITU-R BS.1770-4 integrated loudness, streamed: K-weighting (two biquads whose state carries across blocks),
400 ms gating blocks with 75 % overlap, an absolute gate at -70 LKFS and a relative gate 10 LU below."""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

ABSOLUTE_GATE = -70.0
RELATIVE_GATE = -10.0


def _biquad_shelf(rate: float) -> tuple[np.ndarray, np.ndarray]:
    """The BS.1770 pre-filter (high shelf, +4 dB) designed for any rate from its analogue parameters."""
    f0, gain, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh, vb = 10 ** (gain / 20), 10 ** (gain / 40)
    a0 = 1 + k / q + k * k
    b = np.array([(vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0])
    a = np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0])
    return b, a


def _biquad_highpass(rate: float) -> tuple[np.ndarray, np.ndarray]:
    """The BS.1770 RLB weighting (high pass at 38 Hz)."""
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1 + k / q + k * k
    return np.array([1.0, -2.0, 1.0]), np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0])


class LoudnessMeter:
    """Feed (channels, n) blocks of any size with `add`; read `integrated()` in LUFS (None below the gate)."""

    def __init__(self, rate: int, channels: int):
        self.rate, self.channels = rate, channels
        self.filters = [_biquad_shelf(rate), _biquad_highpass(rate)]
        self.state = [np.zeros((channels, 2)) for _ in self.filters]
        self.step = int(round(0.1 * rate))  # 100 ms: gating blocks are 4 steps long
        self.pending = np.zeros((channels, 0))
        self.step_energy: list[np.ndarray] = []  # mean square per channel per 100 ms step
        self.peak = 0.0

    def add(self, block: np.ndarray) -> None:
        block = np.asarray(block, dtype=np.float64)
        self.peak = max(self.peak, float(np.abs(block).max(initial=0.0)))
        for (b, a), state in zip(self.filters, self.state):
            block, state[:] = lfilter(b, a, block, axis=-1, zi=state)
        self.pending = np.concatenate([self.pending, block], axis=-1)
        whole = self.pending.shape[-1] // self.step
        if whole:
            steps = self.pending[:, : whole * self.step].reshape(self.channels, whole, self.step)
            self.step_energy.extend(np.mean(steps**2, axis=-1).T)
            self.pending = self.pending[:, whole * self.step :]

    def integrated(self) -> float | None:
        if len(self.step_energy) < 4:
            return None
        steps = np.array(self.step_energy)  # (steps, channels)
        blocks = np.stack([steps[i : i + 4].mean(axis=0) for i in range(len(steps) - 3)])
        power = blocks.sum(axis=1)  # channel weights 1.0 (L, R, C)
        loudness = -0.691 + 10 * np.log10(np.maximum(power, 1e-20))
        gated = power[loudness > ABSOLUTE_GATE]
        if gated.size == 0:
            return None
        relative = -0.691 + 10 * np.log10(gated.mean()) + RELATIVE_GATE
        final = power[(loudness > ABSOLUTE_GATE) & (loudness > relative)]
        return float(-0.691 + 10 * np.log10(final.mean()))


def integrated_loudness(audio: np.ndarray, rate: int) -> float | None:
    """audio (channels, n)."""
    meter = LoudnessMeter(rate, audio.shape[0])
    meter.add(audio)
    return meter.integrated()
