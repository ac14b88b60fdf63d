"""The aligner on synthetic vocals whose word starts are known. For the voicing method (round one, no phonetics): sung
"syllables" are harmonic tones with a vowel-like formant, each with its own pitch and a short dip before the next (a
consonant), lines separated by rests. For the phonetic method (espeak-ng's speech warped onto the vocal): the words
"performed" by espeak-ng itself, slower and higher than the aligner's reference speech, with rests of random lengths
between lines, so only a warp that follows the sounds finds them. Then the pieces (the warp, the speech's word spans,
the language), the inputs it must refuse or doubt, and (when ../shared/data has them) real songs against the
even-spread baseline."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import DATA

from stemdesk.core.errors import StemDeskError
from stemdesk.karaoke import align as aligner
from stemdesk.karaoke import phonetics, tts
from stemdesk.karaoke.align import align
from stemdesk.karaoke.language import detect
from stemdesk.karaoke.model import Line, Lyrics, Word

needs_espeak = pytest.mark.skipif(not tts.available(), reason=f"espeak-ng is missing. {tts.INSTALL_HINT}")

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
    result = align(text(SONG), vocals, RATE, method="voicing")
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
    result = align(lyrics, vocals, RATE, notes=notes, method="voicing")
    assert all(w.start is None for w in lyrics.words)
    firsts = [w.syllables[0].pitch for w in result.words]
    assert sum(p == 60 + i % 12 for i, p in enumerate(firsts)) >= 0.8 * len(firsts)


def test_a_verse_the_song_does_not_sing_gets_low_confidence():
    vocals, _ = sung(SONG)
    extra = SONG + [[1, 1, 1], [2, 1]]  # a verse too many, after a blank line
    result = align(text(extra, verse_of=lambda i: int(i >= len(SONG))), vocals, RATE, method="voicing")
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


# The phonetic method ------------------------------------------------------------------------------------------

SPOKEN = [
    "con dos palabras quiero decirte",
    "lo que entristece a mi corazón",
    "por no escucharlas cuando era niño",
    "y la tristeza de la que hablo",
    "venía cargada con depresión",
    "dios ha llegado en forma de amor",
]


def performed(lines: list[str], seed: int = 0) -> tuple[np.ndarray, int, np.ndarray]:
    """The lines spoken by espeak-ng at 60 % of its speed and a higher pitch, 3 s of silence before, rests of
    0.4–4 s between lines and faint noise. Returns (vocal (2, samples) float32, rate, each word's true start)."""
    from xml.sax.saxutils import escape

    rng = np.random.default_rng(seed)
    parts, k = ['<speak><break time="3s"/><prosody rate="60%" pitch="+40">'], 0
    for line in lines:
        for word in line.split():
            parts.append(f'<mark name="s{k}"/>{escape(word)} ')
            k += 1
        parts.append(f'<break time="{rng.integers(400, 4000)}ms"/>')
    parts.append('</prosody><break time="2s"/></speak>')
    rate, samples, marks = tts._synthesize("".join(parts).encode(), "es")
    mono = samples.astype(np.float32) / 32768 + rng.normal(0, 1e-3, len(samples)).astype(np.float32)
    return np.stack([mono, mono]), rate, np.array([marks[f"s{i}"] for i in range(k)])


def spoken_lyrics(lines: list[str], verse: int = 0) -> list[Line]:
    return [Line([Word(w) for w in line.split()], verse=verse) for line in lines]


@needs_espeak
def test_phonetic_words_land_on_a_slower_higher_performance_of_them():
    vocals, rate, truth = performed(SPOKEN)
    result = align(Lyrics(spoken_lyrics(SPOKEN)), vocals, rate, language="es")
    starts = np.array([w.start for w in result.words])
    error = np.abs(starts - truth)
    assert np.median(error) < 0.05 and error.max() < 0.2, error
    assert np.all(np.diff(starts) > 0)
    for word in result.words:
        assert word.start < word.end and word.syllables[0].start == word.start
        assert all(a.end <= b.start + 1e-9 for a, b in zip(word.syllables, word.syllables[1:], strict=False))
    assert all(line.confidence > 0.6 for line in result.lines), [line.confidence for line in result.lines]


@needs_espeak
def test_phonetic_a_verse_the_song_does_not_sing_gets_low_confidence():
    vocals, rate, _ = performed(SPOKEN)
    extra = ["solo las digo vueltas canción", "es sentimiento vuelto expresión"]
    result = align(Lyrics(spoken_lyrics(SPOKEN) + spoken_lyrics(extra, verse=1)), vocals, rate, language="es")
    assert all(line.confidence < 0.5 for line in result.lines[len(SPOKEN) :])
    assert np.mean([line.confidence for line in result.lines[: len(SPOKEN)]]) > 0.6


def test_a_line_far_off_the_songs_pace_is_doubted():
    lines = [Line([Word("la"), Word("la")], confidence=0.9) for _ in range(5)]
    paces = [0.3, 0.35, 0.3, 0.3 * aligner.PACE_SPREAD * 2, 0.3 / aligner.PACE_SPREAD / 2]  # seconds per syllable
    aligner._doubt_odd_paces(Lyrics(lines), paces)
    assert [line.confidence for line in lines[:3]] == [0.9] * 3
    assert lines[3].confidence < 0.5 and lines[4].confidence < 0.5


def test_without_espeak_it_warns_and_aligns_on_voicing(monkeypatch):
    monkeypatch.setattr(tts, "available", lambda: False)
    vocals, truth = sung(SONG)
    with pytest.warns(UserWarning, match="apt install espeak-ng"):
        result = align(text(SONG), vocals, RATE)
    assert np.median(np.abs(np.array([w.start for w in result.words]) - truth)) < 0.1


@needs_espeak
def test_a_language_espeak_cannot_speak_falls_back_to_voicing_with_a_warning():
    vocals, truth = sung(SONG)
    with pytest.warns(UserWarning, match="no voice"):
        result = align(text(SONG), vocals, RATE, language="xx-nonexistent")
    assert np.median(np.abs(np.array([w.start for w in result.words]) - truth)) < 0.1


def test_an_unknown_method_is_refused():
    vocals, _ = sung(SONG)
    with pytest.raises(StemDeskError, match="alignment method"):
        align(text(SONG), vocals, RATE, method="psychic")


@needs_espeak
def test_speech_gives_every_word_a_span_in_order():
    words = ["bonjour", "à", "tous", "les", "amis", "l'été"]
    speech = tts.speak([words[:3], words[3:]], "fr")
    assert speech.words.shape == (6, 2) and speech.lines.shape == (2, 2)
    starts, ends = speech.words.T
    assert np.all(np.diff(starts) > 0) and np.all(ends > starts) and np.all(ends[:-1] <= starts[1:] + 1e-9)
    assert starts[3] - ends[2] >= tts.LINE_BREAK_MS / 1000 * 0.8  # the pause between lines
    assert ends[-1] <= len(speech.samples) / speech.rate
    loud = np.abs(speech.samples[int(starts[0] * speech.rate) : int(ends[0] * speech.rate)]).max()
    assert loud > 0.05, "the first word's span holds its sound"
    again = tts.speak([words[:3], words[3:]], "fr")
    assert np.array_equal(again.samples, speech.samples), "the same text is spoken the same way"


@needs_espeak
def test_a_language_espeak_does_not_speak_is_refused():
    with pytest.raises(StemDeskError, match="no voice"):
        tts.speak([["hello"]], "xx-nonexistent")


def test_crushed_words_are_laid_end_to_end_within_the_vocal():
    """The warp may map several spoken words onto one vocal frame; the words then follow each other, each as long
    as its syllables need, and the spans the warp kept apart stay where they were."""
    spans = [(10, 11), (10, 11), (10, 10), (50, 60), (97, 120), (99, 99)]
    least = [1, 2, 1, 1, 3, 2]
    fixed = aligner.untangle(spans, least, 100)
    assert fixed[3] == (50, 60)
    assert fixed[:3] == [(10, 11), (11, 13), (13, 14)]
    assert fixed[4:] == [(95, 98), (98, 100)]
    for (start, end), need in zip(fixed, least, strict=True):
        assert 0 <= start and end - start >= need and end <= 100
    assert all(a[1] <= b[0] for a, b in zip(fixed, fixed[1:], strict=False))
    with pytest.raises(StemDeskError, match="more than the vocal"):
        aligner.untangle([(0, 1)] * 4, [3] * 4, 10)


@needs_espeak
def test_lines_the_vocal_barely_holds_still_make_a_karaoke_file(tmp_path):
    """Three lines on a vocal that sings one short word: the warp crushes the rest; every word still follows the one
    before it, so the enhanced LRC and UltraStar files are written."""
    from stemdesk.karaoke.lrc import write_lrc
    from stemdesk.karaoke.ultrastar import write_ultrastar

    vocals, rate, _ = performed(["sol"])
    lyrics = Lyrics(spoken_lyrics(SPOKEN))
    result = align(lyrics, vocals, rate, language="es")
    words = result.words
    assert all(w.start < w.end for w in words)
    assert all(a.end <= b.start for a, b in zip(words, words[1:], strict=False))
    write_lrc(result, tmp_path / "song.lrc")
    write_ultrastar(
        result, tmp_path / "song.txt", title="song", artist="us", audio_file="song.mp3", instrumental_file=None
    )


def test_warp_recovers_a_known_warp():
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(60, 5))
    holds = rng.integers(1, 7, 60)  # each reference frame lasts 1–6 performance frames
    performance = np.repeat(reference, holds, axis=0) + 0.1 * rng.normal(size=(holds.sum(), 5))
    first = phonetics.warp(lambda i: np.linalg.norm(performance - reference[i], axis=1), 60, len(performance))
    assert np.array_equal(first, np.concatenate([[0], np.cumsum(holds)[:-1]]))


