"""Songs in MP4, Matroska and WebM (AAC, ALAC, Opus, Vorbis; a video's sound track), decoded by ffmpeg
(issue 53): they separate like any song, their stems null against the samples ffmpeg decodes, errors name the file
as given, and no temporary decoding is left behind.

The files are made here by ffmpeg itself, and the mixture the stems are checked against is decoded here by ffmpeg
too (to raw f32le), independently of StemDesk."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import run

from stemdesk.core.errors import AudioError
from stemdesk.io import decode
from stemdesk.io.audio import READABLE, SONG_SUFFIXES_READ, AudioReader, probe, read
from stemdesk.io.ffmpeg import FfmpegMissing
from stemdesk.io.formats import quantise
from stemdesk.io.stems import read_certificate

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
    reason="ffmpeg and ffprobe are not installed (sudo apt-get install ffmpeg; scripts/setup.sh installs it)",
)

SECONDS = 3
# a tone and a little noise, stereo with different channels, so a mask network has something to split
SOUND = ["-f", "lavfi", "-i", f"aevalsrc=0.3*sin(2*PI*220*t)+0.05*random(0)|0.2*sin(2*PI*330*t):d={SECONDS}"]
PICTURE = ["-f", "lavfi", "-i", f"testsrc=size=64x64:rate=10:duration={SECONDS}"]
SONGS = {  # name: ffmpeg's arguments after the inputs
    "aac.m4a": [*SOUND, "-c:a", "aac"],
    "alac.m4a": [*SOUND, "-c:a", "alac", "-sample_fmt", "s16p"],
    "alac24.m4a": [*SOUND, "-c:a", "alac", "-sample_fmt", "s32p"],
    "opus.webm": [*SOUND, "-c:a", "libopus"],
    "opus.opus": [*SOUND, "-c:a", "libopus"],
    "vorbis.mkv": [*SOUND, "-c:a", "libvorbis"],
    "video.mp4": [*PICTURE, *SOUND, "-c:v", "libx264", "-c:a", "aac", "-shortest"],
}


def ffmpeg(*arguments) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, arguments)], check=True)


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("containers")
    for name, arguments in SONGS.items():
        ffmpeg(*arguments, folder / name)
    return {name: folder / name for name in SONGS}


def decoded_by_ffmpeg(path: Path) -> np.ndarray:
    """(channels, frames) float64: the first audio stream as ffmpeg decodes it, read raw, without StemDesk."""
    streams = json.loads(
        subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_streams", "-of", "json", str(path)],
            capture_output=True,
            check=True,
        ).stdout
    )["streams"]
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "f32le", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, dtype="<f4").reshape(-1, streams[0]["channels"]).T.astype(np.float64)


def decoded_independently(path: Path) -> np.ndarray:
    """The samples StemDesk must have separated, decoded here: Ogg Opus by libsndfile, which StemDesk reads it
    with (libopus: ffmpeg's own Opus decoder differs from it by up to 1e-5), everything else by ffmpeg."""
    if path.suffix == ".opus":
        return sf.read(str(path), dtype="float64", always_2d=True)[0].T
    return decoded_by_ffmpeg(path)


def leftovers() -> list[Path]:
    """The decoding folders in this test's temporary folder (the conftest gives each test its own)."""
    return sorted(Path(tempfile.gettempdir()).glob(decode.PREFIX + "*"))


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts and ends without decodings (a bare probe keeps its decoding until the process exits)."""
    decode.remove_all()
    yield
    decode.remove_all()


def test_the_formats_are_offered_where_songs_are_chosen():
    for suffix in (".m4a", ".mp4", ".m4v", ".mov", ".mkv", ".mka", ".webm", ".opus"):
        assert suffix in SONG_SUFFIXES_READ  # the app's open dialog, and the folders a batch walks
    assert "M4A (AAC or ALAC)" in READABLE and "MKV" in READABLE and "WebM" in READABLE


def test_batch_finds_the_new_formats(tmp_path):
    from stemdesk.jobs.batch import discover_catalog

    for name in ("a.m4a", "b.mkv", "c.webm", "d.mp4", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [Path(song.input).name for song in discover_catalog(tmp_path)] == ["a.m4a", "b.mkv", "c.webm", "d.mp4"]


@pytest.mark.parametrize("name", list(SONGS))
def test_probe_and_read_give_the_samples_ffmpeg_decodes(songs, name):
    """The length is the decoded samples' (AAC's encoder padding included, as ffmpeg decodes it), not the
    container's, and the samples are ffmpeg's exactly: float codecs as float, ALAC's integers as integers."""
    expected = decoded_independently(songs[name])
    info = probe(songs[name])
    assert (info.channels, info.frames) == expected.shape
    assert info.path == songs[name]
    audio, rate = read(songs[name])
    assert rate == info.sample_rate and np.array_equal(audio.astype(np.float64), expected)
    if name.startswith("alac"):
        assert info.subtype == ("PCM_24" if name == "alac24.m4a" else "PCM_16")
    if name == "opus.opus":  # Ogg Opus: libsndfile reads it itself, as it did before, within float rounding of ffmpeg
        assert info.decoded is None and np.abs(audio - decoded_by_ffmpeg(songs[name])).max() < 1e-4
    else:
        assert info.decoded is not None and info.decoder.startswith("ffmpeg")
        assert info.decoded.parent.parent == Path(tempfile.gettempdir())


