"""Stems are never replaced without the user's say: the command line refuses and names --overwrite, the API raises
StemsExist, and where the stems go by default is the same for `stemdesk separate` and ./stemdesk.sh."""

from __future__ import annotations

import argparse
import hashlib
import json

import pytest
import soundfile as sf
from helpers import run, song

import stemdesk
from stemdesk.cli import build_parser
from stemdesk.core.errors import StemsExist

TINY = "tiny-4stem"
STEMS = ["vocals", "drums", "bass", "other"]


def digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_a_second_song_of_the_same_name_does_not_replace_the_first_ones_stems(tmp_path):
    for name, seed in (("first", 1), ("second", 2)):
        (tmp_path / name).mkdir()
        sf.write(str(tmp_path / name / "song.wav"), song(2.0, 44100, 2, seed), 44100, subtype="PCM_24")
    out = tmp_path / "out"
    code, _, err = run("separate", tmp_path / "first" / "song.wav", "-o", out, "--model", TINY)
    assert code == 0, err
    before = digest(out / "song")

    code, printed, err = run("separate", tmp_path / "second" / "song.wav", "-o", out, "--model", TINY)
    assert code == 1 and not printed
    assert err.strip() == (
        f'stemdesk: "{out / "song"}" already holds stems from an earlier separation (bass.wav, drums.wav, '
        "other.wav, stemdesk-certificate.json and 1 more). Add --overwrite to replace them, or give another folder "
        "with -o."
    )
    assert digest(out / "song") == before  # the first song's stems, untouched

    code, _, err = run("separate", tmp_path / "second" / "song.wav", "-o", out, "--model", TINY, "--overwrite")
    assert code == 0, err
    after = digest(out / "song")
    assert sorted(after) == sorted(before) and after["vocals.wav"] != before["vocals.wav"]
    certificate = json.loads((out / "song" / "stemdesk-certificate.json").read_text())
    second = hashlib.sha256((tmp_path / "second" / "song.wav").read_bytes()).hexdigest()
    assert certificate["source"]["sha256"] == second


def test_a_run_over_several_songs_stops_before_the_first_when_one_folder_is_taken(tmp_path, song_file):
    a, b = song_file("a.wav", seconds=1.0), song_file("b.wav", seconds=1.0, seed=1)
    (tmp_path / "out" / "b").mkdir(parents=True)
    (tmp_path / "out" / "b" / "vocals.flac").write_bytes(b"the user's own stem")
    code, _, err = run("separate", a, b, "-o", tmp_path / "out", "--model", TINY)
    assert code == 1 and "(vocals.flac)" in err and "--overwrite" in err
    assert not (tmp_path / "out" / "a").exists()  # nothing separated, not half of the songs


def test_overwriting_removes_only_the_stems_the_earlier_certificate_names(tmp_path, song_file):
    """A model with other stems than the earlier one: its leftovers go, files StemDesk did not write stay."""
    path = song_file("song.wav", seconds=1.0)
    folder = tmp_path / "out" / "song"
    code, _, err = run("separate", path, "-o", tmp_path / "out", "--model", TINY)
    assert code == 0, err
    certificate = folder / "stemdesk-certificate.json"
    cert = json.loads(certificate.read_text())
    cert["outputs"].append({"file": "guitar.wav", "sha256": "0"})  # as if an earlier model wrote a guitar stem
    certificate.write_text(json.dumps(cert))
    (folder / "guitar.wav").write_bytes(b"earlier")
    (folder / "mine.wav").write_bytes(b"the user's own file")
    code, _, err = run("separate", path, "-o", tmp_path / "out", "--model", TINY, "--overwrite")
    assert code == 0, err
    assert not (folder / "guitar.wav").exists() and (folder / "mine.wav").read_bytes() == b"the user's own file"
    assert {f["file"] for f in json.loads(certificate.read_text())["outputs"]} == {f"{s}.wav" for s in STEMS}


def test_separate_writes_to_stems_by_default_as_stemdesk_sh_does(tmp_path, song_file, monkeypatch):
    path = song_file("my song.wav", seconds=1.0)
    monkeypatch.chdir(tmp_path)
    code, out, err = run("separate", path, "--model", TINY)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "stems" / "my song").iterdir()) == sorted(
        [*(f"{s}.wav" for s in STEMS), "stemdesk-certificate.json"]
    )
    assert "4 stems in stems/my song" in out


def test_the_demo_run_again_replaces_its_own_stems_and_says_so(tmp_path, monkeypatch):
    from stemdesk.io import demo

    monkeypatch.setattr(demo, "fetch_debian_song", lambda target, seconds=demo.DEMO_SECONDS: None)  # synthesised
    monkeypatch.chdir(tmp_path)
    code, out, err = run("demo", "--model", TINY, "--duration", "2")
    assert code == 0, err
    assert "Replacing" not in out
    song_stem = next(demo.demo_folder().glob("demo-*.wav")).stem
    code, out, err = run("demo", "--model", TINY, "--duration", "3")
    assert code == 0, err
    assert f"Replacing the demo's stems from an earlier run in stems/{song_stem}" in out
    assert sf.info(str(tmp_path / "stems" / song_stem / "vocals.wav")).duration == 3.0


def test_the_api_raises_stems_exist_and_replaces_with_overwrite(tmp_path, song_file):
    path = song_file("song.wav", seconds=1.0)
    first = stemdesk.separate(path, TINY, tmp_path)
    before = digest(first.folder)
    with pytest.raises(stemdesk.StemsExist, match=r"Pass overwrite=True to replace them") as raised:
        stemdesk.separate(path, TINY, tmp_path, wiener=1)
    assert isinstance(raised.value, stemdesk.StemDeskError) and raised.value.folder == str(tmp_path / "song")
    assert digest(first.folder) == before
    again = stemdesk.separate(path, TINY, tmp_path, wiener=1, overwrite=True)
    assert digest(again.folder)["vocals.wav"] != before["vocals.wav"]
    assert StemsExist is stemdesk.StemsExist


def test_every_argument_of_separate_says_what_it_does(capsys):
    parser = build_parser()
    separate = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    ).choices["separate"]  # fmt: skip
    silent = [a.dest for a in separate._actions if not a.help or a.help == argparse.SUPPRESS]
    assert silent == []
    with pytest.raises(SystemExit):
        separate.parse_args(["--help"])
    shown = capsys.readouterr().out
    assert "default: ./stems" in shown and "--overwrite" in shown
