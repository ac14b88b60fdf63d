"""A user's multitracks: the layouts people have, mapped onto StemDesk's sources, and checked before training.

Layouts
- MUSDB-HQ style: ``<root>/<song>/{mixture,vocals,drums,bass,other}.<ext>`` (mixture optional).
- One folder per song with stems named anything, plus a mapping of file-name patterns to sources
  (``{"vocals": ["Lead Vox*", "BGV*"], "drums": ["Kick*", "Snare*", "OH*"]}``); unmapped stems go to "other".
- A CSV list with columns ``song,source,path`` (paths relative to the CSV; ``source`` may be "mixture").

`read_song` is the one loader: it decodes each file of a song once; `load_checked` checks the decoded audio and keeps
it as a `Song`, so a fine-tune reads each song once. `check_dataset` reads every song and reports, per song, what is wrong (sample rates or lengths that disagree, stems
out of time with the mixture, a printed mixture that is not the sum of its stems, clipping, silent stems, duplicate
songs, unmapped stems). Songs with errors are excluded with the reason; warnings are reported and kept.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from stemdesk.core.errors import StemDeskError
from stemdesk.io.audio import AUDIO_SUFFIXES_READ, probe, read

from .data import Song

SOURCES = ("vocals", "drums", "bass", "other")
MUSDB_NAMES = {"mixture", *SOURCES}
# Below this RMS a stem is near-silent: reported, and not a target to learn from (a bass line inside "other").
SILENT_RMS = 1e-3


@dataclass
class SongFiles:
    """One song: for each source the files that add up to it, and the printed mixture if there is one."""

    name: str
    stems: dict[str, list[Path]]
    mixture: Path | None = None
    unmapped: list[str] = field(default_factory=list)  # file names sent to "other" for want of a pattern


@dataclass
class SongAudio:
    """One song decoded from its files: for each source that has files, their sum as float32 (2, length), cut to
    the shortest stem; the printed mixture (2, n) when the song has one."""

    name: str
    stems: dict[str, np.ndarray]
    mixture: np.ndarray | None
    sample_rate: int

    @property
    def length(self) -> int:
        return next(iter(self.stems.values())).shape[-1]

    def to_song(self, usable: Sequence[bool], sources: Sequence[str] = SOURCES) -> Song:
        """The in-memory training song (int16), in ``sources`` order; a source without files is silent."""
        silence = np.zeros((2, self.length), np.float32)
        return Song.from_float(
            self.name, np.stack([self.stems.get(s, silence) for s in sources]), usable, self.sample_rate
        )


def _stereo(audio: np.ndarray) -> np.ndarray:
    return audio[:2] if audio.shape[0] >= 2 else np.repeat(audio, 2, axis=0)


def read_song(song: SongFiles, mixture: bool = True) -> SongAudio:
    """Decode every file of ``song`` once (and its printed mixture, if ``mixture``). Raises StemDeskError when a
    file cannot be read or the files' sample rates disagree."""
    parts: dict[str, list[np.ndarray]] = {}
    rates: dict[str, int] = {}
    for source, paths in song.stems.items():
        for path in paths:
            audio, rates[path.name] = read(path)
            parts.setdefault(source, []).append(_stereo(audio))
    if not parts:
        raise StemDeskError(f"{song.name}: no stems found")
    printed = None
    if mixture and song.mixture is not None:
        printed, rates[song.mixture.name] = read(song.mixture)
        printed = _stereo(printed)
    if len(set(rates.values())) > 1:
        raise StemDeskError(f"{song.name}: the stems' sample rates disagree: {rates}. Resample them to one rate.")
    length = min(a.shape[-1] for arrays in parts.values() for a in arrays)
    stems = {s: sum(a[:, :length] for a in arrays) for s, arrays in parts.items()}
    return SongAudio(song.name, stems, printed, next(iter(rates.values())))


def song_folder(folder: Path, sources: Sequence[str] = SOURCES) -> SongFiles:
    """A MUSDB-style folder ``<song>/<source>.<ext>`` with every one of ``sources``; other files are ignored."""
    stems = {}
    for source in sources:
        path = next(
            (
                folder / f"{source}{suffix}"
                for suffix in AUDIO_SUFFIXES_READ
                if (folder / f"{source}{suffix}").is_file()
            ),
            None,
        )
        if path is None:
            raise FileNotFoundError(f'{folder} has no stem for "{source}"')
        stems[source] = [path]
    return SongFiles(folder.name, stems)


