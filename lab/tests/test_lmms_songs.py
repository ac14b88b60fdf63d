"""Held-out songs rendered from LMMS's demo projects: which track goes to which stem, the render order, the
licences, and a real render whose four stems add up to what LMMS renders for the whole song."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
import soundfile as sf

from lab.lmms_songs import (
    PROJECTS,
    RendererCrashed,
    Track,
    _words,
    classify,
    licence,
    low_energy_share,
    rendered_tracks,
    run_lmms,
    song_from_project,
)
from stemdesk.training.dataset import load_songs


def skip_on_crash(crash: str) -> None:
    """These songs are evaluation data, not a product path: LMMS dying of a signal on every try (it crashes now and
    then on a render it completes alone) skips the test instead of failing a user's test run."""
    pytest.skip(f"LMMS, a third-party renderer, crashed: {crash}")


PROJECT = """<?xml version="1.0"?>
<lmms-project version="1.0" type="song">
 <head bpm="120"/>
 <song>
  <trackcontainer type="song">
   <track type="0" name="Lead" muted="0"><instrumenttrack><instrument name="tripleoscillator"/></instrumenttrack>
    <pattern><note key="60" len="48"/><note key="64" len="48"/></pattern></track>
   <track type="1" name="Beat 1" muted="0"><bbtrack><trackcontainer type="bbtrackcontainer">
     <track type="0" name="Kick" muted="0"><instrumenttrack><instrument name="kicker"/></instrumenttrack></track>
     <track type="0" name="hihat_closed01.ogg" muted="1"><instrumenttrack><instrument name="audiofileprocessor">
      <audiofileprocessor src="drums/hihat_closed01.ogg"/></instrument></instrumenttrack></track>
   </trackcontainer></bbtrack></track>
   <track type="5" name="Automation track" muted="0"/>
   <track type="2" name="Sample track" muted="0"><sampletrack/><sampletco src="vocals/hook.wav"/></track>
   <track type="0" name="Muted pad" muted="1"><instrumenttrack><instrument name="zynaddsubfx"/></instrumenttrack></track>
  </trackcontainer>
 </song>
</lmms-project>"""


def test_the_tracks_come_in_the_order_lmms_renders_them_without_the_muted_ones():
    """The song's instrument and sample tracks first, then the beat/bassline editor's; automation and muted
    tracks are not rendered."""
    tracks = rendered_tracks(ElementTree.fromstring(PROJECT))
    assert [(t.name, t.plugin) for t in tracks] == [
        ("Lead", "tripleoscillator"),
        ("Sample track", "sample"),
        ("Kick", "kicker"),
    ]
    assert (tracks[0].notes, tracks[0].keys) == (2, 2) and tracks[1].sample == "vocals/hook.wav"


@pytest.mark.parametrize(
    "track, low, stem",
    [
        (Track("bassdrum03.ogg", "audiofileprocessor", "drums/bassdrum03.ogg"), 0.9, "drums"),
        (Track("Bass Drum", "tripleoscillator"), 0.9, "drums"),  # "bass" and "drum": the drum wins
        (Track("Tr77_kick.ds", "audiofileprocessor", "drumsynth/tr77/Tr77_kick.ds"), 0.9, "drums"),
        (Track("Default preset", "kicker"), 0.9, "drums"),
        (Track("Closed HihHat 03", "audiofileprocessor", "instruments/x.ogg"), 0.0, "drums"),  # a typo, split
        (Track("Open HiHat 02", "audiofileprocessor", "instruments/x.ogg"), 0.0, "drums"),
        (Track("rave_bass01.ogg", "audiofileprocessor", "basses/rave_bass01.ogg"), 0.1, "bass"),
        (Track("SubBass", "tripleoscillator"), 0.1, "bass"),
        (Track("Acid", "lb302"), 0.1, "bass"),
        (Track("Default preset", "zynaddsubfx", keys=5), 0.8, "bass"),  # a line that sounds low
        (Track("sfxr", "sfxr", keys=1), 0.8, "other"),  # low, but one pitch: a boom, not a line
        (Track("Default preset", "zynaddsubfx", keys=5), 0.3, "other"),
        (Track("Default preset", "zynaddsubfx", keys=5), None, "other"),  # silent
        (Track("Sample track", "sample", "loops/rumble.wav"), 0.9, "other"),  # a sample track is not judged by ear
        (Track("Lead vox", "sample", "vocals/hook.wav"), 0.1, "vocals"),
        (Track("Killed Voice", "tripleoscillator", keys=8), 0.1, "other"),  # a synth named "voice"
        (Track("Bassoon", "sf2player", keys=7), 0.7, "bass"),  # low enough to be heard as the bass line
        (Track("Percussion", "sf2player", gm_drums=True), 0.7, "drums"),
        # DrumSynth's pitched instruments are not drums
        (Track("E-Piano", "audiofileprocessor", "drumsynth/instrument/E_Piano.ds"), 0.1, "other"),
        (Track("Mute Bass", "audiofileprocessor", "drumsynth/instrument/mute_bass.ds"), 0.5, "bass"),
    ],
)
def test_each_track_goes_to_a_stem_by_what_it_is(track, low, stem):
    track.words = _words(track.name, track.sample)
    got, why = classify(track, low)
    assert got == stem, why
    assert why