def test_a_decoding_is_made_once_and_a_job_holding_it_removes_it(songs):
    song = songs["aac.m4a"]
    with decode.holding(song):
        first = probe(song)
        assert probe(song).decoded == first.decoded  # decoded once
        assert leftovers() == [first.decoded.parent]
    assert leftovers() == []  # the job made it and ended: gone
    bare = probe(song)
    with decode.holding(song):
        assert probe(song).decoded == bare.decoded
    assert leftovers() == [bare.decoded.parent]  # a bare probe's stays for the next probe (the app's open song)
    decode.remove_all()  # what exiting does
    assert leftovers() == []


def test_bare_probes_keep_only_the_newest_decodings(songs, tmp_path):
    copies = []
    for i in range(decode.KEEP + 2):
        copies.append(tmp_path / f"song{i}.m4a")
        shutil.copy(songs["aac.m4a"], copies[-1])
        probe(copies[-1])
    assert len(leftovers()) == decode.KEEP


def test_a_reader_decodes_again_when_the_decoding_was_removed(songs):
    info = probe(songs["vorbis.mkv"])
    decode.remove_all()
    with AudioReader(info) as reader:
        assert np.array_equal(reader.read(info.frames).astype(np.float64), decoded_by_ffmpeg(songs["vorbis.mkv"]))


def test_ctrl_c_while_decoding_leaves_nothing(songs, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(decode.sf, "info", interrupted)  # after ffmpeg wrote the WAV
    with pytest.raises(KeyboardInterrupt):
        probe(songs["aac.m4a"])
    assert leftovers() == []


def test_the_decodings_of_a_killed_process_are_swept(songs):
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = Path(tempfile.gettempdir()) / f"{decode.PREFIX}{gone.pid}-abcd1234"
    stale.mkdir()
    (stale / "decoded.wav").write_bytes(b"RIFF")
    probe(songs["aac.m4a"])
    assert stale not in leftovers() and len(leftovers()) == 1


def assert_separated(song: Path, folder: Path, depth: str = "24") -> None:
    """The stems open, are as long as ffmpeg's decoding of ``song``, add up to it (bit for bit at ``depth``), and
    the certificate says the null passed against it."""
    mixture = decoded_independently(song)
    cert = read_certificate(folder)
    paths = [folder / item["file"] for item in cert["outputs"] if item["file"].endswith(".wav")]
    assert len(paths) == 4
    assert cert["null"]["passed"] and cert["null"]["frames"] == mixture.shape[1]
    assert cert["source"]["file"] == song.name
    assert cert["source"].get("decoded_by", "").startswith("ffmpeg") == (song.suffix != ".opus")
    if depth == "32f":
        total = sum(sf.read(str(p), dtype="float64", always_2d=True)[0].T for p in paths)
        assert np.abs(total - mixture).max() <= 10 ** (-138 / 20)
    else:
        bits = int(depth)
        stems = [sf.read(str(p), dtype="int32", always_2d=True)[0].T.astype(np.int64) >> (32 - bits) for p in paths]
        assert all(s.shape == mixture.shape for s in stems)
        assert np.array_equal(sum(stems), quantise(mixture, bits)) and cert["null"]["bit_exact"]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SONGS))
