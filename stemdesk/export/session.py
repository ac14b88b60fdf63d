"""DAW sessions around a folder of stems: DAWproject 1.0 (.dawproject) and REAPER (.rpp); and the registry of every
exporter, NI Stem files for DJ software (`stemdesk.export.ni_stem`) and plugins' included.

One track per stem, its clip at 0 s for the whole length, with the mix's gain, pan, mute and solo, the effects mapped
where the format has a matching device, and recorded automation as automation lanes. Times are in seconds, so no
tempo is needed; when one is given it is written as the session tempo.
"""

from __future__ import annotations

import io
import os
import time
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import StemDeskError
from ..core.version import __version__
from ..io.atomic import atomic_write_bytes
from ..io.registry import Registry, Written
from ..io.stems import Stems, colour_of
from ..mixer.effects import Effect
from ..mixer.mix import Channel, Mix
from ..mixer.render import db_to_gain
from .kinds import BUILTIN_EXPORTERS, LOOPED_KINDS, Exporter, exporters_of  # noqa: F401 - the names live in kinds

if TYPE_CHECKING:
    from .midi_tracks import MidiTrack

MAX_VOLUME = 15.85  # +24 dB, the top of StemDesk's gain range, as a linear factor


def _fmt(value: float) -> str:
    return f"{value:.6f}"


class _Ids:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"id{self.count}"


def _real(
    parent: ET.Element,
    tag: str,
    ids: _Ids,
    name: str,
    value: float,
    unit: str,
    low: float | None = None,
    high: float | None = None,
) -> ET.Element:
    element = ET.SubElement(parent, tag, id=ids(), name=name, unit=unit, value=_fmt(value))
    if low is not None and high is not None:
        element.set("min", _fmt(low))
        element.set("max", _fmt(high))
    return element


def _device(parent: ET.Element, effect: Effect, ids: _Ids) -> None:
    """Compressor, limiter and EQ map to DAWproject's built-in devices; others to a generic device with its
    parameters in real units; a VST3 insert to a Vst3Plugin reference."""
    p = effect.params
    enabled = lambda device: ET.SubElement(
        device,
        "Enabled",
        id=ids(),
        name="On",  # noqa: E731
        value="false" if effect.bypass else "true",
    )
    if effect.kind == "compressor":
        device = ET.SubElement(parent, "Compressor", id=ids(), deviceName="Compressor", deviceRole="audioFX")
        enabled(device)
        _real(device, "Attack", ids, "Attack", p["attack_ms"] / 1000, "seconds")
        _real(device, "Ratio", ids, "Ratio", p["ratio"], "linear")
        _real(device, "Release", ids, "Release", p["release_ms"] / 1000, "seconds")
        _real(device, "Threshold", ids, "Threshold", p["threshold_db"], "decibel")
    elif effect.kind == "limiter":
        device = ET.SubElement(parent, "Limiter", id=ids(), deviceName="Limiter", deviceRole="audioFX")
        enabled(device)
        _real(device, "Release", ids, "Release", p["release_ms"] / 1000, "seconds")
        _real(device, "Threshold", ids, "Threshold", p["threshold_db"], "decibel")
    elif effect.kind in ("low_shelf", "high_shelf", "peak"):
        device = ET.SubElement(parent, "Equalizer", id=ids(), deviceName="Equalizer", deviceRole="audioFX")
        enabled(device)
        band = ET.SubElement(
            device, "Band", type={"low_shelf": "lowShelf", "high_shelf": "highShelf", "peak": "bell"}[effect.kind]
        )
        _real(band, "Freq", ids, "Frequency", p["cutoff_hz"], "hertz")
        _real(band, "Gain", ids, "Gain", p["gain_db"], "decibel")
        _real(band, "Q", ids, "Q", p["q"], "linear")
    elif effect.kind == "vst3":
        device = ET.SubElement(
            parent, "Vst3Plugin", id=ids(), deviceName=Path(effect.path or "").stem, deviceRole="audioFX"
        )
        parameters = ET.SubElement(device, "Parameters")
        for name, value in effect.params.items():
            if isinstance(value, (int, float)):
                _real(parameters, "RealParameter", ids, name, float(value), "linear")
        enabled(device)
    else:
        spec = effect.known_spec()
        device = ET.SubElement(
            parent,
            "BuiltinDevice",
            id=ids(),
            deviceName=spec.label if spec else effect.kind,
            deviceRole="audioFX",
            deviceVendor="StemDesk",
        )
        parameters = ET.SubElement(device, "Parameters")
        units = {"dB": "decibel", "Hz": "hertz", "s": "seconds", "ms": "seconds"}
        for name, value in p.items():
            unit = spec.params[name].unit if spec else ""
            scale = 0.001 if unit == "ms" else 1.0
            _real(parameters, "RealParameter", ids, name, value * scale, units.get(unit, "linear"))
        enabled(device)


