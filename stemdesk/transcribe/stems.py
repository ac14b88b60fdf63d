"""MIDI from a folder of stems: one Standard MIDI File per stem beside it (``bass.mid`` beside ``bass.wav``, a split
stem's children's in its folder: ``vocals/lead.mid``) and one with every track (``<song>.mid``, named after the song
the certificate names, else the folder), for DAWs that import one file. What each stem becomes:

- vocals (and a split stem's ``lead``): the melody, one voice; ``backing``: notes, several voices;
- bass: the bass line, one voice;
- drums: General MIDI drum notes from the hits, per piece where the kit was split (kick 36, snare 38, cymbals 42,
  toms 47, the rest 39), else by band (kick, snare, hi-hat);
- other, and any stem of another name: notes, several voices.

The bass line's notes start at their attacks in the song (the stems' sum): a separated bass's own attacks are weak
and late, part of them gone to the drums (`stemdesk.transcribe.pitched.snap_onsets`). A sung melody's are not moved:
on real songs that made the separated and the true vocals' melodies agree less (docs/midi.md).

The tempo (read from the onsets) and the key (from the notes) go in every file; the notes stay where they were played
unless ``quantise`` snaps them to sixteenths. The song's certificate lists the files (they are no part of its null)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.cancel import CancelToken
from ..io.audio import iter_blocks, probe
from ..io.stems import CERTIFICATE, find_stems
from ..mixer.mix import parent_of
from .drums import drum_hits_file
from .model import ONNX_SHA256, WHEEL
from .pitched import SILENT, BasicPitch, Note
from .smf import DRUM_CHANNEL, Part, Timing, estimate_key, estimate_tempo, write_smf

# stem (or a split stem's child) → (one voice?, General MIDI program, onsets placed on their attacks in the song?)
PITCHED = {
    "vocals": (True, 53, False),  # voice oohs
    "lead": (True, 53, False),
    "backing": (False, 52, False),  # choir aahs
    "bass": (True, 33, True),  # electric bass (finger)
}
DRUM_PIECES = ("kick", "snare", "cymbals", "toms", "other")
BLOCK = 1 << 16  # samples `SongSpans` reads at a time


@dataclass
class MidiResult:
    files: dict[str, Path]  # stem ("vocals/lead") → its .mid
    song: Path  # the file with every track
    timing: Timing
    notes: dict[str, int] = field(default_factory=dict)  # stem → how many notes
    seconds: float = 0.0


class SongSpans:
    """The song as the sum of its stems (which add up to it), mono, over a span of samples; the last span asked for
    is kept, since every stem asks for the same spans (the whole song, or the same pieces of a long one)."""

    def __init__(self, paths: list[Path]):
        self.paths = paths
        self.span: tuple[int, int] | None = None
        self.samples = np.zeros(0, np.float32)

    def __call__(self, first: int, frames: int) -> np.ndarray:
        if self.span != (first, frames):
            self.samples = np.zeros(0, np.float32)  # the previous span goes before the next is read
            total = np.zeros(frames, np.float32)
            channels = 1
            for path in self.paths:  # in blocks, channel by channel: no stem is held whole
                info = probe(path)
                channels, at = info.channels, 0
                for block in iter_blocks(info, BLOCK, first, frames):
                    for samples in block:
                        total[at : at + block.shape[1]] += samples
                    at += block.shape[1]
            total /= channels
            self.span, self.samples = (first, frames), total
        return self.samples


def _part(key: str, path: Path, pitch: BasicPitch, song: SongSpans) -> Part:
    """One stem's part, its file read once, in pieces (a 2-hour stem needs no more memory than a song); a bass
    line's onsets are placed on their attacks in the ``song``."""
    name = key.split("/")[-1]
    group = parent_of(key)
    if key == "drums" or group == "drums":
        piece = name if group == "drums" else None
        if piece is not None and piece not in DRUM_PIECES:
            piece = "other"
        notes, peak = drum_hits_file(path, piece)
        silent = "the stem is silent" if peak < SILENT else ""
        return Part(key.replace("/", " "), notes, channel=DRUM_CHANNEL, empty_because=silent or "no drum hits found")
    one, program, attacks = PITCHED.get(name, PITCHED.get(group or "", (False, 0, False)))
    notes, peak = pitch.transcribe_file(path, voices=1 if one else None, mixture=song if attacks else None)
    silent = "the stem is silent" if peak < SILENT else ""
    return Part(key.replace("/", " "), notes, program, 0, silent or "no notes found")


