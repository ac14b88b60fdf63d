"""Native Instruments Stem files (SONG.stem.mp4), which DJ software (Traktor, Mixxx) plays with a fader per stem.

One MP4 with five audio tracks: 0 the mix (what any other player plays), then drums, bass, other and vocals in NI's
order, and a ``stem`` box in moov/udta holding JSON: version 1, each stem's name and colour, and the mastering DSP
(a compressor and a limiter) the DJ software may put on the stems' sum, switched off here so that the stems played
together are the mix. Only the mix track is enabled, as in NI's own files, so ordinary players play the mix alone.

The mix track is the original song when the caller knows where it is (`Stems.mixture`: `stemdesk separate` and the
app's export do), else the sum of the stems, which for StemDesk's PCM stems is the original at their depth, bit for
bit. The mixer's levels, pans and effects are not applied: a stem file holds the stems as separated, for the DJ's
own faders.

ALAC (the default) is lossless: the tracks are 16-bit for 16-bit stems, else 24-bit, and the stems are rounded with
the null rule of `export.stems` (their rounding goes into the last one), so the four stem tracks decoded from the
finished file add up to the decoded mix track bit for bit. AAC (256 kbit/s a track, ffmpeg's own encoder) is lossy:
each track is encoded on its own, so the stems cannot null against the mix; the residual is measured and reported
instead. Both are checked on the file decoded by ffmpeg before it takes its name.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..core.errors import AudioError, StemDeskError
from ..io.atomic import create_temp_dir, publish
from ..io.audio import AtomicAudioWriter, AudioReader, probe
from ..io.ffmpeg import ffmpeg_version, find_ffmpeg, run_ffmpeg
from ..io.formats import PCM_BITS, pcm_samples, quantise
from ..io.mp4 import set_user_box
from ..io.registry import Written
from ..io.stems import OTHER_COLOUR, Stems, colour_of
from ..mixer.mix import Mix
from . import certificate
from .nullcheck import NullResult, null_residual
from .stems import integer_stems

NI_STEMS = ("drums", "bass", "other", "vocals")  # the order of the four stem tracks, after the mix
ACCOMPANIMENT = ("accompaniment", "instrumental")  # a 2-stem model's other half, written as NI's "other"
SILENT = "(silent)"
AAC_BITRATE_KBPS = 256
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
SUFFIXES = {"alac": ".stem.mp4", "aac": ".aac.stem.mp4"}
BLOCK = 1 << 16


@dataclass(frozen=True)
class Slot:
    """One of the four stem tracks: its place in NI's order, the name and colour the DJ software shows, and which of
    the stems fills it (None: silence)."""

    place: str
    name: str
    colour: str
    source: int | None


@dataclass(frozen=True, kw_only=True)
class StemFile(Written):
    """A written NI Stem file, what was checked in it, and its certificate (``path`` and ``note`` from `Written`)."""

    codec: str  # "alac" or "aac"
    null: NullResult  # the four stem tracks summed against the mix track, all decoded from the finished file
    tracks: dict[str, NullResult]  # each track decoded against the samples that were encoded into it
    certificate: Path


def slots_for(names: list[str]) -> list[Slot]:
    """Where each stem goes: drums, bass, other and vocals into NI's four places; a 2-stem model's vocals and
    accompaniment into "vocals" and "other", with silent drum and bass tracks. Other sets of stems are refused
    with what to do."""
    if sorted(names) == sorted(NI_STEMS):
        return [Slot(n, n, colour_of(n).upper(), names.index(n)) for n in NI_STEMS]
    rest = [n for n in names if n != "vocals"]
    if len(names) == 2 and "vocals" in names and rest[0] in ACCOMPANIMENT:
        return [
            Slot("drums", SILENT, OTHER_COLOUR.upper(), None),
            Slot("bass", SILENT, OTHER_COLOUR.upper(), None),
            Slot("other", rest[0], colour_of(rest[0]).upper(), names.index(rest[0])),
            Slot("vocals", "vocals", colour_of("vocals").upper(), names.index("vocals")),
        ]
    raise StemDeskError(
        f"An NI Stem file holds four stems, drums, bass, other and vocals (or vocals and accompaniment, with silent "
        f"drums and bass), but these stems are {', '.join(names)}. Separate the song with a 4-stem model "
        "(stemdesk-4stem) or name the stem files drums, bass, other and vocals."
    )


def stem_metadata(slots: list[Slot]) -> dict:
    """The JSON of the ``stem`` box. The mastering DSP is NI's default settings, switched off."""
    return {
        "mastering_dsp": {
            "compressor": {
                "enabled": False,
                "input_gain": 0.5,
                "output_gain": 0.5,
                "threshold": 0,
                "ratio": 3,
                "attack": 0.003,
                "release": 0.3,
                "hp_cutoff": 300,
                "dry_wet": 50,
            },
            "limiter": {"enabled": False, "threshold": 0, "ceiling": -0.35, "release": 0.05},
        },
        "version": 1,
        "stems": [{"name": slot.name, "color": slot.colour} for slot in slots],
    }


