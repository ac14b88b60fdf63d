"""How the words sound, frame by frame, in a form that sung and spoken voices share, and the warp that lays one on the
other (dynamic time warping): the phonetic half of the aligner.

`timbre` gives each frame (one per HOP seconds) the shape of its spectral envelope: mel-frequency cepstral
coefficients 1…TIMBRE_COEFFS (c0, the level, left out), which describe the formants (which vowel, which consonant)
and not the pitch, normalised per recording (mean and spread over its sounding frames), so a sung vocal and espeak-ng's
speech of the same words become comparable although one is sung, louder, higher and slower.

`warp` is plain DTW over a cost computed one row at a time (so only the back-pointers, one byte a cell, are held):
each step moves one frame in the reference, in the performance, or in both, and the path runs corner to corner. A
row's recurrence is solved with a running minimum, so a row costs a few numpy passes, not a Python loop per cell.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.fft import dct
from scipy.signal import stft

TIMBRE_COEFFS = 8  # c1…c8: the envelope's broad shape; higher ones resolve a high voice's harmonics, so its pitch
MEL_BANDS = 30
MEL_RANGE = (100.0, 6000.0)  # Hz: formants and fricatives, little of the stem's bass bleed or the hiss above
STAY, DIAGONAL, ADVANCE = 0, 1, 2  # a step: the performance moves on alone, both move, the reference moves on alone


def _mel(hz: np.ndarray) -> np.ndarray:
    return 2595 * np.log10(1 + hz / 700)


def mel_filters(rate: int, window: int) -> np.ndarray:
    """(MEL_BANDS, window // 2 + 1) triangular filters evenly spaced in mel over MEL_RANGE."""
    freqs = np.fft.rfftfreq(window, 1 / rate)
    low_mel, high_mel = _mel(np.array(MEL_RANGE))
    edges = 700 * (10 ** (np.linspace(low_mel, high_mel, MEL_BANDS + 2) / 2595) - 1)
    low, mid, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs - low) / (mid - low)
    down = (high - freqs) / (high - mid)
    return np.maximum(0, np.minimum(up, down)).astype(np.float32)


def timbre(mono: np.ndarray, rate: int, hop: float, window: float, sounding: np.ndarray | None = None) -> np.ndarray:
    """mono (samples,) at ``rate`` → (frames, TIMBRE_COEFFS) float32, one frame per ``hop`` seconds (the grid of
    `align.features`), each coefficient of zero mean and unit spread over the ``sounding`` frames (a (frames,)
    weight 0…1; None: the frames within 30 dB of the loud ones)."""
    hop_n, window_n = round(hop * rate), round(window * rate)
    _, _, spec = stft(mono, rate, nperseg=window_n, noverlap=window_n - hop_n, boundary="zeros", padded=True)
    power = np.abs(spec).astype(np.float32) ** 2  # (bins, frames)
    bands = mel_filters(rate, window_n) @ power  # (bands, frames)
    level = 10 * np.log10(bands.sum(axis=0) + 1e-12)
    loud = np.percentile(level, 95) if level.size else 0.0
    # a floor 50 dB under the loud frames: silence and the stem's faint bleed share one flat envelope
    logs = np.log(bands + 10 ** ((loud - 50) / 10) / MEL_BANDS)
    coeffs = dct(logs, type=2, norm="ortho", axis=0)[1 : TIMBRE_COEFFS + 1].T  # (frames, coeffs)
    weight = (level > loud - 30).astype(np.float32) if sounding is None else sounding[: len(coeffs)]
    weight = np.pad(weight, (0, len(coeffs) - len(weight))) if len(weight) < len(coeffs) else weight
    total = max(float(weight.sum()), 1.0)
    mean = (weight[:, None] * coeffs).sum(axis=0) / total
    spread = np.sqrt((weight[:, None] * (coeffs - mean) ** 2).sum(axis=0) / total) + 1e-6
    return ((coeffs - mean) / spread).astype(np.float32)


def sounding(mono: np.ndarray, rate: int, hop: float, window: float, below_loud: float = 30.0) -> np.ndarray:
    """(frames,) 0…1: how surely each frame of clean speech sounds (a soft threshold ``below_loud`` dB under its loud
    frames)."""
    hop_n, window_n = round(hop * rate), round(window * rate)
    _, _, spec = stft(mono, rate, nperseg=window_n, noverlap=window_n - hop_n, boundary="zeros", padded=True)
    level = 10 * np.log10((np.abs(spec) ** 2).sum(axis=0) + 1e-12)
    loud = np.percentile(level, 95) if level.size else 0.0
    return (1 / (1 + np.exp(-(level - loud + below_loud) / 3.0))).astype(np.float32)


def warp(cost_row: Callable[[int], np.ndarray], rows: int, columns: int) -> np.ndarray:
    """The cheapest monotonic path from (0, 0) to (rows − 1, columns − 1) through the cost matrix whose row i is
    ``cost_row(i)`` ((columns,) ≥ 0): steps (0, +1), (+1, +1), (+1, 0), each paying the cost of the cell it enters.
    Returns first: (rows,) int, the first column the path visits in each row (non-decreasing)."""
    back = np.empty((rows, columns), np.uint8)
    cost = np.asarray(cost_row(0), np.float64)
    previous = np.cumsum(cost)
    back[0] = STAY
    back[0, 0] = DIAGONAL
    for i in range(1, rows):
        cost = np.asarray(cost_row(i), np.float64)
        diagonal = np.full(columns, np.inf)
        diagonal[1:] = previous[:-1]
        enter = np.minimum(diagonal, previous) + cost  # entering row i at column j from row i − 1
        along = np.cumsum(cost)
        best_start = np.minimum.accumulate(enter - along)  # then staying in row i up to column j
        current = along + best_start
        came_along = np.empty(columns, bool)
        came_along[0] = False
        came_along[1:] = (enter - along)[1:] > best_start[:-1]
        back[i] = np.where(came_along, STAY, np.where(diagonal <= previous, DIAGONAL, ADVANCE))
        previous = current
    first = np.zeros(rows, np.int64)
    i, j = rows - 1, columns - 1
    while i > 0 or j > 0:
        step = back[i, j]
        first[i] = j
        if step == STAY and j > 0:
            j -= 1
        elif step == DIAGONAL and j > 0:
            i, j = i - 1, j - 1
        else:
            i -= 1
    first[0] = 0
    return first