def test_timbre_ignores_level_and_follows_the_vowel_not_the_pitch():
    rate, hop, window = 16000, 0.02, 0.04
    t = np.arange(rate) / rate

    def vowel(f0: float, formants: tuple[float, float]) -> np.ndarray:
        return sum(
            np.sin(2 * np.pi * k * f0 * t) * sum(np.exp(-(((k * f0 - f) / 150) ** 2)) for f in formants)
            for k in range(1, int(6000 / f0))
        )

    a_low, a_high, i_low = vowel(110, (800, 1200)), 0.3 * vowel(220, (800, 1200)), vowel(110, (300, 2300))
    frames = phonetics.timbre(np.concatenate([a_low, a_high, i_low]).astype(np.float32), rate, hop, window)
    third = len(frames) // 3
    mid = [frames[k * third + 10 : (k + 1) * third - 10].mean(axis=0) for k in range(3)]

    def cosine(x, y):
        return x @ y / np.linalg.norm(x) / np.linalg.norm(y)

    assert cosine(mid[0], mid[1]) > cosine(mid[0], mid[2]) + 0.5


@pytest.mark.parametrize(
    ("words", "language"),
    [
        ("con dos palabras quiero decirte lo que entristece a mi corazón", "es"),
        ("qu'est ce que vous aimez faire dans l'existence", "fr"),
        ("ich weiß nicht was soll es bedeuten dass ich so traurig bin", "de"),
        ("you are the sunshine of my life and I love you", "en"),
        ("12345 🎤", None),
    ],
)
def test_the_language_is_told_from_the_words(words, language):
    assert detect(words) == language


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