def test_the_low_energy_share_of_a_bass_line_and_a_lead():
    rate = 44100
    t = np.arange(rate) / rate
    bass = np.stack([np.sin(2 * np.pi * 55 * t)] * 2, axis=1)
    lead = np.stack([np.sin(2 * np.pi * 880 * t)] * 2, axis=1)
    assert low_energy_share(bass, rate) > 0.99
    assert low_energy_share(lead, rate) < 0.01
    assert low_energy_share(np.zeros((rate, 2)), rate) is None


def test_the_licence_is_the_last_matching_stanza_of_the_copyright_file(tmp_path):
    copyright_file = tmp_path / "copyright"
    copyright_file.write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: LMMS developers\nLicense: GPL-2+\n\n"
        "Files: data/projects/demos/CapDan/CapDan-ReggaeTry.*\n data/projects/demos/Settel-*\n"
        "Copyright: 2011 Der Daniel\nLicense: Artistic-2\n\n"
        "Files: data/projects/*/Skiessi/*\nCopyright: Skiessi\nLicense: CC-BY-SA-4\n",
        encoding="utf-8",
    )
    assert licence("demos/CapDan/CapDan-ReggaeTry.mmpz", copyright_file) == "Artistic-2"
    assert licence("demos/Settel-InnerRecreation.mmpz", copyright_file) == "Artistic-2"
    assert licence("demos/Skiessi/Skiessi-C64.mmpz", copyright_file) == "CC-BY-SA-4"
    assert licence("shorties/DirtyLove.mmpz", copyright_file) == "GPL-2+"
    assert licence("x.mmp", tmp_path / "missing").startswith("unknown")


DEMO = PROJECTS / "demos" / "CapDan" / "CapDan-ReggaeTry.mmpz"