def load_songs(folders: Sequence[Path], sources: Sequence[str] = SOURCES) -> list[Song]:
    """MUSDB-style song folders (see `song_folder`) as training songs. Every stem counts as a target, silent or
    not (an excerpt without vocals teaches silence), except where meta.json's ``has_separate_bass: false`` says the
    bass line is inside "other": then neither bass nor other is a target alone."""
    songs = []
    for folder in folders:
        usable = [True] * len(sources)
        meta = folder / "meta.json"
        if meta.is_file() and json.loads(meta.read_text()).get("has_separate_bass") is False:
            for name in ("bass", "other"):
                if name in sources:
                    usable[list(sources).index(name)] = False
        songs.append(read_song(song_folder(folder, sources), mixture=False).to_song(usable, sources))
    return songs


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES_READ)


def read_mapping(path: Path | None) -> dict[str, list[str]]:
    if path is None:
        return {}
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise StemDeskError(
            f'Cannot read the mapping "{path}": {error}. It must be JSON like '
            '{"vocals": ["Lead Vox*"], "drums": ["Kick*", "Snare*"]}.'
        ) from None
    if not isinstance(mapping, dict) or not all(isinstance(v, list) for v in mapping.values()):
        raise StemDeskError(f'The mapping "{path}" must map each source to a list of file-name patterns.')
    unknown = sorted(set(mapping) - set(SOURCES) - {"mixture"})
    if unknown:
        raise StemDeskError(
            f'The mapping "{path}" names unknown sources {unknown}; use {", ".join(SOURCES)} or mixture.'
        )
    return {k: [str(p) for p in v] for k, v in mapping.items()}


def _classify(name: str, mapping: Mapping[str, list[str]]) -> str | None:
    stem = Path(name).stem
    for source, patterns in mapping.items():
        if any(fnmatch.fnmatch(stem.lower(), p.lower()) or fnmatch.fnmatch(name.lower(), p.lower()) for p in patterns):
            return source
    return None


def discover(root: Path, mapping: Mapping[str, list[str]] | None = None) -> list[SongFiles]:
    """Find the songs under ``root`` (a folder of song folders, or a CSV list)."""
    root = Path(root)
    if root.is_file() and root.suffix.lower() == ".csv":
        return _from_csv(root)
    if not root.is_dir():
        raise StemDeskError(f'"{root}" is neither a folder of songs nor a CSV list.')
    songs = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = _audio_files(folder)
        if not files:
            continue
        song = SongFiles(folder.name, {s: [] for s in SOURCES})
        for path in files:
            stem = path.stem.lower()
            source = _classify(path.name, mapping) if mapping else None
            if source is None and stem in MUSDB_NAMES:
                source = stem
            if source == "mixture":
                song.mixture = path
                continue
            if source is None:
                source = "other"
                song.unmapped.append(path.name)
            song.stems[source].append(path)
        songs.append(song)
    return songs


def _from_csv(path: Path) -> list[SongFiles]:
    songs: dict[str, SongFiles] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"song", "source", "path"} <= set(reader.fieldnames):
            raise StemDeskError(f'"{path}" needs the columns song,source,path.')
        for row in reader:
            song = songs.setdefault(row["song"], SongFiles(row["song"], {s: [] for s in SOURCES}))
            file = (path.parent / row["path"]).resolve()
            if row["source"] == "mixture":
                song.mixture = file
            elif row["source"] in SOURCES:
                song.stems[row["source"]].append(file)
            else:
                raise StemDeskError(f'"{path}": unknown source {row["source"]!r} for {row["path"]}.')
    return list(songs.values())


@dataclass
class SongReport:
    name: str
    ok: bool = True
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)


def _db(value: float) -> float:
    return round(10 * math.log10(max(value, 1e-20)), 1)


def _lag(reference: np.ndarray, signal: np.ndarray, rate: int, max_seconds: float = 0.5) -> int:
    """Lag (samples) of ``signal`` against ``reference`` at the peak of their phase-transform cross-correlation
    (GCC-PHAT) on mono sums. Whitening keeps the peak one sample wide even for a bass line, whose plain
    cross-correlation is a broad hump that the drums can push a few samples off."""
    a, b = reference.mean(0), signal.mean(0)
    n = min(len(a), len(b), 30 * rate)
    a, b = a[:n], b[:n]
    size = 1 << int(math.ceil(math.log2(2 * n)))
    cross = np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size))
    corr = np.fft.irfft(cross / np.maximum(np.abs(cross), 1e-12 * np.abs(cross).max()), size)
    limit = int(max_seconds * rate)
    window = np.concatenate([corr[-limit:], corr[: limit + 1]])
    return int(np.argmax(np.abs(window))) - limit


