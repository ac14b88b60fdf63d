"""Drum hits as General MIDI drum notes, from where the level of a frequency band jumps. Each band's level is its
power in dB per frame of 5.8 ms; a hit is a jump of at least RISE dB over the frames before it, the largest within
SPACING, to a level at most FLOOR dB below the band's loud hits (its 99th percentile): a band that merely rises
from near silence (a hi-hat's hiss reaching below 120 Hz) is far below the band's own hits and is no hit there.

From a drum kit split into pieces (`stemdesk-drumkit`: kick, snare, cymbals, toms, other) each piece's hits in its
own band (a kick's below 120 Hz, a snare's 1–5 kHz, cymbals' above 6 kHz, toms' 150–400 Hz, the rest's all). A band
whose loud hits are more than PRESENT dB below the whole signal's holds no hits (a kick stem's hi-hat spill, a hi-hat
reaching below 120 Hz in a stem without kick). From a whole drums stem:

- kick: the hits below 120 Hz (30–120 Hz);
- snare: the hits in the snare's noise (1–5 kHz; a jump of SNARE_RISE dB, less than RISE, as a snare's noise often
  follows a hi-hat's there) where its body (150–400 Hz) sounds (within PRESENT dB) and jumps too, by at least BODY
  dB, and the noise jumps at least HAT_SHARE of what the top (6–16 kHz) does (a hi-hat's noise is mostly above 6
  kHz). With a kick within APART (a kick's click jumps in the noise band too, and so does a crash played with it)
  only where the noise band and the body stand above the low band by WITH_KICK and WITH_KICK_BODY dB more than at
  the song's kicks alone: a snare played with a kick, its wires and its shell;
- hi-hat: the hits above 6 kHz with no snare within APART.

Measured on drums rendered from MIDI with General MIDI kits (`benchmarks/midi.py`; docs/midi.md)."""

from __future__ import annotations

import bisect
from pathlib import Path

import numpy as np
import torch

from ..io.audio import peak as loudest
from ..io.audio import probe, read
from .pitched import Note

FFT, HOP = 1024, 256
GM = {"kick": 36, "snare": 38, "cymbals": 42, "hihat": 42, "toms": 47, "other": 39}  # 39: hand clap
BANDS = {"low": (30.0, 120.0), "body": (150.0, 400.0), "noise": (1000.0, 5000.0), "top": (6000.0, 16000.0)}
PIECE_BANDS = {"kick": "low", "snare": "noise", "cymbals": "top", "hihat": "top", "toms": "body"}  # else: all
ALL = (30.0, 16000.0)
RISE = 8.0  # dB a band's level must jump over the frames before it
BEFORE = 3  # frames (17 ms) a jump is measured over
FLOOR = 10.0  # dB below the band's loud hits (its 99th percentile level) a hit may be
PRESENT = 30.0  # dB below the whole signal's loud hits a band's may be and still be hits, not another drum's hiss
BODY = 10.0  # dB the snare's body must jump with its noise
HAT_SHARE = 0.3  # the noise band's jump, as a share of the top band's, for a snare
APART = 0.03  # seconds: a kick this close to a snare candidate takes it, unless WITH_KICK; a snare, a hi-hat's
SNARE_RISE = 5.0  # dB the noise band must jump for a snare candidate
WITH_KICK = 8.0  # dB more noise over the low band than the song's kicks alone have: a snare with a kick
WITH_KICK_BODY = 6.0  # and dB more body over the low band (a crash with a kick has the noise, not the body)
ALONE = 0.06  # seconds: a kick with no snare candidate this close sounds alone
REACH = 4  # frames (23 ms) over which a hit's level is its highest
HIT_SECONDS = 0.05  # a drum note's length in the file (drum notes have no meaningful length)
SPACING = 0.05  # two hits of one piece are at least this far apart
SILENT = 1e-4
BLOCK_FRAMES = 1 << 14  # frames (95 s at 44.1 kHz) `band_levels_file` reads at a time


