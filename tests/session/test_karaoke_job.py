"""`stemdesk karaoke` end to end on a small song: separated (then its stems reused), the lyrics aligned, the karaoke
mix rendered, the files written beside the stems and listed in the certificate; the singer's options change the
mix as asked; bad lyrics are refused before any separation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from helpers import run, song, tiny_split_model

from stemdesk.io.stems import CERTIFICATE

LYRICS = "la la la la\nsing it now\n\nthe last line here\n"


@pytest.fixture
def karaoke_song(tmp_path):
    path = tmp_path / "tune.wav"
    sf.write(str(path), song(8.0), 44100, subtype="PCM_16")
    lyrics = tmp_path / "tune.txt"
    lyrics.write_text(LYRICS, encoding="utf-8")
    return path, lyrics


def ints(path) -> np.ndarray:
    return sf.read(str(path), dtype="int32", always_2d=True)[0].astype(np.int64)


def test_a_karaoke_track_is_written_beside_the_stems_and_certified(karaoke_song, tmp_path):
    from stemdesk.karaoke.lyrics import read_lyrics

    path, lyrics = karaoke_song
    out = tmp_path / "out"
    code, text, err = run("karaoke", path, "--lyrics", lyrics, "-o", out, "--model", "tiny-4stem", "--threads", "1")
    assert code == 0, err
    folder = out / "tune"
    assert "11 words on 3 lines aligned on vocals (the stems just separated)" in text
    lrc = read_lyrics(folder / "tune.lrc")  # read back: every word of the text, in order, each timed
    assert [w.text for w in lrc.words] == LYRICS.split()
    starts = [w.start for w in lrc.words]
    assert all(s is not None for s in starts) and starts == sorted(starts) and 0 <= starts[0] and starts[-1] < 8.0
    assert (folder / "tune.ass").read_text(encoding="utf-8").count("Dialogue:") >= 3
    # the karaoke mix is the song less its vocals, to the sample, and its render nulls with them
    mix = folder / "tune karaoke.wav"
    stems = {n: ints(folder / f"{n}.wav") for n in ("vocals", "drums", "bass", "other")}
    expected = stems["drums"] + stems["bass"] + stems["other"]
    assert np.abs(ints(mix) - expected).max() <= 256  # int32 scale: a 24-bit render of the 16-bit stems' sum
    rendered = json.loads((folder / "tune karaoke.wav.certificate.json").read_text())
    assert rendered["null"]["applicable"] and rendered["null"]["bit_exact"]  # with the muted vocals: the song
    cert = json.loads((folder / CERTIFICATE).read_text())
    karaoke = cert["karaoke"]
    assert karaoke["lyrics"]["file"] == "tune.txt" and karaoke["aligned_on"] == "vocals"
    assert karaoke["mix"]["file"] == "tune karaoke.wav" and karaoke["mix"]["mix"]["channels"]["vocals"]["mute"]
    assert {f["kind"] for f in karaoke["files"]} == {"lrc", "ass"}
    for item in karaoke["files"]:
        import hashlib

        assert hashlib.sha256((folder / item["file"]).read_bytes()).hexdigest() == item["sha256"]
    # again: the stems already there are this song's, so they are reused, not separated again
    before = (folder / "vocals.wav").stat().st_mtime_ns
    code, text, err = run("karaoke", path, "--lyrics", lyrics, "-o", out, "--model", "tiny-4stem", "--threads", "1")
    assert code == 0, err
    assert "the stems already there" in text and (folder / "vocals.wav").stat().st_mtime_ns == before


def test_the_singers_options_shape_the_mix(karaoke_song, tmp_path):
    path, lyrics = karaoke_song
    out = tmp_path / "out"
    model = tiny_split_model(caution=("weak on unheard songs", "On songs it never heard it loses to halving."))
    code, text, err = run(
        "karaoke", path, "--lyrics", lyrics, "-o", out, "--model", "tiny-4stem", "--threads", "1",
        "--keep-backing", "--split-model", model, "--guide-vocal", "-12",
    )  # fmt: skip
    assert code == 0, err
    folder = out / "tune"
    assert "aligned on vocals/lead" in text and "Caution: On songs it never heard" in text
    leaves = {n: ints(folder / f"{n}.wav") for n in ("drums", "bass", "other")}
    lead, backing = ints(folder / "vocals" / "lead.wav"), ints(folder / "vocals" / "backing.wav")
    guide = 10 ** (-12 / 20)
    expected = leaves["drums"] + leaves["bass"] + leaves["other"] + backing + guide * lead
    heard = ints(folder / "tune karaoke.wav")
    assert np.abs(heard - expected).max() <= 512  # the backing kept, the lead 12 dB down as a guide
    # a key change: the mix is rendered in that key, so it is no longer the stems' sum
    code, text, err = run(
        "karaoke", path, "--lyrics", lyrics, "-o", out, "--model", "tiny-4stem", "--threads", "1", "--key", "2"
    )
    assert code == 0, err
    cert = json.loads((folder / CERTIFICATE).read_text())
    assert cert["karaoke"]["key_semitones"] == 2.0
    assert cert["karaoke"]["mix"]["mix"]["semitones"] == 2.0


@pytest.mark.parametrize(
    "text, says",
    [("", "no words"), ("\n\n  \n", "no words")],
)
def test_bad_lyrics_are_refused_before_anything_is_separated(karaoke_song, tmp_path, text, says):
    path, lyrics = karaoke_song
    lyrics.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    code, _, err = run("karaoke", path, "--lyrics", lyrics, "-o", out, "--model", "tiny-4stem")
    assert code != 0 and says in err.lower(), err
    assert not (out / "tune").exists()


def test_missing_lyrics_file_is_named(karaoke_song, tmp_path):
    path, _ = karaoke_song
    code, _, err = run(
        "karaoke", path, "--lyrics", tmp_path / "nope.txt", "-o", tmp_path / "out", "--model", "tiny-4stem"
    )
    assert code != 0 and "nope.txt" in err, err


def test_a_karaoke_mix_that_clips_is_said_to(karaoke_song, tmp_path):
    """Without the vocals the music can peak above the song (what cancelled against the vocals no longer does): the
    24-bit karaoke mix is then held at full scale, and the command says how many samples and what to do."""
    path, lyrics = karaoke_song
    out = tmp_path / "out"
    args = ("karaoke", path, "--lyrics", lyrics, "-o", out, "--model", "tiny-4stem", "--threads", "1")
    code, text, err = run(*args)
    assert code == 0, err
    assert "clipped" not in text
    drums = out / "tune" / "drums.wav"  # the stems kept (they are this song's), the drums edited to full scale
    audio, rate = sf.read(str(drums), dtype="float64", always_2d=True)
    sf.write(str(drums), np.where(audio >= 0, 0.99, -0.99), rate, subtype="PCM_16")
    code, text, err = run(*args)
    assert code == 0, err
    assert "the stems already there" in text and "samples of the karaoke mix clipped at full scale" in text
    assert "--bit-depth 32f" in text
