"""Stems a user names: a studio's session tracks turned into training songs with the user's own stems.

A stem set is a JSON file that names the stems and says which session tracks make each of them:

    {
      "split": "drums",
      "stems": {"kick": ["KICK", "*KICK"], "snare": ["SNARE*", "CLAP"], "cymbals": ["*HH*", "HATS", "CRASH*"]},
      "unsplit": ["*BEAT*", "*DRUMS*", "K & SN"],
      "outside": ["*"]
    }

- ``split``: the parent the stems split (a stem such as "vocals" or "drums", or "mix" for a whole song). The
  children sum exactly to the parent; the parent is the sum of the children's tracks and the unsplit tracks.
- ``stems``: each child and the file-name patterns of its tracks (shell patterns, case-insensitive, matched against
  the name with and without its extension). Any names, at least two children.
- ``unsplit``: tracks that are part of the parent but must not teach the split (a drum loop holds kick, snare and
  hats at once). The seconds where one sounds are left out: the training songs are silent there, so no child is
  taught the loop and no validation score counts it.
- ``outside``: tracks that are not part of the parent (for a drum kit, the synths and the vocals). ``["*"]`` puts
  every track the other lists do not name outside.

A track is matched against ``unsplit`` first, then each child in order, then ``outside``; the first match wins.
Tracks no pattern matches are reported and left out, as are children silent in a song.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stemdesk.core.errors import StemDeskError
from stemdesk.io.audio import AUDIO_SUFFIXES_READ, probe, read
from stemdesk.io.names import RESERVED_NAMES

from .data import Song
from .dataset import SILENT_RMS, SongReport, _stereo

# Parents a split model can take: the four stems and the whole mix.
PARENTS = ("mix", "vocals", "drums", "bass", "other")
# An unsplit track sounds in a 50 ms frame whose RMS is above this (−60 dBFS); the frames around it are left out
# too (GUARD_SECONDS each side: a loop's reverb tail and the frame's own edges), with FADE_SECONDS ramps.
UNSPLIT_RMS = 1e-3
GATE_FRAME_SECONDS = 0.05
GUARD_SECONDS = 0.1
FADE_SECONDS = 0.01
# A child name must make a file name and a lane name.
NAME_CHARACTERS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True)
class StemSet:
    """A user's stems: the parent they split and each child's track patterns (see the module's docstring)."""

    split: str
    stems: Mapping[str, Sequence[str]]
    unsplit: Sequence[str] = ()
    outside: Sequence[str] = ()
    source: str = ""  # the file it was read from, for messages

    @property
    def children(self) -> tuple[str, ...]:
        return tuple(self.stems)

    def classify(self, file_name: str) -> tuple[str, str | None]:
        """("unsplit" | "child" | "outside" | "unmatched", the child's name for "child")."""
        if _matches(file_name, self.unsplit):
            return "unsplit", None
        for child, patterns in self.stems.items():
            if _matches(file_name, patterns):
                return "child", child
        if _matches(file_name, self.outside):
            return "outside", None
        return "unmatched", None

    def as_dict(self) -> dict[str, Any]:
        """The stem set as its JSON (what a model card keeps: how its children were defined)."""
        return {
            "split": self.split,
            "stems": {k: list(v) for k, v in self.stems.items()},
            "unsplit": list(self.unsplit),
            "outside": list(self.outside),
        }


def _matches(file_name: str, patterns: Sequence[str]) -> bool:
    name = file_name.lower()
    stem = Path(file_name).stem.lower()
    return any(fnmatch.fnmatchcase(stem, p.lower()) or fnmatch.fnmatchcase(name, p.lower()) for p in patterns)


def is_stemset(data: Any) -> bool:
    """Whether a mapping file's JSON is a stem set (it has "stems") rather than the four-source mapping."""
    return isinstance(data, dict) and "stems" in data


def is_stemset_file(path: Path) -> bool:
    """Whether the mapping file at ``path`` is a stem set; False when it cannot be read as JSON (the four-source
    mapping's reader then says what is wrong with it)."""
    try:
        return is_stemset(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return False


def parse_stemset(data: Any, path: str = "", split: str | None = None) -> StemSet:
    """A stem set from its JSON value (read from ``path``, for messages); ``split`` (the command line's) must agree
    with the file's when both say. Raises StemDeskError saying what is wrong and what it should look like."""
    source = f'The stem set "{path}"' if path else "The stem set"
    example = '{"split": "vocals", "stems": {"lead": ["VOX LEAD*"], "backing": ["BGVOX*"]}, "outside": ["*"]}'
    if not is_stemset(data):
        raise StemDeskError(f'{source} must be a JSON object with "stems", like {example}.')
    unknown = sorted(set(data) - {"split", "stems", "unsplit", "outside", "name", "about"})
    if unknown:
        raise StemDeskError(f"{source} has keys StemDesk does not know: {unknown}. Use split, stems, unsplit, outside.")
    stems = data["stems"]
    if not isinstance(stems, dict) or len(stems) < 2:
        raise StemDeskError(f'{source}: "stems" must name at least two stems, each with its track patterns: {example}.')
    for child, patterns in stems.items():
        if not child or set(child) - NAME_CHARACTERS or child in ("mixture", "mix", *RESERVED_NAMES):
            raise StemDeskError(
                f"{source}: the stem name {child!r} cannot name a file, a lane and a mixer strip: use lower-case "
                f'letters, digits, "-" and "_" (not mix, mixture, {", ".join(sorted(RESERVED_NAMES))}).'
            )
        if not _patterns(patterns):
            raise StemDeskError(f'{source}: the stem "{child}" needs a list of file-name patterns, not {patterns!r}.')
    for key in ("unsplit", "outside"):
        if key in data and not _patterns(data[key], empty=True):
            raise StemDeskError(f'{source}: "{key}" must be a list of file-name patterns, not {data[key]!r}.')
    written = data.get("split")
    if written is not None and split is not None and written != split:
        raise StemDeskError(f'{source} splits "{written}", but --split asks for "{split}"; make them agree.')
    parent = split or written or "mix"
    if parent not in PARENTS:
        raise StemDeskError(f'A stem set splits one of {", ".join(PARENTS)}, not "{parent}".')
    if parent in stems:
        raise StemDeskError(f'{source}: a child of "{parent}" cannot be called "{parent}" too.')
    return StemSet(
        parent,
        {str(k): [str(p) for p in v] for k, v in stems.items()},
        [str(p) for p in data.get("unsplit", [])],
        [str(p) for p in data.get("outside", [])],
        path,
    )


def _patterns(value: Any, empty: bool = False) -> bool:
    return isinstance(value, list) and (empty or bool(value)) and all(isinstance(p, str) and p for p in value)


def read_stemset(path: Path, split: str | None = None) -> StemSet:
    """The stem set in a JSON file (see `parse_stemset`)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise StemDeskError(f'Cannot read the stem set "{path}": {error}.') from None
    return parse_stemset(data, str(path), split)


@dataclass
class SessionSong:
    """One song's session tracks sorted by a stem set."""

    name: str
    children: dict[str, list[Path]]
    unsplit: list[Path] = field(default_factory=list)
    outside: list[Path] = field(default_factory=list)
    unmatched: list[Path] = field(default_factory=list)

    @property
    def tracks(self) -> list[Path]:
        """The tracks inside the parent, each once."""
        return [p for paths in self.children.values() for p in paths] + self.unsplit


def discover_sessions(root: Path, stemset: StemSet) -> list[SessionSong]:
    """Every song folder under ``root`` (one audio file per track), its tracks sorted by ``stemset``. Raises
    StemDeskError when ``root`` is not a folder of song folders."""
    root = Path(root)
    if not root.is_dir():
        raise StemDeskError(f'"{root}" is not a folder of song folders (one folder per song, one file per track).')
    songs = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES_READ)
        if not files:
            continue
        song = SessionSong(folder.name, {child: [] for child in stemset.children})
        for path in files:
            kind, child = stemset.classify(path.name)
            if kind == "child" and child is not None:
                song.children[child].append(path)
            else:
                {"unsplit": song.unsplit, "outside": song.outside, "unmatched": song.unmatched}[kind].append(path)
        songs.append(song)
    return songs


def unsplit_gate(unsplit: np.ndarray, rate: int) -> np.ndarray:
    """unsplit tracks' sum (channels, n) → a weight per sample (n,): 0 where an unsplit track sounds (and
    `GUARD_SECONDS` around it), 1 elsewhere, with `FADE_SECONDS` ramps between."""
    n = unsplit.shape[-1]
    hop = max(1, int(GATE_FRAME_SECONDS * rate))
    frames = -(-n // hop)
    padded = np.zeros((unsplit.shape[0], frames * hop), np.float32)
    padded[:, :n] = unsplit
    rms = np.sqrt(np.square(padded).reshape(unsplit.shape[0], frames, hop).mean(axis=(0, 2)))
    sounding = rms > UNSPLIT_RMS
    guard = int(math.ceil(GUARD_SECONDS / GATE_FRAME_SECONDS))
    if guard and sounding.any():
        sounding = np.convolve(sounding.astype(np.int32), np.ones(2 * guard + 1, np.int32), mode="same") > 0
    keep = np.repeat(~sounding, hop)[:n]
    # ramps inside the kept samples: the weight is the distance to the nearest left-out sample over the fade
    index = np.arange(n)
    far = 2 * n + 1
    last = np.maximum.accumulate(np.where(keep, -far, index))
    following = np.minimum.accumulate(np.where(keep, far, index)[::-1])[::-1]
    distance = np.minimum(index - last, following - index)
    fade = max(1, int(FADE_SECONDS * rate))
    return np.clip(distance / fade, 0.0, 1.0).astype(np.float32)


def summed(paths: Sequence[Path], n: int) -> np.ndarray:
    """The first ``n`` samples of the tracks' sum, stereo (2, n) float32 (mono tracks in both channels)."""
    total = np.zeros((2, n), np.float32)
    for path in paths:
        audio = _stereo(read(path, frames=n)[0])
        total[:, : audio.shape[-1]] += audio[:, :n]
    return total


def session_gate(song: SessionSong, n: int, rate: int) -> np.ndarray:
    """The weight (n,) the song's children get: `unsplit_gate` of its unsplit tracks, ones without any."""
    return unsplit_gate(summed(song.unsplit, n), rate) if song.unsplit else np.ones(n, np.float32)


def _second_rms(stems: np.ndarray, rate: int) -> np.ndarray:
    """stems (sources, channels, n) → each source's RMS per second (sources, seconds; a last partial second
    counts)."""
    seconds = -(-stems.shape[-1] // rate)
    padded = np.zeros((*stems.shape[:2], seconds * rate), np.float32)
    padded[..., : stems.shape[-1]] = stems
    return np.sqrt(np.square(padded).reshape(stems.shape[0], stems.shape[1], seconds, rate).mean(axis=(1, 3)))


def _loudest_second(stems: np.ndarray, rate: int) -> np.ndarray:
    """stems (sources, channels, n) → each source's RMS over its loudest second (on one-second steps)."""
    return _second_rms(stems, rate).max(axis=1)


def _sounding_seconds(stems: np.ndarray, rate: int) -> np.ndarray:
    """(sources, seconds) bool: the seconds where a source is louder than `SILENT_RMS`."""
    return _second_rms(stems, rate) >= SILENT_RMS


def check_session(song: SessionSong, stemset: StemSet) -> tuple[SongReport, Song | None]:
    """What the stem set makes of one song (errors exclude it, warnings keep it) and its training `Song`: the
    children (in the stem set's order) silenced where an unsplit track sounds. Each file is read once."""
    report = SongReport(song.name)
    report.facts["tracks"] = {c: [p.stem for p in paths] for c, paths in song.children.items()}
    report.facts["unsplit"] = [p.stem for p in song.unsplit]
    report.facts["outside"] = [p.stem for p in song.outside]
    report.facts["unmatched"] = [p.stem for p in song.unmatched]
    if song.unmatched:
        report.warnings.append(
            f"no pattern matches {', '.join(p.name for p in song.unmatched)}: left out (name them in the stem set, "
            'under a stem, "unsplit" or "outside")'
        )
    if not any(song.children.values()):
        report.errors.append(f"no track of {', '.join(stemset.children)} in this song")
        report.ok = False
        return report, None
    rates, lengths = {}, {}
    try:
        for path in song.tracks:
            info = probe(path)
            rates[path.name], lengths[path.name] = info.sample_rate, info.frames
    except StemDeskError as error:
        report.errors.append(str(error))
        report.ok = False
        return report, None
    if len(set(rates.values())) > 1:
        report.errors.append(f"sample rates disagree: {rates}")
    if max(lengths.values()) - min(lengths.values()) > max(rates.values()) // 100:
        report.errors.append(f"track lengths disagree: {lengths}; export every track from the session's start")
    if report.errors:
        report.ok = False
        return report, None
    rate = next(iter(rates.values()))
    n = min(lengths.values())
    try:
        children = np.stack([summed(song.children[c], n) for c in stemset.children])
        gate = session_gate(song, n, rate)
    except StemDeskError as error:
        report.errors.append(str(error))
        report.ok = False
        return report, None
    left_out = float(np.sum(gate < 1.0)) / rate
    children *= gate
    kept = float(np.sum(gate > 0.0)) / rate
    rms = np.sqrt(np.square(children).mean(axis=(1, 2)))
    # silent: not even its loudest second reaches SILENT_RMS (a snare that plays for five seconds is no silence)
    loudest = _loudest_second(children, rate)
    silent = [c for c, value in zip(stemset.children, loudest) if value < SILENT_RMS]
    if silent:
        report.warnings.append(f"silent in this song: {', '.join(silent)} (a target of silence there)")
    if song.unsplit:
        report.warnings.append(
            f"{left_out:.1f} s of {n / rate:.1f} s left out where unsplit tracks sound "
            f"({', '.join(p.stem for p in song.unsplit)})"
        )
    if kept < 2.0:
        report.errors.append(f"only {kept:.1f} s are left once the unsplit tracks' seconds are out")
    report.facts.update(
        {
            "sample_rate": rate,
            "seconds": round(n / rate, 2),
            "seconds_left_out": round(left_out, 2),
            "silent": silent,
            "rms_dbfs": {c: round(20 * math.log10(max(float(v), 1e-10)), 1) for c, v in zip(stemset.children, rms)},
        }
    )
    report.ok = not report.errors
    if not report.ok:
        return report, None
    # every child is a target: a child silent in a song is silent there in truth (all its tracks are named);
    # the sampler draws its excerpts around the seconds where the children sound
    made = Song.from_float(song.name, children, [True] * len(stemset.children), rate)
    made.active = _sounding_seconds(children, rate)
    return report, made


def load_sessions(songs: Sequence[SessionSong], stemset: StemSet, keep: bool = True) -> tuple[dict, dict[str, Song]]:
    """Check every song (the report `check_dataset` gives, plus the stem set) and keep the usable ones in memory."""
    reports, loaded = [], {}
    for song in songs:
        report, made = check_session(song, stemset)
        reports.append(report)
        if keep and made is not None:
            loaded[song.name] = made
    missing = [c for c in stemset.children if not any(r.ok and c not in r.facts.get("silent", [c]) for r in reports)]
    result = {
        "ok": [r.name for r in reports if r.ok],
        "excluded": {r.name: r.errors for r in reports if not r.ok},
        "songs": [asdict(r) for r in reports],
        "stemset": stemset.as_dict(),
        "never_sounding": missing,
    }
    return result, loaded


def describe_sessions(result: dict) -> str:
    """The report for people: per song, which tracks make each stem, what was left out and why."""
    stems = result["stemset"]
    lines = [
        f"Stem set: {stems['split']} → {', '.join(stems['stems'])}.",
        f"{len(result['ok'])} of {len(result['songs'])} songs usable for training.",
    ]
    if result["never_sounding"]:
        lines.append(
            f"warning: no usable song has {', '.join(result['never_sounding'])}: nothing teaches "
            f"{'it' if len(result['never_sounding']) == 1 else 'them'}, so a model leaves "
            f"{'it' if len(result['never_sounding']) == 1 else 'them'} near-silent"
        )
    for song in result["songs"]:
        lines.append(f"{'ok ' if song['ok'] else 'EXCLUDED'} {song['name']}")
        facts = song["facts"]
        for child, tracks in facts.get("tracks", {}).items():
            lines.append(f"    {child}: {', '.join(tracks) if tracks else '(none)'}")
        if facts.get("unsplit"):
            lines.append(f"    unsplit: {', '.join(facts['unsplit'])}")
        if facts.get("outside"):
            lines.append(f"    outside {stems['split']}: {', '.join(facts['outside'])}")
        lines += [f"    error: {e}" for e in song["errors"]]
        lines += [f"    warning: {w}" for w in song["warnings"]]
    return "\n".join(lines)