def band_levels(audio: np.ndarray, rate: int, bands: dict[str, tuple[float, float]]) -> dict[str, np.ndarray]:
    """Each band's power in dB per frame of HOP samples (frame i centred at sample i·HOP, the signal mirrored at its
    ends) of ``audio``'s mono sum, from one spectrum."""
    mono = torch.from_numpy(np.ascontiguousarray(audio.mean(axis=0) if audio.ndim == 2 else audio, np.float32))
    padded = torch.nn.functional.pad(mono[None], (FFT // 2, FFT // 2), mode="reflect")[0]
    return _levels(padded, rate, bands)


def _levels(padded: torch.Tensor, rate: int, bands: dict[str, tuple[float, float]]) -> dict[str, np.ndarray]:
    """The band levels of the frames of HOP samples whose FFT windows ``padded`` (mono) holds from its start."""
    window = torch.hann_window(FFT)
    power = torch.stft(padded, FFT, HOP, window=window, center=False, return_complex=True).abs().pow(2)
    freqs = np.fft.rfftfreq(FFT, 1 / rate)
    top = rate / 2
    # each band's bins summed, every band in one matrix product: (bands, bins) @ (bins, frames)
    member = np.stack([(freqs >= lo) & (freqs < min(hi, top)) for lo, hi in bands.values()]).astype(np.float32)
    sums = (torch.from_numpy(member) @ power).numpy()
    return {name: 10 * np.log10(total + 1e-10) for name, total in zip(bands, sums)}


def band_levels_file(path: Path, bands: dict[str, tuple[float, float]]) -> tuple[dict[str, np.ndarray], int, float]:
    """`band_levels` of an audio file, read in blocks of BLOCK_FRAMES frames (the memory a 2-hour stem needs is its
    levels, a few numbers a frame), with its sample rate and its loudest sample."""
    info = probe(path)
    rate, length = info.sample_rate, info.frames
    count = length // HOP + 1  # frames, as for the whole signal at once
    parts: dict[str, list[np.ndarray]] = {name: [] for name in bands}
    peak = 0.0
    starts = list(range(0, count, BLOCK_FRAMES))
    if len(starts) > 1 and count - starts[-1] < 2:  # a last block of one frame holds too little to mirror
        starts.pop()
    for first, last in zip(starts, [*starts[1:], count]):  # frames [first, last)
        # their windows: samples first·HOP − FFT/2 to (last − 1)·HOP + FFT/2, mirrored where the file ends
        lo, hi = first * HOP - FFT // 2, (last - 1) * HOP + FFT // 2 + 1
        audio, _ = read(path, max(0, lo), min(length, hi) - max(0, lo))
        peak = max(peak, loudest(audio))
        mono = torch.from_numpy(np.ascontiguousarray(audio.mean(axis=0), np.float32))[None]
        mono = torch.nn.functional.pad(mono, (max(0, -lo), max(0, hi - length)), mode="reflect")[0]
        for name, level in _levels(mono, rate, bands).items():
            parts[name].append(level)
    return {name: np.concatenate(levels) for name, levels in parts.items()}, rate, peak


def jumps(level: np.ndarray) -> np.ndarray:
    """How far (dB) each frame's level stands above the lowest of the BEFORE frames before it (0 when below)."""
    before = [np.concatenate([np.full(k, level[0]), level[:-k]]) for k in range(1, BEFORE + 1)]
    return np.clip(level - np.min(before, axis=0), 0.0, None)


def hits(level: np.ndarray, frame_rate: float, whole: float, least: float = RISE) -> list[tuple[int, float]]:
    """(frame, loudness 0..1) of each hit of one band: a jump of at least ``least`` dB, the largest within SPACING, to a
    level at most FLOOR dB below the band's loud hits; loudness is where that level lies in those FLOOR dB. None
    where the band's loud hits are more than PRESENT dB below ``whole``, the whole signal's (99th percentile level):
    what sounds there is another drum's spill."""
    if level.size < 4:
        return []
    rise = jumps(level)
    loud = float(np.percentile(level, 99))
    if loud < whole - PRESENT:
        return []
    spacing = max(1, int(SPACING * frame_rate))
    after = np.maximum.reduce([level, np.roll(level, -1), np.roll(level, -2)])  # the level the jump reaches
    candidates = np.nonzero((rise >= least) & (after >= loud - FLOOR))[0]
    found = []
    for i in candidates:
        if (
            0 < i < level.size - 2
            and rise[i] > rise[i - 1]
            and rise[i] >= rise[max(0, i - spacing) : i + spacing + 1].max()
        ):
            found.append((int(i), float(np.clip(1 - (loud - after[i]) / FLOOR, 0.0, 1.0))))
    return found


def _notes(found: list[tuple[int, float]], pitch: int, frame_rate: float) -> list[Note]:
    return [Note(i / frame_rate, i / frame_rate + HIT_SECONDS, pitch, int(round(40 + 87 * loud))) for i, loud in found]


def _bands(piece: str | None) -> dict[str, tuple[float, float]]:
    """The bands a piece's hits (a whole stem's: None) are read from, and the whole signal's."""
    if piece is None:
        return {**BANDS, "all": ALL}
    band = PIECE_BANDS.get(piece)
    return {"band": BANDS[band] if band else ALL, "all": ALL}


def drum_hits(audio: np.ndarray, rate: int, piece: str | None = None) -> list[Note]:
    """The hits of ``audio`` as GM drum notes: all of one ``piece`` (a split drum kit's child: kick, snare, cymbals,
    toms, other), in that piece's band, or, for a whole drums stem, kick, snare and hi-hat by band."""
    if audio.shape[-1] < FFT or loudest(audio) < SILENT:
        return []  # silent, or too short to hold a hit
    return _hits_of(band_levels(audio, rate, _bands(piece)), rate, piece)


def drum_hits_file(path: Path, piece: str | None = None) -> tuple[list[Note], float]:
    """`drum_hits` of an audio file, read once, in blocks (`band_levels_file`): the same notes, in flat memory, and
    the file's loudest sample (whether it is silent)."""
    if probe(path).frames < FFT:  # too short to hold a hit
        audio, _ = read(path)
        return [], loudest(audio)
    levels, rate, peak = band_levels_file(path, _bands(piece))
    return ([] if peak < SILENT else _hits_of(levels, rate, piece)), peak


def _hits_of(levels: dict[str, np.ndarray], rate: int, piece: str | None) -> list[Note]:
    frame_rate = rate / HOP
    whole = float(np.percentile(levels["all"], 99))
    if piece is not None:
        return _notes(hits(levels["band"], frame_rate, whole), GM.get(piece, GM["other"]), frame_rate)
    rise = {name: jumps(level) for name, level in levels.items()}
    kicks = hits(levels["low"], frame_rate, whole)
    candidates = hits(levels["noise"], frame_rate, whole, SNARE_RISE)
    apart = APART * frame_rate

    def nearest(found: list[tuple[int, float]], i: int) -> int | None:
        """The frame of the hit of ``found`` (in frame order) nearest frame ``i``, if it is within APART."""
        at = bisect.bisect_left(found, (i, -1.0))
        near = [found[k][0] for k in (at - 1, at) if 0 <= k < len(found) and abs(found[k][0] - i) <= apart]
        return min(near, key=lambda frame: abs(frame - i)) if near else None

    def over_low(band: str, frame: int) -> float:
        """How far (dB) ``band``'s level stands above the low band's, over the REACH frames from ``frame``."""
        reach = slice(frame, frame + REACH)
        return float(levels[band][reach].max() - levels["low"][reach].max())

    # what a kick alone puts into the noise band and the body (its click, its company): the median over the song's
    # kicks with no snare candidate near, or over all its kicks when none sounds alone
    taken = np.array([i for i, _ in candidates])
    alone = [i for i, _ in kicks if not (taken.size and np.abs(taken - i).min() <= ALONE * frame_rate)]
    alone = alone or [i for i, _ in kicks]
    kick_alone = {
        band: float(np.median([over_low(band, i) for i in alone])) if alone else 0.0 for band in ("noise", "body")
    }
    snares = []
    for i, loud in candidates:
        around = slice(max(0, i - 2), i + 3)
        body, noise, top = (float(rise[name][around].max()) for name in ("body", "noise", "top"))
        sounding = float(levels["body"][around].max()) >= whole - PRESENT  # a body, not a hi-hat's faint spill
        if not (sounding and body >= BODY and noise >= HAT_SHARE * top):
            continue
        kick = nearest(kicks, i)
        if kick is None or (
            over_low("noise", min(i, kick)) >= kick_alone["noise"] + WITH_KICK
            and over_low("body", min(i, kick)) >= kick_alone["body"] + WITH_KICK_BODY
        ):
            snares.append((i, loud))

    hats = [(i, loud) for i, loud in hits(levels["top"], frame_rate, whole) if nearest(snares, i) is None]
    notes = _notes(kicks, GM["kick"], frame_rate) + _notes(snares, GM["snare"], frame_rate)
    notes += _notes(hats, GM["hihat"], frame_rate)
    return sorted(notes, key=lambda note: (note.start, note.pitch))
