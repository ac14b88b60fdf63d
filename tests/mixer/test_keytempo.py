"""Key and tempo (`stemdesk.mixer.keytempo`), measured against what the answer must be: a sine moved by N semitones
has that frequency (to a fraction of a cent), a tempo R gives len / R samples, blocks of any size give the same
output, and a change while streaming never jumps."""

from __future__ import annotations

import numpy as np
import pytest

from stemdesk.mixer.keytempo import KeyTempo

RATE = 44100


def sine(hz: float, seconds: float = 3.0, amplitude: float = 0.5, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return np.repeat((amplitude * np.sin(2 * np.pi * hz * t))[None], channels, axis=0).astype(np.float32)


def stream(audio: np.ndarray, semitones: float = 0.0, tempo: float = 1.0, block: int = 1024) -> np.ndarray:
    """``audio`` through KeyTempo in blocks of ``block`` frames, as live playback feeds it."""
    engine = KeyTempo(RATE, audio.shape[0], semitones, tempo)
    out = []
    for i in range(0, audio.shape[-1], block):
        engine.push(audio[:, i : i + block])
        out.append(engine.pull(engine.available))
    engine.end()
    out.append(engine.pull(engine.available))
    assert engine.finished
    return np.concatenate(out, axis=-1)


def middle(audio: np.ndarray) -> np.ndarray:
    """The first channel's middle half, in float64: away from where the stream starts and ends."""
    n = audio.shape[-1]
    return audio[0, n // 4 : 3 * n // 4].astype(np.float64)


def peak_hz(audio: np.ndarray) -> float:
    """The strongest frequency: the Hann-windowed spectrum's peak, interpolated by a parabola through the log
    magnitudes of the peak bin and its neighbours (accurate to a few thousandths of a bin here)."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    k = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * RATE / len(audio)


def cents(hz: float, meant: float) -> float:
    return 1200 * np.log2(hz / meant)


def splatter_db(audio: np.ndarray, hz: float) -> float:
    """Energy farther than 30 Hz from ``hz`` against all of it (Blackman-Harris window): what a click, a wobble or
    aliasing adds to a sine."""
    n = len(audio)
    t = np.arange(n) / n
    window = (
        0.35875 - 0.48829 * np.cos(2 * np.pi * t) + 0.14128 * np.cos(4 * np.pi * t) - 0.01168 * np.cos(6 * np.pi * t)
    )
    power = np.abs(np.fft.rfft(audio * window)) ** 2
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    return float(10 * np.log10(power[np.abs(freqs - hz) > 30].sum() / power.sum()))


def envelope(audio: np.ndarray) -> np.ndarray:
    """The magnitude of the analytic signal (the spectrum's negative frequencies removed): a sine's amplitude at
    every sample."""
    spectrum = np.fft.fft(audio)
    n = len(audio)
    gain = np.zeros(n)
    gain[0] = 1
    gain[1 : (n + 1) // 2] = 2
    if n % 2 == 0:
        gain[n // 2] = 1
    return np.abs(np.fft.ifft(spectrum * gain))


def amplitude_db(audio: np.ndarray, meant: float = 0.5) -> float:
    return float(20 * np.log10(np.sqrt(2 * np.mean(audio**2)) / meant))


def steepest_step(audio: np.ndarray, hz: float, amplitude: float = 0.5) -> float:
    """The largest sample-to-sample step against the largest a sine of ``hz`` can take: a click is well above 1."""
    return float(np.abs(np.diff(audio)).max() / (2 * amplitude * np.sin(np.pi * hz / RATE)))


@pytest.mark.parametrize("semitones", [-12, -7, -1, 1, 5, 12])
def test_a_sine_moves_by_the_semitones_asked_for_and_keeps_its_length_and_level(semitones):
    out = stream(sine(440.0), semitones)
    meant = 440.0 * 2 ** (semitones / 12)
    assert abs(out.shape[-1] - 3 * RATE) <= 1
    assert abs(cents(peak_hz(middle(out)), meant)) < 0.2
    assert abs(amplitude_db(middle(out))) < 0.05
    assert splatter_db(middle(out), meant) < -80
    assert steepest_step(out[0, 4096:-4096], meant) < 1.01


@pytest.mark.parametrize("semitones", [1, 5, 12])
def test_up_and_back_down_gives_the_sine_back(semitones):
    back = stream(stream(sine(440.0), semitones), -semitones)
    assert abs(back.shape[-1] - 3 * RATE) <= 2
    assert abs(cents(peak_hz(middle(back)), 440.0)) < 0.2
    assert abs(amplitude_db(middle(back))) < 0.05
    assert splatter_db(middle(back), 440.0) < -80


@pytest.mark.parametrize("semitones, tempo", [(0, 0.5), (0, 0.8), (0, 1.25), (0, 2.0), (3, 0.8), (-5, 1.5)])
def test_a_tempo_gives_the_length_it_asks_for_and_keeps_the_key(semitones, tempo):
    source = sine(440.0, seconds=4.0)
    out = stream(source, semitones, tempo)
    assert abs(out.shape[-1] - source.shape[-1] / tempo) <= 1  # within a sample, far inside a millisecond
    meant = 440.0 * 2 ** (semitones / 12)
    assert abs(cents(peak_hz(middle(out)), meant)) < 0.2
    assert abs(amplitude_db(middle(out))) < 0.05
    assert splatter_db(middle(out), meant) < -80
    assert steepest_step(out[0, 4096:-4096], meant) < 1.01


def test_the_output_does_not_depend_on_the_block_size():
    """Live playback feeds 1024 frames at a time, a bounce 65536: both give the same audio, so no block boundary
    can be heard in either."""
    rng = np.random.default_rng(0)
    audio = (sine(220.0, 2.0) + 0.1 * rng.standard_normal((2, 2 * RATE))).astype(np.float32)
    audio[1] *= 0.5
    whole = stream(audio, 3, 0.8, block=1 << 16)
    for block in (1024, 333):
        assert np.abs(stream(audio, 3, 0.8, block=block) - whole).max() < 1e-5


def test_the_song_own_key_and_tempo_pass_the_audio_through():
    rng = np.random.default_rng(1)
    audio = (0.3 * rng.standard_normal((2, RATE))).astype(np.float32)
    assert np.abs(stream(audio) - audio).max() < 1e-6


def test_changes_while_streaming_are_heard_at_once_and_never_jump():
    """Key and tempo moved while a sine plays (as the mixer's controls do during playback): each new setting is
    heard within a third of a second (a new key glides in over 0.19 s), at the right frequency, the level holds within
    a dB, and no step between samples is steeper than the sine's own."""
    engine = KeyTempo(RATE, 2)
    audio = sine(440.0, 8.0)
    out, changes = [], {86: (4.0, 1.0), 172: (4.0, 0.7), 258: (-3.0, 1.3)}  # at about 2, 4 and 6 s
    heard_at = {}  # output frame where each change was made
    for block, i in enumerate(range(0, audio.shape[-1], 1024)):
        if block in changes:
            engine.set(*changes[block])
            heard_at[block] = engine.pulled + engine.available
        engine.push(audio[:, i : i + 1024])
        out.append(engine.pull(engine.available))
    played = np.concatenate(out, axis=-1)
    assert steepest_step(played[0, 4096:], 440.0 * 2 ** (4 / 12)) < 1.05
    level = 20 * np.log10(envelope(played[0, 4096:].astype(np.float64)) / 0.5)
    assert -1.0 < level[4096:-4096].min() and level[4096:-4096].max() < 1.0
    for i, (semitones, tempo) in changes.items():
        settled = played[0, heard_at[i] + RATE // 3 : heard_at[i] + RATE // 3 + RATE // 2].astype(np.float64)
        assert abs(cents(peak_hz(settled), 440.0 * 2 ** (semitones / 12))) < 0.2, (i, semitones, tempo)


def test_each_output_frame_knows_the_input_frame_it_plays():
    """The map the playhead follows: at 80 % tempo output frame k plays input frame 0.8 k; after a change to 125 %
    the input runs on from where it was, 1.25 frames per output frame."""
    engine = KeyTempo(RATE, 1, 2.0, 0.8)
    engine.push(np.zeros((1, 3 * RATE), np.float32))
    engine.pull(RATE)
    assert engine.input_at(RATE) == pytest.approx(0.8 * RATE, abs=1)
    engine.set(2.0, 1.25)
    start = engine.pulled + engine.available
    engine.push(np.zeros((1, 3 * RATE), np.float32))
    engine.pull(engine.available)
    later = start + 2 * engine.size  # past the frames that straddle the change
    slope = engine.input_at(later + 1000) - engine.input_at(later)
    assert slope == pytest.approx(1250, abs=1)
    assert 0.8 * start < engine.input_at(later) < 0.8 * start + 1.25 * 2 * engine.size + engine.size
