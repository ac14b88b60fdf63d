"""Lyrics placed word by word on the sung lead vocal. Two methods:

- ``phonetic`` (the default where espeak-ng is installed, `_phonetic`): espeak-ng speaks the lyrics (`tts.speak`,
  knowing each word's span in its speech), the speech and the vocal become frames of spectral-envelope shape that
  ignore pitch and level (`phonetics.timbre`), and DTW (`phonetics.warp`) lays the speech on the vocal, constrained
  by voicing: a spoken sound on a silent vocal costs SPEECH_ON_SILENCE a frame, a spoken pause (between lines,
  around the text) on a sounding vocal PAUSE_ON_VOICE, two sounds their timbres' distance. Each word starts where
  the path first reaches its first sounding frame; its syllables share its time evenly.
- ``voicing`` (round one, the fallback with a warning where espeak-ng is missing): no model of any language's
  sounds, the steps below.

The steps:

1. Features (`features`), one frame every HOP seconds of the vocal at FEATURE_RATE: how sure we are the voice
   sounds (`voiced`, a soft threshold on the level of the voice's band VOICE_BAND, relative to the song's loud
   frames, so a stem's quiet bleed counts as silence) and how strongly a new sound starts (`onsets`, the positive
   spectral flux of that band, scaled to the song's strong onsets; with ``notes``, each sung note's start adds one).
2. The text as a chain of states (`Chain`): per line a rest (which may be skipped: lines usually, not always,
   start after a breath), then each syllable (`syllables.split`) as MIN_SYLLABLE_FRAMES states, so a syllable lasts
   at least that long; a rest after the last line. Every state is either "voice" or "rest".
3. Viterbi (`_viterbi`): each frame scores log(voiced) in a voice state and log(1 − voiced) in a rest (each
   floored at −FLOOR, so a held breath inside a line or a backing vocal in a rest costs a bounded amount), plus
   ONSET_WEIGHT × onset strength where a syllable starts and LINE_ONSET_WEIGHT × more where a line starts; skipping
   a line's rest costs SKIP_REST. The chain only moves forward, so every word is placed, in the text's order.
4. Times: a syllable runs from its first state's first frame to the frame before the next syllable or rest; a word
   from its first syllable's start to its last's end. A line's confidence (`_confidence`) is how much of it sounds
   voiced and how plausible its pace is: a line squeezed into silence (a verse the song does not sing) or rushed
   through at an impossible rate scores low.

Memory: the back-pointers are one byte per state and frame, so the cost grows with song length × syllables;
`align` refuses (with a StemDeskError) work whose back-pointers would pass MAX_CELLS.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from scipy.ndimage import maximum_filter1d, uniform_filter1d
from scipy.signal import resample_poly, stft

from ..core.errors import StemDeskError
from . import phonetics, tts
from . import syllables as syllable_rules
from .language import detect as detect_language
from .model import Lyrics, Syllable, Word

if TYPE_CHECKING:
    from ..transcribe.pitched import Note

FEATURE_RATE = 16000  # Hz the vocal is resampled to: the voice's band fits, and the STFT is cheap
HOP = 0.02  # seconds per frame
WINDOW = 0.04  # seconds per STFT window
VOICE_BAND = (150.0, 5000.0)  # Hz: a voice's fundamental and formants, little of a stem's low bleed or hiss
VOICED_BELOW_LOUD = 24.0  # dB under the song's loud frames (LOUD_PERCENTILE) where "voiced" is 0.5
VOICED_WIDTH = 3.0  # dB: the soft threshold's width (from 0.27 to 0.73 over two widths)
LOUD_PERCENTILE = 95.0
FLOOR = 3.0  # the most one frame can cost (nats): a held breath, a backing vocal in a rest, a wrong guess
MIN_SYLLABLE_FRAMES = 3  # a sung syllable lasts at least 3 frames (60 ms)
MIN_REST_FRAMES = 3  # a rest between lines lasts at least 3 frames (60 ms): a breath
ONSET_WEIGHT = 1.0  # nats per unit of onset strength where a syllable starts
MISS_WEIGHT = 1.0  # nats per unit of onset strength a syllable pays for an onset it holds through
ONSET_CONTEXT = 0.1  # seconds each side of a frame whose mean flux an onset must stand above
PEAK_FRAMES = 3  # an onset is the largest flux within this many frames each side
SYLLABLE_FRAME_COST = 0.05  # nats a syllable pays per frame it lasts: a geometric prior on its length
REST_MISS_WEIGHT = 0.5  # and a rest pays for each onset in it: a new sound there is a syllable the text lacks
FLUX_WITH_NOTES = 0.5  # the flux's share of the onsets when a transcription's notes are given
NOTE_ONSET = 1.0  # onset strength a sung note's start adds
REST_FLOOR = 1.0  # the most one voiced frame costs in a rest (un-texted singing: a repeat the text leaves out)
LINE_ONSET_WEIGHT = 2.0  # and more where a line starts
SKIP_REST = 2.0  # nats a line pays to start without a rest before it
MAX_CELLS = 400_000_000  # back-pointer bytes (frames × states) align may hold
PACE_SPREAD = 3.0  # a line sung this many times slower or faster than the song's median line is doubtful
PACE_RANGE = (1.0, 9.0)  # syllables per second a sung line has; a line outside it is doubtful
METHODS = ("auto", "phonetic", "voicing")
SPEECH_PAD = 1.0  # seconds of silence around the synthetic speech: room for the song's intro and outro
SPEECH_ON_SILENCE = 1.5  # cost of a frame where a spoken sound meets a silent vocal (a timbre's distance: 0…2)
PAUSE_ON_VOICE = 0.8  # and where a spoken pause meets a sounding vocal (singing the text lacks, backing vocals)
MATCH_SURE, MATCH_DOUBTFUL = 0.7, 1.0  # a line's mean envelope distance to its spoken words: sure below, doubtful above
Progress = Callable[[dict], None]

VOICE, REST = 0, 1


@dataclass
class Chain:
    """The text as a left-to-right chain of states. kinds: (states,) VOICE or REST; syllable_of: (states,) the index
    into ``syllables`` of a voice state's syllable (−1 for rests); first: (states,) True where a syllable starts;
    line_start: (states,) True at a line's first syllable state; rest_of_line: (lines,) the state of the rest
    before each line; syllables: (line, word, syllable) for every syllable in the text's order."""

    kinds: np.ndarray
    syllable_of: np.ndarray
    first: np.ndarray
    line_start: np.ndarray
    rest_of_line: np.ndarray
    syllables: list[tuple[int, int, int]]


