"""The CLI contract end to end with the tiny registered model: real files in, real stems out, real errors."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO
from helpers import assert_stems_null, probe_streams, run, stem_box

from stemdesk.cli import EXIT_BROKEN_PIPE, EXIT_ERROR, EXIT_NULL
from stemdesk.core.cancel import CancelToken
from stemdesk.core.errors import Cancelled, ModelError
from stemdesk.io.formats import OutputFormat
from stemdesk.io.model_store import find_model, load_estimator
from stemdesk.jobs.separate import SeparateOptions, SeparationEngine

TINY = "tiny-4stem"
STEMS = ["vocals", "drums", "bass", "other"]


@pytest.mark.parametrize("rate", [44100, 48000])
@pytest.mark.parametrize("fmt, depth", [("wav", "16"), ("wav", "24"), ("wav", "32f"), ("flac", "16"), ("flac", "24")])
def test_separate_then_nullcheck(tmp_path, song_file, rate, fmt, depth):
    song = song_file("my song.wav", seconds=4.0, rate=rate, subtype="PCM_24")
    code, out, err = run(
        "separate",
        song,
        "-o",
        tmp_path / "out",
        "--model",
        TINY,
        "--format",
        fmt,
        "--bit-depth",
        depth,
        "--segment",
        "1.5",
    )
    assert code == 0, err
    folder = tmp_path / "out" / "my song"
    paths = [folder / f"{s}.{fmt}" for s in STEMS]
    assert sorted(folder.iterdir()) == sorted([*paths, folder / "stemdesk-certificate.json"])
    assert sf.info(str(paths[0])).frames == 4 * rate
    assert_stems_null(song, paths, depth)
    # The stems are not a trivial split: the model moves energy between them.
    energies = [float(np.square(sf.read(str(p))[0]).sum()) for p in paths]
    assert max(energies) > 1.5 * min(energies)


@pytest.mark.parametrize("channels", [1, 6])
def test_odd_channel_counts_keep_their_layout(tmp_path, song_file, channels):
    song = song_file("c.flac", seconds=2.0, rate=32000, channels=channels, subtype="PCM_16")
    code, _, err = run("separate", song, "-o", tmp_path, "--model", TINY, "--bit-depth", "16")
    assert code == 0, err
    paths = [tmp_path / "c" / f"{s}.wav" for s in STEMS]
    assert all(sf.info(str(p)).channels == channels for p in paths)
    assert json.loads(run("nullcheck", song, *paths)[1])["bit_exact"]


def test_start_and_duration_cut_the_song(tmp_path, song_file):
    song = song_file("s.wav", seconds=5.0)
    code, _, err = run("separate", song, "-o", tmp_path, "--model", TINY, "--start", "1.5", "--duration", "2")
    assert code == 0, err
    assert sf.info(str(tmp_path / "s" / "vocals.wav")).frames == 2 * 44100


def test_the_test_model_is_hidden_from_users_but_still_loads(monkeypatch):
    monkeypatch.delenv("STEMDESK_SHOW_TEST_MODELS")
    code, out, _ = run("models")
    assert code == 0 and "stemdesk-4stem (default)" in out
    assert TINY not in out
    assert "Installable" in out and "htdemucs" in out  # offered, with its licence
    assert load_estimator(TINY)[1].id == TINY
    monkeypatch.setenv("STEMDESK_SHOW_TEST_MODELS", "1")
    assert TINY in run("models")[1]


def test_shifts_average_delayed_passes_and_the_stems_still_null(tmp_path, song_file, capsys):
    song = song_file("s.wav", seconds=3.0)
    stems = {}
    for shifts in ("0", "2"):
        code, _, err = run(
            "separate", song, "-o", tmp_path / shifts, "--model", TINY, "--bit-depth", "16", "--shifts", shifts
        )
        assert code == 0, err
        paths = [tmp_path / shifts / "s" / f"{s}.wav" for s in STEMS]
        assert_stems_null(song, paths, "16")
        certificate = json.loads((tmp_path / shifts / "s" / "stemdesk-certificate.json").read_text())
        assert certificate["settings"]["shifts"] == int(shifts)
        stems[shifts] = np.stack([sf.read(str(p))[0] for p in paths])
    assert np.abs(stems["2"] - stems["0"]).max() > 1e-3  # the passes changed the stems
    with pytest.raises(SystemExit):  # argparse's usage error
        run("separate", song, "-o", tmp_path / "bad", "--model", TINY, "--shifts", "-1")
    assert "whole number" in capsys.readouterr().err


def test_an_excerpt_gets_its_instrumental_checked_against_the_same_excerpt(tmp_path, song_file):
    """--start/--duration with --instrumental used to fail: "...is 88200 samples long but the mixture is 220500"."""
    song = song_file("s.wav", seconds=5.0)
    code, out, err = run(
        "separate",
        song,
        "-o",
        tmp_path,
        "--model",
        TINY,
        "--bit-depth",
        "16",
        "--start",
        "1.5",
        "--duration",
        "2",
        "--instrumental",
    )
    assert code == 0, err
    instrumental = tmp_path / "s" / "instrumental.wav"
    assert sf.info(str(instrumental)).frames == 2 * 44100
    null = json.loads((tmp_path / "s" / "instrumental.wav.certificate.json").read_text())["null"]
    assert null["applicable"] and null["bit_exact"] and null["mixture_samples"] == [66150, 66150 + 88200]
    # and instrumental + vocals is the mixture's excerpt, sample for sample
    mixture = sf.read(str(song), start=66150, frames=88200, dtype="int16")[0].astype(np.int64)
    vocals = sf.read(str(tmp_path / "s" / "vocals.wav"), dtype="int16")[0].astype(np.int64)
    assert np.array_equal(sf.read(str(instrumental), dtype="int16")[0].astype(np.int64) + vocals, mixture)


def test_separate_writes_an_ni_stem_file_and_export_writes_one_in_aac(tmp_path, song_file):
    import stempeg

    song = song_file("my song.wav", seconds=3.0, subtype="PCM_16")
    code, out, err = run(
        "separate", song, "-o", tmp_path / "out", "--model", TINY, "--bit-depth", "16", "--session", "stems-mp4"
    )
    assert code == 0, err
    folder = tmp_path / "out" / "my song"
    path = folder / "my song.stem.mp4"
    assert f"stems-mp4 session: {path}" in out
    assert "null against the mix track bit for bit" in out and "The mix track is the original song" in out
    assert [(s["codec_name"], s["bits_per_raw_sample"]) for s in probe_streams(path)] == [("alac", "16")] * 5
    assert [s["name"] for s in stem_box(path)["stems"]] == ["drums", "bass", "other", "vocals"]
    tracks = np.rint(stempeg.read_stems(str(path), dtype=np.float64)[0] * 32768).astype(np.int64)
    assert np.array_equal(tracks[0], sf.read(str(song), dtype="int16")[0])  # the mix track is the song
    for track, name in zip(tracks[1:], ["drums", "bass", "other", "vocals"]):
        assert np.array_equal(track, sf.read(str(folder / f"{name}.wav"), dtype="int16")[0]), name
    assert np.array_equal(tracks[1:].sum(axis=0), tracks[0])

    code, out, err = run(
        "export", folder, "--session", "stems-mp4-aac", "--mixture", song, "-o", tmp_path / "dj" / "my song"
    )
    assert code == 0, err
    certificate = json.loads((tmp_path / "dj" / "my song.aac.stem.mp4.certificate.json").read_text())
    peak = certificate["null"]["peak_dbfs"]
    assert "AAC 256 kbit/s is lossy: its stems do NOT null" in out and f"peaks at {peak:.1f} dBFS" in out
    assert [s["codec_name"] for s in probe_streams(tmp_path / "dj" / "my song.aac.stem.mp4")] == ["aac"] * 5


def test_mp3_input_is_read_sample_exact(tmp_path, song_file):
    wav = song_file("x.wav", seconds=3.0)
    audio, rate = sf.read(str(wav))
    mp3 = tmp_path / "x.mp3"
    sf.write(str(mp3), audio, rate)
    code, _, err = run("separate", mp3, "-o", tmp_path / "o", "--model", TINY, "--bit-depth", "16")
    assert code == 0, err
    paths = [tmp_path / "o" / "x" / f"{s}.wav" for s in STEMS]
    assert sf.info(str(paths[0])).frames == sf.info(str(mp3)).frames
    assert json.loads(run("nullcheck", mp3, *paths)[1])["bit_exact"]


def test_separate_exits_3_when_its_stems_do_not_null(tmp_path, song_file, monkeypatch):
    """The stems are written and the certificate says FAILED; a script must not take that for success."""
    import stemdesk.export.stems as stems_module

    exact = stems_module.integer_stems

    def one_step_off(stems, mix, bits):
        ints = exact(stems, mix, bits)
        ints[0, :, ::1000] += 1  # the bug this guards against: a residual one step off here and there
        return ints

    monkeypatch.setattr(stems_module, "integer_stems", one_step_off)
    song = song_file("s.wav")
    code, out, err = run("separate", song, "-o", tmp_path / "o", "--model", TINY, "--bit-depth", "16")
    assert code == EXIT_NULL
    assert "null-sum check: FAILED" in out and "the stems of s.wav do not null" in err
    assert all((tmp_path / "o" / "s" / f"{s}.wav").is_file() for s in STEMS)


def test_stems_of_a_song_mastered_above_full_scale_say_where_their_depth_clips_it(tmp_path):
    """A float WAV peaking at +3.5 dBFS: 24-bit stems can only add up to it clipped. Their null is exact against
    the song quantised, and the command, the certificate and nullcheck say how much was cut; 32-bit float stems
    keep the song whole and say nothing of clipping."""
    t = np.arange(2 * 44100) / 44100
    hot = np.stack([1.5 * np.sin(2 * np.pi * 110 * t), 0.5 * np.sin(2 * np.pi * 220 * t)], axis=1)
    song = tmp_path / "hot.wav"
    sf.write(str(song), hot, 44100, subtype="FLOAT")
    code, out, _ = run("separate", song, "-o", tmp_path / "pcm", "--model", TINY)
    assert code == 0 and "null-sum check: bit-exact" in out
    assert "warning: the song peaks at +3.5 dBFS, above what 24-bit stems hold" in out
    clipped = int(np.count_nonzero(np.abs(hot.astype(np.float32)) * 2**23 > 2**23 - 0.5))
    null = json.loads((tmp_path / "pcm" / "hot" / "stemdesk-certificate.json").read_text())["null"]
    assert (null["clipped"], null["mixture_peak_dbfs"], null["bit_exact"]) == (clipped, 3.52, True)
    assert json.loads(run("nullcheck", song, tmp_path / "pcm" / "hot")[1])["clipped"] == clipped
    code, out, _ = run("separate", song, "-o", tmp_path / "float", "--model", TINY, "--bit-depth", "32f")
    assert code == 0 and "warning" not in out
    total = sum(sf.read(str(p))[0] for p in (tmp_path / "float" / "hot").glob("*.wav"))
    assert np.abs(total - hot).max() < 1e-6  # the peaks are in the float stems


def test_nullcheck_exit_code_when_stems_do_not_null(tmp_path, song_file):
    song = song_file("m.wav")
    other = song_file("n.wav", seed=5)
    code, out, _ = run("nullcheck", song, other)
    assert code == EXIT_NULL and json.loads(out)["passed"] is False


def truncated_wav(path):
    song = path.parent / "full.wav"
    sf.write(str(song), np.zeros((44100, 2), dtype=np.float32), 44100, subtype="PCM_16")
    data = song.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    song.unlink()


def nan_wav(path):
    audio = np.zeros((44100, 2), dtype=np.float32)
    audio[1000, 0] = np.nan
    sf.write(str(path), audio, 44100, subtype="FLOAT")


BAD_INPUTS = {
    "missing": (lambda p: None, "does not exist"),
    "empty": (lambda p: p.write_bytes(b""), "empty"),
    "text": (lambda p: p.write_text("not audio at all\n" * 50), "not a recognised audio format"),
    "folder": (lambda p: p.mkdir(), "is a folder"),
    "nan": (nan_wav, "NaN"),
    "truncated": (truncated_wav, "truncated"),
    "riff-only": (lambda p: p.write_bytes(b"RIFF" + struct.pack("<I", 36) + b"WAVEfmt "), "Cannot read"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_clear_line_and_writes_nothing(tmp_path, case):
    make, message = BAD_INPUTS[case]
    path = tmp_path / "bad.wav"
    make(path)
    code, out, err = run("separate", path, "-o", tmp_path / "out", "--model", TINY)
    assert code == EXIT_ERROR
    assert message in err
    assert err.startswith("stemdesk: ") and err.count("\n") == 1 and "Traceback" not in err
    leftovers = list((tmp_path / "out").rglob("*")) if (tmp_path / "out").exists() else []
    assert [p for p in leftovers if p.is_file()] == []


def test_unknown_model_lists_installed_ones(tmp_path, song_file):
    code, _, err = run("separate", song_file(), "-o", tmp_path, "--model", "nope")
    assert code == EXIT_ERROR and TINY in err and "stemdesk models" in err


def test_cancel_leaves_no_file(tmp_path, song_file):
    song = song_file("long.wav", seconds=8.0)
    engine = SeparationEngine(TINY, "cpu")
    token = CancelToken()
    events = []

    def progress(event):
        events.append(event)
        token.cancel()

    options = SeparateOptions(
        model=TINY, format=OutputFormat.parse("wav", "24"), segment_seconds=1.0, overlap_seconds=0.2
    )
    with pytest.raises(Cancelled):
        engine.separate_file(song, tmp_path / "out", options, progress=progress, cancel=token)
    assert events, "progress was reported before the cancel"
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


def test_models_lists_the_tiny_model():
    code, out, _ = run("models")
    assert code == 0 and TINY in out and "stemdesk-4stem" in out
    # a model trained on HTDemucs's labels says what that means for its use, research recipe or not
    default = out.split("stemdesk-4stem (default):", 1)[1].split("\n    /", 1)[0]
    assert "personal and research use only (trained on htdemucs's labels)" in default


def test_a_reader_that_goes_away_ends_the_listing_quietly():
    """`stemdesk models | head -1`: the pipe's reader is gone before the listing is written. The command says
    nothing and exits as a tool that SIGPIPE ended would (141), not with a traceback and 120."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before anything is written: the first write or flush is refused
    try:
        done = subprocess.run(
            [sys.executable, "-m", "stemdesk", "models"], stdout=write_end, stderr=subprocess.PIPE, timeout=120
        )
    finally:
        os.close(write_end)
    assert done.returncode == EXIT_BROKEN_PIPE, done.stderr.decode()
    assert done.stderr.decode() == ""