def dawproject_xml(
    stems: Stems,
    mix: Mix,
    audio_paths: list[str],
    tempo: float | None = None,
    title: str | None = None,
    midi: Sequence[MidiTrack] = (),
) -> tuple[bytes, bytes]:
    """(project.xml, metadata.xml) for stems whose audio sits at ``audio_paths`` inside the archive: the transport,
    one track per stem, a notes track per ``midi`` track, the buses' returns and the master (`_tracks`), the stems'
    clips (`_clips`), the notes (`_note_clips`) and the mix's automation (`_automation`)."""
    ids = _Ids()
    project = ET.Element("Project", version="1.0")
    ET.SubElement(project, "Application", name="StemDesk", version=__version__)
    if tempo:
        transport = ET.SubElement(project, "Transport")
        _real(transport, "Tempo", ids, "Tempo", tempo, "bpm", 20.0, 666.0)
        ET.SubElement(transport, "TimeSignature", id=ids(), numerator="4", denominator="4")
    tracks, note_tracks, targets = _tracks(ET.SubElement(project, "Structure"), stems, mix, ids, midi)
    arrangement = ET.SubElement(project, "Arrangement", id=ids())
    lanes = ET.SubElement(arrangement, "Lanes", id=ids(), timeUnit="seconds")
    lanes_of = _clips(lanes, tracks, audio_paths, stems, mix, ids)
    _note_clips(lanes, note_tracks, midi, stems.info.frames / stems.info.sample_rate / mix.tempo, ids)
    _automation(lanes, lanes_of, targets, mix, ids)

    metadata = ET.Element("MetaData")
    ET.SubElement(metadata, "Title").text = title or (stems.source or {}).get("file", stems.paths[0].parent.name)
    ET.SubElement(metadata, "Comment").text = f"Stems separated and exported by StemDesk {__version__}"
    for element in (project, metadata):
        ET.indent(element)
    declaration = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    return (
        declaration + ET.tostring(project, encoding="utf-8", xml_declaration=False),
        declaration + ET.tostring(metadata, encoding="utf-8", xml_declaration=False),
    )


def _devices(channel: ET.Element, chain: list[Effect], ids: _Ids) -> None:
    if chain:
        devices = ET.SubElement(channel, "Devices")
        for effect in chain:
            _device(devices, effect, ids)


def _tracks(
    structure: ET.Element, stems: Stems, mix: Mix, ids: _Ids, midi: Sequence[MidiTrack] = ()
) -> tuple[list[ET.Element], list[ET.Element], dict[str, str]]:
    """The stems' tracks, then the MIDI tracks (notes, no instrument: silent until one is put on them), then the
    buses' returns, then the master, in ``structure``; returns the stems' tracks, the MIDI tracks and the parameter
    id each automatable control of the mix (``vocals/gain_db``...) moves."""
    master_track = ET.Element("Track", id=ids(), name="Master", contentType="audio", loaded="true")
    master = ET.SubElement(master_track, "Channel", id=ids(), role="master", audioChannels="2", solo="false")
    _devices(master, mix.master, ids)
    master_volume = _real(master, "Volume", ids, "Volume", db_to_gain(mix.master_gain_db), "linear", 0.0, MAX_VOLUME)
    channels = str(stems.info.channels)

    bus_channels: dict[str, str] = {}
    bus_tracks = []
    for bus, chain in mix.buses.items():
        track = ET.Element("Track", id=ids(), name=f"{bus} return", contentType="audio", loaded="true")
        channel = ET.SubElement(
            track,
            "Channel",
            id=ids(),
            role="effect",
            audioChannels=channels,
            destination=master.attrib["id"],
            solo="false",
        )
        bus_channels[bus] = channel.attrib["id"]
        _devices(channel, chain, ids)
        _real(channel, "Volume", ids, "Volume", 1.0, "linear", 0.0, MAX_VOLUME)
        bus_tracks.append(track)

    targets: dict[str, str] = {"master/gain_db": master_volume.attrib["id"]}
    tracks = []
    for name in stems.names:
        inner = stems.children.get(name)
        # a stem split further is a group: its children's tracks play into its channel, which holds its strip
        track, channel, controls = _stem_track(
            structure, name, name, mix, channels, master.attrib["id"], bus_channels, ids, group=inner is not None
        )
        targets.update({f"{name}/{kind}": parameter for kind, parameter in controls.items()})
        if inner is None:
            tracks.append(track)
            continue
        for child in inner.names:
            child_track, _, _ = _stem_track(
                track, child, f"{name}/{child}", mix, channels, channel.attrib["id"], bus_channels, ids, colour=name
            )
            tracks.append(child_track)
    note_tracks = []
    for part in midi:
        track = ET.SubElement(
            structure, "Track", id=ids(), name=part.name, contentType="notes", loaded="true", color=colour_of(part.key)
        )
        channel = ET.SubElement(
            track, "Channel", id=ids(), role="regular", audioChannels="2", destination=master.attrib["id"], solo="false"
        )
        ET.SubElement(channel, "Mute", id=ids(), name="Mute", value="false")
        _real(channel, "Pan", ids, "Pan", 0.5, "normalized", 0.0, 1.0)
        _real(channel, "Volume", ids, "Volume", 1.0, "linear", 0.0, MAX_VOLUME)
        note_tracks.append(track)
    for track in bus_tracks:
        structure.append(track)
    structure.append(master_track)
    return tracks, note_tracks, targets