def split_syllables(lyrics: Lyrics, language: str | None) -> Lyrics:
    """A copy of ``lyrics`` whose every word has its syllables (kept where the text gave them already)."""
    lines = []
    for line in lyrics.lines:
        words = []
        for word in line.words:
            parts = [s.text for s in word.syllables] or syllable_rules.split(word.text, language)
            words.append(Word(word.text, syllables=[Syllable(text) for text in parts]))
        lines.append(replace(line, words=words, confidence=None))
    return replace(lyrics, lines=lines)


def build_chain(lyrics: Lyrics) -> Chain:
    """The chain of ``lyrics`` (whose words have their syllables): per line MIN_REST_FRAMES rest states, then
    MIN_SYLLABLE_FRAMES states per syllable; one rest state after the last line."""
    states: list[tuple[int, int, bool, bool]] = []  # (kind, syllable, first of its syllable, first of its line)
    rest_of_line: list[int] = []
    syllables: list[tuple[int, int, int]] = []
    for li, line in enumerate(lyrics.lines):
        rest_of_line.append(len(states))
        states += [(REST, -1, False, False)] * MIN_REST_FRAMES
        for wi, word in enumerate(line.words):
            for si in range(len(word.syllables)):
                opens_line = wi == 0 and si == 0
                states += [(VOICE, len(syllables), k == 0, k == 0 and opens_line) for k in range(MIN_SYLLABLE_FRAMES)]
                syllables.append((li, wi, si))
    states.append((REST, -1, False, False))
    kinds, syllable_of, first, line_start = zip(*states, strict=True)
    return Chain(
        np.array(kinds, np.int8),
        np.array(syllable_of, np.int64),
        np.array(first, bool),
        np.array(line_start, bool),
        np.array(rest_of_line, np.int64),
        syllables,
    )


