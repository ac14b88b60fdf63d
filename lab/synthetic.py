"""Synthetic multitracks for drums, bass and other: random songs written as MIDI and rendered by FluidSynth.

Real multitracks are scarce (../shared/data has about 35 minutes). A General MIDI sound font plays drum kits,
bass guitars and keys, guitars, strings, pads and leads well enough to teach a mask network what each sounds like,
so random songs in those parts multiply the data for the three non-vocal sources. Each part is rendered alone,
so the stems sum to the song exactly; there are no vocals, so a synthetic song only joins the sampler's pools
for drums, bass and other (random remixing puts real vocals over it).

    python -m lab.synthetic OUT --songs 40 --seconds 30      (needs `apt install fluidsynth fluid-soundfont-gm`)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import mido
import numpy as np

from stemdesk.io.audio import AtomicAudioWriter, read
from stemdesk.training.data import Song
from stemdesk.training.dataset import SongFiles, read_song

SOUND_FONTS = (Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), Path("/usr/share/sounds/sf2/default-GM.sf2"))
PARTS = ("drums", "bass", "other")
TICKS = 480  # per quarter note
DRUM_KITS = (0, 8, 16, 24, 25, 32, 40)  # standard, room, power, electronic, TR-808, jazz, brush
BASSES = tuple(range(32, 40))  # acoustic, finger, pick, fretless, slap ×2, synth ×2
CHORDS = tuple(range(0, 8)) + tuple(range(16, 21)) + tuple(range(24, 32)) + (48, 49, 50, 61, 88, 89, 90, 91, 95)
LEADS = (56, 65, 66, 68, 71, 73, 80, 81, 82, 84, 87, 104, 105)
PROGRESSIONS = ((0, 7, 9, 5), (0, 5, 7, 7), (9, 5, 0, 7), (0, 9, 5, 7), (2, 7, 0, 0), (0, 4, 5, 7), (9, 7, 5, 7))


def sound_font() -> Path:
    for path in SOUND_FONTS:
        if path.is_file():
            return path
    raise FileNotFoundError("no General MIDI sound font: install one with `apt install fluid-soundfont-gm`")


def _track(channel: int, program: int, pan: int, events: list[tuple[int, mido.Message]]) -> mido.MidiTrack:
    """events: (absolute tick, message) in any order → a track with delta times."""
    track = mido.MidiTrack(
        [
            mido.Message("program_change", channel=channel, program=program),
            mido.Message("control_change", channel=channel, control=10, value=pan),
        ]
    )
    now = 0
    for tick, message in sorted(events, key=lambda e: (e[0], e[1].type == "note_on")):
        track.append(message.copy(time=tick - now, channel=channel))
        now = tick
    return track


def _note(events, tick: int, length: int, pitch: int, velocity: int) -> None:
    events.append((tick, mido.Message("note_on", note=int(pitch), velocity=int(np.clip(velocity, 1, 127)))))
    events.append((tick + max(1, length), mido.Message("note_off", note=int(pitch), velocity=0)))


def compose(rng: np.random.Generator, bars: int) -> tuple[int, dict[str, list[mido.MidiTrack]]]:
    """A random song: tempo (µs per beat) and the MIDI tracks of each part."""
    bar, eighth, sixteenth = 4 * TICKS, TICKS // 2, TICKS // 4
    key = int(rng.integers(0, 12))
    progression = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]  # scale steps of a major key
    roots = [(key + step) % 12 for step in progression]
    minor_chord = [step in (2, 4, 9) for step in progression]  # ii, iii and vi are minor triads

    drums: list = []
    hat_step = sixteenth if rng.random() < 0.4 else eighth
    kick_extra = rng.random(8) < 0.3
    for b in range(bars):
        start = b * bar
        for beat in range(4):
            if beat in (0, 2):
                _note(drums, start + beat * TICKS, eighth, 36, rng.normal(105, 10))
            else:
                _note(drums, start + beat * TICKS, eighth, 38 if rng.random() < 0.9 else 40, rng.normal(100, 12))
        for i, extra in enumerate(kick_extra):
            if extra:
                _note(drums, start + i * eighth + eighth // 2 * (i % 2), eighth, 36, rng.normal(85, 10))
        for t in range(start, start + bar, hat_step):
            open_hat = rng.random() < 0.08
            _note(drums, t, sixteenth, 46 if open_hat else 42, rng.normal(75 if (t // hat_step) % 2 else 90, 8))
        if b % 4 == 0:
            _note(drums, start, bar, 49, rng.normal(100, 8))
        if b % 4 == 3 and rng.random() < 0.6:  # a tom fill into the next phrase
            for i, tom in enumerate((50, 48, 47, 45, 43, 41)):
                _note(drums, start + 2 * TICKS + i * TICKS // 3, sixteenth, tom, rng.normal(95, 8))

    bass: list = []
    style = int(rng.integers(3))
    for b in range(bars):
        root = 36 + roots[b % len(roots)]
        for i in range(8):
            tick = b * bar + i * eighth
            if style == 0:
                pitch = root
            elif style == 1:
                pitch = root + (7 if i % 4 == 2 else 0) + (12 if i == 7 else 0)
            else:
                if i % 2:
                    continue
                pitch = root + (0, 4 - minor_chord[b % len(roots)], 7, 12)[i // 2]
            _note(bass, tick, int(eighth * (0.9 if style < 2 else 1.8)), pitch, rng.normal(95, 10))

    other: list[tuple[int, int, list]] = []
    chord_events: list = []
    voicing = rng.random() < 0.5
    for b in range(bars):
        root = 60 + roots[b % len(roots)]
        notes = [root, root + 4 - minor_chord[b % len(roots)], root + 7] + ([root + 12] if voicing else [])
        if rng.random() < 0.5:  # sustained chords
            for n in notes:
                _note(chord_events, b * bar, bar - 20, n - 12 * (n > 71), rng.normal(70, 8))
        else:  # arpeggio in eighths
            for i in range(8):
                _note(chord_events, b * bar + i * eighth, eighth, notes[i % len(notes)], rng.normal(75, 8))
    other.append((0, int(rng.choice(CHORDS)), chord_events))
    if rng.random() < 0.6:  # a lead line over the chords
        lead: list = []
        scale = (0, 2, 4, 5, 7, 9, 11)
        degree = 0
        for b in range(bars):
            t = b * bar
            while t < (b + 1) * bar:
                length = int(rng.choice([eighth, TICKS, TICKS, 2 * TICKS]))
                degree = int(np.clip(degree + rng.integers(-2, 3), -3, 9))
                if rng.random() < 0.85:
                    pitch = 72 + key + 12 * (degree // 7) + scale[degree % 7]
                    _note(lead, t, int(length * 0.9), pitch, rng.normal(80, 10))
                t += length
        other.append((1, int(rng.choice(LEADS)), lead))
    tempo = mido.bpm2tempo(float(rng.uniform(80, 160)))
    tracks = {
        "drums": [_track(9, int(rng.choice(DRUM_KITS)), 64, drums)],
        "bass": [_track(0, int(rng.choice(BASSES)), int(rng.integers(54, 74)), bass)],
        "other": [_track(channel, program, int(rng.integers(24, 104)), events) for channel, program, events in other],
    }
    return tempo, tracks


def render(tempo: int, tracks: list[mido.MidiTrack], rate: int, folder: Path, name: str) -> np.ndarray:
    """One part through FluidSynth → float32 (2, length)."""
    song = mido.MidiFile(ticks_per_beat=TICKS)
    song.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=tempo)]))
    song.tracks.extend(tracks)
    midi, wav = folder / f"{name}.mid", folder / f"{name}.wav"
    song.save(midi)
    subprocess.run(
        ["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(rate), "-F", str(wav), str(sound_font()), str(midi)],
        check=True,
        capture_output=True,
    )
    audio, _ = read(wav)
    return audio


def synthetic_song(seed: int, seconds: float = 30.0, rate: int = 44100) -> Song:
    """A random song of about ``seconds`` with drums, bass and other (no vocals): sources vocals, drums, bass,
    other, with vocals silent and marked unusable."""
    if shutil.which("fluidsynth") is None:
        raise FileNotFoundError("fluidsynth is not installed: `apt install fluidsynth fluid-soundfont-gm`")
    rng = np.random.default_rng(seed)
    tempo, tracks = compose(rng, bars=1)
    bars = max(1, int(round(seconds / (4 * tempo / 1e6))))
    rng = np.random.default_rng(seed)
    tempo, tracks = compose(rng, bars=bars)
    with tempfile.TemporaryDirectory() as tmp:
        parts = [render(tempo, tracks[part], rate, Path(tmp), part) for part in PARTS]
    # FluidSynth renders until every voice has died away; keep the song plus half a second of its tail.
    return _song(f"synthetic-{seed}", parts, rate, int((bars * 4 * tempo / 1e6 + 0.5) * rate))


def load_synthetic(folder: Path) -> Song:
    """A song written by `main` (drums/bass/other.wav, no vocals) as a Song with silent, unusable vocals."""
    audio = read_song(SongFiles(folder.name, {part: [folder / f"{part}.wav"] for part in PARTS}))
    return audio.to_song((False, True, True, True))


def _song(name: str, parts: list[np.ndarray], rate: int, length: int | None = None) -> Song:
    """drums, bass and other (channels, n) → a Song with silent, unusable vocals, cut to the shortest part (and to
    ``length``)."""
    length = min([p.shape[-1] for p in parts] + ([length] if length is not None else []))
    stems = np.stack([np.zeros((2, length), np.float32)] + [p[:2, :length] for p in parts])
    return Song.from_float(name, stems, (False, True, True, True), rate)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--songs", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for index in range(args.songs):
        folder = args.out / f"synthetic-{args.seed + index:04d}"
        if (folder / "other.wav").is_file():
            continue
        song = synthetic_song(args.seed + index, args.seconds)
        folder.mkdir(parents=True, exist_ok=True)
        for i, part in enumerate(PARTS, start=1):
            with AtomicAudioWriter(folder / f"{part}.wav", song.sample_rate, 2, "WAV", "PCM_16") as writer:
                writer.write(song.stems[i])
                writer.commit()
        print(folder, flush=True)


if __name__ == "__main__":
    main()