def _stem_track(
    parent: ET.Element,
    name: str,
    key: str,
    mix: Mix,
    channels: str,
    destination: str,
    bus_channels: dict[str, str],
    ids: _Ids,
    group: bool = False,
    colour: str | None = None,
) -> tuple[ET.Element, ET.Element, dict[str, str]]:
    """A track in ``parent`` for one stem or child (``key`` in the mix: "drums", "vocals/lead") with its strip's
    effects, mute, pan, sends and fader, playing into ``destination``; a ``group`` holds tracks, not audio, and
    its channel is their submix. Returns the track, its channel and the parameter id of each control."""
    strip = mix.channels.get(key, Channel())
    track = ET.SubElement(
        parent,
        "Track",
        id=ids(),
        name=name,
        contentType="tracks" if group else "audio",
        loaded="true",
        color=colour_of(colour or name),
    )
    channel = ET.SubElement(
        track,
        "Channel",
        id=ids(),
        role="submix" if group else "regular",
        audioChannels=channels,
        destination=destination,
        solo="true" if strip.solo else "false",
    )
    _devices(channel, strip.effects, ids)
    mute = ET.SubElement(channel, "Mute", id=ids(), name="Mute", value="true" if strip.mute else "false")
    pan = _real(channel, "Pan", ids, "Pan", (strip.pan + 1) / 2, "normalized", 0.0, 1.0)
    if strip.sends:
        sends = ET.SubElement(channel, "Sends")
        for bus, db in strip.sends.items():
            send = ET.SubElement(sends, "Send", id=ids(), destination=bus_channels[bus], type="post")
            _real(send, "Volume", ids, "Send", db_to_gain(db), "linear", 0.0, MAX_VOLUME)
    volume = _real(channel, "Volume", ids, "Volume", db_to_gain(strip.gain_db), "linear", 0.0, MAX_VOLUME)
    return track, channel, {"gain_db": volume.attrib["id"], "pan": pan.attrib["id"], "mute": mute.attrib["id"]}


def _clips(
    lanes: ET.Element, tracks: list[ET.Element], audio_paths: list[str], stems: Stems, mix: Mix, ids: _Ids
) -> dict[str, ET.Element]:
    """Each leaf's whole file (a stem, or a split stem's child) as one clip on its track's lane, warped to the mix's
    tempo; returns the lanes by leaf key ("drums", "vocals/lead")."""
    seconds = stems.info.frames / stems.info.sample_rate
    played = seconds / mix.tempo  # the mix's tempo: each clip is warped to this length
    lanes_of: dict[str, ET.Element] = {}
    for track, path, (key, _) in zip(tracks, audio_paths, stems.leaves()):
        lanes_of[key], clip = _whole_clip(lanes, track, played, ids)
        content = clip
        if mix.tempo != 1.0:  # the stem's seconds (contentTime) stretched onto the arrangement's (time)
            content = ET.SubElement(clip, "Warps", id=ids(), timeUnit="seconds", contentTimeUnit="seconds")
        audio = ET.SubElement(
            content,
            "Audio",
            id=ids(),
            channels=str(stems.info.channels),
            sampleRate=str(stems.info.sample_rate),
            duration=_fmt(seconds),
            algorithm="raw" if mix.tempo == 1.0 else "stretch",
        )
        ET.SubElement(audio, "File", path=path)
        if mix.tempo != 1.0:
            ET.SubElement(content, "Warp", time="0.0", contentTime="0.0")
            ET.SubElement(content, "Warp", time=_fmt(played), contentTime=_fmt(seconds))
    return lanes_of


