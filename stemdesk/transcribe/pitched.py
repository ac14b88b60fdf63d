"""Notes of a pitched stem with Basic Pitch's network (its ONNX file run in torch, `stemdesk.transcribe.network`):
the stem, mono at 22 050 Hz, in 2-second windows that overlap by 30 frames; the network's note and onset activations
per 11.6 ms frame and piano key; then notes decoded from them as Basic Pitch decodes them (an onset peak above a
threshold starts a note at its key, which lasts while the key's activation stays above another, with a tolerance of
11 frames for dips, and notes shorter than 128 ms are dropped). Each frame's time is computed from where its window
starts, so the times are exact.

``voices=1`` keeps one note at a time (a melody, a bass line): where notes overlap, the louder one stays and the
other is cut or dropped. The decoding follows Spotify's basic-pitch (Apache-2.0).

Given the mixture the stem is part of, a one-voice line's notes start where the level of each note's first four
harmonics in the mixture rises most, within ATTACK_BEFORE before and ATTACK_AFTER after where the stem's activations
put it (`snap_onsets`): a separation gives part of a note's attack to other stems (a bass note's pluck to the drums
that sound with it), so the separated stem's own rise, and the network's onset, come up to 100 ms late."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.errors import ModelError
from ..core.resample import resample_in_blocks
from ..io.audio import peak as loudest
from ..io.audio import probe, read
from .model import basic_pitch_model

RATE = 22050
HOP = 256  # samples per frame
WINDOW = 2 * RATE - HOP  # the network's input: 43 844 samples
OVERLAP_FRAMES = 30
OVERLAP = OVERLAP_FRAMES * HOP
STEP = WINDOW - OVERLAP
LOWEST = 21  # MIDI note of the first key (A0)
KEYS = 88
ONSET_THRESHOLD = 0.5
FRAME_THRESHOLD = 0.3
SHORTEST_FRAMES = 11  # 127.7 ms
TOLERANCE = 11  # frames a note may dip below FRAME_THRESHOLD and go on
SILENT = 1e-4  # a stem (or a window of it) whose loudest sample is below this (−80 dBFS) has no notes
FRAMES_PER_WINDOW = 172
PIECE_SECONDS = 300.0  # a file is transcribed in pieces this long (`BasicPitch.transcribe_file`)
MARGIN_SECONDS = 10.0  # and each piece hears this much more on either side
ATTACK_BEFORE = 0.12  # seconds before a note's start where its attack in the mixture is looked for
ATTACK_AFTER = 0.03  # and after it
ATTACK_RISE = 3.0  # dB the mixture's level at the note's harmonics must rise by, span to span, to be its attack
ATTACK_SPAN = 0.023  # seconds: the spans before and after a moment whose levels are compared
ATTACK_FLOOR = 40.0  # dB below the loudest harmonic where a harmonic's level is taken as silence
ATTACK_FFT_SECONDS = 0.023  # the spectra's length (1024 samples at 44.1 kHz, one every 256): to place an attack
HARMONICS = 4

# the mixture a stem is part of, mono at the stem's rate: (first sample, frames) → samples
Mixture = Callable[[int, int], np.ndarray]


@dataclass(frozen=True)
class Note:
    start: float  # seconds
    end: float
    pitch: int  # MIDI note number
    velocity: int  # 1..127


class BasicPitch:
    """The network, loaded once, on ``device`` (a torch device; "auto": a CUDA or Apple GPU where there is one).
    On the CPU it runs on the threads torch has (`stemdesk.io.process.limit_threads`)."""

    def __init__(self, path: Path | None = None, device: str = "cpu"):
        from ..core.device import resolve_device
        from ..io.onnx_reader import read_onnx
        from .network import OnnxProgram

        graph = read_onnx(Path(path or basic_pitch_model()).read_bytes())
        self.program = OnnxProgram(graph, resolve_device(device))
        self.input = graph.inputs[0]
        # the outputs as the file names them: contour (264 bins; :0), note (88 keys; :1), onset (88 keys; :2)
        self.outputs = {"note": "StatefulPartitionedCall:1", "onset": "StatefulPartitionedCall:2"}
        missing = set(self.outputs.values()) - set(graph.outputs)
        if missing:
            raise ModelError(f"{path or basic_pitch_model()} is not Basic Pitch's network (no {', '.join(missing)})")

    def activations(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Mono audio at RATE → (frame times in seconds, note activations (frames, 88), onset activations, and
        where one window's frames meet the next's)."""
        padded = np.concatenate([np.zeros(OVERLAP // 2, np.float32), audio.astype(np.float32)])
        starts = list(range(0, max(1, len(padded)), STEP))
        notes, onsets, times, seams = [], [], [], []
        keep = slice(OVERLAP_FRAMES // 2, -(OVERLAP_FRAMES // 2))
        silence = None
        for start in starts:  # one window at a time: the fastest on a CPU thread
            window = padded[start : start + WINDOW]
            window = np.pad(window, (0, WINDOW - len(window)))
            if loudest(window) < SILENT:  # a silent window has no notes: not run
                if silence is None:
                    silence = [np.zeros((FRAMES_PER_WINDOW, KEYS), np.float32)] * 2
                note, onset = silence
            else:
                out = self.program(**{self.input: torch.from_numpy(window[None, :, None])})
                note, onset = (out[self.outputs[name]][0].cpu().numpy() for name in ("note", "onset"))
            frames = np.arange(note.shape[0])[keep]
            notes.append(note[keep])
            onsets.append(onset[keep])
            times.append((start + frames * HOP - OVERLAP // 2) / RATE)
            seams.append(np.arange(frames.size) < 2)  # a window's first frames: where it meets the one before
        frame_times = np.concatenate(times)
        order = np.argsort(frame_times, kind="stable")
        frame_times = frame_times[order]
        # windows step by 141.3 frames and keep 142: the frame a window repeats of the one before is dropped
        new = (np.diff(frame_times, prepend=-np.inf) > 0.5 * HOP / RATE) & (frame_times >= 0)
        new &= frame_times < len(audio) / RATE
        return (
            frame_times[new],
            np.concatenate(notes)[order][new],
            np.concatenate(onsets)[order][new],
            np.concatenate(seams)[order][new],
        )

    def transcribe(
        self, audio: np.ndarray, rate: int, voices: int | None = None, mixture: np.ndarray | None = None
    ) -> list[Note]:
        """(channels, n) audio at ``rate`` → its notes, in time order; ``voices=1`` for one note at a time, whose
        onsets move to their attacks in ``mixture`` (mono, the same span) where it is given (`snap_onsets`)."""
        mono = audio.mean(axis=0) if audio.ndim == 2 else audio
        if not mono.size or loudest(mono) < SILENT:
            return []
        if rate != RATE:
            mono = resample_in_blocks(torch.from_numpy(np.ascontiguousarray(mono, np.float32))[None], rate, RATE)[0]
            mono = mono.numpy()
        times, frames, onsets, seams = self.activations(mono)
        notes = decode(times, frames, onsets, seams)
        if voices != 1:
            return notes
        notes = one_voice(notes)
        return notes if mixture is None else snap_onsets(notes, mixture, rate)

    def transcribe_file(
        self, path: Path, voices: int | None = None, mixture: Mixture | None = None
    ) -> tuple[list[Note], float]:
        """The notes of an audio file, read and transcribed in pieces of about PIECE_SECONDS, so that the memory
        needed stays the same however long the file is (a 2-hour stem). Each piece hears MARGIN_SECONDS more on
        either side and keeps the notes that start in its own span: the same notes as the whole file at once, but
        that a note going on past a piece's margin ends there, and that onsets are inferred from each piece's own
        largest jump. ``voices=1`` is applied to each piece and to the pieces together, and with ``mixture`` (the song the
        stem is part of, as `Mixture`) a one-voice line's onsets move to their attacks there. Returns the notes and
        the file's loudest sample (whether it is silent), from the one reading."""
        info = probe(path)
        rate, length = info.sample_rate, info.frames
        # pieces start where the whole file's windows do (a multiple of STEP at RATE that is a whole sample at the
        # file's rate), so each piece's windows hear what the whole file's would
        repeat = RATE // math.gcd(RATE, STEP * rate)
        unit = STEP * rate * repeat // RATE
        piece = max(1, round(PIECE_SECONDS * rate / unit)) * unit
        margin = math.ceil(MARGIN_SECONDS * rate / unit) * unit
        whole = length <= piece + 2 * margin
        if whole:
            piece = margin = max(length, 1)
        notes: list[Note] = []
        peak = 0.0
        for own in range(0, length, piece):
            first = max(0, own - margin)
            audio, _ = read(path, first, min(length, own + piece + margin) - first)
            peak = max(peak, loudest(audio))
            offset = first / rate
            found = self.transcribe(audio, rate, voices)
            if found and mixture is not None and voices == 1:  # the song is read only where there are notes
                found = snap_onsets(found, mixture(first, audio.shape[-1]), rate)
            for note in found:
                if own <= (note.start + offset) * rate < own + piece:
                    notes.append(Note(note.start + offset, note.end + offset, note.pitch, note.velocity))
        return (one_voice(notes) if voices == 1 and not whole else notes), peak


def snap_onsets(notes: list[Note], mixture: np.ndarray, rate: int) -> list[Note]:
    """A one-voice line's notes (in time order, not overlapping) with each start moved to the attack of its note in
    ``mixture`` (mono, at ``rate``, from the same time 0): the moment, within ATTACK_BEFORE before the start and
    ATTACK_AFTER after it, where the level of the note's first HARMONICS harmonics (the mean of their levels in dB, in
    spectra of 23 ms every 5.8 ms) over the ATTACK_SPAN after it exceeds that over the ATTACK_SPAN before it most, if
    by ATTACK_RISE dB at least; else the start stays. Comparing spans, not one step to the next, keeps two low notes
    beating (87 and 110 Hz rise and fall 23 times a second in one band) from passing for an attack. A start never
    moves to within 128 ms of the note before's, and a note before one that now starts earlier ends there."""
    if not notes or not mixture.size:
        return notes
    fft = 1 << max(6, round(math.log2(ATTACK_FFT_SECONDS * rate)))
    hop = fft // 4
    span = max(1, round(ATTACK_SPAN * rate / hop))
    window = np.hanning(fft + 1)[:-1].astype(np.float32)
    shortest = SHORTEST_FRAMES * HOP / RATE
    # frame f is centred at sample f·hop; with `span` frames of silence more on either side
    padded = np.pad(mixture.astype(np.float32, copy=False), (fft // 2 + span * hop, fft // 2 + span * hop))
    starts = []
    for index, note in enumerate(notes):
        earliest = note.start - ATTACK_BEFORE
        if index:
            earliest = max(earliest, notes[index - 1].start + shortest)
        first = max(0, math.ceil(earliest * rate / hop))
        last = min(int((note.start + ATTACK_AFTER) * rate / hop), (len(mixture) - 1) // hop)
        if last < first:
            starts.append(note.start)
            continue
        f0 = 440.0 * 2.0 ** ((note.pitch - 69) / 12)
        centre = np.rint(f0 * np.arange(1, HARMONICS + 1) * fft / rate).astype(int)
        bands = np.clip(centre[:, None] + np.array([-1, 0, 1]), 0, fft // 2)  # (harmonics, 3 bins)
        # frames first - span .. last + span - 1: each candidate's spans before and after it
        piece = padded[first * hop : (last + 2 * span - 1) * hop + fft]
        frames = np.lib.stride_tricks.sliding_window_view(piece, fft)[::hop]
        power = (np.abs(np.fft.rfft(frames * window, axis=1)[:, bands]) ** 2).sum(axis=2)  # (frames, harmonics)
        # each harmonic's level in dB, averaged: a harmonic that another part holds loud (a bass note's fourth under
        # a melody's note two octaves up) rises little but does not hide the others' rise; a level ATTACK_FLOOR dB
        # below the loudest harmonic there counts as that (a window's leakage into an empty band wavers by many dB)
        level = 10.0 * np.log10(np.maximum(power, power.max() * 10 ** (-ATTACK_FLOOR / 10)) + 1e-12)
        total = np.concatenate([[0.0], np.cumsum(level.mean(axis=1))])
        at = np.arange(span, span + last - first + 1)  # the candidates' rows in `level`
        contrast = (total[at + span] - 2 * total[at] + total[at - span]) / span  # mean after − mean before
        best = int(np.argmax(contrast))
        starts.append((first + best) * hop / rate if contrast[best] >= ATTACK_RISE else note.start)
    out = []
    for index, (note, start) in enumerate(zip(notes, starts)):
        end = min(note.end, starts[index + 1]) if index + 1 < len(notes) else note.end
        if end > start:
            out.append(Note(start, end, note.pitch, note.velocity))
    return out


def decode(times: np.ndarray, frames: np.ndarray, onsets: np.ndarray, seams: np.ndarray | None = None) -> list[Note]:
    """Notes from activations: each onset peak (a local maximum in time) of at least ONSET_THRESHOLD starts a note
    at its key, latest first, which lasts while the key stays above FRAME_THRESHOLD (dips of up to TOLERANCE frames
    allowed); the energy a note takes is taken from its key and the two beside it, so a note is not found twice.
    Onsets are also inferred where a key's activation jumps (Basic Pitch's ``infer_onsets``), except at the
    ``seams`` where one window's activations meet the next's (a step there is the windows', not the music's)."""
    n = len(times)
    if n < 3:
        return []
    frames = frames.astype(np.float64).copy()
    onsets = _with_inferred_onsets(onsets.astype(np.float64), frames, seams)
    peaks = np.zeros_like(onsets)
    inner = (onsets[1:-1] >= onsets[:-2]) & (onsets[1:-1] > onsets[2:])  # a flat top counts once, at its end
    peaks[1:-1][inner] = onsets[1:-1][inner]
    starts, keys = np.nonzero(peaks >= ONSET_THRESHOLD)
    notes = []
    for start, key in sorted(zip(starts.tolist(), keys.tolist()), reverse=True):
        if start >= n - 1:
            continue
        i, below = start + 1, 0
        while i < n - 1 and below < TOLERANCE:
            below = below + 1 if frames[i, key] < FRAME_THRESHOLD else 0
            i += 1
        i -= below
        if i - start <= SHORTEST_FRAMES:
            continue
        amplitude = float(frames[start:i, key].mean())
        frames[start:i, max(0, key - 1) : key + 2] = 0
        end = times[i] if i < n else times[-1]
        notes.append(Note(float(times[start]), float(end), key + LOWEST, int(np.clip(round(amplitude * 127), 1, 127))))
    return sorted(notes, key=lambda note: (note.start, note.pitch))


def _with_inferred_onsets(
    onsets: np.ndarray, frames: np.ndarray, seams: np.ndarray | None = None, steps: int = 2
) -> np.ndarray:
    diffs = [frames - np.concatenate([np.zeros((k, frames.shape[1])), frames[:-k]]) for k in range(1, steps + 1)]
    jump = np.clip(np.min(diffs, axis=0), 0, None)
    jump[:steps] = 0
    if seams is not None:
        jump[seams] = 0
    if jump.max() > 0:
        jump = onsets.max() * jump / jump.max()
    return np.maximum(onsets, jump)


def one_voice(notes: list[Note]) -> list[Note]:
    """One note at a time: going through the notes from the loudest, each keeps only the time no louder note took;
    what is left of it under 128 ms is dropped."""
    shortest = SHORTEST_FRAMES * HOP / RATE
    starts: list[float] = []  # the time taken, as disjoint pieces in time order (so their ends are in order too)
    ends: list[float] = []
    kept: list[Note] = []
    for note in sorted(notes, key=lambda n: (-n.velocity, n.start)):
        free, at = [], note.start
        i = bisect.bisect_right(ends, note.start)  # the first piece taken that ends after the note starts
        while i < len(starts) and starts[i] < note.end:
            free.append((at, starts[i]))
            at = max(at, ends[i])
            i += 1
        free.append((at, note.end))
        for s, e in free:
            if e - s >= shortest:
                kept.append(Note(s, e, note.pitch, note.velocity))
                where = bisect.bisect_left(starts, s)
                starts.insert(where, s)
                ends.insert(where, e)
    return sorted(kept, key=lambda note: note.start)
