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


def novelty(audio: np.ndarray, rate: int, band: tuple[float, float]) -> tuple[np.ndarray, float]:
    """The rise of the log spectrum in ``band`` per frame (positive parts summed), and the frame rate."""
    mono = torch.from_numpy(np.ascontiguousarray(audio.mean(axis=0) if audio.ndim == 2 else audio, np.float32))
    spec = torch.stft(mono, FFT, HOP, window=torch.hann_window(FFT), return_complex=True).abs().numpy()
    freqs = np.fft.rfftfreq(FFT, 1 / rate)
    rows = (freqs >= band[0]) & (freqs < band[1])
    log = np.log1p(1000 * spec[rows])
    flux = np.clip(np.diff(log, axis=1, prepend=log[:, :1]), 0, None).mean(axis=0)  # per bin: bands of any width
    return flux, rate / HOP


def onsets(flux: np.ndarray, frame_rate: float) -> list[tuple[float, float]]:
    """(seconds, strength) of each peak of ``flux`` that stands above the local mean (±100 ms) by half the track's
    typical peak and is the highest within SPACING."""
    if flux.size < 3 or flux.max() <= 0:
        return []
    width = max(1, int(0.1 * frame_rate))
    local = np.convolve(flux, np.ones(2 * width + 1) / (2 * width + 1), mode="same")
    spacing = max(1, int(SPACING * frame_rate))
    peaks = [
        i
        for i in range(1, flux.size - 1)
        if flux[i] >= flux[max(0, i - spacing) : i + spacing + 1].max() and flux[i] > flux[i - 1]
    ]
    if not peaks:
        return []
    typical = float(np.percentile(flux[peaks], 90))
    hits = [(i / frame_rate, float(flux[i])) for i in peaks if flux[i] - local[i] > 0.25 * typical]
    return hits


def _notes(hits: list[tuple[float, float]], pitch: int, loudest: float) -> list[Note]:
    return [
        Note(t, t + HIT_SECONDS, pitch, int(np.clip(round(40 + 87 * s / loudest), 1, 127))) for t, s in hits if loudest
    ]


def drum_hits(audio: np.ndarray, rate: int, piece: str | None = None) -> list[Note]:
    """The hits of ``audio`` as GM drum notes: all of one ``piece`` (a split drum kit's child: kick, snare, cymbals,
    toms, other), or, for a whole drums stem, each band's."""
    if not audio.size or float(np.abs(audio).max()) < SILENT:
        return []
    if piece is not None:
        flux, frame_rate = novelty(audio, rate, (20.0, rate / 2))
        hits = onsets(flux, frame_rate)
        return _notes(hits, GM.get(piece, GM["other"]), max((s for _, s in hits), default=0.0))
    fluxes = {name: novelty(audio, rate, (lo, min(hi, rate / 2)))[0] for name, (lo, hi) in BANDS.items()}
    frame_rate = rate / HOP
    candidates = sorted(hit for flux in fluxes.values() for hit in onsets(flux, frame_rate))
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
        rise = {name: float(flux[near].max(initial=0.0)) for name, flux in fluxes.items()}
        for name in classify(rise["kick"], rise["snare"], rise["hihat"]):
            found[name].append((t, strength))
    notes: list[Note] = []
    for name, hits in found.items():
        notes += _notes(hits, GM[name], max((s for _, s in hits), default=0.0))
    return sorted(notes, key=lambda note: (note.start, note.pitch))


def classify(low: float, middle: float, high: float) -> list[str]:
    """Which piece a hit is from how much the log spectrum rose, per frequency bin, below 150 Hz, between 150 Hz and
    5 kHz and above: a kick rises most at the bottom, a hi-hat at the top with nearly nothing at the bottom, a snare
    across the middle and the top alike."""
    if low >= 1.5 * middle and low >= 1.5 * high:
        return ["kick"]
    if high >= 1.2 * middle and low <= 0.3 * high:
        return ["hihat"]
    if middle >= 0.6 * max(low, high):
        return ["snare"]
    return []