def _whole_clip(lanes: ET.Element, track: ET.Element, seconds: float, ids: _Ids) -> tuple[ET.Element, ET.Element]:
    """A lane for ``track`` in ``lanes`` holding one clip named after it, from 0 for ``seconds`` of the arrangement,
    its content timed in seconds: (the lane, the clip)."""
    track_lanes = ET.SubElement(lanes, "Lanes", id=ids(), track=track.attrib["id"])
    clip = ET.SubElement(
        ET.SubElement(track_lanes, "Clips", id=ids()),
        "Clip",
        time="0.0",
        duration=_fmt(seconds),
        playStart="0.0",
        contentTimeUnit="seconds",
        name=track.attrib["name"],
    )
    return track_lanes, clip


def _note_clips(
    lanes: ET.Element, tracks: list[ET.Element], midi: Sequence[MidiTrack], seconds: float, ids: _Ids
) -> None:
    """Each MIDI track's notes as one clip of ``seconds`` (the session's length) from 0 on its track's lane, in
    seconds; velocity as DAWproject's 0..1."""
    for track, part in zip(tracks, midi):
        _, clip = _whole_clip(lanes, track, seconds, ids)
        notes = ET.SubElement(clip, "Notes", id=ids(), timeUnit="seconds")
        for note in part.notes:
            ET.SubElement(
                notes,
                "Note",
                time=_fmt(note.start),
                duration=_fmt(max(note.end - note.start, 0.001)),
                channel=str(part.channel),
                key=str(note.pitch),
                vel=_fmt(note.velocity / 127),
                rel=_fmt(0.5),
            )


def _automation(
    lanes: ET.Element, lanes_of: dict[str, ET.Element], targets: dict[str, str], mix: Mix, ids: _Ids
) -> None:
    """The mix's automation of levels, pans and mutes as points on their track's lane (the master's on the
    arrangement's), in arrangement time (the mix's tempo applied)."""
    for control, points in mix.automation.items():
        if control not in targets:
            continue  # effect automation has no portable target in DAWproject 1.0
        kind = control.split("/")[-1]
        lane = ET.SubElement(
            lanes_of.get(control.split("/")[0], lanes),
            "Points",
            id=ids(),
            unit={"gain_db": "linear", "pan": "normalized"}.get(kind, ""),
        )
        if kind == "mute":
            del lane.attrib["unit"]
        ET.SubElement(lane, "Target", parameter=targets[control])
        for t, value in points:
            at = _fmt(t / mix.tempo)  # song time → arrangement time
            if kind == "mute":
                ET.SubElement(lane, "BoolPoint", time=at, value="true" if value >= 0.5 else "false")
            else:
                shown = db_to_gain(value) if kind == "gain_db" else (value + 1) / 2
                ET.SubElement(lane, "RealPoint", time=at, value=_fmt(shown), interpolation="linear")


def write_dawproject(stems: Stems, mix: Mix, out: str | Path, tempo: float | None = None) -> Written:
    """A .dawproject archive with the stems embedded (stored, not recompressed). Written atomically. The mix's tempo
    warps every clip; DAWproject 1.0 has no transposition of audio, so a key change is left out and said so."""
    out = Path(out)
    if out.suffix != ".dawproject":
        out = out.with_name(out.name + ".dawproject")
    leaves = stems.leaves()
    # a split stem's children in a folder of its name: a drum kit's "other" and the song's "other" are two files
    inside = [f"audio/{key}{path.suffix}" for key, path in leaves]
    from .midi_tracks import midi_tracks  # mido, and the notes' module, when a session is written

    midi, midi_note = midi_tracks(stems, mix.tempo)  # DAWproject leaves the key change out, so do its notes
    project, metadata = dawproject_xml(stems, mix, inside, tempo, midi=midi)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("project.xml", project, zipfile.ZIP_DEFLATED)
        archive.writestr("metadata.xml", metadata, zipfile.ZIP_DEFLATED)
        for (_, path), name in zip(leaves, inside):
            archive.write(path, name, zipfile.ZIP_STORED)
    written = atomic_write_bytes(out, buffer.getvalue())
    notes = [midi_note] if midi_note else []
    if mix.semitones:
        notes.insert(
            0,
            f"Without the key change ({mix.semitones:+g} semitones): DAWproject cannot transpose audio clips. "
            "Transpose the clips in the DAW, export REAPER's session (--session rpp), or bounce the mix.",
        )
    return Written(written, " ".join(notes))