def _fingerprint(mix: np.ndarray, rate: int) -> np.ndarray:
    """A coarse loudness envelope (10 frames per second) for finding duplicate songs."""
    mono = mix.mean(0)
    hop = max(1, rate // 10)
    frames = len(mono) // hop
    env = np.sqrt(np.square(mono[: frames * hop]).reshape(frames, hop).mean(1) + 1e-12)
    return np.log(env)


def check_song(song: SongFiles) -> tuple[SongReport, SongAudio | None, dict[str, float]]:
    """What is wrong with one song, its audio (None when it could not be read whole; each file is read once) and
    each stem's RMS."""
    report = SongReport(song.name)
    present = {s: paths for s, paths in song.stems.items() if paths}
    if not present:
        report.errors.append("no stems found")
        report.ok = False
        return report, None, {}
    if song.unmapped:
        report.warnings.append(f"unmapped stems sent to other: {', '.join(song.unmapped)}")
    rates, lengths = {}, {}
    # Headers first: disagreeing rates or lengths are reported without decoding anything.
    try:
        for paths in present.values():
            for path in paths:
                info = probe(path)
                rates[path.name], lengths[path.name] = info.sample_rate, info.frames
        if song.mixture is not None:
            info = probe(song.mixture)
            rates[song.mixture.name], lengths[song.mixture.name] = info.sample_rate, info.frames
    except StemDeskError as error:
        report.errors.append(str(error))
        report.ok = False
        return report, None, {}
    if len(set(rates.values())) > 1:
        report.errors.append(f"sample rates disagree: {rates}")
    if len(set(lengths.values())) > 1:
        shortest, longest = min(lengths.values()), max(lengths.values())
        rate = max(rates.values())
        message = f"lengths disagree by {(longest - shortest) / rate:.3f} s: {lengths}"
        (report.errors if longest - shortest > rate // 100 else report.warnings).append(message)
    if report.errors:
        report.ok = False
        return report, None, {}
    try:
        audio = read_song(song)
    except StemDeskError as error:
        report.errors.append(str(error))
        report.ok = False
        return report, None, {}
    rate = audio.sample_rate
    summed = sum(audio.stems.values())
    rms = {source: float(np.sqrt(np.mean(np.square(stem)))) for source, stem in audio.stems.items()}
    for source, stem in audio.stems.items():
        if rms[source] < SILENT_RMS:
            report.warnings.append(f"{source} is near-silent ({20 * math.log10(max(rms[source], 1e-10)):.0f} dBFS)")
        clipped = int(np.sum(np.abs(stem) >= 0.999))
        if clipped > rate // 100:
            report.warnings.append(f"{source} clips on {clipped} samples")
    if audio.mixture is not None:
        n = min(audio.length, audio.mixture.shape[-1])
        mixture, stems_sum = audio.mixture[:, :n], summed[:, :n]
        for source, stem in audio.stems.items():
            if rms[source] < SILENT_RMS:  # a silent stem has no lag to measure
                continue
            # against what the mixture leaves for this stem (the mixture minus the others): that is the stem
            # itself when all is well, so the peak is sharp at 0 however much the stems resemble each other
            lag = _lag(mixture - stems_sum + stem[:, :n], stem[:, :n], rate)
            if abs(lag) > 1:
                report.errors.append(f"{source} is out of time with the mixture by {lag / rate * 1000:.1f} ms")
        residual = float(np.mean(np.square(mixture - stems_sum)))
        ratio = _db(residual / max(float(np.mean(np.square(mixture))), 1e-20))
        report.facts["mixture_minus_stems_db"] = ratio
        if ratio > -30:
            report.errors.append(
                f"the printed mixture is not the sum of the stems (difference {ratio} dB relative "
                "to the mixture): master-bus processing such as a limiter? Remove the mixture file "
                "to train on the sum of the stems."
            )
        elif ratio > -60:
            report.warnings.append(f"the printed mixture differs from the sum of the stems by {ratio} dB")
        audio.mixture = None  # checked; training sums the stems
    clipped = int(np.sum(np.abs(summed) >= 1.0))
    if clipped > rate // 100:
        report.warnings.append(f"the sum of the stems clips on {clipped} samples")
    report.facts.update(
        {
            "sample_rate": rate,
            "seconds": round(min(lengths.values()) / rate, 2),
            "stems": {s: [p.name for p in paths] for s, paths in present.items()},
        }
    )
    report.ok = not report.errors
    return report, audio, rms


def load_checked(songs: Sequence[SongFiles], keep: bool = True) -> tuple[dict, dict[str, Song]]:
    """Check every song (see `check_dataset`, whose report this returns) and, with ``keep``, hold each usable one
    in memory as a training `Song`, so each file is decoded once. A source is a target where it has files and is
    not near-silent (a bass line recorded inside "other" leaves the bass stem silent)."""
    reports, prints, loaded = [], {}, {}
    for song in songs:
        report, audio, rms = check_song(song)
        if audio is not None:
            prints[song.name] = _fingerprint(sum(audio.stems.values()), audio.sample_rate)
            if keep and report.ok:
                loaded[song.name] = audio.to_song([rms.get(s, 0.0) >= SILENT_RMS for s in SOURCES])
        reports.append(report)
    names = list(prints)
    for i, a in enumerate(names):
        for b in names[:i]:
            x, y = prints[a], prints[b]
            n = min(len(x), len(y))
            if n < 20:
                continue
            if abs(len(x) - len(y)) <= 2 and np.corrcoef(x[:n], y[:n])[0, 1] > 0.995:
                report = next(r for r in reports if r.name == a)
                report.errors.append(f"duplicate of {b}")
                report.ok = False
                loaded.pop(a, None)
    result = {
        "ok": [r.name for r in reports if r.ok],
        "excluded": {r.name: r.errors for r in reports if not r.ok},
        "songs": [asdict(r) for r in reports],
    }
    return result, loaded


def song_meta(song: SongFiles) -> dict:
    """The song folder's meta.json (source, licence, notes), or {} when it has none or it cannot be read."""
    paths = [path for paths in song.stems.values() for path in paths]
    if not paths:
        return {}
    meta = paths[0].parent / "meta.json"
    try:
        found = json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else {}
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


# Data whose licence allows research and education only; weights trained on it must say so.
RESEARCH_ONLY_SOURCES = ("musdb",)
RESEARCH_ONLY_LICENCES = ("restricted", "nc")


def data_terms(songs: Sequence[SongFiles]) -> dict:
    """What the songs' meta.json files say about where they come from and their licences:
    {"sources": {source: {licence: songs}}, "unknown": songs without a stated licence, "research_only": the reason
    or None}. MUSDB18 material, and anything licensed "Restricted" or non-commercial (NC), makes the weights
    trained on it research-only."""
    found: dict[str, dict[str, int]] = {}
    unknown = 0
    reasons = []
    for song in songs:
        meta = song_meta(song)
        source = str(meta.get("source") or "unstated source")
        licence = str(meta.get("license") or meta.get("licence") or "")
        if not licence:
            unknown += 1
            licence = "unstated"
        found.setdefault(source, {}).setdefault(licence, 0)
        found[source][licence] += 1
        words = licence.lower().replace("-", " ").split()
        if any(name in source.lower() for name in RESEARCH_ONLY_SOURCES):
            reasons.append(source)
        elif any(term in words for term in RESEARCH_ONLY_LICENCES):
            reasons.append(f"{source} ({licence})")
    research = sorted(set(reasons))
    return {
        "sources": found,
        "unknown": unknown,
        "research_only": (
            f"trained on {', '.join(research)}, licensed for research and education only: these weights are for "
            "research and education use only"
            if research
            else None
        ),
    }


def check_dataset(songs: Sequence[SongFiles]) -> dict:
    """Check every song; returns {"songs": [reports], "excluded": {name: reasons}, "ok": [names]}."""
    return load_checked(songs, keep=False)[0]


def describe(result: dict) -> str:
    lines = [f"{len(result['ok'])} of {len(result['songs'])} songs usable for training."]
    for song in result["songs"]:
        mark = "ok " if song["ok"] else "EXCLUDED"
        lines.append(f"{mark} {song['name']}")
        lines += [f"    error: {e}" for e in song["errors"]]
        lines += [f"    warning: {w}" for w in song["warnings"]]
    return "\n".join(lines)
