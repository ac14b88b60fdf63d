"""Stems a user names: a studio's session tracks turned into training songs with the user's own stems.

A stem set is a JSON file that names the stems and says which session tracks make each of them:

    {
      "split": "drums",
      "stems": {"kick": ["KICK", "*KICK"], "snare": ["SNARE*", "CLAP"], "cymbals": ["*HH*", "HATS", "CRASH*"]},
      "groups": {"K & SN": ["kick", "snare"], "*BEAT": ["kick", "snare", "cymbals"]},
      "unsplit": ["*DRUMS*"],
      "outside": ["*"]
    }

- ``split``: the parent the stems split (a stem such as "vocals" or "drums", or "mix" for a whole song). The
  children sum exactly to the parent; the parent is the sum of the children's tracks and the unsplit tracks.
- ``stems``: each child and the file-name patterns of its tracks (shell patterns, case-insensitive, matched against
  the name with and without its extension). Any names, at least two children.
- ``groups``: tracks whose contents are known as a group (a "K & SN" loop is kick and snare, nothing else): each
  pattern names the children its tracks hold, at least two. Where a group track sounds, the sum of those
  children's estimates is taught the group track plus their own tracks, and the other children their own tracks
  (`stemdesk.training.train.merge_blocks`). Patterns naming the same children make one group.
- ``unsplit``: tracks that are part of the parent but must not teach the split (a fill whose drums nobody named).
  The seconds where one sounds are left out: the training songs are silent there, so no child is taught the loop
  and no validation score counts it.
- ``outside``: tracks that are not part of the parent (for a drum kit, the synths and the vocals). ``["*"]`` puts
  every track the other lists do not name outside.

A track is matched against ``unsplit`` first, then ``groups``, then each child in order, then ``outside``; the first
match wins. So ``unsplit`` can take one loop out of a broad group pattern (a bounce with effects), and a group
pattern wins over a loose child pattern ("KICK*" against "KICK HATS"). A track that two group patterns match is
refused. Tracks no pattern matches are reported and left out, as are children silent in a song.

A group track is refused (its song excluded, with the track's name) when it never sounds, or when its loudest
second is more than `GROUP_HEADROOM_DB` louder than its children could make it: the sum of each child's loudest
second in the same song's own tracks (a child without a track there counts as loud as the loudest that has one).
A bounce with effects (a reverb, a distortion, a riser) is louder than its drums; that sound belongs to no child.
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

from .data import Song, to_int16
from .dataset import SILENT_RMS, SongReport, _stereo

# Parents a split model can take: the four stems and the whole mix.
PARENTS = ("mix", "vocals", "drums", "bass", "other")
# An unsplit track sounds in a 50 ms frame whose RMS is above this (−60 dBFS); the frames around it are left out
# too (GUARD_SECONDS each side: a loop's reverb tail and the frame's own edges), with FADE_SECONDS ramps.
UNSPLIT_RMS = 1e-3
GATE_FRAME_SECONDS = 0.05
GUARD_SECONDS = 0.1
FADE_SECONDS = 0.01
# A group track may be this much louder (dB) than the sum of its children's loudest seconds in the same song: a
# loop is often mixed hotter than the single drums, but not twice as hot (see the module's docstring).
GROUP_HEADROOM_DB = 6.0
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
    groups: Mapping[str, Sequence[str]] = field(default_factory=dict)  # track pattern → the children it holds

    @property
    def children(self) -> tuple[str, ...]:
        return tuple(self.stems)

    @property
    def group_kinds(self) -> tuple[tuple[str, ...], ...]:
        """The distinct sets of children the groups hold, each in the stem set's order of children, in the order
        the groups first name them: the group rows of a training song (`Song.groups` is keyed by their index)."""
        kinds: list[tuple[str, ...]] = []
        for children in self.groups.values():
            kind = tuple(c for c in self.children if c in children)
            if kind not in kinds:
                kinds.append(kind)
        return tuple(kinds)

    def group_of(self, pattern: str) -> int:
        """The index in `group_kinds` of the group pattern ``pattern``."""
        return self.group_kinds.index(tuple(c for c in self.children if c in self.groups[pattern]))

    def classify(self, file_name: str) -> tuple[str, str | None]:
        """("unsplit" | "group" | "child" | "outside" | "unmatched", the child's name for "child", the group's
        pattern for "group"). Raises StemDeskError when two group patterns match the track."""
        if _matches(file_name, self.unsplit):
            return "unsplit", None
        matched = [pattern for pattern in self.groups if _matches(file_name, [pattern])]
        if len(matched) > 1:
            holds = "; ".join(f'"{p}": {" + ".join(self.groups[p])}' for p in matched)
            raise StemDeskError(
                f'The track "{file_name}" matches {len(matched)} group patterns of {self.source or "the stem set"} '
                f"({holds}): a group track must match one. Make the patterns narrower, or name the track in "
                '"unsplit" to leave it out.'
            )
        if matched:
            return "group", matched[0]
        for child, patterns in self.stems.items():
            if _matches(file_name, patterns):
                return "child", child
        if _matches(file_name, self.outside):
            return "outside", None
        return "unmatched", None

    def as_dict(self) -> dict[str, Any]:
        """The stem set as its JSON (what a model card keeps: how its children were defined)."""
        made: dict[str, Any] = {"split": self.split, "stems": {k: list(v) for k, v in self.stems.items()}}
        if self.groups:
            made["groups"] = {k: list(v) for k, v in self.groups.items()}
        made.update({"unsplit": list(self.unsplit), "outside": list(self.outside)})
        return made


def group_name(kind: Sequence[str]) -> str:
    """A group's name in reports and scores: its children joined by "+" ("kick+snare")."""
    return "+".join(kind)


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
    unknown = sorted(set(data) - {"split", "stems", "groups", "unsplit", "outside", "name", "about"})
    if unknown:
        raise StemDeskError(
            f"{source} has keys StemDesk does not know: {unknown}. Use split, stems, groups, unsplit, outside."
        )
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
    groups = data.get("groups", {})
    _check_groups(groups, stems, source)
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
        {str(k): [str(c) for c in v] for k, v in groups.items()},
    )