def test_the_command_line_separates_them_and_the_stems_null(songs, name, tmp_path):
    out = tmp_path / "out"
    code, said, err = run("separate", songs[name], "-o", out, "--model", "tiny-4stem")
    assert code == 0, err
    assert "null-sum check: bit-exact" in said
    assert_separated(songs[name], out / songs[name].stem)
    assert leftovers() == []


@pytest.mark.slow
def test_float_stems_null_against_the_decoded_aac(songs, tmp_path):
    out = tmp_path / "out"
    code, _, err = run("separate", songs["aac.m4a"], "-o", out, "--model", "tiny-4stem", "--bit-depth", "32f")
    assert code == 0, err
    assert_separated(songs["aac.m4a"], out / "aac", "32f")


@pytest.mark.slow
def test_the_api_separates_a_video_with_its_extras_from_one_decoding(songs, tmp_path, monkeypatch):
    from stemdesk import api

    decodings, seen = [], set()
    real = decode._decode
    monkeypatch.setattr(decode, "_decode", lambda *args: decodings.append(real(*args)) or decodings[-1])
    made = api.separate(
        songs["video.mp4"],
        "tiny-4stem",
        tmp_path / "out",
        instrumental=True,
        progress=lambda event: seen.update(leftovers()),
    )
    assert made.null.passed and made.instrumental is not None and made.instrumental.is_file()
    assert_separated(songs["video.mp4"], made.folder)
    assert len(decodings) == 1 and seen == {decodings[0].folder}  # one decoding, for the stems and the instrumental
    assert leftovers() == []


def error_of(*argv) -> str:
    code, _, err = run(*argv)
    assert code == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "case, says",
    [
        ("cut", "the file is damaged, cut short or not a media file"),  # moov at the end, cut off
        ("faststart cut", "is truncated: its sound track promises 3.00 s but only"),
        ("random", "the file is damaged, cut short or not a media file"),
        ("empty", "is empty (0 bytes)"),
        ("silent video", "is a video without a sound track"),
    ],
)
def test_a_damaged_file_or_a_silent_video_is_one_clear_error_naming_it_as_given(
    songs, tmp_path, monkeypatch, case, says
):
    monkeypatch.chdir(tmp_path)
    name = "silent video.mp4" if case == "silent video" else f"{case}.m4a"
    if case == "cut":
        Path(name).write_bytes(songs["aac.m4a"].read_bytes()[:20000])
    elif case == "faststart cut":
        ffmpeg(*SOUND, "-c:a", "aac", "-movflags", "+faststart", "whole.m4a")
        Path(name).write_bytes(Path("whole.m4a").read_bytes()[: Path("whole.m4a").stat().st_size // 2])
    elif case == "random":
        Path(name).write_bytes(np.random.default_rng(0).bytes(5000))
    elif case == "empty":
        Path(name).write_bytes(b"")
    else:
        ffmpeg(*PICTURE, "-c:v", "libx264", name)
    err = error_of("separate", name, "-o", "out", "--model", "tiny-4stem")
    assert f'"{name}"' in err and says in err, err
    assert len(err.strip().splitlines()) == 1 and tempfile.gettempdir() not in err and "--" not in err
    assert leftovers() == []


def test_a_subfolder_path_is_named_as_given(songs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("music").mkdir()
    Path("music/bad.mkv").write_bytes(b"\x1a\x45\xdf\xa3" + bytes(100))
    with pytest.raises(AudioError) as raised:
        probe("music/bad.mkv")
    assert '"music/bad.mkv"' in str(raised.value) and decode.PREFIX not in str(raised.value)


def test_missing_ffmpeg_says_what_to_install(songs, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg on it
    with pytest.raises(FfmpegMissing) as raised:
        probe(songs["aac.m4a"])
    said = str(raised.value)
    assert said.startswith(f'Reading "{songs["aac.m4a"]}"') and "sudo apt-get install ffmpeg" in said
    assert "scripts/setup.sh" in said and isinstance(raised.value, AudioError)
    code, _, err = run("separate", songs["aac.m4a"], "-o", tmp_path / "out", "--model", "tiny-4stem")
    assert code == 1 and "sudo apt-get install ffmpeg" in err
    assert leftovers() == []


def test_a_song_named_like_an_mp4_is_read_whatever_its_name(songs, tmp_path):
    renamed = tmp_path / "song.wav"  # an M4A with the wrong name
    shutil.copy(songs["aac.m4a"], renamed)
    assert probe(renamed).format == "AAC"
