"""The aligner on a synthetic sung vocal whose syllable starts are known: sung "syllables" are harmonic tones with a
vowel-like formant, each with its own pitch and a short dip before the next (a consonant), lines separated by rests;
then the inputs it must refuse or doubt, and (when ../shared/data has them) real songs against the even-spread
baseline."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import DATA

from stemdesk.core.errors import StemDeskError
from stemdesk.karaoke import align as aligner
from stemdesk.karaoke.align import align
from stemdesk.karaoke.model import Line, Lyrics, Word

RATE = 22050
SYLLABLE = 0.3  # seconds a sung syllable lasts
DIP = 0.06  # seconds of near-silence between syllables (a consonant)
REST = 1.0  # seconds between lines
LEAD = 1.5  # seconds of silence before the first line
TAIL = 3.0  # and after the last
JAMENDO = DATA / "jamendolyrics-dev"


def sung(lines: list[list[int]], seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """lines: per line, per word, its syllable count. Returns (vocal (2, samples) float32, each word's true start)."""
    rng = np.random.default_rng(seed)
    pieces, starts, now = [np.zeros(int(LEAD * RATE))], [], LEAD
    n = int(SYLLABLE * RATE)
    t = np.arange(n) / RATE
    envelope = np.minimum(1, np.minimum(t / 0.02, (SYLLABLE - t) / 0.04))
    for li, line in enumerate(lines):
        for syllables in line:
            starts.append(now)
            for _ in range(syllables):
                f0 = 110 * 2 ** (rng.integers(0, 12) / 12)
                formant = rng.uniform(500, 1500)
                tone = sum(
                    np.sin(2 * np.pi * k * f0 * t) * np.exp(-(((k * f0 - formant) / 400) ** 2)) / k
                    for k in range(1, 30)
                )
                tone = 0.3 * tone / np.abs(tone).max() * envelope
                pieces += [tone, rng.normal(0, 1e-4, int(DIP * RATE))]
                now += SYLLABLE + DIP
        if li < len(lines) - 1:
            pieces.append(rng.normal(0, 1e-4, int(REST * RATE)))
            now += REST
    pieces.append(np.zeros(int(TAIL * RATE)))
    mono = np.concatenate(pieces).astype(np.float32)
    return np.stack([mono, mono]), starts


SYLLABLE_WORDS = {1: "la", 2: "lala", 3: "lalala"}


def text(lines: list[list[int]], verse_of=lambda i: 0) -> Lyrics:
    return Lyrics([Line([Word(SYLLABLE_WORDS[n]) for n in line], verse=verse_of(i)) for i, line in enumerate(lines)])


SONG = [[1, 2, 1], [2, 1, 1, 1], [3, 1], [1, 1, 2, 1], [2, 2]]


def test_words_land_on_their_sung_syllables_in_order():
    vocals, truth = sung(SONG)
    result = align(text(SONG), vocals, RATE)
    starts = np.array([w.start for w in result.words])
    assert [w.text for w in result.words] == [w.text for w in text(SONG).words]
    assert np.all(np.diff(starts) > 0), "words must come in the text's order"
    error = np.abs(starts - np.array(truth))
    assert np.median(error) < 0.1 and error.max() < 0.35, error
    for word in result.words:
        assert word.start <= word.end
        assert "".join(s.text for s in word.syllables) == word.text
        assert all(s.start is not None and s.end is not None for s in word.syllables)
    assert all(line.confidence is not None and line.confidence > 0.6 for line in result.lines)


def test_input_is_not_changed_and_notes_give_pitches():
    vocals, truth = sung(SONG)
    lyrics = text(SONG)
    from stemdesk.transcribe.pitched import Note

    notes = [Note(t, t + SYLLABLE, 60 + i % 12, 100) for i, t in enumerate(truth)]
    result = align(lyrics, vocals, RATE, notes=notes)
    assert all(w.start is None for w in lyrics.words)
    firsts = [w.syllables[0].pitch for w in result.words]
    assert sum(p == 60 + i % 12 for i, p in enumerate(firsts)) >= 0.8 * len(firsts)


def test_a_verse_the_song_does_not_sing_gets_low_confidence():
    vocals, _ = sung(SONG)
    extra = SONG + [[1, 1, 1], [2, 1]]  # a verse too many, after a blank line
    result = align(text(extra, verse_of=lambda i: int(i >= len(SONG))), vocals, RATE)
    sung_lines, unsung = result.lines[: len(SONG)], result.lines[len(SONG) :]
    assert len(result.words) == len(text(extra).words)
    assert all(line.confidence < 0.5 for line in unsung), [line.confidence for line in unsung]
    assert np.mean([line.confidence for line in sung_lines]) > 0.6


def test_emoji_and_right_to_left_words_are_placed_not_lost():
    lines = [[1, 1, 1], [2, 1, 1]]
    vocals, _ = sung(lines)
    lyrics = Lyrics([Line([Word("la"), Word("🎤"), Word("שלום")]), Line([Word("مرحبا"), Word("la!"), Word("...")])])
    result = align(lyrics, vocals, RATE)
    assert [w.text for w in result.words] == ["la", "🎤", "שלום", "مرحبا", "la!", "..."]
    starts = [w.start for w in result.words]
    assert all(s is not None for s in starts) and starts == sorted(starts)


@pytest.mark.parametrize(
    "lyrics", [Lyrics([]), Lyrics([Line([])]), Lyrics([Line([]), Line([])])], ids=["no-lines", "empty", "blank"]
)
def test_empty_lyrics_are_refused_with_a_clear_error(lyrics):
    vocals, _ = sung(SONG)
    with pytest.raises(StemDeskError, match="empty"):
        align(lyrics, vocals, RATE)


def test_a_silent_vocal_is_refused_with_a_clear_error():
    with pytest.raises(StemDeskError, match="silent"):
        align(text(SONG), np.zeros((2, RATE * 20), np.float32), RATE)


def test_more_syllables_than_the_audio_holds_is_refused():
    vocals, _ = sung([[1]])
    with pytest.raises(StemDeskError, match="syllables"):
        align(text([[3] * 40] * 10), vocals[:, : RATE // 2], RATE)


def test_audio_too_long_to_hold_is_refused_before_work(monkeypatch):
    vocals, _ = sung(SONG)
    monkeypatch.setattr(aligner, "MAX_CELLS", 1000)
    with pytest.raises(StemDeskError, match="minutes of audio"):
        align(text(SONG), vocals, RATE)


# Real songs ----------------------------------------------------------------------------------------------------


def _jamendo_song():
    songs = sorted(p for p in JAMENDO.glob("*/") if (p / "words.csv").is_file()) if JAMENDO.is_dir() else []
    return songs[0] if songs else None


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.skipif(_jamendo_song() is None, reason=f"no JamendoLyrics songs in {JAMENDO} (see its README)")
def test_real_song_beats_spreading_the_words_evenly():
    import sys
    from pathlib import Path

    from stemdesk.api import separate_array
    from stemdesk.io.audio import read

    song = _jamendo_song()
    assert song is not None
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import karaoke as bench  # the benchmark's reading of the lyrics and its baseline, one home for both

    language = bench.language_of(song)
    lyrics = bench.simple_lyrics((song / "lyrics.txt").read_text(encoding="utf-8"), language)
    with open(song / "words.csv") as f:
        truth = np.array([float(row["word_start"]) for row in csv.DictReader(f)])
    mix, rate = read(song / "song.mp3")
    vocals = separate_array(mix, rate, threads=1)["vocals"].astype(np.float32)
    placed = np.array([w.start for w in align(lyrics, vocals, rate, language=language).words])
    even, _ = bench.even_spread(lyrics, vocals, rate)
    within = np.mean(np.abs(placed - truth) <= 0.3)
    assert within > np.mean(np.abs(even - truth) <= 0.3) + 0.05