def midi_for_stems(
    stems_dir: Path,
    quantise: bool = False,
    device: str = "auto",
    progress: Callable[[dict], None] | None = None,
    cancel: CancelToken | None = None,
) -> MidiResult:
    """Transcribe every stem of ``stems_dir`` (a split stem as its children) and write the MIDI files; Basic Pitch
    runs on ``device`` (on the CPU with the threads torch has)."""
    started = time.monotonic()
    folder = Path(stems_dir)
    stems = find_stems(folder)
    pitch = BasicPitch(device=device)
    leaves = stems.leaves()
    song_spans = SongSpans(list(stems.paths))  # the stems add up to the song (their children do too)
    parts: list[Part] = []
    for index, (key, path) in enumerate(leaves):
        if cancel is not None:
            cancel.raise_if_cancelled()
        if progress is not None:
            progress({"message": f"transcribing {key}", "done": index, "total": len(leaves)})
        parts.append(_part(key, path, pitch, song_spans))
    del song_spans
    seconds = stems.info.frames / stems.info.sample_rate
    drums = [note.start for part in parts if part.channel == DRUM_CHANNEL for note in part.notes]
    onsets = drums or [note.start for part in parts for note in part.notes]
    tempo = estimate_tempo(sorted(onsets), seconds)
    song_key = estimate_key([note for part in parts if part.channel != DRUM_CHANNEL for note in part.notes])
    timing = Timing(
        tempo or 120.0,
        song_key,
        quantise,
        {
            "tempo": "from the drum hits"
            if drums and tempo
            else "from the note onsets"
            if tempo
            else "120 (too few onsets)",
            "key": "Krumhansl-Kessler profiles on the notes' pitch classes" if song_key else "none (no pitched notes)",
        },
    )
    files: dict[str, Path] = {}
    for (key_name, path), part in zip(leaves, parts):
        files[key_name] = write_smf(path.with_suffix(".mid"), [part], timing)
    named = Path(str((stems.source or {}).get("file") or folder.name)).stem  # the song's name, where it is known
    song = write_smf(folder / f"{named}.mid", parts, timing)
    _certify(folder, files, song, timing)
    return MidiResult(
        files, song, timing, {k: len(p.notes) for (k, _), p in zip(leaves, parts)}, time.monotonic() - started
    )


def _certify(folder: Path, files: dict[str, Path], song: Path, timing: Timing) -> None:
    """List the MIDI files in the song's certificate (not among its outputs: they are no part of the null)."""
    from ..export import certificate

    path = folder / CERTIFICATE
    if not path.is_file():
        return
    cert = json.loads(path.read_text(encoding="utf-8"))
    outputs = [folder / o["file"] for o in cert.pop("outputs", [])]
    cert["midi"] = {
        "files": [str(p.relative_to(folder)) for p in [*files.values(), song]],
        "transcriber": f"Spotify's Basic Pitch ({WHEEL}, nmp.onnx sha256 {ONNX_SHA256[:16]}…); drums by onsets",
        "tempo_bpm": timing.tempo,
        "key": timing.key,
        "quantised": timing.quantise,
        "found": timing.found,
        "part_of_null": False,
    }
    certificate.write_beside(folder, cert, outputs)


__all__ = ["MidiResult", "Note", "midi_for_stems"]