@pytest.mark.skipif(
    shutil.which("lmms") is None or not DEMO.is_file(),
    reason="needs LMMS and its demo projects: `apt install lmms` (scripts/setup.sh --test installs it)",
)
def test_a_rendered_song_is_four_stems_that_add_up_to_lmmss_own_render(tmp_path):
    """A real demo project (43 s): rendered track by track into stems, and rendered whole by LMMS; the sum of
    the stems is the song to 24-bit precision. Its drums are its drum samples, its bass the slap bass."""
    try:
        folder = song_from_project(DEMO, tmp_path, PROJECTS)
    except RendererCrashed as crash:
        skip_on_crash(str(crash))
    assert folder == tmp_path / DEMO.stem and not list(tmp_path.glob(".render-*"))
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    stems = {t["name"]: t["stem"] for t in meta["tracks"]}
    assert stems["BD 03"] == stems["Snare 05"] == stems["Open HiHat 02"] == "drums"
    assert stems["Bass Slap 02"] == "bass" and stems["E-Piano"] == "other"
    assert meta["license"] == "Artistic-2" and "demos/CapDan/CapDan-ReggaeTry.mmpz" in meta["source"]

    whole = tmp_path / "whole.wav"
    try:
        run_lmms(["render", str(DEMO), "-f", "wav", "-a", "-x", "1", "-o", str(whole)], DEMO.name)
    except RendererCrashed as crash:
        skip_on_crash(str(crash))
    song, _ = sf.read(whole, dtype="float64")
    parts = {s: sf.read(folder / f"{s}.flac", dtype="float64")[0] for s in ("vocals", "drums", "bass", "other")}
    assert not parts["vocals"].any() and all(np.abs(parts[s]).max() > 0.01 for s in ("drums", "bass", "other"))
    total = sum(parts.values()) / meta["gain"]
    n = min(len(song), len(total))
    assert abs(len(song) - len(total)) < 2 * 44100  # the stems end half a second after the last sound
    residual = song[:n] - total[:n]
    per_second = (residual[: n // 44100 * 44100].reshape(-1, 44100, 2) ** 2).sum(axis=(1, 2))
    worst = int(per_second.argmax())
    snr = 10 * np.log10((song[:n] ** 2).sum() / (residual**2).sum())
    assert snr > 60, f"the stems' sum is {snr:.1f} dB from LMMS's render; the most residual at {worst} s ({meta})"
    loaded = load_songs([folder])[0]  # a training/validation song like those in ../shared/data
    assert loaded.name == DEMO.stem and loaded.stems.shape[:2] == (4, 2)


def test_a_folder_that_is_not_an_lmms_project_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not an LMMS project"):
        rendered_tracks(ElementTree.fromstring("<lmms-project><head/></lmms-project>"))
    assert not Path(tmp_path / "x").exists()


@pytest.mark.skipif(
    shutil.which("lmms") is None or not DEMO.is_file(),
    reason="needs LMMS and its demo projects: `apt install lmms` (scripts/setup.sh --test installs it)",
)
def test_a_project_that_cannot_be_read_is_skipped_and_named_and_the_others_are_written(tmp_path, capsys):
    from lab.lmms_songs import main

    projects = tmp_path / "projects"
    (projects / "demos").mkdir(parents=True)
    shutil.copy(DEMO, projects / "demos" / DEMO.name)
    (projects / "shorties").mkdir()
    (projects / "shorties" / "Broken.mmpz").write_bytes(b"\x00\x00\x00\x10not zlib at all")
    with pytest.raises(SystemExit) as exited:
        main([str(tmp_path / "songs"), "--projects", str(projects)])
    said = capsys.readouterr().out
    if f"{DEMO.stem}: not rendered (lmms crashed" in said:
        skip_on_crash(said)
    assert str(exited.value).startswith("1 of 2 projects could not be rendered (Broken);")
    assert "Broken: not rendered" in said
    assert (tmp_path / "songs" / DEMO.stem / "meta.json").is_file()
    assert not (tmp_path / "songs" / "Broken").exists()


def fake_lmms(tmp_path: Path, monkeypatch, crashes: int) -> Path:
    """An `lmms` on PATH that dies of SIGSEGV on its first ``crashes`` runs, then writes its arguments and exits 0."""
    runs = tmp_path / "runs"
    script = tmp_path / "bin" / "lmms"
    script.parent.mkdir(parents=True)
    script.write_text(
        f'#!/bin/sh\necho run >> "{runs}"\n'
        f'[ "$(wc -l < "{runs}")" -le {crashes} ] && kill -SEGV $$\necho "$@" > "{tmp_path / "args"}"\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{script.parent}:{os.environ['PATH']}")
    return runs


def test_an_lmms_crash_is_tried_again_and_a_crash_every_time_says_so(tmp_path, monkeypatch):
    runs = fake_lmms(tmp_path, monkeypatch, crashes=2)
    run_lmms(["render", "x.mmpz"], "x.mmpz")
    assert runs.read_text().count("run") == 3
    assert (tmp_path / "args").read_text().split() == ["--allowroot", "render", "x.mmpz"]

    fake_lmms(tmp_path / "always", monkeypatch, crashes=3)
    with pytest.raises(RendererCrashed, match=r"lmms crashed 3 times rendering y.mmpz \(signal 11\)"):
        run_lmms(["render", "y.mmpz"], "y.mmpz")
    assert not (tmp_path / "always" / "args").exists()
