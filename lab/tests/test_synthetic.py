"""Synthetic multitracks: random songs written as MIDI (checked note by note) and rendered by FluidSynth."""

from __future__ import annotations

import shutil

import mido
import numpy as np
import pytest

from lab.synthetic import BASSES, TICKS, compose, load_synthetic, main, synthetic_song
from stemdesk.training.data import Sampler


def notes(tracks: list[mido.MidiTrack]) -> list[tuple[int, int, int]]:
    """(channel, pitch, absolute tick) of every note-on."""
    out = []
    for track in tracks:
        tick = 0
        for message in track:
            tick += message.time
            if message.type == "note_on" and message.velocity > 0:
                out.append((message.channel, message.note, tick))
    return out


def test_a_composed_song_has_drums_on_the_drum_channel_a_bass_line_and_other_parts():
    tempo, tracks = compose(np.random.default_rng(3), bars=8)
    assert 60 <= mido.tempo2bpm(tempo) <= 170
    drums, bass, other = notes(tracks["drums"]), notes(tracks["bass"]), notes(tracks["other"])
    assert {c for c, _, _ in drums} == {9}
    assert {36, 42} <= {p for _, p, _ in drums} or {36, 46} <= {p for _, p, _ in drums}  # kick and hats
    assert 9 not in {c for c, _, _ in bass + other}
    assert all(36 <= p < 60 for _, p, _ in bass)  # bass register
    programs = [m.program for m in tracks["bass"][0] if m.type == "program_change"]
    assert programs and programs[0] in BASSES
    assert all(p >= 48 for _, p, _ in other)
    for part in (drums, bass, other):  # every part plays through all 8 bars
        assert max(t for _, _, t in part) >= 7 * 4 * TICKS
    # every note that starts also stops
    for track in tracks["drums"] + tracks["bass"] + tracks["other"]:
        on = sum(m.type == "note_on" and m.velocity > 0 for m in track)
        off = sum(m.type == "note_off" or (m.type == "note_on" and m.velocity == 0) for m in track)
        assert on == off


def test_the_same_seed_composes_the_same_song_and_another_seed_does_not():
    a, b, c = (compose(np.random.default_rng(seed), bars=4) for seed in (1, 1, 2))
    assert notes(a[1]["other"]) == notes(b[1]["other"]) and a[0] == b[0]
    assert notes(a[1]["other"]) != notes(c[1]["other"]) or a[0] != c[0]


needs_fluidsynth = pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth is not installed")


@needs_fluidsynth
def test_rendered_stems_are_audible_silent_vocals_and_sample_only_into_their_own_pools(tmp_path):
    main([str(tmp_path), "--songs", "2", "--seconds", "6", "--seed", "5"])
    songs = [load_synthetic(folder) for folder in sorted(tmp_path.iterdir())]
    assert [s.name for s in songs] == ["synthetic-0005", "synthetic-0006"]
    for song in songs:
        assert song.sample_rate == 44100 and song.usable == (False, True, True, True)
        assert 5.0 < song.length / song.sample_rate < 12.0
        audio = song.audio()
        assert float(audio[0].abs().max()) == 0.0  # no vocals
        rms = audio[1:].pow(2).mean(dim=(1, 2)).sqrt()
        assert (rms > 1e-3).all(), rms  # drums, bass and other all sound
        assert float(audio[1:].abs().max()) < 1.0  # and none clips
    # Written files hold what synthetic_song renders for that seed.
    again = synthetic_song(5, 6.0)
    assert np.array_equal(again.stems, songs[0].stems)
    # The sampler never draws vocals from a synthetic song, even when it is the only one with drums/bass/other.
    sampler = Sampler(songs + [_vocal_only()], 44100, remix=0.0, seed=0)
    batch = sampler.batch(6)
    assert batch.shape == (6, 4, 2, 44100)
    assert (batch[:, 0].abs().amax(dim=(1, 2)) > 0).all()


def _vocal_only():
    from stemdesk.training.data import Song

    rng = np.random.default_rng(0)
    stems = np.zeros((4, 2, 3 * 44100), np.int16)
    stems[0] = (rng.standard_normal((2, 3 * 44100)) * 3000).astype(np.int16)
    return Song("voice", stems, (True, False, False, False), 44100)
