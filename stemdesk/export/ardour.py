"""Ardour sessions: a session folder Ardour 7 opens (and its headless `ardour7-export` renders), with one track per
stem from sample 0 playing the stem's file where it is, the mix's levels, pans, mutes and solos on the tracks, the
null check's loudest residual windows as markers, and the song's tempo.

A split stem's children play on their own tracks into a bus named after the stem, which carries the stem's strip
(its group: `stemdesk.mixer.mix.Mix`) on to the master, and they form a route group of that name. The tracks use
Ardour's balance panner, whose law is linear (at position p > ½ the left channel has 2 − 2p), so a StemDesk pan
(the left channel at cos(pan·π/2) when turned right) is written as the position giving the same gain.

Ardour reads positions and lengths in samples (the format before 7.0, which it converts on loading), and an
audio source is one channel of a file: a stereo stem is two sources of the same file.
"""

from __future__ import annotations

import hashlib
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import StemDeskError
from ..io.atomic import atomic_folder, atomic_write_bytes
from ..io.audio import AudioInfo
from ..io.model_store import sha256_file
from ..io.registry import Written
from ..io.stems import CERTIFICATE, Stems, colour_of, read_certificate
from ..mixer.mix import Channel, Mix, parent_of
from ..mixer.render import db_to_gain
from ..transcribe.smf import Part, Timing, smf_bytes
from .carried import left_out
from .midi_tracks import MidiTrack, midi_tracks

VERSION = "7002"  # the session format Ardour 7.3 writes
BALANCE_PANNER = "http://ardour.org/plugin/panner_balance"
MAX_FADER_DB = 6.0  # an Ardour fader's top; the rest of a gain above it goes on the track's trim (±20 dB)


class _Ids:
    def __init__(self, start: int = 100):
        self.last = start

    def __call__(self) -> str:
        self.last += 1
        return str(self.last)


def _colour(name: str) -> str:
    """An Ardour colour: RGBA as one unsigned integer."""
    return str(int(colour_of(name).lstrip("#"), 16) << 8 | 0xFF)


def balance_position(pan: float) -> float:
    """The position of Ardour's balance panner that gives StemDesk's pan law: turning right by ``pan`` leaves the
    left channel at cos(pan·π/2); Ardour's leaves it at 2 − 2·position."""
    side = 1.0 - math.cos(abs(pan) * math.pi / 2) / 2.0
    return side if pan >= 0 else 1.0 - side


def _controllable(parent: ET.Element, ids: _Ids, name: str, value: float | str, flags: str = "", **extra) -> None:
    ET.SubElement(parent, "Controllable", name=name, id=ids(), flags=flags, value=str(value), **extra)