def _check_groups(groups: Any, stems: Mapping[str, Any], source: str) -> None:
    """Refuse a "groups" value that is not {track pattern: [two or more of the stem set's children]}."""
    example = '"groups": {"K & SN": ["kick", "snare"]}'
    if not isinstance(groups, dict):
        raise StemDeskError(f'{source}: "groups" must map track patterns to the stems they hold, like {{{example}}}.')
    for pattern, children in groups.items():
        if not pattern or not isinstance(children, list) or not all(isinstance(c, str) for c in children):
            raise StemDeskError(
                f'{source}: the group "{pattern}" must list the stems its tracks hold, like {{{example}}}.'
            )
        unknown = [c for c in children if c not in stems]
        if unknown:
            raise StemDeskError(
                f'{source}: the group "{pattern}" names {", ".join(repr(c) for c in unknown)}, which '
                f"{'is not a stem' if len(unknown) == 1 else 'are not stems'} of this set; its stems are "
                f"{', '.join(stems)}."
            )
        if len(set(children)) != len(children):
            raise StemDeskError(f'{source}: the group "{pattern}" names a stem twice: {children}.')
        if len(children) < 2:
            raise StemDeskError(
                f'{source}: the group "{pattern}" holds one stem ({", ".join(children) or "none"}): that is a '
                f'track of that stem, not a group. Put "{pattern}" among the patterns of '
                f'"{children[0] if children else "its stem"}" in "stems".'
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
    groups: dict[str, list[Path]] = field(default_factory=dict)  # group pattern → its tracks in this song

    @property
    def tracks(self) -> list[Path]:
        """The tracks inside the parent, each once."""
        grouped = [p for paths in self.groups.values() for p in paths]
        return [p for paths in self.children.values() for p in paths] + grouped + self.unsplit


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
            elif kind == "group" and child is not None:
                song.groups.setdefault(child, []).append(path)
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
    children (in the stem set's order) and its group tracks (summed per `StemSet.group_kinds`), silenced where an
    unsplit track sounds. Each file is read once."""
    report = SongReport(song.name)
    report.facts["tracks"] = {c: [p.stem for p in paths] for c, paths in song.children.items()}
    if stemset.groups:
        report.facts["groups"] = {pattern: [p.stem for p in paths] for pattern, paths in song.groups.items()}
    report.facts["unsplit"] = [p.stem for p in song.unsplit]
    report.facts["outside"] = [p.stem for p in song.outside]
    report.facts["unmatched"] = [p.stem for p in song.unmatched]
    if song.unmatched:
        report.warnings.append(
            f"no pattern matches {', '.join(p.name for p in song.unmatched)}: left out (name them in the stem set, "
            'under a stem, "groups", "unsplit" or "outside")'
        )
    if not any(song.children.values()) and not any(song.groups.values()):
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
        grouped = {pattern: [summed([path], n) for path in paths] for pattern, paths in song.groups.items()}
        gate = session_gate(song, n, rate)
    except StemDeskError as error:
        report.errors.append(str(error))
        report.ok = False
        return report, None
    rows = _group_rows(song, stemset, grouped, _loudest_second(children, rate), rate, report)
    left_out = float(np.sum(gate < 1.0)) / rate
    heard_before = _sounding_seconds(children, rate)
    children *= gate
    for row in rows.values():
        row *= gate
    kept = float(np.sum(gate > 0.0)) / rate
    rms = np.sqrt(np.square(children).mean(axis=(1, 2)))
    heard = _sounding_seconds(children, rate)  # (children, seconds)
    kinds = stemset.group_kinds
    group_heard = np.zeros((len(kinds), heard.shape[1]), bool)
    for kind, row in rows.items():
        group_heard[kind] = _sounding_seconds(row[None], rate)[0]
    in_groups = np.zeros_like(heard)
    for kind, members in enumerate(kinds):
        for child in members:
            in_groups[stemset.children.index(child)] |= group_heard[kind]
    exactly = heard & ~in_groups
    # silent: not one second of its own tracks sounds outside its groups (a snare that plays for five seconds is no
    # silence), so validation has no exact seconds to score it on
    silent = [c for c, seconds in zip(stemset.children, exactly) if not seconds.any()]
    grouped_only = [c for c, seconds in zip(stemset.children, in_groups) if c in silent and seconds.any()]
    if set(silent) - set(grouped_only):
        names = ", ".join(c for c in silent if c not in grouped_only)
        report.warnings.append(f"silent in this song: {names} (a target of silence there)")
    if grouped_only:
        report.warnings.append(
            f"heard only in groups in this song: {', '.join(grouped_only)} (taught there as part of a group's sum; "
            "not scored alone)"
        )
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
    if stemset.groups:
        report.facts["taught_seconds"] = {
            c: {
                "exactly": int(exactly[i].sum()),
                "in_groups": int(in_groups[i].sum()),
                "left_out": int((heard_before[i] & ~heard[i]).sum()),
            }
            for i, c in enumerate(stemset.children)
        }
    report.ok = not report.errors
    if not report.ok:
        return report, None
    # every child is a target: a child silent in a song is silent there in truth (all its tracks are named);
    # the sampler draws its excerpts around the seconds where the children (and the groups) sound
    made = Song.from_float(song.name, children, [True] * len(stemset.children), rate)
    made.groups = {kind: to_int16(row) for kind, row in rows.items()}
    made.active = np.concatenate([heard, group_heard]) if kinds else heard
    return report, made


def _group_rows(
    song: SessionSong,
    stemset: StemSet,
    grouped: Mapping[str, list[np.ndarray]],
    levels: np.ndarray,
    rate: int,
    report: SongReport,
) -> dict[int, np.ndarray]:
    """The song's group tracks summed per group kind ({kind: (2, n)}), each track checked first: an error in
    ``report`` for one that never sounds or is louder than its children could make it (the module's docstring
    says the rule; ``levels``: each child's loudest second in this song's own tracks). Each track's level against
    that ceiling goes in the report's facts (``group_level_db``: dB, at most `GROUP_HEADROOM_DB`)."""
    rows: dict[int, np.ndarray] = {}
    for pattern, tracks in grouped.items():
        kind = stemset.group_of(pattern)
        members = stemset.group_kinds[kind]
        holds = " + ".join(members)
        for path, audio in zip(song.groups[pattern], tracks):
            loudest = float(_loudest_second(audio[None], rate)[0])
            if loudest < SILENT_RMS:
                report.errors.append(
                    f'the group track "{path.stem}" ({holds}) never sounds: it would teach nothing. Delete it, or '
                    'name it in "outside"'
                )
                continue
            own = {c: float(levels[stemset.children.index(c)]) for c in members}
            heard = [v for v in own.values() if v >= SILENT_RMS]
            if not heard:
                report.warnings.append(
                    f'the level of the group track "{path.stem}" is not checked: none of {holds} has a track of its '
                    "own in this song"
                )
            else:
                ceiling = sum(heard) + (len(members) - len(heard)) * max(heard)
                over = 20 * math.log10(loudest / ceiling)
                report.facts.setdefault("group_level_db", {})[path.stem] = round(over, 1)
                if over > GROUP_HEADROOM_DB:
                    each = ", ".join(
                        f"{c} {_dbfs(v)}" if v >= SILENT_RMS else f"{c} (no track)" for c, v in own.items()
                    )
                    report.errors.append(
                        f'the group track "{path.stem}" ({holds}) is louder than its stems could make it: its '
                        f"loudest second is {_dbfs(loudest)} dBFS, {over:.1f} dB above the sum of their loudest "
                        f"seconds in this song's own tracks ({each} dBFS; {GROUP_HEADROOM_DB:g} dB is allowed). A "
                        'bounce with effects holds sound none of them is taught; name it in "unsplit" to leave '
                        "its seconds out, or check which stems it holds"
                    )
                    continue
            rows[kind] = rows[kind] + audio if kind in rows else audio.copy()
    return rows


def _dbfs(rms: float) -> str:
    return f"{20 * math.log10(max(rms, 1e-10)):.1f}"


def load_sessions(songs: Sequence[SessionSong], stemset: StemSet, keep: bool = True) -> tuple[dict, dict[str, Song]]:
    """Check every song (the report `check_dataset` gives, plus the stem set) and keep the usable ones in memory."""
    reports, loaded = [], {}
    for song in songs:
        report, made = check_session(song, stemset)
        reports.append(report)
        if keep and made is not None:
            loaded[song.name] = made

    def taught(report: SongReport, child: str) -> bool:
        if not report.ok:
            return False
        if child not in report.facts.get("silent", [child]):
            return True
        return bool(report.facts.get("taught_seconds", {}).get(child, {}).get("in_groups"))

    missing = [c for c in stemset.children if not any(taught(r, c) for r in reports)]
    result = {
        "ok": [r.name for r in reports if r.ok],
        "excluded": {r.name: r.errors for r in reports if not r.ok},
        "songs": [asdict(r) for r in reports],
        "stemset": stemset.as_dict(),
        "never_sounding": missing,
    }
    if stemset.groups:
        result["taught_seconds"] = taught_seconds(result)
    return result, loaded


def taught_seconds(result: dict, songs: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
    """Per child, the seconds of the usable songs (of ``songs``, when given) that teach it exactly (its own tracks,
    no group of it sounding), in a group (a group track that holds it sounds), and left out (its own tracks sound
    where an unsplit track does): a report's ``taught_seconds`` summed over songs."""
    total: dict[str, dict[str, int]] = {}
    for song in result["songs"]:
        if not song["ok"] or (songs is not None and song["name"] not in songs):
            continue
        for child, seconds in song["facts"].get("taught_seconds", {}).items():
            row = total.setdefault(child, {"exactly": 0, "in_groups": 0, "left_out": 0})
            for key, value in seconds.items():
                row[key] += value
    return total


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
    if result.get("taught_seconds"):
        lines.append("Seconds taught, over the usable songs (exactly: its own tracks; in groups: a group track that")
        lines.append("holds it sounds; left out: its own tracks sound where an unsplit track does):")
        width = max(len(c) for c in result["taught_seconds"])
        lines.append(f"    {'stem':{width}}  exactly  in groups  left out")
        for child, s in result["taught_seconds"].items():
            lines.append(f"    {child:{width}}  {s['exactly']:7d}  {s['in_groups']:9d}  {s['left_out']:8d}")
    for song in result["songs"]:
        lines.append(f"{'ok ' if song['ok'] else 'EXCLUDED'} {song['name']}")
        facts = song["facts"]
        for child, tracks in facts.get("tracks", {}).items():
            lines.append(f"    {child}: {', '.join(tracks) if tracks else '(none)'}")
        levels = facts.get("group_level_db", {})
        for pattern, tracks in facts.get("groups", {}).items():
            holds = " + ".join(c for c in stems["stems"] if c in stems["groups"][pattern])
            named = [f"{t} ({levels[t]:+.1f} dB against its stems)" if t in levels else t for t in tracks]
            lines.append(f"    group {holds} ({pattern}): {', '.join(named)}")
        if facts.get("taught_seconds"):
            lines.append(
                "    seconds taught exactly / in groups / left out: "
                + "; ".join(
                    f"{child} {s['exactly']} / {s['in_groups']} / {s['left_out']}"
                    for child, s in facts["taught_seconds"].items()
                )
            )
        if facts.get("unsplit"):
            lines.append(f"    unsplit: {', '.join(facts['unsplit'])}")
        if facts.get("outside"):
            lines.append(f"    outside {stems['split']}: {', '.join(facts['outside'])}")
        lines += [f"    error: {e}" for e in song["errors"]]
        lines += [f"    warning: {w}" for w in song["warnings"]]
    return "\n".join(lines)
