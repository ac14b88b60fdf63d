"""AAF compositions, read back with pyaaf2 as a second program would read them: one sound track per stem (split
children included) from 0, its length in samples, the stems' sample rate as the edit rate, the names, clip gain from
the mix, and the embedded media byte for byte the stem files' samples (or, linked, the stem files' URLs)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import aaf2
import numpy as np
import pytest
import soundfile as sf
from helpers import run, tiny_split_model

from stemdesk.io.stems import find_stems
from stemdesk.mixer.mix import Mix


def samples(data: bytes, bits: int, channels: int) -> np.ndarray:
    """Interleaved little-endian PCM → (frames, channels) integers."""
    if bits == 16:
        return np.frombuffer(data, "<i2").reshape(-1, channels).astype(np.int64)
    raw = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int64)
    value = raw[:, 0] | raw[:, 1] << 8 | raw[:, 2] << 16
    return np.where(value >= 1 << 23, value - (1 << 24), value).reshape(-1, channels)


def file_samples(path: Path, bits: int) -> np.ndarray:
    return sf.read(str(path), dtype="int32", always_2d=True)[0].astype(np.int64) >> (32 - bits)


def tracks(path: Path) -> dict:
    """What the AAF holds, read with pyaaf2: per composition track, its name, edit rate, length, clip gain and media."""
    out = {}
    with aaf2.open(str(path), "r") as f:
        (composition,) = list(f.content.compositionmobs())
        for slot in composition.slots:
            (segment,) = slot.segment.components
            gain = 1.0
            if isinstance(segment, aaf2.components.OperationGroup):
                (parameter,) = segment.parameters
                gain = float(parameter.value)
                (segment,) = segment.segments
            master = segment.mob
            source = master.slot_at(segment.slot_id).segment.mob
            descriptor = source.descriptor
            locators = [loc["URLString"].value for loc in descriptor["Locator"]] if "Locator" in descriptor else []
            essence = source.essence
            out[slot.name] = {
                "edit_rate": float(slot.edit_rate),
                "start": segment.start,
                "length": segment.length,
                "gain": gain,
                "master": master.name,
                "rate": float(descriptor["SampleRate"].value),
                "bits": descriptor["QuantizationBits"].value,
                "channels": descriptor["Channels"].value,
                "frames": descriptor.length,
                "media": essence.open("r").read() if essence is not None else None,
                "locators": locators,
            }
        name = composition.name
    return {"name": name, "tracks": out}


@pytest.mark.parametrize("depth", ["16", "24"])
def test_an_aaf_holds_each_stem_as_a_track_with_its_samples_and_clip_gain(song_file, tmp_path, depth):
    tiny_split_model()
    song = song_file(seconds=3.0, subtype="PCM_16")
    out = tmp_path / "out"
    code, _, err = run(
        "separate", song, "-o", out, "--model", "tiny-4stem", "--split", "vocals=tiny-split", "--bit-depth", depth
    )
    assert code == 0, err
    folder = out / "song"
    mix = Mix()
    mix.set_control("bass/gain_db", -6.0)
    mix.set_control("vocals/gain_db", 3.0)  # the group's level goes onto each child's clip
    mix.set_control("vocals/backing/gain_db", -3.0)
    mix.set_control("drums/mute", 1.0)
    (tmp_path / "mix.json").write_text(mix.to_json())
    mix_file = tmp_path / "mix.json"
    code, text, err = run(
        "export", folder, "--session", "aaf,aaf-linked", "--mix", mix_file, "-o", tmp_path / "x" / "song"
    )
    assert code == 0, err
    stems = find_stems(folder)
    leaves = dict(stems.leaves())
    frames, bits = stems.info.frames, int(depth)
    embedded = tracks(tmp_path / "x" / "song.aaf")
    assert embedded["name"] == "song"
    assert list(embedded["tracks"]) == ["vocals lead", "vocals backing", "drums", "bass", "other"]
    gains = {"vocals lead": 10 ** (3 / 20), "vocals backing": 1.0, "drums": 0.0, "bass": 10 ** (-6 / 20), "other": 1.0}
    for name, track in embedded["tracks"].items():
        key = name.replace(" ", "/")
        assert track["edit_rate"] == track["rate"] == 44100.0 and track["master"] == name
        assert (track["start"], track["length"], track["frames"]) == (0, frames, frames)
        assert (track["bits"], track["channels"]) == (bits, 2)
        assert track["gain"] == pytest.approx(gains[name], rel=1e-6), name
        # the media, byte for byte the samples of the stem file
        assert np.array_equal(samples(track["media"], bits, 2), file_samples(leaves[key], bits)), name
    linked = tracks(tmp_path / "x" / "song linked.aaf")
    for name, track in linked["tracks"].items():
        assert track["media"] is None and track["length"] == frames
        assert track["locators"] == [leaves[name.replace(" ", "/")].resolve().as_uri()]
    assert (tmp_path / "x" / "song.aaf").stat().st_size > 5 * frames * 2 * bits // 8  # the media is inside


def test_float_stems_go_into_the_aaf_at_24_bits_and_the_export_says_so(song_file, tmp_path):
    song = song_file(seconds=2.0, subtype="PCM_16")
    code, _, err = run("separate", song, "-o", tmp_path / "out", "--model", "tiny-4stem", "--bit-depth", "32f")
    assert code == 0, err
    folder = tmp_path / "out" / "song"
    code, text, err = run("export", folder, "--session", "aaf", "-o", tmp_path / "song")
    assert code == 0, err
    assert "written at 24 bits" in text + err
    held = tracks(tmp_path / "song.aaf")["tracks"]
    stems = dict(find_stems(folder).leaves())
    for name, track in held.items():
        assert track["bits"] == 24
        floats = sf.read(str(stems[name]), dtype="float64", always_2d=True)[0]
        expected = np.clip(np.round(floats * 2**23), -(2**23), 2**23 - 1).astype(np.int64)
        assert np.array_equal(samples(track["media"], 24, 2), expected), name


GAINS = {"vocals lead": 10 ** (3 / 20), "vocals backing": 1.0, "drums": 0.0, "bass": 10 ** (-6 / 20), "other": 1.0}


@pytest.fixture
def exported(song_file, tmp_path) -> dict:
    """A split separation exported as ``aaf`` and ``aaf-linked`` with the mix of ``GAINS`` (a group's level on its
    children's clips, a muted stem at 0): the two files, the stems' frames and rate, and the stem files by track."""
    tiny_split_model()
    song = song_file(seconds=3.0, subtype="PCM_16")
    code, _, err = run(
        "separate", song, "-o", tmp_path / "out", "--model", "tiny-4stem", "--split", "vocals=tiny-split"
    )
    assert code == 0, err
    folder = tmp_path / "out" / "song"
    mix = Mix()
    mix.set_control("bass/gain_db", -6.0)
    mix.set_control("vocals/gain_db", 3.0)
    mix.set_control("vocals/backing/gain_db", -3.0)
    mix.set_control("drums/mute", 1.0)
    (tmp_path / "mix.json").write_text(mix.to_json())
    code, _, err = run(
        "export", folder, "--session", "aaf,aaf-linked", "--mix", tmp_path / "mix.json", "-o", tmp_path / "x" / "song"
    )
    assert code == 0, err
    stems = find_stems(folder)
    return {
        "files": {"song": tmp_path / "x" / "song.aaf", "song linked": tmp_path / "x" / "song linked.aaf"},
        "frames": stems.info.frames,
        "rate": stems.info.sample_rate,
        "stems": {key.replace("/", " "): path for key, path in stems.leaves()},
    }


def checked_length(segment, where: str) -> int:
    """A segment's Length, after checking it against what it holds by the AAF Object Specification's rules: a
    sequence is as long as its components together (less its transitions, which overlap their neighbours), an
    operation group (not a time warp) as long as each of its input segments. A reader that takes a track's length
    from its sequence sees what this checks; pyaaf2 computes none of it."""
    if isinstance(segment, aaf2.components.Sequence):
        total = 0
        for index, component in enumerate(segment.components):
            length = checked_length(component, f"{where}, component {index}")
            total += -length if isinstance(component, aaf2.components.Transition) else length
        assert segment.length == total, f"{where}: a sequence of length {segment.length} holds {total}"
    elif isinstance(segment, aaf2.components.OperationGroup):
        inputs = list(segment.segments)
        assert inputs, f"{where}: an operation group without an input"
        for index, child in enumerate(inputs):
            length = checked_length(child, f"{where}, input {index}")
            assert length == segment.length, f"{where}: an operation group of length {segment.length}, input {length}"
    elif isinstance(segment, aaf2.components.SourceClip) and segment.mob is not None:
        held = segment.mob.slot_at(segment.slot_id).segment.length
        assert 0 <= segment.start and segment.start + segment.length <= held, (
            f"{where}: a clip of {segment.start}+{segment.length} in a slot of {held}"
        )
    return segment.length


def test_every_segment_of_an_aaf_is_as_long_as_what_it_holds_and_each_slot_as_long_as_its_stem(exported):
    """Every slot the writer makes (the composition's tracks, each master and source mob's), reopened with pyaaf2:
    each segment's Length follows AAF's rules for what it holds, down to the clips, and each slot's segment is the
    stem's length in the slot's edit rate, not 0 (a reader that takes a track's length from its sequence would see an
    empty track; a strict one refuses the file)."""
    frames, rate = exported["frames"], exported["rate"]
    assert frames > 0
    for name, path in exported["files"].items():
        with aaf2.open(str(path), "r") as f:
            mobs = list(f.content.mobs)
            kinds = [type(mob).__name__ for mob in mobs]
            assert kinds.count("CompositionMob") == 1 and kinds.count("MasterMob") == kinds.count("SourceMob") == 5
            for mob in mobs:
                for slot in mob.slots:
                    where = f"{path.name}: {type(mob).__name__} {mob.name!r}, slot {slot.slot_id}"
                    expected = Fraction(frames) * Fraction(slot.edit_rate) / rate
                    assert expected.denominator == 1, where
                    assert checked_length(slot.segment, where) == expected, where
                if isinstance(mob, aaf2.mobs.SourceMob):
                    assert mob.descriptor.length == frames, f"{path.name}: {mob.name!r}'s descriptor"
            (composition,) = list(f.content.compositionmobs())
            assert composition.name == name
            assert [slot.name for slot in composition.slots] == list(GAINS)
            assert all(isinstance(slot.segment, aaf2.components.Sequence) for slot in composition.slots)


def test_opentimelineio_reads_each_track_with_its_stems_name_length_and_clip_gain(exported):
    """A second reader, independent of pyaaf2's writing side: OpenTimelineIO's AAF adapter (otio-aaf-adapter, which
    reads through pyaaf2 but builds its own timeline). Each file is one timeline of five audio tracks, each named
    after its stem and as long as it to the sample, holding one clip from 0. Clip gain is exposed as an effect named
    after the operation ("Audio Gain") whose AAF metadata holds the Amplitude parameter as a fraction's text: it is
    there exactly where the mix's level is not unity (a muted stem's at 0). Linked media is an external reference to the stem file;
    embedded media has no reference kind in OTIO (a missing reference of the stem's length).

    OTIO computes a track's duration from its items, so its simplified timeline looks right even where the AAF's
    sequence says 0; read unsimplified, it also carries the Length each sequence declares, which must agree."""
    otio = pytest.importorskip("opentimelineio", reason="scripts/setup.sh --test installs it (the test extra)")
    pytest.importorskip("otio_aaf_adapter", reason="scripts/setup.sh --test installs it (the test extra)")
    frames, rate = exported["frames"], exported["rate"]
    length = otio.opentime.RationalTime(frames, rate)
    for name, path in exported["files"].items():
        timeline = otio.adapters.read_from_file(str(path), adapter_name="AAF")
        assert timeline.name == name
        tracks = [track for track in timeline.tracks if track.kind == otio.schema.TrackKind.Audio]
        assert [track.name for track in tracks] == list(GAINS) and len(timeline.tracks) == len(tracks)
        assert timeline.duration() == length
        for track in tracks:
            assert track.duration() == length, track.name
            (clip,) = list(track)
            assert isinstance(clip, otio.schema.Clip) and clip.name == track.name
            assert clip.source_range == otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate), length)
            gains = [
                float(Fraction(effect.metadata["AAF"]["Parameters"]["Amplitude"]))
                for effect in clip.effects
                if effect.name == "Audio Gain"
            ]
            assert len(gains) == len(clip.effects), track.name
            assert gains == ([] if GAINS[track.name] == 1.0 else [pytest.approx(GAINS[track.name], rel=1e-6)])
            reference = clip.media_reference
            assert reference.available_range.duration == length, track.name
            if name.endswith("linked"):
                assert isinstance(reference, otio.schema.ExternalReference)
                assert reference.target_url == exported["stems"][track.name].resolve().as_uri()
            else:
                assert isinstance(reference, otio.schema.MissingReference), track.name
        raw = otio.adapters.read_from_file(str(path), adapter_name="AAF", simplify=False)
        sequences = [
            item for item in raw.find_children() if item.metadata.get("AAF", {}).get("ClassName") == "Sequence"
        ]
        assert len(sequences) == len(GAINS)
        for sequence in sequences:
            assert sequence.metadata["AAF"]["Length"] == sequence.duration().value == frames, path.name