def write_stem_mp4(stems: Stems, mix: Mix, out: Path, tempo: float | None = None) -> StemFile:
    """The ``stems-mp4`` exporter: OUT.stem.mp4 in ALAC, whose stems null against its mix track bit for bit. The mix
    (levels, effects) and tempo are not used: see the module's notes."""
    return write_stem_file(stems, out, "alac")


def write_stem_mp4_aac(stems: Stems, mix: Mix, out: Path, tempo: float | None = None) -> StemFile:
    """The ``stems-mp4-aac`` exporter: OUT.aac.stem.mp4 in AAC, a fifth of the size; its stems do not null."""
    return write_stem_file(stems, out, "aac")


def write_stem_file(stems: Stems, out: str | Path, codec: str = "alac") -> StemFile:
    """Write ``stems`` as an NI Stem file at OUT.stem.mp4 (AAC: OUT.aac.stem.mp4), atomically, check it decoded,
    and write its certificate beside it (``<file name>.certificate.json``)."""
    if codec not in SUFFIXES:
        raise StemDeskError(f"Unknown codec {codec!r} for an NI Stem file; use alac or aac.")
    ffmpeg = find_ffmpeg("Writing an NI Stem file (.stem.mp4)")
    out = Path(out)
    path = out if out.name.endswith(SUFFIXES[codec]) else out.with_name(out.name + SUFFIXES[codec])
    slots = slots_for(stems.names)
    info = stems.info
    if info.channels > 2:
        raise AudioError(
            f"NI Stem files are stereo, but these stems have {info.channels} channels. Export them as WAV or FLAC "
            "stems or a DAW session instead, or separate a stereo mix of the song."
        )
    if codec == "aac" and info.sample_rate not in AAC_RATES:
        raise AudioError(
            f"AAC cannot hold {info.sample_rate} Hz audio (its rates go up to 96 kHz). Write the stem file in ALAC "
            "(stems-mp4), which keeps any rate."
        )
    bits = PCM_BITS.get(info.subtype, 24)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = create_temp_dir(path)
    try:
        tracks = [staging / f"{i}.wav" for i in range(1 + len(slots))]
        from_song = _write_tracks(stems, slots, tracks, bits)
        encoded = staging / "stem.mp4"
        _encode(ffmpeg, tracks, encoded, slots, codec, info.sample_rate, _title(stems, path))
        set_user_box(encoded, b"stem", json.dumps(stem_metadata(slots)).encode("utf-8"))
        null, checked = _check(ffmpeg, encoded, tracks, staging, slots, codec, bits, info.frames)
        settings = {
            "codec": codec,
            **({"bits": bits} if codec == "alac" else {"bitrate_kbps": AAC_BITRATE_KBPS}),
            "sample_rate": info.sample_rate,
            "tracks": ["mix", *NI_STEMS],
            "stem_box": stem_metadata(slots),
            "from_stems": {
                slot.place: (stems.paths[slot.source].name if slot.source is not None else None) for slot in slots
            },
            "mix_track": "the original song" if from_song else "the sum of the stems (the original song was not given)",
            **({"mixture_samples": [stems.start, stems.start + info.frames]} if from_song else {}),
            "mono": "written as identical left and right channels" if info.channels == 1 else None,
            "mixer": "not applied: the stems are written as separated",
            "encoder": ffmpeg_version(ffmpeg),
        }
        cert = certificate.build(
            "stems-mp4",
            None,
            {key: value for key, value in settings.items() if value is not None},
            null={"applicable": True, "against": ["mix track", *NI_STEMS], **null.as_dict()},
        )
        cert["tracks"] = {name: result.as_dict() for name, result in checked.items()}
        if stems.source is not None:
            cert["source"] = stems.source
        publish(encoded, path)
    except OSError as error:
        raise AudioError(
            f'Writing "{path}" failed: {error.strerror or error}. Free some space or choose another folder; nothing '
            "partial was left."
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    cert_path = certificate.write_beside(path.parent, cert, [path], name=f"{path.name}.certificate.json")
    return StemFile(
        path,
        _note(codec, bits, null, slots, from_song),
        codec=codec,
        null=null,
        tracks=checked,
        certificate=cert_path,
    )


def _title(stems: Stems, path: Path) -> str:
    source = (stems.source or {}).get("file")
    return Path(source).stem if isinstance(source, str) and source else path.name.split(".")[0]


def _write_tracks(stems: Stems, slots: list[Slot], tracks: list[Path], bits: int) -> bool:
    """The mix and the four stems as WAVs of ``bits`` (stereo) at ``tracks``, streamed block by block. Returns
    whether the mix is the original song (else it is the stems' sum)."""
    info = stems.info
    mixture = None
    if stems.mixture is not None:
        mixture = probe(stems.mixture)
        if (mixture.sample_rate, mixture.channels) != (info.sample_rate, info.channels) or (
            mixture.frames < stems.start + info.frames
        ):
            raise AudioError(
                f'"{mixture.path.name}" ({mixture.sample_rate} Hz, {mixture.channels} ch, {mixture.frames} samples) '
                f"is not the song of these stems ({info.sample_rate} Hz, {info.channels} ch, {info.frames} samples "
                f"from sample {stems.start}). Give the song the stems were separated from."
            )
    writers = [AtomicAudioWriter(track, info.sample_rate, 2, "WAV", f"PCM_{bits}") for track in tracks]
    reader = AudioReader(mixture) if mixture is not None else None
    try:
        if reader is not None:
            reader.seek(stems.start)
        for _, block in stems.blocks(BLOCK):  # (sources, channels, n) float64
            audio = np.stack([block[s.source] if s.source is not None else np.zeros_like(block[0]) for s in slots])
            mix = reader.read(block.shape[-1], "float64") if reader is not None else None
            ints, total = exact_tracks(audio, mix, bits)
            if info.channels == 1:
                ints, total = np.repeat(ints, 2, axis=1), np.repeat(total, 2, axis=0)
            writers[0].write(pcm_samples(total, bits))
            for writer, stem in zip(writers[1:], ints):
                writer.write(pcm_samples(stem, bits))
        for writer in writers:
            writer.commit()
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    finally:
        if reader is not None:
            reader.close()
    return mixture is not None


def exact_tracks(audio: np.ndarray, mix: np.ndarray | None, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """audio: the four stems (4, channels, n) float; mix: the original (channels, n) float, or None. Returns the
    stems (4, channels, n) and the mix (channels, n) as ``bits``-bit integers.

    With the original, the mix is the original quantised, and where the rounded stems miss it by no more than their
    rounding (one step per stem; PCM stems that null miss it by nothing) the null rule puts that rounding into the
    last stem. Stems that do not add up to the original are left as they are, and the check says so. Without the
    original, the mix is the stems' sum."""
    ints = quantise(audio, bits)
    if mix is None:
        top = (1 << (bits - 1)) - 1
        return ints, np.clip(ints.sum(axis=0, dtype=np.int64), -top - 1, top).astype(np.int32)
    target = quantise(mix, bits)
    rounding = target.astype(np.int64) - ints.sum(axis=0, dtype=np.int64)
    if rounding.size and int(np.abs(rounding).max()) <= len(ints):
        ints = integer_stems(audio, mix, bits)
    return ints, target


def _encode(ffmpeg: str, tracks: list[Path], out: Path, slots: list[Slot], codec: str, rate: int, title: str) -> None:
    arguments: list[str] = []
    for track in tracks:
        arguments += ["-i", str(track)]
    for i in range(len(tracks)):
        arguments += ["-map", f"{i}:a"]
    if codec == "alac":
        arguments += ["-c:a", "alac"]
    else:
        arguments += ["-c:a", "aac", "-b:a", f"{AAC_BITRATE_KBPS}k"]
    for i, name in enumerate(["mix", *(slot.name for slot in slots)]):
        arguments += [f"-disposition:a:{i}", "default" if i == 0 else "0"]  # only the mix track is enabled
        arguments += [f"-metadata:s:a:{i}", f"title={name}", f"-metadata:s:a:{i}", f"handler_name={name}"]
    arguments += [
        "-map_metadata",
        "-1",
        "-metadata",
        f"title={title}",
        "-fflags",
        "+bitexact",  # no encoder version in the file: the same stems give the same bytes
        "-movie_timescale",
        str(rate),  # the edit lists that trim AAC's priming are then exact to the sample
        "-brand",
        "M4A ",
        "-f",
        "mp4",
        "-y",
        str(out),
    ]
    run_ffmpeg(ffmpeg, arguments, f"encoding the NI Stem file ({codec.upper()})")


def _check(
    ffmpeg: str,
    encoded: Path,
    tracks: list[Path],
    staging: Path,
    slots: list[Slot],
    codec: str,
    bits: int,
    frames: int,
) -> tuple[NullResult, dict[str, NullResult]]:
    """Decode every track of the finished file with ffmpeg; measure the stems' sum against the mix track, and each
    track against what was encoded into it."""
    decoded = [staging / f"decoded {i}.wav" for i in range(len(tracks))]
    arguments = ["-i", str(encoded)]
    for i, target in enumerate(decoded):
        arguments += ["-map", f"0:a:{i}"]
        if codec == "alac":
            arguments += ["-c:a", f"pcm_s{bits}le"]  # lossless: every sample must come back, no more, no fewer
        else:
            arguments += ["-c:a", "pcm_f32le", "-af", f"atrim=end_sample={frames}"]  # AAC pads its last frame
        arguments += ["-f", "wav", "-y", str(target)]
    run_ffmpeg(ffmpeg, arguments, "decoding the NI Stem file to check it")
    null = null_residual(decoded[0], decoded[1:], names=list(NI_STEMS))
    if codec == "aac":
        null = replace(
            null,
            domain="lossy",
            passed=False,
            tolerance="none: AAC is lossy and encodes each track on its own, so the stems cannot null; measured only",
        )
    checked = {
        name: null_residual(track, [back], names=[name])
        for name, track, back in zip(["mix", *NI_STEMS], tracks, decoded)
    }
    return null, checked


def _db(value: float | None) -> str:
    return "-inf" if value is None else f"{value:.1f}"


def _note(codec: str, bits: int, null: NullResult, slots: list[Slot], from_song: bool) -> str:
    mix = "the original song" if from_song else "the sum of the stems (the original song was not given)"
    if codec == "aac":
        text = (
            f"AAC {AAC_BITRATE_KBPS} kbit/s is lossy: its stems do NOT null against its mix track. Measured on the "
            f"decoded file, the stems' sum minus the mix track peaks at {_db(null.peak_dbfs)} dBFS (RMS "
            f"{_db(null.rms_dbfs)} dBFS). The mix track is {mix}. For stems that null, write stems-mp4 (ALAC)."
        )
    elif null.bit_exact:
        text = (
            f"ALAC {bits}-bit, lossless: the four stem tracks null against the mix track bit for bit (checked on the "
            f"decoded file). The mix track is {mix}."
        )
    else:
        text = (
            f"ALAC {bits}-bit: the stem tracks do NOT null against the mix track (residual peak "
            f"{_db(null.peak_dbfs)} dBFS): these stems do not add up to {mix}."
        )
    if any(slot.source is None for slot in slots):
        text += " The drum and bass tracks are silent: a 2-stem model's accompaniment is in the other track."
    return text