def _route(
    routes: ET.Element,
    ids: _Ids,
    name: str,
    channels: int,
    kind: str,
    order: int,
    strip: Channel,
    output: str,
    playlist: str | None = None,
    upstream: int = 0,
    downstream: int = 0,
) -> ET.Element:
    """One route: a track (``playlist``), a bus or the master, its fader, trim, pan, mute and solo from ``strip``,
    its outputs connected to ``output``'s inputs ("Master", a bus) or the system's playback. A "midi" track has one
    MIDI port in and out, and no instrument: its notes sound once the producer puts one on it."""
    data = "midi" if kind == "midi" else "audio"
    attrs = {
        "version": VERSION,
        "id": ids(),
        "name": name,
        "default-type": data,
        "strict-io": "1",
        "active": "1",
        "denormal-protection": "0",
        "meter-point": "MeterPostFader",
        "disk-io-point": "DiskIOPreFader",
        "meter-type": "MeterPeak",
    }
    if playlist is not None:
        attrs.update({f"{data}-playlist": playlist, "saved-meter-point": "MeterPostFader", "mode": "Normal"})
    if kind == "midi":
        attrs.update({"note-mode": "Sustained", "playback-channel-mode": "AllChannels", "input-active": "1"})
    route = ET.SubElement(routes, "Route", attrs)
    flags = {
        "track": "AudioTrack,OrderSet",
        "midi": "MidiTrack,OrderSet",
        "bus": "AudioBus,OrderSet",
        "master": "MasterOut,OrderSet",
    }[kind]
    colour = "0" if kind == "master" else _colour(name)
    ET.SubElement(route, "PresentationInfo", order=str(order), flags=flags, color=colour)
    solo = "1" if strip.solo else "0"
    # what Ardour's solo propagation along the routing would have counted: a bus is soloed by a soloed child
    # upstream, a child by its soloed bus downstream (or they are muted by the other's solo)
    _controllable(
        route,
        ids,
        "solo",
        solo,
        "Toggle,RealTime",
        **{"self-solo": solo, "soloed-by-upstream": str(upstream), "soloed-by-downstream": str(downstream)},
    )
    _controllable(route, ids, "solo-iso", 0, "Toggle,RealTime", **{"solo-isolated": "0"})
    _controllable(route, ids, "solo-safe", 0, "Toggle", **{"solo-safe": "0"})
    for direction in ("Input", "Output"):
        io = ET.SubElement(route, "IO", {"name": name, "id": ids(), "direction": direction, "default-type": data})
        for channel in range(1, channels + 1):
            port = ET.SubElement(io, "Port", type=data, name=f"{name}/{data}_{direction[:-3].lower()} {channel}")
            if direction == "Output" and data == "audio":
                other = f"{output}/audio_in {channel}" if output else f"system:playback_{channel}"
                ET.SubElement(port, "Connection", other=other)
    mute = "1" if strip.mute else "0"
    ET.SubElement(route, "MuteMaster", {"mute-point": "PostFader,Listen,Main", "muted": mute})
    _controllable(route, ids, "mute", mute, "Toggle,RealTime")
    _controllable(route, ids, "phase", 0, "Toggle", **{"phase-invert": "0" * channels if data == "audio" else ""})
    pannable = ET.SubElement(route, "Pannable")
    _controllable(pannable, ids, "pan-azimuth", f"{balance_position(strip.pan):.9g}")
    _controllable(pannable, ids, "pan-width", 0)
    if playlist is not None:
        ET.SubElement(route, "Processor", id=ids(), name=f"player:{name}", active="1", type="diskreader")
    gain = strip.gain_db
    fader = min(gain, MAX_FADER_DB)
    for processor, control, value in (("trim", "trimcontrol", gain - fader), ("amp", "gaincontrol", fader)):
        amp = ET.SubElement(route, "Processor", id=ids(), name="Amp", active="1", type=processor)
        _controllable(amp, ids, control, f"{db_to_gain(value):.9g}", "GainLike")
    ET.SubElement(route, "Processor", id=ids(), name=f"meter-{name}", active="1", type="meter")
    outs = ET.SubElement(
        route,
        "Processor",
        {"id": ids(), "name": name, "active": "1", "own-input": "1", "own-output": "0", "output": name},
        type="main-outs",
        role="Main",
    )
    panner = BALANCE_PANNER if channels == 2 and kind in ("track", "bus") else ""
    ET.SubElement(outs, "PannerShell", {"bypassed": "0", "user-panner": panner, "linked-to-route": "1"})
    return route


@dataclass
class _Session:
    """A session file being written: its element, the sections the tracks fill (in the order Ardour reads them:
    sources, regions, locations, routes, playlists, route groups), the ids handed out so far, and the next
    route's place in the editor (the master's 0, then the buses and tracks in order)."""

    root: ET.Element
    ids: _Ids
    frames: int
    channels: int
    sources: ET.Element
    regions: ET.Element
    locations: ET.Element
    routes: ET.Element
    playlists: ET.Element
    groups: ET.Element
    order: int = 0

    def next_order(self) -> int:
        self.order += 1
        return self.order - 1


def _session(info: AudioInfo, name: str) -> _Session:
    """An empty session named ``name`` at the stems' rate: what wrote it, its native file format, and its sections."""
    root = ET.Element(
        "Session",
        {
            "version": VERSION,
            "name": name,
            "sample-rate": str(info.sample_rate),
            "session-range-is-free": "0",
            "name-counter": "1",
            "event-counter": "0",
            "vca-counter": "1",
        },
    )
    ET.SubElement(root, "ProgramVersion", {"created-with": "StemDesk", "modified-with": "StemDesk"})
    config = ET.SubElement(root, "Config")
    for option, value in (("native-file-data-format", "FormatFloat"), ("native-file-header-format", "WAVE")):
        ET.SubElement(config, "Option", name=option, value=value)
    ET.SubElement(root, "Metadata")
    sources, regions, locations, routes, playlists, groups = (
        ET.SubElement(root, tag) for tag in ("Sources", "Regions", "Locations", "Routes", "Playlists", "RouteGroups")
    )
    return _Session(root, _Ids(), info.frames, info.channels, sources, regions, locations, routes, playlists, groups)