def _quote(text: str) -> str:
    """REAPER quotes strings with ", ' or ` (whichever the text does not contain)."""
    for mark in ('"', "'", "`"):
        if mark not in text:
            return f"{mark}{text}{mark}"
    raise StemDeskError(f"The path {text!r} contains \", ' and `; REAPER cannot store it. Rename the file.")


SOURCE_TYPES = {".wav": "WAVE", ".flac": "FLAC", ".mp3": "MP3", ".ogg": "VORBIS", ".aif": "WAVE", ".aiff": "WAVE"}


def rpp_text(
    stems: Stems, mix: Mix, paths: Iterable[str], tempo: float | None = None, midi: Sequence[MidiTrack] = ()
) -> str:
    """The project: one track per stem (a split stem as a folder track of its children's), then one track of
    in-project MIDI per ``midi`` track (notes, no instrument: silent until the producer puts one on it)."""
    seconds = stems.info.frames / stems.info.sample_rate
    rate = mix.tempo  # items play at the mix's tempo (pitch kept) and key; project times are song times / rate
    bpm = (tempo or 120) * (rate if tempo else 1)
    lines = [
        f'<REAPER_PROJECT 0.1 "6.0/StemDesk-{__version__}" {int(time.time())}',
        f"  TEMPO {bpm:g} 4 4",
        f"  SAMPLERATE {stems.info.sample_rate} 0 0",
        f"  MASTER_VOLUME {db_to_gain(mix.master_gain_db):.6f} 0 -1 -1 1",
    ]
    leaf_paths = dict(zip((key for key, _ in stems.leaves()), paths))
    nchan = max(2, stems.info.channels + stems.info.channels % 2)
    for name in stems.names:
        inner = stems.children.get(name)
        if inner is not None:  # a folder track holding the children (REAPER's ISBUS 1 opens it, 2 -1 closes it)
            lines += _rpp_track(name, name, None, mix, nchan, seconds, "1 1")
            for index, child in enumerate(inner.names):
                last = index == len(inner.names) - 1
                lines += _rpp_track(
                    child,
                    f"{name}/{child}",
                    leaf_paths[f"{name}/{child}"],
                    mix,
                    nchan,
                    seconds,
                    "2 -1" if last else "0 0",
                )
            continue
        lines += _rpp_track(name, name, leaf_paths[name], mix, nchan, seconds)
    for part in midi:
        lines += _rpp_midi_track(part, seconds / rate, bpm)
    lines.append(">")
    return "\n".join(lines) + "\n"


RPP_PPQ = 960  # ticks per quarter note of REAPER's in-project MIDI


def _rpp_midi_track(part: MidiTrack, seconds: float, bpm: float) -> list[str]:
    """A track with one item of in-project MIDI (``E delta status data1 data2``, deltas in ticks of RPP_PPQ per
    quarter note at the project's constant tempo ``bpm``) lasting ``seconds``; the notes in seconds of the project."""
    per_second = RPP_PPQ * bpm / 60
    events = []
    for note in part.notes:
        on = round(note.start * per_second)
        events.append((on, 1, 0x90 | part.channel, note.pitch, note.velocity))
        events.append((max(on + 1, round(note.end * per_second)), 0, 0x80 | part.channel, note.pitch, 0))
    end = max(round(seconds * per_second), max((e[0] for e in events), default=0))
    lines = [
        "  <TRACK",
        f"    NAME {_quote(part.name)}",
        "    <ITEM",
        "      POSITION 0",
        f"      LENGTH {seconds:.6f}",
        f"      NAME {_quote(part.name)}",
        "      <SOURCE MIDI",
        f"        HASDATA 1 {RPP_PPQ} QN",
    ]
    now = 0
    for at, _, status, data1, data2 in sorted(events):  # a note's end before a note starting at that tick
        lines.append(f"        E {at - now} {status:02x} {data1:02x} {data2:02x}")
        now = at
    lines += [f"        E {end - now} b0 7b 00", "      >", "    >", "  >"]  # all notes off: where the source ends
    return lines


