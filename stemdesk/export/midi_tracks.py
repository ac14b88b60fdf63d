"""The MIDI tracks a DAW session carries beside the stems: the notes `stemdesk midi` wrote beside each stem
(``bass.mid`` beside ``bass.wav``, ``vocals/lead.mid`` beside a split stem's child), read back and put where the
session plays them: at the session's tempo (a note at 10 s of the song is at 8 s of a session played 1.25 times as
fast) and, for pitched notes, in its key when it moves by whole semitones (a drum note names a drum, not a pitch).

The tracks hold notes only, no instrument: they are silent until the producer puts one on them, so a session's
audio is still the stems' (and its null holds)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..io.stems import CERTIFICATE, Stems, read_certificate
from ..transcribe.pitched import Note
from ..transcribe.smf import DRUM_CHANNEL, read_part


@dataclass(frozen=True)
class MidiTrack:
    key: str  # the stem (leaf) the notes came from: "bass", "vocals/lead"
    file: Path  # the .mid beside it
    notes: list[Note]  # in seconds of the session (the mix's tempo applied), pitches in its key
    channel: int  # 9: General MIDI drums
    program: int

    @property
    def name(self) -> str:
        """The track's name in a session: "bass MIDI", "vocals lead MIDI"."""
        return f"{self.key.replace('/', ' ')} MIDI"


def midi_tracks(stems: Stems, tempo: float = 1.0, semitones: float = 0.0) -> tuple[list[MidiTrack], str]:
    """The MIDI tracks of ``stems``' leaves that have a ``.mid`` beside them, in the leaves' order, played as the
    session plays the stems (``tempo`` as a ratio of the song's, transposed by ``semitones``), and a note for the
    session's exporter to pass on (empty when there is nothing to say: a file it could not read, a key change MIDI
    cannot follow)."""
    tracks: list[MidiTrack] = []
    unread: list[str] = []
    shift = round(semitones)
    for key, path in stems.leaves():
        file = path.with_suffix(".mid")
        if not file.is_file():
            continue
        try:
            part = read_part(file)
        except (OSError, ValueError, EOFError, KeyError, IndexError):  # not a Standard MIDI File mido can read
            unread.append(file.name)
            continue
        drums = part.channel == DRUM_CHANNEL
        notes = [
            Note(
                n.start / tempo,
                n.end / tempo,
                n.pitch if drums else min(127, max(0, n.pitch + shift)),
                n.velocity,
            )
            for n in part.notes
        ]
        tracks.append(MidiTrack(key, file, notes, part.channel, part.program))
    said: list[str] = []
    if unread:
        said.append(f"Not a MIDI file StemDesk can read, left out: {', '.join(unread)} (run `stemdesk midi` again).")
    if tracks and semitones != shift:
        said.append(
            f"The MIDI tracks are moved {shift:+d} semitones, not {semitones:+g}: notes move by whole semitones."
        )
    return tracks, " ".join(said)


def midi_tempo(stems: Stems) -> float | None:
    """The tempo `stemdesk midi` read from these stems (their certificate's ``midi`` block), in BPM: a session's
    tempo when none is asked for, so the DAW's grid is the song's; None when there is no MIDI."""
    folder = stems.paths[0].parent
    try:
        tempo = read_certificate(folder).get("midi", {}).get("tempo_bpm") if (folder / CERTIFICATE).is_file() else None
    except (OSError, ValueError, AttributeError):
        return None
    return float(tempo) if isinstance(tempo, (int, float)) and 20 <= tempo <= 666 else None