def _locations(session: _Session, loop: tuple[int, int] | None, markers: Sequence[tuple[str, int]]) -> None:
    """The session's range (the stems' whole length), the ``loop`` and the ``markers``, in samples of the stems."""

    def location(name: str, start: int, end: int, flags: str) -> None:
        attrs = {"id": session.ids(), "name": name, "start": str(start), "end": str(end), "flags": flags}
        ET.SubElement(session.locations, "Location", {**attrs, "locked": "0", "timestamp": "0", "cue": "0"})

    location("session", 0, session.frames, "IsSessionRange")
    if loop is not None:
        location("Loop", *loop, "IsAutoLoop,IsHidden")
    for text, at in markers:
        location(text, at, at, "IsMark")


def _master(session: _Session, mix: Mix) -> None:
    """The master bus, at the mix's master level, playing into the system's playback."""
    strip = Channel(gain_db=mix.master_gain_db)
    _route(session.routes, session.ids, "Master", session.channels, "master", session.next_order(), strip, "")


def _sources(session: _Session, file: str, data: str, channels: int) -> list[str]:
    """The sources of a file a track plays, and their ids: one per channel of an audio file (an Ardour source is
    one channel), one for a MIDI file."""
    source_ids = []
    for channel in range(channels):
        source_ids.append(session.ids())
        attrs = {"name": file, "type": data, "flags": "", "id": source_ids[-1]}
        if data == "audio":
            attrs["channel"] = str(channel)
        ET.SubElement(session.sources, "Source", attrs, origin="")
    return source_ids


def _track(
    session: _Session, title: str, data: str, source_ids: list[str], strip: Channel, output: str, downstream: int = 0
) -> ET.Element:
    """A track (``data``: "audio" or "midi") playing its sources whole from sample 0: their region, the track's
    route (``strip``'s levels, into ``output``) and its playlist, which holds the region."""
    playlist_id = session.ids()
    region = _region(title, session.frames, data, source_ids)
    ET.SubElement(session.regions, "Region", {"id": session.ids(), **region})
    kind, channels = ("track", session.channels) if data == "audio" else ("midi", 1)
    route = _route(
        session.routes,
        session.ids,
        title,
        channels,
        kind,
        session.next_order(),
        strip,
        output,
        playlist_id,
        downstream=downstream,
    )
    playlist = ET.SubElement(
        session.playlists,
        "Playlist",
        {"id": playlist_id, "name": title, "type": data, "orig-track-id": route.attrib["id"]},
        frozen="0",
        **{"combine-ops": "0", "shared-with-ids": "", "pgroup-id": ""},
    )
    ET.SubElement(playlist, "Region", {**region, "whole-file": "0"}, id=session.ids())
    return route


def _bus(session: _Session, stems: Stems, mix: Mix, group: str) -> None:
    """A split stem's bus, which carries its strip (the children's group) on to the master."""
    # what Ardour's solo propagation would have counted: the bus is soloed by its soloed children upstream
    soloed = sum(mix.channels.get(k, Channel()).solo for k, _ in stems.leaves() if parent_of(k) == group)
    strip = mix.channels.get(group, Channel())
    _route(
        session.routes,
        session.ids,
        group,
        session.channels,
        "bus",
        session.next_order(),
        strip,
        "Master",
        upstream=soloed,
    )


def _audio_tracks(session: _Session, stems: Stems, mix: Mix, paths: list[str]) -> dict[str, list[str]]:
    """A track per leaf of ``stems``, playing its file in ``paths`` at the mix's levels, into the master or, for a
    split stem's child, into the stem's bus (written before its children's tracks); returns each split stem's
    children's route ids, its route group's members."""
    members: dict[str, list[str]] = {}
    for (key, _), path in zip(stems.leaves(), paths):
        group = parent_of(key)
        if group is not None and group not in members:
            members[group] = []
            _bus(session, stems, mix, group)
        title = key.replace("/", " ")  # "vocals lead": an Ardour port name may not hold a "/"
        source_ids = _sources(session, path, "audio", session.channels)
        bus_soloed = int(group is not None and mix.channels.get(group, Channel()).solo)
        strip = mix.channels.get(key, Channel())
        route = _track(session, title, "audio", source_ids, strip, group or "Master", downstream=bus_soloed)
        if group is not None:
            members[group].append(route.attrib["id"])
    return members