@pytest.mark.parametrize(
    ("cells", "says"),
    [(1000, "syllables is more"), pytest.param(200_000, "spoken lyrics", marks=needs_espeak)],
    ids=["voicing-chain", "phonetic-warp"],
)
def test_audio_too_long_to_hold_is_refused_before_work(monkeypatch, cells, says):
    vocals, _ = sung(SONG)
    monkeypatch.setattr(aligner, "MAX_CELLS", cells)
    monkeypatch.setattr(aligner, "_viterbi", None)  # refused before any search starts
    monkeypatch.setattr(phonetics, "warp", None)
    with pytest.raises(StemDeskError, match=f"minutes of audio.*{says}"):
        align(text(SONG), vocals, RATE, method="phonetic" if tts.available() else "voicing")


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
    lyrics = bench.song_lyrics(song, language)
    with open(song / "words.csv") as f:
        truth = np.array([float(row["word_start"]) for row in csv.DictReader(f)])
    mix, rate = read(song / "song.mp3")
    vocals = separate_array(mix, rate, threads=1)["vocals"].astype(np.float32)
    placed = np.array([w.start for w in align(lyrics, vocals, rate, language=language).words])
    even, _ = bench.even_spread(lyrics, vocals, rate)
    within = np.mean(np.abs(placed - truth) <= 0.3)
    assert within > np.mean(np.abs(even - truth) <= 0.3) + 0.05
    if tts.available():  # the phonetic method: half the words within 0.3 s even on the hardest of the four songs
        assert within >= 0.5, within
