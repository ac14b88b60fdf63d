"""The Python API (`import stemdesk`), called as a script would call it, on real short audio; every test opens what
was written. The examples of docs/python-api.md run here too, so the page cannot go stale."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import DATA, REPO
from helpers import run, song

import stemdesk

TINY = "tiny-4stem"
NAMES = ["vocals", "drums", "bass", "other"]


def real_audio(seconds: float, offset: float = 60.0) -> np.ndarray:
    """(samples, 2) float64: an excerpt of a real CC0 song (its stems summed) when ../shared/data is here, else a
    test signal."""
    stems = sorted((DATA / "cc0-efree").glob("*/vocals.ogg")) if (DATA / "cc0-efree").is_dir() else []
    if not stems:
        return song(seconds, seed=int(offset)).astype(np.float64)
    start, frames = int(offset * 44100), int(seconds * 44100)
    parts = [
        sf.read(str(stems[0].parent / f"{n}.ogg"), start=start, frames=frames, dtype="float64", always_2d=True)[0]
        for n in NAMES
    ]
    return np.clip(sum(parts), -1, 1)


def write_song(path: Path, seconds: float = 4.0, offset: float = 60.0, subtype: str = "PCM_16") -> Path:
    sf.write(str(path), real_audio(seconds, offset), 44100, subtype=subtype)
    return path


def ints(path: Path) -> np.ndarray:
    return sf.read(str(path), dtype="int32", always_2d=True)[0].astype(np.int64)


def test_import_stemdesk_loads_neither_torch_nor_numpy():
    code = (
        "import sys, stemdesk; assert callable(stemdesk.separate) and issubclass(stemdesk.AudioError, "
        "stemdesk.StemDeskError); heavy = sorted({'torch', 'numpy', 'soundfile', 'PySide6'} & set(sys.modules)); "
        "print(heavy); sys.exit(bool(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(stemdesk.__all__) <= set(dir(stemdesk))
    with pytest.raises(AttributeError):
        stemdesk.no_such_name  # noqa: B018


def test_separate_writes_stems_that_null_and_says_what_the_certificate_says(tmp_path):
    path = write_song(tmp_path / "take one.flac", seconds=5.0)
    events = []
    result = stemdesk.separate(
        path, model=TINY, out=tmp_path / "out", threads=1, instrumental=True, session="rpp", progress=events.append
    )
    assert result.folder == tmp_path / "out" / "take one" and list(result.stems) == NAMES
    mixture = ints(path)
    assert np.array_equal(sum(ints(p) for p in result.stems.values()), mixture)  # int32 full scale, whatever the depth
    assert result.null.bit_exact and result.null.passed
    certificate = json.loads(result.certificate.read_text(encoding="utf-8"))
    assert result.null.as_dict() == certificate["null"] and certificate["model"]["id"] == TINY
    assert set(result.timings) == {"load_model", "separate", "total"}
    assert 0 < result.timings["separate"] <= result.timings["total"]
    assert result.seconds_of_audio == 5.0 and result.model == TINY and result.device == "cpu"
    vocals = ints(result.stems["vocals"])
    assert np.array_equal(ints(result.instrumental) + vocals, mixture)  # the instrumental, exactly
    assert "vocals.wav" in result.sessions["rpp"].read_text(encoding="utf-8")
    assert any(e.get("total") == 5 * 44100 and e.get("done") == 5 * 44100 for e in events)


def test_the_api_writes_the_stems_the_command_line_writes(tmp_path):
    """Built on the same tasks: the same song and settings give byte-identical files (certificate inside)."""
    path = write_song(tmp_path / "song.wav", seconds=3.0)
    made = stemdesk.separate(path, model=TINY, out=tmp_path / "api", threads=1, bit_depth=16)
    code, _, err = run("separate", path, "-o", tmp_path / "cli", "--model", TINY, "--threads", "1", "--bit-depth", "16")
    assert code == 0, err
    for name, stem in made.stems.items():
        cli = tmp_path / "cli" / "song" / stem.name
        assert hashlib.sha256(stem.read_bytes()).digest() == hashlib.sha256(cli.read_bytes()).digest(), name


def test_several_songs_share_one_model_and_each_gets_its_folder(tmp_path):
    songs = [write_song(tmp_path / f"song {i}.wav", 2.0, 30.0 + 20 * i) for i in range(2)]
    results = stemdesk.separate(songs, model=TINY, out=tmp_path / "out", threads=1, format="flac", bit_depth=16)
    assert [r.folder.name for r in results] == ["song 0", "song 1"]
    for path, result in zip(songs, results):
        assert np.array_equal(sum(ints(p) for p in result.stems.values()), ints(path))
        assert all(p.suffix == ".flac" for p in result.stems.values())
    with pytest.raises(stemdesk.StemDeskError, match="Several inputs are named"):
        stemdesk.separate([songs[0], tmp_path / "song 0.flac"], model=TINY, out=tmp_path / "out")


def test_separate_array_adds_up_exactly_and_matches_the_files(tmp_path):
    path = write_song(tmp_path / "song.wav", seconds=4.0, subtype="PCM_24")
    audio32 = sf.read(str(path), dtype="float32")[0].T
    stems = stemdesk.separate_array(audio32, 44100, model=TINY, threads=1)
    assert list(stems) == NAMES and all(s.dtype == np.float64 and s.shape == audio32.shape for s in stems.values())
    assert np.array_equal(sum(stems.values()), audio32)
    assert np.array_equal(stems["other"] + stems["bass"] + stems["vocals"] + stems["drums"], audio32)  # any order
    assert np.array_equal(np.sum(np.stack(list(stems.values())), axis=0), audio32)
    # the same separation as the file's (written as 32-bit float)
    written = stemdesk.separate(path, model=TINY, out=tmp_path / "out", threads=1, bit_depth="32f")
    for name, stem in stems.items():
        assert np.abs(sf.read(str(written.stems[name]), dtype="float64")[0].T - stem).max() < 1e-4, name
    audio64 = sf.read(str(path), dtype="float64")[0].T  # 24-bit samples as float64
    assert np.array_equal(sum(stemdesk.separate_array(audio64, 44100, model=TINY, threads=1).values()), audio64)
    for dtype in ("int16", "int32"):
        pcm = sf.read(str(path), dtype=dtype)[0].T
        parts = stemdesk.separate_array(pcm, 44100, model=TINY, threads=1)
        assert all(p.dtype == np.dtype(dtype) for p in parts.values())
        assert np.array_equal(sum(parts.values()), pcm)  # in the type's own (wrapping) arithmetic
        assert np.array_equal(sum(p.astype(np.int64) for p in parts.values()), pcm)  # and without wrapping
    mono = stemdesk.separate_array(audio32[0], 44100, model=TINY, threads=1)
    assert all(s.shape == audio32[0].shape for s in mono.values())
    assert np.array_equal(sum(mono.values()), audio32[0])


def test_nullcheck_finds_where_an_altered_stem_departs(tmp_path):
    path = write_song(tmp_path / "song.wav", seconds=5.0)
    result = stemdesk.separate(path, model=TINY, out=tmp_path, threads=1, bit_depth=16)
    clean = stemdesk.nullcheck(path, result.folder)
    assert clean.bit_exact and clean.worst_regions == []
    drums, rate = sf.read(str(result.stems["drums"]), dtype="int16")
    drums[int(3.25 * rate)] = 20000
    sf.write(str(result.stems["drums"]), drums, rate, subtype="PCM_16")
    check = stemdesk.nullcheck(path, list(result.stems.values()), regions=2)
    assert not check.passed and len(check.worst_regions) == 1
    assert check.worst_regions[0]["start_seconds"] == 3.0 and check.worst_regions[0]["end_seconds"] == 4.0


def test_remix_and_export_sessions_write_what_they_say(tmp_path):
    path = write_song(tmp_path / "song.wav", seconds=3.0)
    folder = stemdesk.separate(path, model=TINY, out=tmp_path / "stems", threads=1, bit_depth=16).folder
    karaoke = stemdesk.remix(folder, tmp_path / "karaoke.flac", preset="karaoke", mixture=path)
    assert karaoke.path.suffix == ".flac" and karaoke.null["passed"] and karaoke.null["bit_exact"]
    assert np.array_equal(ints(karaoke.path), ints(path) - ints(folder / "vocals.wav"))
    mix = {"channels": {"drums": {"mute": True}}}
    drumless = stemdesk.remix(folder, tmp_path / "drumless.wav", mix=mix)
    assert np.array_equal(ints(drumless.path), ints(path) - ints(folder / "drums.wav"))
    slower = stemdesk.remix(folder, tmp_path / "slower.wav", tempo=0.8)
    assert abs(sf.info(str(slower.path)).frames - 3 * 44100 / 0.8) <= 1 and not slower.null["applicable"]
    made = stemdesk.export_sessions(folder, session=["dawproject", "rpp"], instrumental=True, mixture=path)
    assert made.paths[0] == tmp_path / "stems" / "song instrumental.wav"
    assert made.sessions["rpp"].path == tmp_path / "stems" / "song.rpp"
    with zipfile.ZipFile(made.sessions["dawproject"].path) as archive:
        assert "project.xml" in archive.namelist() and any(n.endswith("vocals.wav") for n in archive.namelist())
    cards = {card.id: card for card in stemdesk.models()}
    assert "stemdesk-4stem" in cards and cards[TINY].sources == NAMES


def test_errors_are_stemdesk_errors_that_say_what_to_do(tmp_path):
    path = write_song(tmp_path / "song.wav", seconds=2.0)
    with pytest.raises(stemdesk.AudioError, match="does not exist"):
        stemdesk.separate(tmp_path / "missing.flac", model=TINY)
    with pytest.raises(stemdesk.ModelError, match="No model named 'nope'"):
        stemdesk.separate(path, model="nope", out=tmp_path)
    with pytest.raises(stemdesk.AudioError, match="Pass audio.T"):
        stemdesk.separate_array(np.zeros((44100, 2), np.float32), 44100, model=TINY)
    with pytest.raises(stemdesk.AudioError, match="NaN or infinite"):
        stemdesk.separate_array(np.full((2, 4410), np.nan), 44100, model=TINY)
    with pytest.raises(stemdesk.AudioError, match="int16/int32"):
        stemdesk.separate_array(np.zeros((2, 4410), np.uint8), 44100, model=TINY)
    with pytest.raises(stemdesk.AudioError, match="sample rate"):
        stemdesk.separate_array(np.zeros((2, 4410), np.float32), 100, model=TINY)
    with pytest.raises(stemdesk.AudioError, match="Unknown output format"):
        stemdesk.separate(path, model=TINY, format="m4a")
    folder = stemdesk.separate(path, model=TINY, out=tmp_path / "stems", threads=1).folder
    with pytest.raises(stemdesk.MixError, match="Unknown preset"):
        stemdesk.remix(folder, tmp_path / "x.wav", preset="louder")
    with pytest.raises(stemdesk.MixError, match="semitones"):
        stemdesk.remix(folder, tmp_path / "x.wav", semitones=40)
    with pytest.raises(stemdesk.StemDeskError, match="Nothing to export"):
        stemdesk.export_sessions(folder)
    with pytest.raises(stemdesk.StemDeskError, match="Unknown export format 'cubase'"):
        stemdesk.export_sessions(folder, session="cubase")
    assert not (tmp_path / "x.wav").exists()


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)


def test_the_python_api_page_runs_as_written(tmp_path, monkeypatch, capsys, basic_pitch):
    """Every python block of docs/python-api.md, in order, in a folder holding the two songs it names; the default
    model is swapped for the tiny test model (the page's examples name their model, or use the default); Basic Pitch is
    installed for the MIDI example."""
    page = REPO / "docs" / "python-api.md"
    blocks = python_blocks(page)
    assert len(blocks) >= 10
    write_song(tmp_path / "song.flac", seconds=4.0, offset=60.0)
    write_song(tmp_path / "another.flac", seconds=3.0, offset=90.0)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("stemdesk.io.model_store.DEFAULT_MODEL", TINY)
    namespace: dict = {"__name__": "python_api_page"}
    for index, block in enumerate(blocks):
        code = compile(block.replace('"stemdesk-4stem"', f'"{TINY}"'), f"{page.name} block {index + 1}", "exec")
        exec(code, namespace)  # noqa: S102 - the page's own examples
    printed = capsys.readouterr().out
    assert "bit-exact" in printed and "does not exist" in printed and "No model named 'no-such-model'" in printed
    assert (tmp_path / "stems" / "another.rpp").is_file() and (tmp_path / "karaoke.wav").is_file()


def test_separates_options_are_written_once_and_an_unknown_one_is_refused_by_name(tmp_path):
    """`separate` takes the separation options as `SeparateKeywords`, whose names are `separate_options`' own (where
    their defaults and checks are), so the API cannot drift from what the command line and the app pass."""
    import inspect

    from stemdesk.jobs.separate import SeparateKeywords, separate_options

    keywords = set(inspect.signature(separate_options).parameters) - {"model"}
    assert set(SeparateKeywords.__annotations__) == keywords
    song_path = tmp_path / "song.wav"
    sf.write(song_path, song(1.0), 44100, subtype="PCM_16")
    with pytest.raises(TypeError, match="separate\\(\\) got unexpected keyword arguments: bitdepth"):
        stemdesk.separate(song_path, model=TINY, out=tmp_path / "out", bitdepth=16)
    assert not (tmp_path / "out").exists()
    with pytest.raises(stemdesk.StemDeskError, match="shifts"):
        stemdesk.separate(song_path, model=TINY, out=tmp_path / "out", shifts=-1)