def _midi_tracks(session: _Session, midi: Sequence[tuple[MidiTrack, str]]) -> None:
    """A MIDI track per ``midi`` track, its source the file of that name in the session's midifiles; no
    instrument, its output unconnected."""
    for part, file in midi:
        _track(session, part.name, "midi", _sources(session, file, "midi", 1), Channel(), "")


def _route_groups(session: _Session, members: dict[str, list[str]]) -> None:
    """A route group per split stem, named after it, of its children's tracks."""
    for group, route_ids in members.items():
        ET.SubElement(
            session.groups,
            "RouteGroup",
            {"id": session.ids(), "name": group, "rgba": _colour(group), "used-to-share-gain": "0"},
            flags="",
            routes=" ".join(route_ids),
        )


def _tempo_map(session: _Session, tempo: float | None) -> None:
    """The song's ``tempo`` (120 BPM when unknown) from the start, in 4/4."""
    tempo_map = ET.SubElement(session.root, "TempoMap", {"superclocks-per-second": "282240000"})
    ET.SubElement(
        ET.SubElement(tempo_map, "Tempos"),
        "Tempo",
        {
            "npm": f"{tempo or 120:g}",
            "enpm": f"{tempo or 120:g}",
            "note-type": "4",
            "type": "Tempo::Constant",
            "active": "1",
            "locked-to-meter": "0",
            "continuing": "0",
            "sclock": "0",
            "quarters": "0:0",
            "bbt": "1|1|0",
            "omega": "0",
        },
    )
    ET.SubElement(
        ET.SubElement(tempo_map, "Meters"),
        "Meter",
        {"note-value": "4", "divisions-per-bar": "4", "sclock": "0", "quarters": "0:0", "bbt": "1|1|0"},
    )
    ET.SubElement(tempo_map, "MusicTimes")


def ardour_xml(
    stems: Stems,
    mix: Mix,
    name: str,
    paths: list[str],
    tempo: float | None = None,
    markers: list[tuple[str, int]] | None = None,
    loop: tuple[int, int] | None = None,
    midi: Sequence[tuple[MidiTrack, str]] = (),
) -> ET.Element:
    """The session file of ``stems`` (their leaves playing ``paths``) as ``name``: Ardour's XML, as an element;
    ``markers`` and the ``loop`` in samples of the stems; a MIDI track per ``midi`` track, playing the file of that
    name in the session's midifiles."""
    session = _session(stems.info, name)
    _locations(session, loop, markers or [])
    _master(session, mix)
    members = _audio_tracks(session, stems, mix, paths)
    _midi_tracks(session, midi)
    _route_groups(session, members)
    _tempo_map(session, tempo)
    session.root.set("id-counter", str(session.ids.last + 1))
    return session.root


def _region(name: str, frames: int, data: str, source_ids: list[str]) -> dict[str, str]:
    """A region of ``frames`` samples from sample 0 of its sources (one per channel of an audio file, one for a MIDI
    file), placed at sample 0."""
    region = {
        "name": name,
        "start": "0",
        "length": str(frames),
        "position": "0",
        "sync-position": "0",
        "ancestral-start": "0",
        "ancestral-length": "0",
        "stretch": "1",
        "shift": "1",
        "whole-file": "1",
        "external": "1" if data == "audio" else "0",
        "opaque": "1",
        "muted": "0",
        "locked": "0",
        "type": data,
        **{f"source-{c}": s for c, s in enumerate(source_ids)},
        **{f"master-source-{c}": s for c, s in enumerate(source_ids)},
    }
    if data == "audio":
        region.update(
            {
                "envelope-active": "0",
                "default-fade-in": "0",
                "default-fade-out": "0",
                "fade-in-active": "0",
                "fade-out-active": "0",
                "scale-amplitude": "1",
                "channels": str(len(source_ids)),
            }
        )
    return region


def residual_markers(stems: Stems) -> list[tuple[str, int]] | None:
    """The loudest residual windows the stems' certificate names (the tree's, for a split), as markers; None when a
    stem file is no longer the one the certificate names (edited since: its null check is another's)."""
    folder = stems.paths[0].parent
    try:
        cert = read_certificate(folder) if (folder / CERTIFICATE).is_file() else {}
    except (OSError, ValueError):
        return []
    hashes = {o.get("file"): o.get("sha256") for o in cert.get("outputs") or [] if isinstance(o, dict)}
    if any(p.name in hashes and hashes[p.name] != sha256_file(p) for p in stems.paths):
        return None
    null = cert.get("tree_null") or cert.get("null") or {}
    out = []
    for rank, region in enumerate(null.get("worst_regions") or [], 1):
        try:
            at = int(round(float(region["start_seconds"]) * stems.info.sample_rate))
            peak = region.get("peak_dbfs")
        except (KeyError, TypeError, ValueError):
            continue
        level = "silent" if peak is None else f"{float(peak):.1f} dBFS"
        out.append((f"residual {rank} ({level})", at))
    return out