def test_a_broken_pipe_that_is_not_our_output_is_still_an_error(monkeypatch):
    """A tool StemDesk runs (ffmpeg, a worker) can break a pipe too: while the output's own reader is there, that
    is an error with a message, not a quiet exit."""
    import stemdesk.cli as cli
    import stemdesk.cli.models as models

    def broken(*_):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(models, "run", broken)
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as out, os.fdopen(read_end) as reader:
        err = io.StringIO()
        code = cli.main(["models"], out=out, err=err)
        out.write("still open\n")
        out.flush()
        assert reader.readline() == "still open\n"
    assert code == EXIT_ERROR
    assert "Broken pipe" in err.getvalue()


def test_models_lists_the_research_models_only_with_all(tmp_path, monkeypatch):
    """What a user separates with is listed; the research models are counted in one line at the end, and
    `models --all` lists them under their heading."""
    folder, card = copy_model(tmp_path, monkeypatch)
    (folder / "card.json").write_text(json.dumps({**card, "id": "paper-copy", "purpose": "research"}))
    code, out, _ = run("models")
    assert code == 0 and "stemdesk-4stem (default):" in out
    assert "paper-copy" not in out and "Research (" not in out
    last = out.rstrip().splitlines()[-1]
    assert "research model" in last and "`stemdesk models --all`" in last
    code, everything, _ = run("models", "--all")
    assert code == 0 and "paper-copy: band_mlp" in everything.split("Research (", 1)[1]
    assert "`stemdesk models --all`" not in everything


