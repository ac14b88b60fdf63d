"""Augmentations do what they say; the sampler's mixture is the sum of its stems."""

from __future__ import annotations

import pytest
import torch
from test_training import synthetic_song

from stemdesk.core import augment
from stemdesk.training.augment import NO_AUGMENTATION, Augmentation, pitch_time
from stemdesk.training.data import Sampler


def dominant_hz(signal: torch.Tensor, rate: int) -> float:
    spectrum = torch.fft.rfft(signal * torch.hann_window(signal.shape[-1]))
    return spectrum.abs().argmax().item() * rate / signal.shape[-1]


def test_pitch_time_moves_the_pitch_through_pedalboard_and_keeps_the_length():
    rate = 16000
    t = torch.arange(2 * rate) / rate
    tone = torch.sin(2 * torch.pi * 440 * t).repeat(2, 2, 1)  # (sources, channels, length)
    for semitones, tempo in ((-2.0, 1.0), (3.0, 1.1), (0.0, 0.9)):
        moved = pitch_time(tone, rate, semitones, tempo)
        assert moved.shape == tone.shape
        middle = moved[1, 0, rate // 4 : rate + rate // 4]  # away from the stretcher's start and the padded end
        assert abs(dominant_hz(middle, rate) - 440 * 2 ** (semitones / 12)) < 3.0


def test_a_faster_tempo_leaves_silence_at_the_end_and_a_slower_one_is_cut():
    rate = 16000
    tone = torch.sin(2 * torch.pi * 440 * torch.arange(2 * rate) / rate).repeat(1, 2, 1)
    faster = pitch_time(tone, rate, 0.0, 1.25)
    assert float(faster[..., -rate // 4 :].abs().max()) == 0.0  # 2 s played in 1.6 s, then zeros
    slower = pitch_time(tone, rate, 0.0, 0.8)
    assert float(slower[..., -rate // 4 :].abs().max()) > 0.5


def test_gain_swap_polarity_act_per_source():
    g = torch.Generator().manual_seed(0)
    stems = torch.randn(4, 2, 100)
    swapped = augment.channel_swap(stems, g, p=1.0)
    assert torch.equal(swapped[:, 0], stems[:, 1])
    flipped = augment.polarity(stems, g, p=1.0)
    assert torch.equal(flipped, -stems)
    gained = augment.random_gain(stems, g, -6, -6)
    assert torch.allclose(gained, stems * 10 ** (-6 / 20))


def test_sampler_with_every_augmentation_yields_consistent_batches():
    songs = [synthetic_song(f"s{i}", i) for i in range(3)]
    every = Augmentation(pitch_time=1.0)
    sampler = Sampler(songs, 8000, remix=0.5, seed=3, augmentation=every)
    batch = sampler.batch(3)
    assert batch.shape == (3, 4, 2, 8000) and torch.isfinite(batch).all()
    again = Sampler(songs, 8000, remix=0.5, seed=3, augmentation=every).batch(3)
    assert torch.equal(batch, again)  # seeded: a resumed run draws the same examples


def test_without_augmentation_every_example_is_an_excerpt_of_a_song_as_mixed():
    songs = [synthetic_song(f"s{i}", i) for i in range(3)]
    sampler = Sampler(songs, 8000, remix=0.0, seed=1, augmentation=NO_AUGMENTATION)
    for stems in sampler.batch(4):
        found = False
        for song in songs:
            audio = song.audio()
            for start in range(song.length - 8000):
                if torch.equal(audio[0, 0, start : start + 8], stems[0, 0, :8]):
                    found = torch.equal(audio[..., start : start + 8000], stems)
                    break
            if found:
                break
        assert found


def test_augmentation_settings_are_checked():
    with pytest.raises(ValueError, match="probability between 0 and 1"):
        Augmentation(channel_swap=1.5)
    with pytest.raises(ValueError, match="from low to high"):
        Augmentation(gain_db=(3.0, -6.0))
