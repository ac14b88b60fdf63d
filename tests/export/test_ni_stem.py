"""NI Stem files (.stem.mp4): real files written from real audio, read back by ffprobe, by stempeg (an independent
reader, through ffmpeg) and by a box walk of our own; ALAC stems are the stems bit for bit and null against the mix
track, AAC says it does not and measures by how much."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
from conftest import DATA, DATA_MISSING
from helpers import STEM_RATE, make_stems, probe_streams, stem_box

from stemdesk.core.errors import AudioError, StemDeskError
from stemdesk.export.ni_stem import NI_STEMS, exact_tracks, write_stem_file
from stemdesk.export.stems import StemsWriter
from stemdesk.io.formats import OutputFormat, quantise
from stemdesk.io.mp4 import set_user_box
from stemdesk.io.stems import find_stems


def ints_of(path, bits: int) -> np.ndarray:
    """A PCM file's samples as integers of its depth, (n, channels)."""
    return sf.read(str(path), dtype="int32", always_2d=True)[0].astype(np.int64) >> (32 - bits)


def read_back(path, bits: int | None = None) -> np.ndarray:
    """Every track of a stem file as stempeg decodes it: (5, n, channels), as integers of ``bits`` when given."""
    import stempeg

    tracks, rate = stempeg.read_stems(str(path), dtype=np.float64, always_3d=True)
    assert rate == STEM_RATE
    return tracks if bits is None else np.rint(tracks * (1 << (bits - 1))).astype(np.int64)


@pytest.mark.parametrize("depth", ["16", "24"])
def test_an_alac_stem_file_holds_the_stems_bit_for_bit_and_they_null_against_its_mix(tmp_path, depth):
    bits = int(depth)
    mixture, folder = make_stems(tmp_path, depth, seconds=3.0)
    stems = replace(find_stems(folder), mixture=mixture)
    written = write_stem_file(stems, tmp_path / "out" / "song")
    path = tmp_path / "out" / "song.stem.mp4"
    assert written.path == path and written.codec == "alac"
    frames = sf.info(str(mixture)).frames

    streams = probe_streams(path)
    assert [s["codec_name"] for s in streams] == ["alac"] * 5
    assert {(int(s["sample_rate"]), s["channels"], s["duration_ts"]) for s in streams} == {(STEM_RATE, 2, frames)}
    assert {s["bits_per_raw_sample"] for s in streams} == {depth}
    assert [s["disposition"]["default"] for s in streams] == [1, 0, 0, 0, 0]  # players play the mix alone
    assert [s["tags"]["handler_name"] for s in streams] == ["mix", *NI_STEMS]

    tracks = read_back(path, bits)
    assert tracks.shape == (5, frames, 2)
    assert np.array_equal(tracks[0], ints_of(mixture, bits))  # the mix track is the song
    for track, name in zip(tracks[1:], NI_STEMS):
        assert np.array_equal(track, ints_of(folder / f"{name}.wav", bits)), name
    assert np.array_equal(tracks[1:].sum(axis=0), tracks[0])  # the null

    box = stem_box(path)
    assert box["version"] == 1 and [s["name"] for s in box["stems"]] == list(NI_STEMS)
    assert all(len(s["color"]) == 7 and s["color"].startswith("#") for s in box["stems"])
    assert (
        box["mastering_dsp"]["compressor"]["enabled"] is False and box["mastering_dsp"]["limiter"]["enabled"] is False
    )

    certificate = json.loads((tmp_path / "out" / "song.stem.mp4.certificate.json").read_text())
    assert certificate["kind"] == "stems-mp4" and certificate["null"]["bit_exact"] and written.null.bit_exact
    assert certificate["settings"]["mix_track"] == "the original song" and certificate["settings"]["bits"] == bits
    assert all(t["bit_exact"] for t in certificate["tracks"].values())
    assert "bit for bit" in written.note and "NOT" not in written.note
    assert sorted(p.name for p in path.parent.iterdir()) == ["song.stem.mp4", "song.stem.mp4.certificate.json"]