def test_every_argument_of_every_command_says_what_it_does():
    import argparse

    from stemdesk.cli import build_parser

    def silent(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from silent(sub, f"{path} {name}")
            elif not action.help or action.help == argparse.SUPPRESS:
                yield f"{path} {action.dest}"

    assert list(silent(build_parser(), "stemdesk")) == []


def copy_model(tmp_path, monkeypatch):
    folder = tmp_path / "models" / "copy"
    shutil.copytree(find_model(TINY).folder, folder)
    card = json.loads((folder / "card.json").read_text())
    card["id"] = "copy"
    (folder / "card.json").write_text(json.dumps(card))
    monkeypatch.setenv("STEMDESK_MODELS_PATH", str(tmp_path / "models"))
    return folder, card


def test_damaged_weights_are_refused(tmp_path, monkeypatch):
    folder, _ = copy_model(tmp_path, monkeypatch)
    data = bytearray((folder / "weights.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match the sha256"):
        load_estimator("copy")


class _Exploit:
    def __reduce__(self):
        return (open, (str(_Exploit.target), "w"))


def test_pickled_weights_never_run_code(tmp_path, monkeypatch):
    folder, card = copy_model(tmp_path, monkeypatch)
    _Exploit.target = tmp_path / "pwned"
    (folder / "weights.safetensors").write_bytes(pickle.dumps(_Exploit()))
    from stemdesk.io.model_store import sha256_file

    card["weights_sha256"] = sha256_file(folder / "weights.safetensors")
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="not a valid safetensors"):
        load_estimator("copy")
    assert not _Exploit.target.exists()


def test_card_with_missing_fields_is_refused(tmp_path, monkeypatch):
    folder, card = copy_model(tmp_path, monkeypatch)
    del card["weights_sha256"]
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="lacks weights_sha256"):
        load_estimator("copy")