def _rpp_track(
    name: str, key: str, path: str | None, mix: Mix, nchan: int, seconds: float, folder: str | None = None
) -> list[str]:
    """One REAPER track playing one file from 0 with its strip (``key`` in the mix: "drums", "vocals/lead") and its
    automation; ``folder``: its ISBUS values (a folder track, or a track inside one). A folder track of a split
    stem has no ``path``: its children carry the sound."""
    rate = mix.tempo
    strip = mix.channels.get(key, Channel())
    head = [
        "  <TRACK",
        f"    NAME {_quote(name)}",
        f"    VOLPAN {db_to_gain(strip.gain_db):.6f} {strip.pan:.6f} -1 -1 1",
        f"    MUTESOLO {int(strip.mute)} {2 if strip.solo else 0} 0",
        *([f"    ISBUS {folder}"] if folder else []),
        f"    NCHAN {nchan}",
        *_rpp_envelopes(key, mix),
    ]
    if path is None:
        return [*head, "  >"]
    return [
        *head,
        "    <ITEM",
        "      POSITION 0",
        f"      LENGTH {seconds / rate:.6f}",
        # play rate, preserve pitch, pitch adjust (semitones), the project's pitch-shift mode, -, fade
        f"      PLAYRATE {rate:.6f} 1 {mix.semitones:.6f} -1 0 0.0025",
        f"      NAME {_quote(name)}",
        f"      <SOURCE {SOURCE_TYPES.get(Path(path).suffix.lower(), 'WAVE')}",
        f"        FILE {_quote(path)}",
        "      >",
        "    >",
        "  >",
    ]


def _rpp_envelopes(key: str, mix: Mix) -> list[str]:
    """The mix's automation of one strip's level, pan and mute as REAPER envelopes, in project time."""
    lines: list[str] = []
    for control, kind, envelope in (
        (f"{key}/gain_db", "gain_db", "VOLENV2"),
        (f"{key}/pan", "pan", "PANENV2"),
        (f"{key}/mute", "mute", "MUTEENV"),
    ):
        points = mix.automation.get(control)
        if not points:
            continue
        lines += [f"    <{envelope}", "      ACT 1 -1", "      VIS 1 1 1", "      ARM 0", "      DEFSHAPE 0 -1 -1"]
        for t, value in points:
            shown = db_to_gain(value) if kind == "gain_db" else (value if kind == "pan" else float(value < 0.5))
            shape = 1 if kind == "mute" else 0
            lines.append(f"      PT {t / mix.tempo:.6f} {shown:.6f} {shape}")
        lines.append("    >")
    return lines


def write_rpp(stems: Stems, mix: Mix, out: str | Path, tempo: float | None = None) -> Written:
    """A REAPER project referring to the stems where they are (relative paths when on the same drive), with the
    notes `stemdesk midi` wrote beside them as MIDI tracks (in the project)."""
    out = Path(out)
    if out.suffix != ".rpp":
        out = out.with_name(out.name + ".rpp")
    paths = []
    for _, path in stems.leaves():
        try:
            paths.append(os.path.relpath(path.resolve(), out.parent.resolve()))
        except ValueError:  # another drive on Windows
            paths.append(str(path.resolve()))
    from .midi_tracks import midi_tracks

    midi, note = midi_tracks(stems, mix.tempo, mix.semitones)
    return Written(atomic_write_bytes(out, rpp_text(stems, mix, paths, tempo, midi).encode("utf-8")), note)


def write_session(
    kind: str,
    stems: Stems,
    mix: Mix,
    out: str | Path,
    tempo: float | None = None,
    registry: Registry | None = None,
    loop: tuple[float, float] | None = None,
) -> Written:
    """Write a session of ``kind``, one of ``registry``'s exporters (default: the built-ins); ``loop`` (seconds of the
    song) is marked in the kinds that have a loop (`LOOPED_KINDS`). Without a ``tempo``, the one `stemdesk midi`
    read from the stems is the session's, where there is one."""
    exporters = exporters_of(registry)
    writer = exporters.get(kind)
    if writer is None:
        raise StemDeskError(f"Unknown export format {kind!r}; use one of {', '.join(exporters)}.")
    if tempo is None:
        from .midi_tracks import midi_tempo

        tempo = midi_tempo(stems)
    looped = loop is not None and kind in LOOPED_KINDS and writer is BUILTIN_EXPORTERS.get(kind)
    written = writer(stems, mix, Path(out), tempo, loop=loop) if looped else writer(stems, mix, Path(out), tempo)
    return written if isinstance(written, Written) else Written(Path(written))