def test_an_aac_stem_file_says_it_does_not_null_and_measures_the_residual(tmp_path):
    mixture, folder = make_stems(tmp_path, "24", seconds=3.0)
    written = write_stem_file(replace(find_stems(folder), mixture=mixture), tmp_path / "song", "aac")
    path = tmp_path / "song.aac.stem.mp4"
    frames = sf.info(str(mixture)).frames
    streams = probe_streams(path)
    assert [s["codec_name"] for s in streams] == ["aac"] * 5
    # the edit lists trim AAC's priming and padding exactly, so the container says the song's length
    assert {(int(s["sample_rate"]), s["channels"], s["duration_ts"]) for s in streams} == {(STEM_RATE, 2, frames)}
    assert [s["name"] for s in stem_box(path)["stems"]] == list(NI_STEMS)

    # the residual measured independently: stempeg's decoding, the stems' sum minus the mix track
    tracks = read_back(path)[:, :frames]
    residual = tracks[1:].sum(axis=0) - tracks[0]
    peak = 20 * np.log10(np.abs(residual).max())
    rms = 20 * np.log10(np.sqrt(np.mean(residual**2)))
    assert abs(peak - written.null.peak_dbfs) < 0.1 and abs(rms - written.null.rms_dbfs) < 0.1
    assert -60 < rms < -20  # not a null, and not stems of another song either
    # each stem track is its own stem, give or take the codec (these stems are noise-like, AAC's hardest case)
    stems = [sf.read(str(folder / f"{name}.wav"))[0] for name in NI_STEMS]
    for i, track in enumerate(tracks[1:]):
        errors = [np.sqrt(np.mean((track - stem) ** 2)) for stem in stems]
        assert errors[i] < 0.2 * np.sqrt(np.mean(stems[i] ** 2)) and errors[i] == min(errors), NI_STEMS[i]

    assert not written.null.bit_exact and not written.null.passed and written.null.domain == "lossy"
    assert "do NOT null" in written.note and f"{written.null.peak_dbfs:.1f} dBFS" in written.note
    certificate = json.loads((tmp_path / "song.aac.stem.mp4.certificate.json").read_text())
    assert "cannot null" in certificate["null"]["tolerance"] and certificate["settings"]["bitrate_kbps"] == 256


def test_a_two_stem_model_fills_other_and_vocals_and_leaves_drums_and_bass_silent(tmp_path):
    mixture, folder = make_stems(tmp_path, "24", seconds=2.0, names=["vocals", "accompaniment"])
    written = write_stem_file(replace(find_stems(folder), mixture=mixture), tmp_path / "song")
    tracks = read_back(written.path, 24)
    assert not tracks[1].any() and not tracks[2].any()
    assert np.array_equal(tracks[3], ints_of(folder / "accompaniment.wav", 24))
    assert np.array_equal(tracks[4], ints_of(folder / "vocals.wav", 24))
    assert np.array_equal(tracks[1:].sum(axis=0), tracks[0]) and written.null.bit_exact
    assert [s["name"] for s in stem_box(written.path)["stems"]] == ["(silent)", "(silent)", "accompaniment", "vocals"]
    assert "drum and bass tracks are silent" in written.note


def test_stems_that_do_not_fit_nis_four_are_refused_with_what_to_do(tmp_path):
    _, folder = make_stems(tmp_path, "16", seconds=1.0, names=["vocals", "drums", "rest"])
    with pytest.raises(StemDeskError, match="4-stem model") as raised:
        write_stem_file(find_stems(folder), tmp_path / "song")
    assert "vocals, drums, rest" in str(raised.value)
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".*"))


def test_without_the_song_the_mix_track_is_the_stems_sum_which_is_the_song(tmp_path):
    mixture, folder = make_stems(tmp_path, "24", seconds=2.0)
    written = write_stem_file(find_stems(folder), tmp_path / "song")
    tracks = read_back(written.path, 24)
    assert np.array_equal(tracks[0], ints_of(mixture, 24)) and written.null.bit_exact
    assert "sum of the stems" in written.note


def test_float_stems_are_written_at_24_bits_and_still_null(tmp_path):
    mixture, folder = make_stems(tmp_path, "32f", seconds=2.0)
    written = write_stem_file(replace(find_stems(folder), mixture=mixture), tmp_path / "song")
    tracks = read_back(written.path, 24)
    assert {s["bits_per_raw_sample"] for s in probe_streams(written.path)} == {"24"}
    assert np.array_equal(tracks[0], quantise(sf.read(str(mixture))[0], 24))
    assert np.array_equal(tracks[1:].sum(axis=0), tracks[0]) and written.null.bit_exact
    for track, name in zip(tracks[1:], NI_STEMS):  # only the rounding moved, by a step or two
        assert np.abs(track - quantise(sf.read(str(folder / f"{name}.wav"))[0], 24)).max() <= 4, name


def test_mono_stems_become_stereo_tracks_with_identical_channels(tmp_path):
    mixture, folder = make_stems(tmp_path, "16", seconds=1.5, channels=1)
    written = write_stem_file(replace(find_stems(folder), mixture=mixture), tmp_path / "song")
    assert {s["channels"] for s in probe_streams(written.path)} == {2}
    tracks = read_back(written.path, 16)
    assert np.array_equal(tracks[..., 0], tracks[..., 1])
    assert np.array_equal(tracks[2, :, 0], ints_of(folder / "bass.wav", 16)[:, 0]) and written.null.bit_exact


