"""AAF compositions for Pro Tools, Logic, Nuendo and Media Composer, written with pyaaf2: one sound track per stem (a
split stem's children each on their own, named "vocals lead"), its clip from 0 for the stem's whole length at the
stems' sample rate as the edit rate, its level from the mix as clip gain, and the media embedded in the file (one
file to hand over: ``aaf``) or linked to the stem files where they are (``aaf-linked``).

Embedded media is PCM at the stems' depth, the samples as the stem files hold them (float stems are written at 24
bits: AAF's PCM is integer). Each stem is a master mob (its name) over a source mob holding its essence; the
composition's tracks play the master mobs. Clip gain is an operation group (Avid's Mono Audio Gain, a constant
amplitude) around a clip whose strip is not at 0 dB; a muted stem's clip has gain 0. Pan, solo, effects and automation
are not carried by an AAF composition, and the export says so.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..io.atomic import atomic_path
from ..io.audio import AudioReader
from ..io.formats import PCM_BITS
from ..io.registry import Written
from ..io.stems import Stems
from ..mixer.mix import Channel, Mix, parent_of
from ..mixer.render import db_to_gain
from .carried import left_out

if TYPE_CHECKING:
    from aaf2.components import Segment, Sequence

MONO_AUDIO_GAIN = "9d2ea894-0968-11d3-8a38-0050040ef7d2"  # Avid's clip gain
AMPLITUDE = "e4962321-2267-11d3-8a4c-0050040ef7d2"
BLOCK = 1 << 16


def _pcm_bytes(block: np.ndarray, bits: int) -> bytes:
    """(channels, n) float64 of a PCM file's samples → interleaved little-endian signed integers of ``bits``."""
    scale = float(1 << (bits - 1))
    ints = np.ascontiguousarray(np.clip(np.round(block.T * scale), -scale, scale - 1).astype("<i4"))
    if bits == 16:
        return ints.astype("<i2").tobytes()
    return ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()  # 24-bit: the low three bytes of each int32


def _gain_of(mix: Mix, key: str) -> float:
    """A leaf's level in the mix as an amplitude: its fader and its group's, 0 when it is not heard."""
    if not mix.heard(key):
        return 0.0
    db = mix.channels.get(key, Channel()).gain_db
    group = parent_of(key)
    if group is not None:
        db += mix.channels.get(group, Channel()).gain_db
    return db_to_gain(db)


def _append(sequence: Sequence, component: Segment) -> None:
    """``component`` at the end of ``sequence``, whose length grows by the component's: AAF makes a sequence as long
    as its components together, and pyaaf2 leaves that to the writer (its sequences stay at length 0, which a reader
    that takes a track's length from its sequence reads as an empty track, and a strict one refuses)."""
    sequence.components.append(component)
    sequence.length = (sequence.length or 0) + component.length


def write_aaf_file(stems: Stems, mix: Mix, out: str | Path, embed: bool = True) -> Written:
    """The AAF of ``stems`` at ``out`` (``.aaf`` added), written atomically."""
    import aaf2
    from aaf2.auid import AUID

    out = Path(out)
    if out.suffix.lower() != ".aaf":
        out = out.with_name(out.name + ".aaf")
    info = stems.info
    rate, frames, channels = info.sample_rate, info.frames, info.channels
    bits = PCM_BITS.get(info.subtype) or 24
    leaves = stems.leaves()
    with atomic_path(out) as temp:
        with aaf2.open(str(temp), "w") as f:
            opdef = f.create.OperationDef(AUID(MONO_AUDIO_GAIN), "Audio Gain", "clip gain")
            opdef.media_kind = "sound"
            opdef["NumberInputs"].value = 1
            paramdef = f.create.ParameterDef(AUID(AMPLITUDE), "Amplitude", "clip gain as an amplitude", "Rational")
            f.dictionary.register_def(opdef)
            f.dictionary.register_def(paramdef)
            opdef["ParametersDefined"].append(paramdef)
            composition = f.create.CompositionMob(out.stem)
            f.content.mobs.append(composition)
            for key, path in leaves:
                name = key.replace("/", " ")
                source = f.create.SourceMob(f"{name}.PHYS")
                f.content.mobs.append(source)
                essence, slot = source.create_essence(rate, "sound", offline=not embed)
                descriptor = f.create.PCMDescriptor()
                source.descriptor = descriptor
                descriptor["Channels"].value = channels
                descriptor["BlockAlign"].value = channels * bits // 8
                descriptor["SampleRate"].value = rate
                descriptor["AverageBPS"].value = rate * channels * bits // 8
                descriptor["QuantizationBits"].value = bits
                descriptor["AudioSamplingRate"].value = rate
                descriptor.length = frames
                slot.segment.length = frames
                if embed:
                    stream = essence.open("w")
                    reader = AudioReader(path)
                    try:
                        for _ in range(0, frames, BLOCK):
                            stream.write(_pcm_bytes(reader.read(BLOCK, "float64"), bits))
                    finally:
                        reader.close()
                else:
                    locator = f.create.NetworkLocator()
                    locator["URLString"].value = Path(path).resolve().as_uri()
                    descriptor["Locator"].append(locator)
                    descriptor["ContainerFormat"].value = f.dictionary.lookup_containerdef("External")
                master = f.create.MasterMob(name)
                f.content.mobs.append(master)
                master_slot = master.create_timeline_slot(edit_rate=rate)
                master_slot.segment = source.create_source_clip(slot.slot_id, media_kind="sound")
                master_slot.segment.length = frames
                track = composition.create_sound_slot(edit_rate=rate)
                track.name = name
                clip = master.create_source_clip(master_slot.slot_id, start=0, length=frames, media_kind="sound")
                gain = _gain_of(mix, key)
                if gain != 1.0:
                    group = f.create.OperationGroup(opdef, length=frames, media_kind="sound")
                    group.segments.append(clip)
                    amplitude = Fraction(gain).limit_denominator(1 << 30) if gain else Fraction(0)
                    group.parameters.append(f.create.ConstantValue(paramdef, amplitude))
                    _append(track.segment, group)
                else:
                    _append(track.segment, clip)
    notes = []
    if embed and PCM_BITS.get(info.subtype) is None:
        notes.append("The stems are float: their media is written at 24 bits (AAF's PCM is integer).")
    left = left_out(mix, [key for key, _ in leaves])
    if left:
        notes.append(f"Left out of the AAF: {left}. Bounce the mix for them.")
    midi = [path.with_suffix(".mid").name for _, path in leaves if path.with_suffix(".mid").is_file()]
    if midi:  # AAF's sound tracks hold audio: the notes go to the DAW as the MIDI files beside the stems
        notes.append(f"The AAF holds audio only: import the MIDI files beside the stems ({', '.join(midi)}).")
    return Written(out, " ".join(notes))


def write_aaf(stems: Stems, mix: Mix, out: str | Path, tempo: float | None = None) -> Written:
    """``aaf``: the media embedded, one file to hand over."""
    return write_aaf_file(stems, mix, out, embed=True)


def write_aaf_linked(stems: Stems, mix: Mix, out: str | Path, tempo: float | None = None) -> Written:
    """``aaf-linked``: ``<out> linked.aaf``, the media linked to the stem files where they are (file URLs)."""
    out = Path(out)
    return write_aaf_file(stems, mix, out.with_name(f"{out.name} linked"), embed=False)