def test_shipped_models_have_complete_cards():
    for name in ("tiny-4stem", "stemdesk-4stem"):
        card = json.loads((REPO / "models" / name / "card.json").read_text())
        assert card["training_data"] and card["licenses"] and card["metrics"]["validation_usdr_median_db"]
        load_estimator(name)


def test_post_processing_options_keep_the_stems_bit_exact(tmp_path, song_file):
    song = song_file("p.wav", seconds=3.0)
    code, _, err = run(
        "separate",
        song,
        "-o",
        tmp_path,
        "--model",
        TINY,
        "--bit-depth",
        "16",
        "--wiener",
        "1",
        "--vocal-gate",
        "0.3,0.1",
        "--binarise",
        "12",
    )
    assert code == 0, err
    paths = [tmp_path / "p" / f"{s}.wav" for s in STEMS]
    assert json.loads(run("nullcheck", song, *paths)[1])["bit_exact"]
    with pytest.raises(SystemExit) as exit_info:  # a usage error: argparse prints it and exits with 2
        run("separate", song, "-o", tmp_path, "--model", TINY, "--vocal-gate", "2")
    assert exit_info.value.code == 2


def test_separate_leaves_a_core_free_unless_told_how_many_threads(tmp_path, song_file):
    import torch

    from stemdesk.io.process import default_threads
    from stemdesk.io.settings import DEFAULTS
    from stemdesk.jobs.hardware import defaults_for

    assert [default_threads(n) for n in (1, 2, 4, 9, 64)] == [1, 1, 3, 8, 8]
    # one rule for the CLI, the app's setting and the first-run hardware probe
    assert DEFAULTS["threads"] == default_threads()
    assert defaults_for({"cuda": False, "mps": False, "cpu_threads": 12})["threads"] == 8
    song = song_file("song.wav", seconds=1.0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(5)
        code, _, err = run("separate", song, "-o", tmp_path / "a", "--model", TINY)
        assert code == 0, err
        assert torch.get_num_threads() == default_threads()
        code, _, err = run("separate", song, "-o", tmp_path / "b", "--model", TINY, "--threads", "3")
        assert code == 0, err
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_the_demo_keeps_its_song_out_of_the_stems_folder(tmp_path, monkeypatch):
    from stemdesk.io import demo

    monkeypatch.setattr(demo, "fetch_debian_song", lambda target, seconds=demo.DEMO_SECONDS: None)  # synthesised
    code, out, err = run("demo", "-o", tmp_path / "stems", "--model", TINY, "--duration", "3")
    assert code == 0, err
    song = next(demo.demo_folder().glob("demo-*.wav"))
    assert f"Demo song: {song}" in out
    written = sorted(p.relative_to(tmp_path / "stems").as_posix() for p in (tmp_path / "stems").rglob("*"))
    assert written == [
        song.stem,
        *(f"{song.stem}/{n}" for n in sorted([*(f"{s}.wav" for s in STEMS), "stemdesk-certificate.json"])),
    ]


def test_an_error_names_the_flag_that_fixes_it(song_file, tmp_path):
    """The core's errors name no front end's controls; the command line adds its own flag."""
    code, _, err = run("separate", song_file(seconds=1.0), "-o", tmp_path, "--model", TINY, "--start", "5")
    assert code == 1 and "beyond the end" in err and err.rstrip().endswith("Check --start.")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a CUDA GPU")
def test_a_missing_gpu_names_the_flag(song_file, tmp_path):
    code, _, err = run("separate", song_file(seconds=1.0), "-o", tmp_path, "--model", TINY, "--device", "cuda")
    assert code == 1 and "no CUDA GPU" in err and err.rstrip().endswith("Use --device cpu.")