def test_the_null_rule_moves_only_rounding_never_a_real_mismatch():
    rng = np.random.default_rng(1)
    mix = rng.uniform(-0.5, 0.5, (2, 1000))
    stems = rng.dirichlet(np.ones(4), 1000).T[:, None, :] * mix[None]
    ints, total = exact_tracks(stems.astype(np.float32), mix, 24)  # float32 stems: their sum misses by rounding
    assert np.array_equal(ints.sum(axis=0), total)
    ints, total = exact_tracks(stems * 0.5, mix, 24)  # stems of half the song: left alone, the check will say so
    assert np.array_equal(ints, quantise(stems * 0.5, 24)) and np.array_equal(total, quantise(mix, 24))


def test_a_song_that_is_not_the_stems_source_is_refused(tmp_path, song_file):
    _, folder = make_stems(tmp_path, "24", seconds=2.0)
    other = song_file("other.wav", seconds=1.0)
    with pytest.raises(AudioError, match="is not the song of these stems"):
        write_stem_file(replace(find_stems(folder), mixture=other), tmp_path / "song")
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".*"))


def test_without_ffmpeg_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    _, folder = make_stems(tmp_path, "16", seconds=1.0)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(AudioError, match="needs ffmpeg") as raised:
        write_stem_file(find_stems(folder), tmp_path / "song")
    assert "apt-get install ffmpeg" in str(raised.value)
    assert not list(tmp_path.glob("*.mp4"))


def test_aac_refuses_a_rate_it_cannot_hold(tmp_path):
    fmt = OutputFormat.parse("wav", "24")
    with StemsWriter(tmp_path / "stems", list(NI_STEMS), 192000, 2, fmt) as writer:
        writer.write(np.zeros((4, 2, 1000)), np.zeros((2, 1000)))
        writer.commit()
    with pytest.raises(AudioError, match="ALAC"):
        write_stem_file(find_stems(tmp_path / "stems"), tmp_path / "song", "aac")


def test_the_stem_box_goes_in_wherever_moov_lies(tmp_path):
    """ffmpeg puts moov last; a file with moov first (faststart) has its chunk offsets moved with mdat."""
    wav = tmp_path / "a.wav"
    sf.write(str(wav), np.random.default_rng(0).uniform(-0.5, 0.5, (20000, 2)), 44100, subtype="PCM_16")
    for flags in ([], ["-movflags", "+faststart"]):
        mp4 = tmp_path / f"a{len(flags)}.mp4"
        subprocess.run(
            [shutil.which("ffmpeg"), "-v", "error", "-i", str(wav), "-c:a", "alac", *flags, str(mp4)], check=True
        )
        set_user_box(mp4, b"stem", b'{"version": 1, "stems": []}')
        set_user_box(mp4, b"stem", b'{"version": 1, "stems": [], "again": true}')  # replaced, not added
        assert stem_box(mp4) == {"version": 1, "stems": [], "again": True}
        back = tmp_path / f"back{len(flags)}.wav"
        subprocess.run([shutil.which("ffmpeg"), "-v", "error", "-i", str(mp4), str(back)], check=True)
        assert np.array_equal(sf.read(str(back), dtype="int16")[0], sf.read(str(wav), dtype="int16")[0])


@pytest.mark.data
@pytest.mark.slow
def test_real_stems_in_both_codecs(tmp_path):
    """A real song's stems (a MUSDB excerpt): ALAC nulls bit for bit, AAC reports what it leaves."""
    songs = sorted((DATA / "musdb7-train").glob("*/vocals.ogg")) if DATA.is_dir() else []
    if not songs:
        pytest.skip(DATA_MISSING)
    parts = {n: sf.read(str(songs[0].parent / f"{n}.ogg"), dtype="float64", always_2d=True)[0].T for n in NI_STEMS}
    mix = sum(parts.values())
    mixture = tmp_path / "mixture.wav"
    sf.write(str(mixture), mix.T, STEM_RATE, subtype="PCM_24")
    with StemsWriter(tmp_path / "stems", list(NI_STEMS), STEM_RATE, 2, OutputFormat.parse("wav", "24")) as writer:
        writer.write(np.stack(list(parts.values())), sf.read(str(mixture), dtype="float64")[0].T)
        writer.commit()
    stems = replace(find_stems(tmp_path / "stems"), mixture=mixture)
    alac = write_stem_file(stems, tmp_path / "song", "alac")
    aac = write_stem_file(stems, tmp_path / "song", "aac")
    assert alac.null.bit_exact and all(t.bit_exact for t in alac.tracks.values())
    assert not aac.null.passed and aac.null.rms_dbfs is not None and aac.null.rms_dbfs < -30
    assert aac.path.stat().st_size < alac.path.stat().st_size / 2