def write_ardour(
    stems: Stems, mix: Mix, out: str | Path, tempo: float | None = None, loop: tuple[float, float] | None = None
) -> Written:
    """An Ardour session folder ``<out> ardour/`` holding ``<name>.ardour``, its tracks playing the stem files where
    they are (absolute paths: move the stems and Ardour asks where they went). A new folder appears whole or not at
    all; in a session folder already there only the session file is replaced (atomically), so what was recorded or
    saved there stays. ``loop``: the project's loop, in seconds of the song, as Ardour's loop range."""
    out = Path(out)
    name = out.name
    folder = out.with_name(f"{name} ardour")
    if folder.exists() and not folder.is_dir():
        raise StemDeskError(
            f'"{folder}" is a file, where the Ardour session folder goes: move it away, or export elsewhere (-o).'
        )
    paths = [str(Path(path).resolve()) for _, path in stems.leaves()]
    markers = residual_markers(stems)
    rate, frames = stems.info.sample_rate, stems.info.frames
    span = None
    if loop is not None:  # song seconds → samples of the stems (an excerpt's start where the song's 0 is)
        first, last = (min(frames, max(0, int(round(t * rate)) - stems.start)) for t in loop)
        span = (first, last) if last > first else None
    midi, midi_note = midi_tracks(stems)  # at the song's tempo and key, as the audio tracks play
    files = {f"{part.name} {hashlib.sha256(data).hexdigest()[:8]}.mid": data for part, data in _smf(midi, tempo)}
    session = ardour_xml(stems, mix, name, paths, tempo, markers or [], span, list(zip(midi, files)))
    ET.indent(session)
    text = ET.tostring(session, encoding="unicode", xml_declaration=False)
    data = ('<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n").encode("utf-8")
    if folder.is_dir():
        _folders(folder, name)
        _midi_files(folder, name, files)
        atomic_write_bytes(folder / f"{name}.ardour", data)
    else:
        with atomic_folder(folder) as staging:
            _folders(staging, name)
            _midi_files(staging, name, files)
            (staging / f"{name}.ardour").write_bytes(data)
    left = left_out(mix, [key for key, _ in stems.leaves()], carried=("pans", "master level"))
    notes = [f"Left out of the Ardour session: {left}. Bounce the mix for them."] if left else []
    notes += [midi_note] if midi_note else []
    if markers is None:
        notes.append(
            "A stem changed since its certificate was written, so the session has no residual markers: check the "
            "stems again (stemdesk nullcheck) or separate the song again."
        )
    note = " ".join(notes)
    return Written(folder / f"{name}.ardour", note)


def _smf(midi: Sequence[MidiTrack], tempo: float | None) -> list[tuple[MidiTrack, bytes]]:
    """Each MIDI track as the file Ardour reads: one track (Ardour reads a file's first track) timed in beats of
    the session's tempo, so each note sounds at its second of the song."""
    timing = Timing(tempo or 120.0)
    return [
        (part, smf_bytes([Part(part.name, part.notes, part.program, part.channel)], timing, one_track=True))
        for part in midi
    ]


def _midi_files(folder: Path, name: str, files: dict[str, bytes]) -> None:
    """The MIDI tracks' files, in the session's midifiles, where Ardour keeps (and edits) them. Their names hold
    their content's hash, so a file edited in Ardour since an earlier export stays as it is, beside the new one."""
    midifiles = folder / "interchange" / name / "midifiles"
    for file, data in files.items():
        if not (midifiles / file).is_file():
            atomic_write_bytes(midifiles / file, data)


def _folders(folder: Path, name: str) -> None:
    """The folders of an Ardour session (Ardour records into interchange/NAME/audiofiles)."""
    for sub in (
        "peaks",
        "analysis",
        "dead",
        "export",
        "plugins",
        "externals",
        f"interchange/{name}/audiofiles",
        f"interchange/{name}/midifiles",
    ):
        (folder / sub).mkdir(parents=True, exist_ok=True)