def mono_at_feature_rate(vocals: np.ndarray, rate: int) -> np.ndarray:
    """vocals (channels, samples) → mono float32 (samples at FEATURE_RATE,)."""
    mono = vocals.mean(axis=0, dtype=np.float32) if vocals.ndim == 2 else vocals.astype(np.float32)
    g = math.gcd(int(rate), FEATURE_RATE)
    return resample_poly(mono, FEATURE_RATE // g, int(rate) // g).astype(np.float32)


def features(mono: np.ndarray, notes: list[Note] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """mono (samples at FEATURE_RATE,) → (voiced, onsets, level_db), each (frames,) one per HOP seconds: voiced in
    0…1, onsets ≥ 0 (1 is a strong onset of this song), level_db the voice band's level relative to the song's
    loud frames."""
    hop = round(HOP * FEATURE_RATE)
    window = round(WINDOW * FEATURE_RATE)
    _, _, spec = stft(mono, FEATURE_RATE, nperseg=window, noverlap=window - hop, boundary="zeros", padded=True)
    freqs = np.fft.rfftfreq(window, 1 / FEATURE_RATE)
    band = (freqs >= VOICE_BAND[0]) & (freqs <= VOICE_BAND[1])
    power = np.abs(spec[band]).astype(np.float32) ** 2  # (bins, frames)
    frames = power.shape[1]
    level = 10 * np.log10(power.sum(axis=0) + 1e-12)
    loud = np.percentile(level, LOUD_PERCENTILE) if frames else 0.0
    level_db = level - loud
    voiced = 1 / (1 + np.exp(-(level_db + VOICED_BELOW_LOUD) / VOICED_WIDTH))
    # spectral flux on a log scale that ignores what lies far below the loud frames
    floor = 10 ** ((loud - VOICED_BELOW_LOUD - 10) / 10) / band.sum()
    logp = np.log(power + floor)
    flux = np.zeros(frames, np.float32)
    flux[1:] = np.maximum(logp[:, 1:] - logp[:, :-1], 0).mean(axis=0)
    # onsets are the flux's peaks above its surroundings: singing has flux all along (vibrato, consonants), and a
    # syllable's start is where it stands out
    wide = round(ONSET_CONTEXT / HOP)
    surround = uniform_filter1d(flux, 2 * wide + 1)
    peak = (flux == maximum_filter1d(flux, 2 * PEAK_FRAMES + 1)) & (flux > surround)
    rise = np.where(peak, flux - surround, 0.0)
    strong = np.percentile(rise[peak], 90) if peak.any() else 1.0
    onsets = np.clip(rise / max(strong, 1e-9), 0, 1).astype(np.float32)
    if notes:
        onsets *= FLUX_WITH_NOTES
        for note in notes:
            at = round(note.start / HOP)
            if 0 <= at < frames:
                onsets[at] += NOTE_ONSET
    return voiced.astype(np.float32), onsets.astype(np.float32), level_db.astype(np.float32)


def _viterbi(chain: Chain, voiced: np.ndarray, onsets: np.ndarray) -> np.ndarray:
    """The best path: (frames,) state index per frame, from the first rest to the last rest or syllable."""
    states = len(chain.kinds)
    frames = len(voiced)
    emit_voice = np.maximum(np.log(voiced + 1e-6), -FLOOR)
    emit_rest = np.maximum(np.log(1 - voiced + 1e-6), -REST_FLOOR)
    is_voice = chain.kinds == VOICE
    enter_weight = np.where(chain.first, ONSET_WEIGHT, 0.0) + np.where(chain.line_start, LINE_ONSET_WEIGHT, 0.0)
    skip_ok = chain.line_start.copy()  # a line's first syllable may follow the previous line without a rest
    gap = MIN_REST_FRAMES + 1  # the states a skip jumps: the rest's, and one
    skip_ok[:gap] = False
    miss = np.where(is_voice, MISS_WEIGHT, REST_MISS_WEIGHT)
    hold = np.where(is_voice, SYLLABLE_FRAME_COST, 0.0)
    back = np.zeros((frames, states), np.uint8)  # 0 stay, 1 from the previous state, 2 over a skipped rest
    score = np.full(states, -np.inf)
    score[0] = emit_rest[0]
    first_line = MIN_REST_FRAMES  # the first syllable, for a song that starts singing at once
    if states > first_line and is_voice[first_line]:
        score[first_line] = emit_voice[0] + enter_weight[first_line] * onsets[0]
    for t in range(1, frames):
        emit = np.where(is_voice, emit_voice[t], emit_rest[t])
        stay = score - miss * onsets[t] - hold
        advance = np.full(states, -np.inf)
        advance[1:] = score[:-1] + enter_weight[1:] * onsets[t]
        skip = np.full(states, -np.inf)
        skip[gap:] = np.where(skip_ok[gap:], score[:-gap] + enter_weight[gap:] * onsets[t] - SKIP_REST, -np.inf)
        best = np.maximum(np.maximum(stay, advance), skip)
        step = np.where(best == stay, 0, np.where(best == advance, 1, 2)).astype(np.uint8)
        back[t] = step
        score = best + emit
    end = states - 1 if np.isfinite(score[-1]) and score[-1] >= score[-2] else states - 2
    path = np.empty(frames, np.int64)
    state = end
    for t in range(frames - 1, -1, -1):
        path[t] = state
        state -= (0, 1, gap)[back[t, state]]
    if path[0] not in (0, first_line):
        raise StemDeskError("The lyrics have more syllables than the vocal has room for. Check the text and song.")
    return path


def _confidence(line_voiced: float, syllable_frames: list[int]) -> float:
    """0…1 from how much of a line's time sounds voiced (0…1), whether its pace is one a singer sings, and how many of
    its syllables (their lengths in frames) were squeezed to the shortest the chain allows: the marks of a line the
    aligner had no room for (a verse the song does not sing, a chorus repeat the text lacks) or put on silence."""
    seconds = sum(syllable_frames) * HOP
    pace = len(syllable_frames) / max(seconds, 1e-6)
    low, high = PACE_RANGE
    pace_ok = 1.0 if low <= pace <= high else (pace / low if pace < low else high / pace) ** 2
    squeezed = sum(n <= MIN_SYLLABLE_FRAMES + 1 for n in syllable_frames) / max(len(syllable_frames), 1)
    voice_ok = min(1.0, max(0.0, (line_voiced - 0.2) / 0.5))
    return round(voice_ok * pace_ok * (1 - squeezed), 3)


def align(
    lyrics: Lyrics,
    vocals: np.ndarray,
    rate: int,
    *,
    language: str | None = None,
    notes: list[Note] | None = None,
    progress: Progress | None = None,
    method: str = "auto",
) -> Lyrics:
    """``lyrics`` with every word, syllable and line placed on ``vocals`` (channels, samples) float32 at ``rate``
    Hz, the separated lead vocal: a new Lyrics (the input is not changed). ``notes`` (a transcription of the same
    vocal) give each syllable the pitch of the note that covers most of it (and, for the voicing method, sharpen the
    syllables' starts). ``language`` (ISO 639-1) is the one espeak-ng speaks the words in; without it, the lyrics'
    own, else the one `language.detect` tells from the words' common short words and letters (Spanish, French,
    German or English), else English. ``method``: "phonetic", "voicing" or "auto" (phonetic where espeak-ng is
    installed, else voicing with a warning that says how to install it); see the module's notes."""
    language = language or lyrics.language
    if not any(line.words for line in lyrics.lines):
        raise StemDeskError("The lyrics are empty: there is no word to place. Paste or load the song's words first.")
    vocals = np.asarray(vocals)
    if vocals.ndim not in (1, 2) or vocals.shape[-1] == 0 or rate <= 0:
        raise StemDeskError(
            f"The vocal holds no audio (shape {tuple(vocals.shape)}, {rate} Hz); separate the song's vocals first."
        )
    seconds = vocals.shape[-1] / rate
    placed = split_syllables(lyrics, language)
    chain = build_chain(placed)
    frames = int(seconds / HOP) + 1
    if frames * len(chain.kinds) > MAX_CELLS:
        raise StemDeskError(
            f"{seconds / 60:.0f} minutes of audio with {len(chain.syllables)} syllables is more than the aligner "
            f"holds in memory at once (about {MAX_CELLS // 10**6} MB); trim the audio to the sung part, or "
            "align the song in parts."
        )
    if frames < len(chain.kinds):
        raise StemDeskError(
            f"The lyrics have {len(chain.syllables)} syllables, more than {seconds:.1f} s of vocal can hold. "
            "Check that the text belongs to this song."
        )
    if not np.isfinite(vocals).all():
        raise StemDeskError("The vocal holds NaN or infinite samples; separate the song again.")
    if progress:
        progress({"stage": "features", "fraction": 0.0})
    mono = mono_at_feature_rate(vocals, rate)
    if np.abs(mono).max() < 1e-4:
        raise StemDeskError(
            "The vocal stem is silent (below −80 dBFS): there is no voice to place the words on. Check that the "
            "song has vocals and that the vocal stem was chosen."
        )
    voiced, onsets, _ = features(mono, notes)
    if progress:
        progress({"stage": "align", "fraction": 0.3})
    if method not in METHODS:
        raise StemDeskError(f'"{method}" is not an alignment method: choose one of {", ".join(METHODS)}.')
    if method == "auto":
        method = "phonetic" if tts.available() else "voicing"
        if method == "voicing":
            warnings.warn(f"Aligning without phonetics (less precise): {tts.INSTALL_HINT}", stacklevel=2)
    if method == "phonetic":
        language = language or detect_language(" ".join(w.text for w in placed.words)) or "en"
        try:
            _phonetic(placed, mono, voiced, language, seconds, notes)
        except tts.SpeechUnavailable as error:
            warnings.warn(f"Aligning without phonetics (less precise): {error}", stacklevel=2)
            method = "voicing"
    if method == "voicing":
        path = _viterbi(chain, voiced, onsets)
        _place(placed, chain, path, voiced, seconds, notes)
    if progress:
        progress({"stage": "done", "fraction": 1.0})
    return placed


def _phonetic(
    lyrics: Lyrics, mono: np.ndarray, voiced: np.ndarray, language: str, seconds: float, notes: list[Note] | None
) -> None:
    """Place ``lyrics`` (made by split_syllables) by warping espeak-ng's speech of them onto the vocal."""
    speech = tts.speak([[w.text for w in line.words] for line in lyrics.lines], language)
    g = math.gcd(speech.rate, FEATURE_RATE)
    spoken = resample_poly(speech.samples, FEATURE_RATE // g, speech.rate // g).astype(np.float32)
    pad = np.zeros(round(SPEECH_PAD * FEATURE_RATE), np.float32)
    spoken = np.concatenate([pad, spoken, pad])
    sounds = phonetics.sounding(spoken, FEATURE_RATE, HOP, WINDOW)
    reference = phonetics.timbre(spoken, FEATURE_RATE, HOP, WINDOW, sounds)
    performance = phonetics.timbre(mono, FEATURE_RATE, HOP, WINDOW, voiced)
    frames = min(len(performance), len(voiced))
    if frames * len(reference) > MAX_CELLS:  # the warp's back-pointers: one byte per vocal and speech frame
        raise StemDeskError(
            f"{seconds / 60:.0f} minutes of audio with {len(reference) * HOP / 60:.0f} minutes of spoken lyrics is "
            f"more than the aligner holds in memory at once (about {MAX_CELLS // 10**6} MB); trim the audio to the "
            "sung part, or align the song in parts."
        )
    performance, voiced = performance[:frames], voiced[:frames]
    reference /= np.linalg.norm(reference, axis=1, keepdims=True) + 1e-9
    performance /= np.linalg.norm(performance, axis=1, keepdims=True) + 1e-9
    silent = 1 - voiced

    def cost_row(i: int) -> np.ndarray:
        s = float(sounds[i])
        distance = 1 - performance @ reference[i]
        return s * (voiced * distance + silent * SPEECH_ON_SILENCE) + (1 - s) * voiced * PAUSE_ON_VOICE

    first = phonetics.warp(cost_row, len(reference), frames)
    # the reference frame each vocal frame was matched to, and how far apart their timbres were there
    matched = np.searchsorted(first, np.arange(frames), side="right") - 1
    distance = 1 - np.einsum("fc,fc->f", performance, reference[matched])
    warped: list[tuple[int, int]] = []  # every word's first and end vocal frame, in the text's order
    for a, b in np.round((speech.words + SPEECH_PAD) / HOP).astype(int):
        loud = np.flatnonzero(sounds[a : max(b, a + 1)] > 0.5)  # the word's sound, not the pause before it
        if len(loud):
            a, b = a + loud[0], a + loud[-1] + 1
        warped.append((int(first[min(a, len(first) - 1)]), int(first[min(b, len(first) - 1)])))
    words = [word for line in lyrics.lines for word in line.words]
    spans_of = iter(untangle(warped, [len(w.syllables) for w in words], min(frames, int(seconds / HOP))))
    paces: list[float] = []
    for line in lyrics.lines:
        lengths: list[int] = []  # the line's syllables' lengths in frames
        spans: list[tuple[int, int]] = []  # its words' first and end frames
        for word in line.words:
            start, end = next(spans_of)
            spans.append((start, end))
            word.start, word.end = round(start * HOP, 3), round(min(end * HOP, seconds), 3)
            count = len(word.syllables)
            cuts = np.linspace(start, end, count + 1).round().astype(int)  # the word's time shared by its syllables
            for syllable, c0, c1 in zip(word.syllables, cuts[:-1], cuts[1:], strict=True):
                lengths.append(max(int(c1 - c0), 1))
                syllable.start, syllable.end = round(c0 * HOP, 3), round(min(max(c1, c0 + 1) * HOP, seconds), 3)
                if notes:
                    syllable.pitch = _pitch(notes, syllable.start, syllable.end)
        if not line.words:
            line.confidence = 0.0
            continue
        a, b = spans[0][0], spans[-1][1]
        sung = float(voiced[a:b].mean()) if b > a else 0.0
        # a line matched to sounds unlike its own words (a distance near a random pair's 1) is doubtful
        match = float((distance[a:b] * voiced[a:b]).sum() / max(voiced[a:b].sum(), 1e-6)) if b > a else 1.0
        match_ok = min(1.0, max(0.0, (MATCH_DOUBTFUL - match) / (MATCH_DOUBTFUL - MATCH_SURE)))
        line.confidence = round(_confidence(sung, lengths) * match_ok, 3)
        paces.append((b - a) * HOP / len(lengths))  # seconds per syllable
    _doubt_odd_paces(lyrics, paces)


def untangle(spans: list[tuple[int, int]], least: list[int], frames: int) -> list[tuple[int, int]]:
    """Word spans (first frame, end frame) in the text's order made to follow each other: each word starts where
    the one before it ends or later and lasts at least ``least`` frames (one per syllable), all within ``frames``. The
    warp maps the speech onto the vocal monotonically but may crush several spoken words onto one vocal frame (a
    vocal that sounds where the speech pauses, or a stem with little voice); written as they came, such words would
    overlap, which no karaoke format holds. Moves as little as it must: forward first, then back from the end."""
    fixed: list[tuple[int, int]] = []
    end = 0
    for (start, stop), need in zip(spans, least, strict=True):
        start = max(start, end)
        end = max(stop, start + need)
        fixed.append((start, end))
    limit = frames
    for i in range(len(fixed) - 1, -1, -1):
        start, stop = fixed[i]
        stop = min(stop, limit)
        start = min(start, stop - least[i])
        fixed[i] = (start, stop)
        limit = start
    if fixed and fixed[0][0] < 0:
        raise StemDeskError(
            f"The lyrics have {sum(least)} syllables, more than the vocal's {frames * HOP:.1f} s can hold. Check "
            "that the text belongs to this song."
        )
    return fixed


def _doubt_odd_paces(lyrics: Lyrics, paces: list[float]) -> None:
    """Lower the confidence of lines sung far slower or faster than the song's own pace (the median line's sung
    seconds per syllable; paces: one per line with words, in order): a singer keeps a tempo, and a line stretched over
    a section or crushed into a breath is where the warp most likely lost its place."""
    if len(paces) < 3:
        return
    song = float(np.median(paces))
    worded = [line for line in lyrics.lines if line.words]
    for line, pace in zip(worded, paces, strict=True):
        ratio = pace / max(song, 1e-6)
        ok = 1.0 if 1 / PACE_SPREAD <= ratio <= PACE_SPREAD else min(ratio * PACE_SPREAD, PACE_SPREAD / ratio) ** 2
        line.confidence = round((line.confidence or 0.0) * ok, 3)


def _place(
    lyrics: Lyrics, chain: Chain, path: np.ndarray, voiced: np.ndarray, seconds: float, notes: list[Note] | None
) -> None:
    """Write the path's times into ``lyrics`` (made by split_syllables, so it is ours to fill)."""
    syllable_at = chain.syllable_of[path]  # (frames,) −1 in rests
    count = len(chain.syllables)
    starts = np.full(count, -1, np.int64)
    ends = np.full(count, -1, np.int64)
    for t in np.flatnonzero(syllable_at >= 0):
        s = syllable_at[t]
        if starts[s] < 0:
            starts[s] = t
        ends[s] = t + 1
    for s, (li, wi, si) in enumerate(chain.syllables):
        syllable = lyrics.lines[li].words[wi].syllables[si]
        syllable.start = round(starts[s] * HOP, 3)
        syllable.end = round(min(ends[s] * HOP, seconds), 3)
        if notes:
            syllable.pitch = _pitch(notes, syllable.start, syllable.end)
    frames_of = dict(zip(range(count), (ends - starts).tolist(), strict=True))
    syllable_index = 0
    for line in lyrics.lines:
        for word in line.words:
            word.start, word.end = word.syllables[0].start, word.syllables[-1].end
        if not line.words:
            line.confidence = 0.0
            continue
        lengths = [frames_of[syllable_index + k] for k in range(sum(len(w.syllables) for w in line.words))]
        a = int(starts[syllable_index])
        syllable_index += len(lengths)
        b = int(ends[syllable_index - 1])
        line.confidence = _confidence(float(voiced[a:b].mean()) if b > a else 0.0, lengths)


def _pitch(notes: list[Note], start: float, end: float) -> int | None:
    best, most = None, 0.0
    for note in notes:
        overlap = min(end, note.end) - max(start, note.start)
        if overlap > most:
            best, most = note.pitch, overlap
    return best
