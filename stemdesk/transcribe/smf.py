"""Notes into Standard MIDI Files, and the song's tempo and key read from the notes: a tempo from how the onsets
recur, a key from how long each pitch class sounds (the Krumhansl–Kessler profiles)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mido
import numpy as np

from ..io.atomic import atomic_write_bytes
from .pitched import Note

TICKS = 480  # per quarter note
DRUM_CHANNEL = 9  # General MIDI channel 10
# Krumhansl–Kessler key profiles (C major, C minor), rotated to each tonic
MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
GRID = 4  # --quantise: to sixteenths (four per beat)


@dataclass
class Part:
    """One track: a stem's notes, what plays them and on which channel."""

    name: str
    notes: list[Note]
    program: int = 0  # General MIDI program (ignored on the drum channel)
    channel: int = 0
    empty_because: str = ""  # what a track without notes says


@dataclass
class Timing:
    tempo: float = 120.0  # beats per minute
    key: str | None = None  # "A minor", "Eb major"
    quantise: bool = False
    found: dict = field(default_factory=dict)  # how tempo and key were found


def estimate_tempo(onsets: Sequence[float], seconds: float) -> float | None:
    """The tempo in BPM (60-180) whose beat best matches how the onsets recur: the autocorrelation of the onsets at
    100 Hz, weighted toward 120 BPM (the usual octave error chooses the tempo nearer it); None with few onsets."""
    if len(onsets) < 8 or seconds <= 0:
        return None
    rate = 100
    train = np.zeros(int(seconds * rate) + 2)
    for t in onsets:
        index = int(round(t * rate))
        if 0 <= index < train.size:
            train[index] += 1
    train = np.convolve(train, np.hanning(7), mode="same")
    lags = np.arange(int(rate * 60 / 180), int(rate * 60 / 60) + 1)
    corr = np.array([np.dot(train[:-lag], train[lag:]) for lag in lags])
    bpm = 60 * rate / lags
    weight = np.exp(-0.5 * (np.log2(bpm / 120) / 0.5) ** 2)
    if corr.max() <= 0:
        return None
    best = int(np.argmax(corr * weight))
    return float(round(bpm[best], 1))


def estimate_key(notes: Sequence[Note]) -> str | None:
    """The key whose Krumhansl–Kessler profile best correlates with the time each pitch class sounds."""
    weights = np.zeros(12)
    for note in notes:
        weights[note.pitch % 12] += note.end - note.start
    if weights.sum() <= 0:
        return None
    best, name = -2.0, None
    for tonic in range(12):
        for profile, mode in ((MAJOR, "major"), (MINOR, "minor")):
            score = float(np.corrcoef(weights, np.roll(profile, tonic))[0, 1])
            if score > best:
                best, name = score, f"{NAMES[tonic]} {mode}"
    return name


def _mido_key(key: str) -> str:
    tonic, mode = key.split()
    return tonic + ("m" if mode == "minor" else "")


def smf_bytes(parts: Sequence[Part], timing: Timing, one_track: bool = False) -> bytes:
    """A type-1 Standard MIDI File: a conductor track (tempo, 4/4, key) and one track per part; with ``one_track``,
    a type-0 file of those tracks merged (for readers of a file's first track only: Ardour)."""
    song = mido.MidiFile(type=1, ticks_per_beat=TICKS)
    conductor = mido.MidiTrack(
        [
            mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(timing.tempo)),
            mido.MetaMessage("time_signature", numerator=4, denominator=4),
        ]
    )
    if timing.key:
        conductor.append(mido.MetaMessage("key_signature", key=_mido_key(timing.key)))
    conductor.append(mido.MetaMessage("end_of_track"))
    song.tracks.append(conductor)
    ticks_per_second = TICKS * timing.tempo / 60

    def tick(seconds: float) -> int:
        ticks = seconds * ticks_per_second
        if timing.quantise:
            step = TICKS / GRID
            ticks = round(ticks / step) * step
        return max(0, int(round(ticks)))

    for part in parts:
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=part.name)])
        if part.channel != DRUM_CHANNEL:
            track.append(mido.Message("program_change", channel=part.channel, program=part.program))
        if not part.notes:
            track.append(mido.MetaMessage("text", text=f"no notes: {part.empty_because or 'none were found'}"))
        events = []
        for note in part.notes:
            on, off = tick(note.start), tick(note.end)
            events.append((on, 1, "note_on", note.pitch, note.velocity))
            events.append((max(off, on + 1), 0, "note_off", note.pitch, 0))
        now = 0
        for at, _, kind, pitch, velocity in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start
            track.append(mido.Message(kind, channel=part.channel, note=pitch, velocity=velocity, time=at - now))
            now = at
        track.append(mido.MetaMessage("end_of_track"))
        song.tracks.append(track)
    if one_track:
        song = mido.MidiFile(type=0, ticks_per_beat=TICKS, tracks=[mido.merge_tracks(song.tracks)])
    buffer = io.BytesIO()
    song.save(file=buffer)
    return buffer.getvalue()


def read_notes(path: Path) -> list[Note]:
    """The notes of a Standard MIDI File (every track), in seconds through its tempo changes, in time order."""
    return read_part(path).notes


def read_part(path: Path) -> Part:
    """A Standard MIDI File as one part: every track's notes (in seconds through its tempo changes, in time order),
    the first track name, program and channel it holds (a stem's file holds one of each)."""
    song = mido.MidiFile(str(path))
    notes: list[Note] = []
    sounding: dict[tuple[int, int], tuple[float, int]] = {}
    name, program, channel = "", None, None
    now = 0.0
    for message in song:  # merged tracks, times in seconds
        now += message.time
        if message.type == "track_name" and not name:
            name = message.name
        elif message.type == "program_change" and program is None:
            program = message.program
        elif message.type == "note_on" and message.velocity:
            sounding[(message.channel, message.note)] = (now, message.velocity)
            channel = message.channel if channel is None else channel
        elif message.type in ("note_off", "note_on") and (message.channel, message.note) in sounding:
            start, velocity = sounding.pop((message.channel, message.note))
            notes.append(Note(start, now, message.note, velocity))
    notes.sort(key=lambda note: (note.start, note.pitch))
    return Part(name or Path(path).stem, notes, program or 0, channel or 0)


def write_smf(path: Path, parts: Sequence[Part], timing: Timing) -> Path:
    """The file at ``path``, whole or not at all."""
    return atomic_write_bytes(Path(path), smf_bytes(parts, timing))
