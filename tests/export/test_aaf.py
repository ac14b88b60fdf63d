"""AAF compositions, read back with pyaaf2 as a second program would read them: one sound track per stem (split
children included) from 0, its length in samples, the stems' sample rate as the edit rate, the names, clip gain from
the mix, and the embedded media byte for byte the stem files' samples (or, linked, the stem files' URLs)."""

from __future__ import annotations

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
