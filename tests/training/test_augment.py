"""Augmentations do what they say to every source alike; the sampler's mixture is the sum of its stems."""

from __future__ import annotations

import torch
from test_training import synthetic_song

from stemdesk.core import augment
from stemdesk.training.data import Sampler


def dominant_hz(signal: torch.Tensor, rate: int) -> float:
    spectrum = torch.fft.rfft(signal * torch.hann_window(signal.shape[-1]))
    return spectrum.abs().argmax().item() * rate / signal.shape[-1]


def test_pitch_shift_moves_the_pitch_and_keeps_the_length():
    rate = 16000
    t = torch.arange(2 * rate) / rate
    tone = torch.sin(2 * torch.pi * 440 * t)
    for semitones in (-2.0, 3.0, 12.0):
        shifted = augment.pitch_shift(tone, semitones)
        assert shifted.shape == tone.shape
        assert abs(dominant_hz(shifted, rate) - 440 * 2 ** (semitones / 12)) < 2.0


def test_time_stretch_changes_the_length_not_the_pitch():
    rate = 16000
    tone = torch.sin(2 * torch.pi * 440 * torch.arange(2 * rate) / rate)
    for speed in (0.8, 1.25):
        stretched = augment.time_stretch(tone, speed)
        assert stretched.shape[-1] == round(tone.shape[-1] / speed)
        assert abs(dominant_hz(stretched, rate) - 440) < 2.0


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
    sampler = Sampler(songs, 8000, remix=0.5, seed=3, pitch_time=1.0)
    batch = sampler.batch(3)
    assert batch.shape == (3, 4, 2, 8000) and torch.isfinite(batch).all()
    again = Sampler(songs, 8000, remix=0.5, seed=3, pitch_time=1.0).batch(3)
    assert torch.equal(batch, again)  # seeded: a resumed run draws the same examples
