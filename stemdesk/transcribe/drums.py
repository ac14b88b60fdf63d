"""Drum hits as General MIDI drum notes: the onsets of a drum signal, found where its spectrum rises (spectral flux
in a frequency band, peaks above their surroundings). From a drum kit split into pieces (`stemdesk-drumkit`: kick,
snare, cymbals, toms, other) each piece's own onsets; from a whole drums stem, by band: kick below 150 Hz, snare
between 150 Hz and 5 kHz, hi-hat above 5 kHz: each hit (an onset in any band) is classified by how the spectrum rose
in the three (`classify`), since a kick or snare also rings in the bands above it."""

from __future__ import annotations

import numpy as np
import torch

from .pitched import Note

FFT, HOP = 1024, 256
GM = {"kick": 36, "snare": 38, "cymbals": 42, "hihat": 42, "toms": 47, "other": 39}  # 39: hand clap
BANDS = {"kick": (20.0, 150.0), "snare": (150.0, 5000.0), "hihat": (5000.0, 16000.0)}
HIT_SECONDS = 0.05  # a drum note's length in the file (drum notes have no meaningful length)
SPACING = 0.05  # two hits of one piece are at least this far apart
MERGE = 0.03  # onsets in several bands this close together are one hit
SILENT = 1e-4


def spectrum(audio: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The log-compressed magnitude spectrum of ``audio``'s mono sum (bins, frames of HOP samples), and each bin's
    frequency: what every band's `flux` is read from."""
    mono = torch.from_numpy(np.ascontiguousarray(audio.mean(axis=0) if audio.ndim == 2 else audio, np.float32))
    spec = torch.stft(mono, FFT, HOP, window=torch.hann_window(FFT), return_complex=True).abs().numpy()
    return np.log1p(1000 * spec), np.fft.rfftfreq(FFT, 1 / rate)


def flux(log: np.ndarray, freqs: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """The rise of the log spectrum in ``band`` per frame: its positive steps, averaged over the band's bins (so
    bands of any width compare)."""
    rows = log[(freqs >= band[0]) & (freqs < band[1])]
    return np.clip(np.diff(rows, axis=1, prepend=rows[:, :1]), 0, None).mean(axis=0)


def onsets(rise: np.ndarray, frame_rate: float) -> list[tuple[float, float]]:
    """(seconds, strength) of each peak of ``rise`` that stands above the local mean (±100 ms) by a quarter of the
    track's typical peak (its 90th percentile) and is the highest within SPACING."""
    if rise.size < 3 or rise.max() <= 0:
        return []
    width = max(1, int(0.1 * frame_rate))
    local = np.convolve(rise, np.ones(2 * width + 1) / (2 * width + 1), mode="same")
    spacing = max(1, int(SPACING * frame_rate))
    peaks = [
        i
        for i in range(1, rise.size - 1)
        if rise[i] >= rise[max(0, i - spacing) : i + spacing + 1].max() and rise[i] > rise[i - 1]
    ]
    if not peaks:
        return []
    typical = float(np.percentile(rise[peaks], 90))
    return [(i / frame_rate, float(rise[i])) for i in peaks if rise[i] - local[i] > 0.25 * typical]


def _notes(hits: list[tuple[float, float]], pitch: int, loudest: float) -> list[Note]:
    return [
        Note(t, t + HIT_SECONDS, pitch, int(np.clip(round(40 + 87 * s / loudest), 1, 127))) for t, s in hits if loudest
    ]


def drum_hits(audio: np.ndarray, rate: int, piece: str | None = None) -> list[Note]:
    """The hits of ``audio`` as GM drum notes: all of one ``piece`` (a split drum kit's child: kick, snare, cymbals,
    toms, other), or, for a whole drums stem, each band's."""
    if not audio.size or float(np.abs(audio).max()) < SILENT:
        return []
    log, freqs = spectrum(audio, rate)  # one spectrum, whichever bands are read from it
    frame_rate = rate / HOP
    if piece is not None:
        hits = onsets(flux(log, freqs, (20.0, rate / 2)), frame_rate)
        return _notes(hits, GM.get(piece, GM["other"]), max((s for _, s in hits), default=0.0))
    rises = {name: flux(log, freqs, (lo, min(hi, rate / 2))) for name, (lo, hi) in BANDS.items()}
    candidates = sorted(hit for rise in rises.values() for hit in onsets(rise, frame_rate))
    merged: list[tuple[float, float]] = []
    for t, strength in candidates:  # one moment per hit, however many bands rose with it
        if merged and t - merged[-1][0] < MERGE:
            merged[-1] = (merged[-1][0], max(merged[-1][1], strength))
        else:
            merged.append((t, strength))
    found: dict[str, list[tuple[float, float]]] = {name: [] for name in BANDS}
    for t, strength in merged:
        frame = int(round(t * frame_rate))
        near = slice(max(0, frame - 3), frame + 4)
        rose = {name: float(rise[near].max(initial=0.0)) for name, rise in rises.items()}
        piece_hit = classify(rose["kick"], rose["snare"], rose["hihat"])
        if piece_hit is not None:
            found[piece_hit].append((t, strength))
    notes: list[Note] = []
    for name, hits in found.items():
        notes += _notes(hits, GM[name], max((s for _, s in hits), default=0.0))
    return sorted(notes, key=lambda note: (note.start, note.pitch))


def classify(low: float, middle: float, high: float) -> str | None:
    """Which piece a hit is from how much the log spectrum rose, per frequency bin, below 150 Hz, between 150 Hz and
    5 kHz and above: a kick rises most at the bottom, a hi-hat at the top with nearly nothing at the bottom, a snare
    across the middle and the top alike."""
    if low >= 1.5 * middle and low >= 1.5 * high:
        return "kick"
    if high >= 1.2 * middle and low <= 0.3 * high:
        return "hihat"
    if middle >= 0.6 * max(low, high):
        return "snare"
    return None
