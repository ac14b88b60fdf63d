"""The teacher-labelled corpus as training windows (stemdesk.training.corpus.load_labelled), on a small labelled cache
written here the way `corpus fetch` and `corpus label` leave one: a manifest, the batch's record and its stems."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import alive

from stemdesk.core.errors import StemDeskError
from stemdesk.training.corpus import labels_dir, load_labelled

RATE = 44100
MODEL = "tiny-4stem"


def tone(hz: float, seconds: float, level_db: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    noise = np.random.default_rng(seed).standard_normal(t.shape) * 0.1
    wave = np.sin(2 * np.pi * hz * t) + noise
    wave *= 10 ** (level_db / 20) / np.sqrt(np.mean(wave**2))
    return np.stack([wave, wave * 0.9]).T  # (n, 2)


def labelled_cache(tmp_path, seconds: float = 45.0):
    """One 45-second song whose teacher labels are: vocals at −25 dB (between the unsure bounds: bleed), drums, bass
    and other at −12 dB; and a last 5 seconds of silence."""
    cache = tmp_path / "corpus"
    song = cache / "audio" / "pkg" / "music" / "tune.flac"
    song.parent.mkdir(parents=True)
    levels = {"vocals": -28.0, "drums": -12.0, "bass": -12.0, "other": -12.0}  # vocals −21 dB of the mix
    stems = {name: tone(110 * (i + 1), seconds, db, i) for i, (name, db) in enumerate(levels.items())}
    for audio in stems.values():
        audio[int(40 * RATE) :] = 0
    sf.write(str(song), sum(stems.values()), RATE, subtype="PCM_24")
    row = {"path": str(song.relative_to(cache)), "package": "pkg", "licence": "CC0", "sha256": "abc", "seconds": 45}
    (cache / "manifest.jsonl").write_text(json.dumps(row) + "\n")
    out = labels_dir(cache, MODEL)
    folder = out / "tune"
    folder.mkdir(parents=True)
    for name, audio in stems.items():
        sf.write(str(folder / f"{name}.flac"), audio, RATE, subtype="PCM_24")
    record = {"status": "done", "input_sha256": "abc", "relative": "tune"}
    (out / "stemdesk-batch.jsonl").write_text(json.dumps(record) + "\n")
    return cache, stems


def fetched_cache(tmp_path, package: str):
    """A corpus cache as `corpus fetch` leaves its folders: a Frets on Fire package "fof" (a song's folder) and
    ``package``; the songs are written by the test."""
    cache = tmp_path / "corpus"
    folders = {
        "fof": cache / "audio" / "fof" / "music" / "songs" / "tune",
        package: cache / "audio" / package / "music",
    }
    for name, folder in folders.items():
        folder.mkdir(parents=True)
        (cache / "audio" / name / ".complete").write_text(f"{name}_1_all.deb\n")
    return cache, folders


def test_labelled_windows_keep_sure_labels_and_sum_to_the_song(tmp_path):
    cache, stems = labelled_cache(tmp_path)
    labelled = load_labelled(cache, MODEL, RATE, windows_per_song=5)
    assert labelled.windows == 2 and len(labelled.songs) == 2  # 0–20 s, 20–40 s; no third whole window
    for song in labelled.songs:
        assert song.usable == (False, True, True, True)  # vocals at −21 dB of the mix: unsure, not a target
        audio = song.stems.astype(np.float64) / 32768
        start = int(song.name.rsplit("@", 1)[1].rstrip("s")) * RATE
        meant = np.stack([stems[n][start : start + 20 * RATE].T for n in ("vocals", "drums", "bass", "other")])
        assert np.abs(audio - meant).max() < 1e-3  # the teacher's stems, in order, cut where the window says
    assert labelled.faint == {"vocals": 2}
    assert labelled.summary()["targets"] == ["vocals", "drums", "bass", "other"]


def test_teacher_targets_leave_the_other_sources_in_the_mix_but_not_as_targets(tmp_path):
    cache, _ = labelled_cache(tmp_path)
    everything = load_labelled(cache, MODEL, RATE)
    some = load_labelled(cache, MODEL, RATE, targets=("drums", "bass"))
    assert [s.usable for s in some.songs] == [(False, True, True, False)] * 2
    for a, b in zip(everything.songs, some.songs):
        assert np.array_equal(a.stems, b.stems)  # the same mixes: other is still heard, only not learnt from
    assert some.summary()["targets"] == ["drums", "bass"]


def test_training_from_scratch_on_teacher_labels_says_in_the_card_that_the_weights_are_research_only(tmp_path):
    from helpers import parts, run, write_song
    from test_recipes import tiny

    from stemdesk.io.model_store import find_model
    from stemdesk.training.corpus import default_cache

    labelled_cache(default_cache().parent)  # where `corpus label` leaves its labels
    data = tmp_path / "songs"
    for i in range(3):
        write_song(data / f"song{i}", parts(i, seconds=2.0))
    flags = ["--teacher", MODEL, "--teacher-share", "0.3", "--teacher-windows", "2"]
    train = ["--valid", "song2", "--steps", "2", "--batch", "2", "--threads", "1", *tiny("roma-dnn")]
    code, out, err = run("train", "--recipe", "roma-dnn", "--data", data, "--out", "taught", *flags, *train)
    assert code == 0, err
    assert "these weights are for personal and research use only" in out
    card = find_model("taught")
    teacher = card.raw["training_data"]["teacher"]
    assert teacher["model"] == MODEL and teacher["windows"] == 2 and teacher["share_of_examples"] == 0.3
    # The labels hold 0.3 of the audio of each source where they are targets; roma-dnn remixes half of its
    # examples, and draws the other half from complete songs, which the labelled windows are not (unsure vocals).
    assert teacher["drawn_share_per_source"] == {"vocals": 0.0, "drums": 0.15, "bass": 0.15, "other": 0.15}
    assert "personal and research use only" in card.raw["training_data"]["research_only"]
    licences = card.raw["licenses"]
    assert licences["pkg"] == "CC0" and "personal and research use only" in licences[f"{MODEL}-labels"]
    assert "personal and research use only" in licences["weights"]
    readme = (card.folder / "README.md").read_text()
    assert "personal and research use only" in readme and "drawn per source: vocals 0.00, drums 0.15" in readme
    code, listing, _ = run("models", "--all")
    assert f"personal and research use only (trained on {MODEL}'s labels)" in listing.split("Research (")[1]


def test_a_teacher_share_out_of_range_is_refused_before_anything_loads(tmp_path):
    from helpers import run

    code, _, err = run(
        "train", "--recipe", "roma-dnn", "--data", tmp_path, "--out", "x", "--teacher", "--teacher-share", "1"
    )
    assert code == 1 and "at most 0.95" in err


def test_label_runs_the_teacher_on_the_packages_asked_for_and_not_on_a_song_s_separate_guitar(tmp_path):
    """A Frets on Fire song is song.ogg plus its real guitar.ogg (added to the teacher's "other" of the song when
    loading): the guitar is not labelled itself, and a package not asked for is left alone."""
    from stemdesk.core.device import resolve_device
    from stemdesk.training.corpus import label, to_label, write_manifest

    cache, folders = fetched_cache(tmp_path, "other-pkg")
    sf.write(str(folders["fof"] / "song.flac"), tone(220, 21, -12, 0), RATE)
    sf.write(str(folders["fof"] / "guitar.flac"), tone(330, 21, -12, 1), RATE)
    sf.write(str(folders["other-pkg"] / "theme.flac"), tone(440, 21, -12, 2), RATE)
    assert len(write_manifest(cache)) == 3

    assert [row["path"] for row in to_label(cache)] == [
        "audio/fof/music/songs/tune/song.flac",
        "audio/other-pkg/music/theme.flac",
    ]
    assert label(cache, MODEL, threads=1, packages=["fof"]) == 0
    records = [
        json.loads(line) for line in (labels_dir(cache, MODEL) / "stemdesk-batch.jsonl").read_text().splitlines()
    ]
    assert [(r["relative"], r["status"]) for r in records] == [("audio/fof/music/songs/tune/song", "done")]
    assert records[0]["device"] == str(resolve_device("auto"))  # the teacher on a GPU when there is one
    stems = labels_dir(cache, MODEL) / "audio" / "fof" / "music" / "songs" / "tune" / "song"
    assert {p.name for p in stems.glob("*.flac")} == {"vocals.flac", "drums.flac", "bass.flac", "other.flac"}
    assert not (stems.parent / "guitar").exists()


def test_a_run_asks_for_the_labelled_songs_it_trained_on_and_is_told_which_are_missing(tmp_path):
    """The reproduction benchmark trains every row on the same labelled songs, on whatever machine: it asks for them
    by sha256, and a song not labelled (yet) is an error that says how to label it."""
    import pytest

    cache, _ = labelled_cache(tmp_path)
    assert load_labelled(cache, MODEL, RATE, songs={"abc"}).song_sha256 == ["abc"]
    assert load_labelled(cache, MODEL, RATE, songs=set()).windows == 0
    rows = (cache / "manifest.jsonl").read_text() + json.dumps({"path": "x.flac", "package": "pkg2", "sha256": "def"})
    (cache / "manifest.jsonl").write_text(rows + "\n")
    with pytest.raises(StemDeskError, match=r"1 of the 2 songs .*corpus label --model tiny-4stem --packages pkg2"):
        load_labelled(cache, MODEL, RATE, songs={"abc", "def"})


def test_label_windows_cuts_and_labels_only_the_windows_training_takes(tmp_path):
    """`label --windows N` labels N loud 20-second windows of each song, spread over it, instead of the whole song:
    the windows are cut from the song (a Frets on Fire song's guitar beside them), labelled through `stemdesk batch`,
    and load as training windows whose stems sum to the song where they were cut. A song labelled whole is not cut,
    and cutting again cuts nothing."""
    from stemdesk.training.corpus import cut_windows, excerpt_rows, label, status, to_label, write_manifest

    cache, folders = fetched_cache(tmp_path, "pkg")
    theme = tone(440, 100, -12, 2)
    theme[int(20 * RATE) : int(40 * RATE)] = 0  # a silent window: never cut
    sf.write(str(folders["pkg"] / "theme.flac"), theme, RATE, subtype="PCM_24")
    song, guitar = tone(220, 41, -12, 0), tone(330, 41, -12, 1)
    sf.write(str(folders["fof"] / "song.flac"), song, RATE, subtype="PCM_24")
    sf.write(str(folders["fof"] / "guitar.flac"), guitar, RATE, subtype="PCM_24")
    sf.write(str(folders["pkg"] / "short.flac"), tone(550, 21, -12, 3), RATE, subtype="PCM_24")
    write_manifest(cache)
    short = next(row for row in to_label(cache) if row["path"].endswith("short.flac"))
    assert label(cache, MODEL, threads=1, packages=["pkg"]) == 0  # theme and short, whole
    whole = load_labelled(cache, MODEL, RATE, windows_per_song=3)
    (labels_dir(cache, MODEL) / "stemdesk-batch.jsonl").write_text(
        "".join(
            line + "\n"
            for line in (labels_dir(cache, MODEL) / "stemdesk-batch.jsonl").read_text().splitlines()
            if short["sha256"] in line
        )
    )  # forget theme's whole labels: only short stays labelled whole

    assert label(cache, MODEL, threads=1, windows=3) == 0
    cut = excerpt_rows(cache)
    assert sorted((row["song"].rsplit("/", 1)[1], row["start"]) for row in cut) == [
        ("song.flac", 0.0),
        ("song.flac", 20.0),
        ("theme.flac", 0.0),
        ("theme.flac", 60.0),
        ("theme.flac", 80.0),
    ]  # theme: 3 of its 4 loud windows, spread (0, 60, 80 s: not the silent 20–40 s); short, labelled whole: none
    assert all((cache / row["path"]).with_name("guitar.flac").is_file() == ("fof" in row["path"]) for row in cut)
    assert cut_windows(cache, [row for row in to_label(cache) if row != short], 3) == cut  # cut once, not again
    assert (cache / "excerpts" / "audio" / "fof" / "music" / "songs" / "tune" / "song" / "20s" / "song.flac").is_file()

    labelled = load_labelled(cache, MODEL, RATE, windows_per_song=2)
    names = [s.name for s in labelled.songs]
    assert names == ["fof:tune@0s", "fof:tune@20s", "pkg:short@0s", "pkg:theme@0s", "pkg:theme@80s"]
    assert labelled.real_guitar_songs == 1 and labelled.windows == 5 and len(labelled.song_sha256) == 3
    windows = {s.name: s for s in labelled.songs if "short" not in s.name}
    for window in windows.values():
        start = int(window.name.rsplit("@", 1)[1].rstrip("s")) * RATE
        heard = (theme if "theme" in window.name else song + guitar)[start : start + 20 * RATE].T
        mix = window.stems.astype(np.float64).sum(0) / 32768
        assert np.abs(mix - heard).max() < 1e-3  # the teacher's stems of the window sum to the song there
    theme_whole = {s.name: s.stems for s in whole.songs if "theme" in s.name}
    assert (
        np.abs(
            windows["pkg:theme@0s"].stems.astype(np.float64).sum(0)
            - theme_whole["pkg:theme@0s"].astype(np.float64).sum(0)
        ).max()
        <= 16
    )  # the same window, labelled alone or within its song: the same mix
    counts = status(cache, MODEL)
    assert counts["songs_with_windows_labelled"] == 2 and counts["window_minutes_labelled"] == round(100 / 60, 1)
    assert counts["packages"]["pkg"]["labelled"] == round(21 / 60, 1)
    assert counts["packages"]["pkg"]["window_minutes_labelled"] == 1.0  # theme's three windows
    assert counts["packages"]["fof"]["window_minutes_labelled"] == round(40 / 60, 1)  # song's two


def _children(pid: int, pattern: str) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid), "-f", pattern], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the child asks Linux for a signal (prctl)")
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_stopping_the_labeller_stops_its_batch_and_leaves_no_half_labelled_song(tmp_path, stop):
    """`corpus label` runs `stemdesk batch`: stopped alone (SIGTERM to its pid, as `kill` or a job scheduler sends,
    or kill -9), it left the batch labelling on for nobody (found as an orphan using a core). The batch, and its
    worker, now end too, and the song in progress leaves no stems."""
    from stemdesk.training.corpus import write_manifest

    cache, folders = fetched_cache(tmp_path, "pkg")
    noise = 0.1 * np.random.default_rng(0).standard_normal((600 * RATE, 2))
    sf.write(str(folders["pkg"] / "long.flac"), noise, RATE, subtype="PCM_16")
    write_manifest(cache)
    command = [sys.executable, "-m", "stemdesk.training.corpus", "label", "--cache", str(cache)]
    labeller = subprocess.Popen(
        [*command, "--model", "stemdesk-4stem"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    batch = worker = None
    try:
        deadline = time.monotonic() + 120
        while worker is None and time.monotonic() < deadline and labeller.poll() is None:
            batch = next(iter(_children(labeller.pid, "stemdesk batch")), batch)
            worker = next(iter(_children(batch, "spawn_main")), None) if batch else None
            time.sleep(0.2)
        assert batch is not None and worker is not None, "the labeller never started its batch's worker"
        time.sleep(3)  # the worker is separating: 600 s of audio takes it half a minute or more
        labeller.send_signal(stop)
        labeller.wait(timeout=30)
        deadline = time.monotonic() + 60
        while (alive(batch) or alive(worker)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(batch), "the batch labels on after its labeller was stopped"
        assert not alive(worker), "the batch's worker separates on after its labeller was stopped"
        if stop == signal.SIGTERM:
            assert labeller.returncode != 0 and "run the same command again" in labeller.stderr.read()
    finally:
        for pid in (labeller.pid, batch, worker):
            if pid is not None and alive(pid):
                os.kill(pid, signal.SIGKILL)
        labeller.wait()
    assert not list(labels_dir(cache, "stemdesk-4stem").rglob("*.flac")), "a half-labelled song left stems"


def _anonymous_memory() -> int:
    """This process's resident memory that no file backs (bytes, Linux)."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("RssAnon:"))
    return int(line.split()[1]) * 1024


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads /proc (Linux)")
def test_labels_are_decoded_once_and_mapped_from_disk_not_held_in_memory(tmp_path):
    """A training run holds hours of labels (975 windows of four stems are 13.7 GB as int16; a run that held them
    needed 20 GB and could not share the machine): they are decoded once into the cache and mapped from there, so
    loading them again takes next to no memory of the process's own and decodes nothing."""
    cache, stems = labelled_cache(tmp_path)
    first = load_labelled(cache, MODEL, RATE)
    before = _anonymous_memory()
    again = load_labelled(cache, MODEL, RATE)
    grown = _anonymous_memory() - before
    held = sum(song.stems.nbytes for song in again.songs)
    assert held >= 2 * 20 * RATE * 2 * 4 * 2  # two windows of four stereo stems, as int16
    assert grown < held / 4, f"loading the labels again took {grown / 1e6:.1f} MB of memory for {held / 1e6:.1f} MB"
    for a, b in zip(first.songs, again.songs):
        assert np.array_equal(a.stems, b.stems)
    assert len(list((cache / "decoded").glob("*.npy"))) == 1  # the song, decoded once


def test_new_labels_are_decoded_anew_and_a_damaged_decoded_file_is_replaced(tmp_path):
    cache, stems = labelled_cache(tmp_path)
    load_labelled(cache, MODEL, RATE)
    drums = labels_dir(cache, MODEL) / "tune" / "drums.flac"
    sf.write(str(drums), stems["drums"] * 0.5, RATE, subtype="PCM_24")  # the teacher labelled the song again
    halved = load_labelled(cache, MODEL, RATE).songs[0].stems[1].astype(np.float64) / 32768
    assert np.abs(halved - stems["drums"][: 20 * RATE].T * 0.5).max() < 1e-3
    for decoded in (cache / "decoded").glob("*.npy"):
        decoded.write_bytes(decoded.read_bytes()[:100])  # cut short, as by a full disk
    again = load_labelled(cache, MODEL, RATE)
    assert again.windows == 2 and np.array_equal(again.songs[0].stems[1], (halved * 32768).round().astype(np.int16))


def test_labels_load_from_a_cache_that_cannot_hold_the_decoded_files(tmp_path, capsys):
    """A read-only or full cache costs memory, not the labels: the windows are the same, held in memory."""
    cache, _ = labelled_cache(tmp_path)
    mapped = load_labelled(cache, MODEL, RATE)
    shutil.rmtree(cache / "decoded")
    (cache / "decoded").write_text("a file where the folder would go")
    held = load_labelled(cache, MODEL, RATE)
    assert held.windows == 2 and all(np.array_equal(a.stems, b.stems) for a, b in zip(mapped.songs, held.songs))
    assert "kept in memory" in capsys.readouterr().out
