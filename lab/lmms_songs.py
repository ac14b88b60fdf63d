"""Held-out songs with exact stems: the demo projects of LMMS that Debian ships, rendered track by track.

The validation songs with real stems are few (13 MUSDB18 excerpts and one CC0 song), and HTDemucs was trained on
MUSDB18. The demo projects in Debian's `lmms-common` are finished songs by LMMS users (electronic music: house,
trance, reggae, chiptune, ...). `lmms rendertracks` renders each track of a project alone, so a song is exactly the
sum of its tracks. Each track goes to a stem by what it is:

- **drums**: LMMS's kick synthesiser, a General MIDI drum bank, or a sample or track named or filed as a drum
  (kick, snare, hi-hat, clap, tom, cymbal, percussion, ...; the `drums/` and `drumsynth/` sample folders);
- **bass**: a sample or track named or filed as a bass (`basses/`), the TB-303 emulation (lb302), or a synth
  without such a name that plays a line (three pitches or more) and sounds low (most of its energy below 200 Hz);
- **vocals**: a recording (a sample) named as a voice; a synth named "voice" is not one;
- **other**: everything else.

Every song folder gets vocals/drums/bass/other.flac (the mixture is their sum; the song is scaled as a whole so
that it does not clip) and a meta.json naming every track, its stem and the rule that put it there, the project's
author and its licence as Debian's copyright file gives it. Neither the teacher (HTDemucs) nor any StemDesk model
has trained on these songs; `benchmarks/quality.py --held-out DIR` scores models on them.

    apt install lmms
    python -m lab.lmms_songs OUT [--projects DIR]

Runs again skip the songs already written (each is written to a temporary folder and renamed into place); a project
that cannot be read or rendered is skipped with its error, and the run ends saying which.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from stemdesk.io.audio import AtomicAudioWriter, read

PROJECTS = Path("/usr/share/lmms/projects")
COPYRIGHT = Path("/usr/share/doc/lmms-common/copyright")
STEMS = ("vocals", "drums", "bass", "other")
RATE = 44100
LOW_SHARE = 0.6  # a pitched track with this share of its energy below LOW_HZ is a bass line
LOW_HZ = 200.0
MIN_LINE_KEYS = 3  # ... and plays at least this many pitches (one or two: a boom or an effect, not a bass line)
INSTRUMENT, BEAT_BASSLINE, SAMPLE = 0, 1, 2  # LMMS track types

# Whole words (or word starts) in a track's name or its sample's file name.
VOCAL_WORDS = r"vocal|vox|voice|sing|sung|spoken|speech|acapella|rap"
DRUM_WORDS = (
    r"kick|bd|bassdrum|snare|sn|snr|hat|hihat|hh|clap|tom|toms|cymbal|crash|ride|perc|percussion|shaker|tamb"
    r"|tambourine|timbale|conga|cga|rim|rimshot|cowbell|bongo|drum|drums|808|909|cabasa|clave|triangle"
)
BASS_WORDS = r"bass|sub|subbass|bassline|303"
DRUM_PLUGINS = {"kicker"}
BASS_PLUGINS = {"lb302", "lb303"}
DRUM_FOLDERS = ("drums/", "drumsynth/", "percussion/")
NOT_DRUMS = ("drumsynth/instrument/",)  # DrumSynth's pitched instruments: an e-piano, a mute bass, ...
SAMPLE_PLUGINS = {"audiofileprocessor", "sample"}  # what can play a recorded voice
BASS_FOLDERS = ("basses/",)


@dataclass
class Track:
    """One track `lmms rendertracks` renders: its name, instrument plugin ("sample" for a sample track), the
    sample file it plays (if any) and whether a General MIDI drum bank plays it."""

    name: str
    plugin: str
    sample: str = ""
    gm_drums: bool = False
    notes: int = 0
    keys: int = 0  # distinct pitches it plays
    words: list[str] = field(default_factory=list)


def read_project(path: Path) -> ElementTree.Element:
    """An .mmp (XML) or .mmpz (Qt's qCompress: a 4-byte length, then zlib) project."""
    data = path.read_bytes()
    if path.suffix == ".mmpz":
        data = zlib.decompress(data[4:])
    return ElementTree.fromstring(data.decode("utf-8", "replace"))


def rendered_tracks(root: ElementTree.Element) -> list[Track]:
    """The tracks `lmms rendertracks` writes, in its order: the song's unmuted instrument and sample tracks, then
    the beat/bassline editor's (LMMS 1.2, RenderManager::renderTracks). File k of the render is entry k - 1."""
    container = root.find("song/trackcontainer")
    if container is None:
        raise ValueError("not an LMMS project: no song/trackcontainer")
    song, beat = [], []
    for element in container.findall("track"):
        kind = int(element.get("type", -1))
        if kind in (INSTRUMENT, SAMPLE):
            song.append(element)
        elif kind == BEAT_BASSLINE:
            inner = element.find("bbtrack/trackcontainer")
            if inner is not None:
                beat += [t for t in inner.findall("track") if int(t.get("type", -1)) in (INSTRUMENT, SAMPLE)]
    return [_track(element) for element in song + beat if element.get("muted", "0") != "1"]


def _track(element: ElementTree.Element) -> Track:
    name = element.get("name", "")
    if int(element.get("type", -1)) == SAMPLE:
        clip = next(element.iter("sampletco"), None)
        sample = clip.get("src", "") if clip is not None else ""
        return Track(name, "sample", sample, words=_words(name, sample))
    instrument = element.find("instrumenttrack/instrument")
    plugin = instrument.get("name", "") if instrument is not None else ""
    sample, gm_drums = "", False
    if instrument is not None:
        for node in instrument.iter():
            sample = sample or node.get("src", "")
            if node.tag == "sf2player" and node.get("bank") == "128":
                gm_drums = True
    keys = [note.get("key") for note in element.iter("note")]
    return Track(name, plugin, sample, gm_drums, len(keys), len(set(keys)), _words(name, sample))


def _words(name: str, sample: str) -> list[str]:
    """Lower-case words of the track's name and its sample's file name (camel case and digits split)."""
    text = f"{name} {Path(sample).stem}"
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    return [w for w in re.split(r"[^a-z0-9]+|(?<=[a-z])(?=[0-9])|(?<=[0-9])(?=[a-z])", text.lower()) if w]


def _has(words: list[str], pattern: str) -> str | None:
    rule = re.compile(rf"(?:{pattern})")
    return next((w for w in words if rule.fullmatch(w)), None)


def classify(track: Track, low_share: float | None) -> tuple[str, str]:
    """(stem, the reason) for a track; ``low_share``: the share of its rendered energy below LOW_HZ (None when
    it is silent)."""
    sample = track.sample.lower()
    if (word := _has(track.words, VOCAL_WORDS)) and track.plugin in SAMPLE_PLUGINS:
        return "vocals", f'a recording named "{word}"'
    if track.plugin in DRUM_PLUGINS:
        return "drums", f"LMMS's {track.plugin} drum synthesiser"
    if track.gm_drums:
        return "drums", "a General MIDI drum bank (128)"
    if sample.startswith(DRUM_FOLDERS) and not sample.startswith(NOT_DRUMS):
        return "drums", f"a drum sample ({track.sample})"
    if word := _has(track.words, DRUM_WORDS):
        return "drums", f'named "{word}"'
    if sample.startswith(BASS_FOLDERS):
        return "bass", f"a bass sample ({track.sample})"
    if track.plugin in BASS_PLUGINS:
        return "bass", f"LMMS's {track.plugin} bass synthesiser"
    if word := _has(track.words, BASS_WORDS):
        return "bass", f'named "{word}"'
    if low_share is not None and low_share >= LOW_SHARE and track.plugin != "sample":
        if track.keys >= MIN_LINE_KEYS:
            return (
                "bass",
                f"a line of {track.keys} pitches that sounds low: {low_share:.0%} of its energy below {LOW_HZ:.0f} Hz",
            )
        return "other", f"sounds low ({low_share:.0%} below {LOW_HZ:.0f} Hz) but plays {track.keys} pitches: not a line"
    return "other", "none of the drum, bass or vocal rules"


def low_energy_share(audio: np.ndarray, rate: int) -> float | None:
    """Share of the energy below LOW_HZ, over the whole track (channels summed); None if it is silent."""
    mono = audio.mean(axis=1) if audio.ndim == 2 else audio
    power = np.abs(np.fft.rfft(mono.astype(np.float64))) ** 2
    total = power.sum()
    if total <= 0:
        return None
    freqs = np.fft.rfftfreq(len(mono), 1 / rate)
    return float(power[freqs < LOW_HZ].sum() / total)


def licence(relative: str, copyright_file: Path = COPYRIGHT) -> str:
    """The licence Debian's machine-readable copyright file gives the project at ``relative`` (its path under
    LMMS's projects folder, e.g. "demos/Saber-FinalStep.mmpz"): the last stanza whose Files pattern matches wins,
    as the format says."""
    if not copyright_file.is_file():
        return "unknown: Debian's copyright file for lmms-common is missing"
    relative = "data/projects/" + relative
    found = "unknown: no stanza of the copyright file names it"
    for stanza in copyright_file.read_text(encoding="utf-8").split("\n\n"):
        files = re.search(r"^Files:(.*?)(?=^\S)", stanza + "\nEnd:", re.S | re.M)
        licence_line = re.search(r"^License: *(.+)$", stanza, re.M)
        if not files or not licence_line:
            continue
        if any(fnmatch.fnmatch(relative, pattern) for pattern in files.group(1).split()):
            found = licence_line.group(1).strip()
    return found


class RendererCrashed(RuntimeError):
    """LMMS itself died of a signal (it segfaults now and then on a render it completes on the next try): a fault
    of the third-party renderer, not of the project or of StemDesk."""


CRASH_TRIES = 3  # a crash is retried; a clean failure (a bad project, exit code > 0) is not


def run_lmms(args: list[str], what: str) -> subprocess.CompletedProcess:
    """``lmms --allowroot ARGS``, tried again when LMMS crashes. Raises RendererCrashed after CRASH_TRIES
    crashes, RuntimeError when it fails without crashing."""
    for _ in range(CRASH_TRIES):
        result = subprocess.run(["lmms", "--allowroot", *args], capture_output=True, text=True, timeout=3600)
        if result.returncode >= 0:
            break
    if result.returncode < 0:
        raise RendererCrashed(
            f"lmms crashed {CRASH_TRIES} times rendering {what} (signal {-result.returncode}): {result.stderr[-500:]}"
        )
    if result.returncode != 0:
        raise RuntimeError(f"lmms could not render {what} (exit {result.returncode}): {result.stderr[-500:]}")
    return result


def render(project: Path, folder: Path) -> list[Path]:
    """`lmms rendertracks` into ``folder`` (32-bit float WAV); the files in render order."""
    if shutil.which("lmms") is None:
        raise FileNotFoundError("lmms is not installed: `apt install lmms`")
    folder.mkdir(parents=True, exist_ok=True)  # lmms does not create it
    run_lmms(["rendertracks", str(project), "-f", "wav", "-a", "-x", "1", "-o", f"{folder}/"], project.name)
    files = sorted(folder.glob("*.wav"), key=lambda p: int(p.name.split("_", 1)[0]))
    if not files:
        raise RuntimeError(f"lmms rendered no tracks of {project.name}")
    return files


def song_from_project(project: Path, out: Path, root: Path = PROJECTS) -> Path | None:
    """Render ``project`` (under LMMS's projects folder ``root``) into ``out/<name>`` (four stems and meta.json);
    None if every track is silent."""
    relative = project.relative_to(root).as_posix()
    tracks = rendered_tracks(read_project(project))
    with tempfile.TemporaryDirectory(prefix=".render-", dir=out) as tmp:
        files = render(project, Path(tmp) / "tracks")
        if len(files) != len(tracks):
            raise RuntimeError(
                f"{project.name}: lmms rendered {len(files)} tracks, the project lists {len(tracks)} unmuted ones"
            )
        audio = []
        for path in files:
            data, rate = read(path)
            if rate != RATE:
                raise RuntimeError(f"{path.name}: rendered at {rate} Hz, not {RATE}")
            audio.append((data[:2] if len(data) >= 2 else np.repeat(data, 2, axis=0)).T)
        length = max(len(a) for a in audio)
        stems = {name: np.zeros((length, 2), np.float64) for name in STEMS}
        described = []
        for number, (track, data) in enumerate(zip(tracks, audio), start=1):
            share = low_energy_share(data, RATE)
            stem, reason = classify(track, share)
            if share is not None:
                stems[stem][: len(data)] += data
            described.append(
                {
                    "file": files[number - 1].name,
                    "name": track.name,
                    "plugin": track.plugin,
                    "sample": track.sample,
                    "stem": stem,
                    "why": reason,
                    "silent": share is None,
                }
            )
        mixture = sum(stems.values())
        audible = np.flatnonzero(np.abs(mixture).max(axis=1) > 1e-4)
        if audible.size == 0:
            return None
        end = min(length, audible[-1] + RATE // 2)  # the song and half a second of its tail
        peak = max(float(np.abs(mixture[:end]).max()), *(float(np.abs(s[:end]).max()) for s in stems.values()))
        gain = min(1.0, 0.89 / peak)  # −1 dBFS at most, for the mixture and every stem
        folder = Path(tmp) / "song"
        for name in STEMS:
            with AtomicAudioWriter(folder / f"{name}.flac", RATE, 2, "FLAC", "PCM_24") as writer:
                writer.write((stems[name][:end].T * gain).astype(np.float32))
                writer.commit()
        meta = {
            "source": f"LMMS demo project {relative} (Debian lmms-common), "
            "rendered track by track by `lmms rendertracks` (lab/lmms_songs.py)",
            "license": licence(relative),
            "license_file": str(COPYRIGHT),
            "seconds": round(end / RATE, 2),
            "gain": gain,  # unrounded: the stems / gain are the tracks' sum to 24-bit precision
            "tracks": described,
            "notes": "electronic music made in LMMS; its samples come from lmms-common (see the copyright file)",
        }
        (folder / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        target = out / project.stem
        folder.rename(target)
    return target


def projects(root: Path) -> list[Path]:
    """The demo and short projects (not the templates or tutorials)."""
    found = [p for sub in ("demos", "shorties") for p in (root / sub).rglob("*") if p.suffix in (".mmp", ".mmpz")]
    return sorted(found, key=lambda p: p.stem.lower())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--projects", type=Path, default=PROJECTS, help="LMMS's projects folder")
    args = parser.parse_args(argv)
    found = projects(args.projects)
    if not found:
        parser.error(f"no LMMS demo projects under {args.projects}: `apt install lmms` (lmms-common ships them)")
    if shutil.which("lmms") is None:
        parser.error("lmms is not installed: `apt install lmms`")
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for project in found:
        if (args.out / project.stem / "meta.json").is_file():
            continue
        try:
            target = song_from_project(project, args.out, args.projects)
        except (
            RuntimeError,
            ValueError,
            OSError,
            zlib.error,
            ElementTree.ParseError,
            subprocess.TimeoutExpired,
        ) as error:
            print(f"{project.stem}: not rendered ({error}); skipped", flush=True)
            failed.append(project.stem)
            continue
        if target is None:
            print(f"{project.stem}: every track is silent; skipped", flush=True)
            continue
        meta = json.loads((target / "meta.json").read_text(encoding="utf-8"))
        counts = {s: sum(t["stem"] == s and not t["silent"] for t in meta["tracks"]) for s in STEMS}
        print(f"{target}: {meta['seconds']:.0f} s, tracks {counts}, {meta['license']}", flush=True)
    if failed:
        raise SystemExit(
            f"{len(failed)} of {len(found)} projects could not be rendered ({', '.join(failed)}); the others are "
            f"in {args.out}. Run again to retry them."
        )


if __name__ == "__main__":
    main()
