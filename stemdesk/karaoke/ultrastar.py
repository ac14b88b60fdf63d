"""Aligned lyrics out as an UltraStar song (the TXT format UltraStar Deluxe, Performous and Vocaluxe sing from), and
read back.

What is written, and why (points of the UltraStar format specification, version 1, that StemDesk follows):

- UTF-8 without a byte order mark, LF line ends; ``#VERSION:1.1.0`` first (the spec: 1.1.0 is 1.0.0; Performous
  takes the file for a song only when it starts with ``#`` and a capital letter).
- ``#MP3`` and ``#AUDIO`` both name the song's audio: ``#MP3`` is the core header of version 1 that every game reads,
  ``#AUDIO`` the extended one newer games prefer. ``#INSTRUMENTAL`` and ``#VOCALS`` name the stems when given, so a
  game can turn the voice down. File references are relative to the song file (the spec forbids absolute ones).
- ``#BPM`` is an integer (no decimal separator to get wrong: version 1 allows both comma and period, older games
  read only one) and UltraStar quarters it: a beat lasts 15 / BPM seconds. StemDesk writes 600 unless told: a
  beat of 25 ms, finer than a singer or a viewer can tell and about one frame of the aligner, so each note edge moves
  at most 12.5 ms; 600 is in the range generated songs use (300 to 600), and UltraStar Deluxe analyses the microphone
  once per beat (UNote.pas), so a finer grid costs pitch analyses without improving what anyone hears.
- ``#GAP`` is an integer number of milliseconds to beat 0: the first syllable's start, so only the beats are rounded.
- One note per syllable, ``: start length pitch text`` in beats, pitch in semitones from C4 (MIDI number − 60). A
  syllable without a pitch becomes a freestyle note ``F`` (the spec: never scored), drawn at its line's median pitch
  (the song's, or C4, when the line has none): a lyrics-only song should not score singers against invented notes.
- A word's first syllable carries the space before it (`` world``), except at the start of a line: the leading-space
  convention of most songs in circulation, which the spec makes equivalent to the trailing one and which no editor
  strips as trailing spaces. The fields are separated by one ASCII space, the only separator Performous reads before
  the text.
- ``- beat`` ends each line at the end of its last note (the spec: never inside a note, never before the first or
  after the last), ``E`` ends the song.
- Lines sung by backing voices (``Line.part`` other than "lead") make the song a duet: ``P1`` the lead, ``P2`` the
  backing, with ``#P1``/``#P2`` naming them, since one voice's notes cannot overlap.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from stemdesk.core.errors import StemDeskError
from stemdesk.io.atomic import atomic_write_bytes
from stemdesk.karaoke.lyrics import decode_lyrics
from stemdesk.karaoke.model import Line, Lyrics, Syllable, Word

DEFAULT_BPM = 600
VERSION = "1.1.0"

# #LANGUAGE holds English language names (the spec: ISO 639-2's English names); the model holds ISO 639-1 codes.
LANGUAGE_NAMES = {
    "ar": "Arabic", "ca": "Catalan", "cs": "Czech", "da": "Danish", "de": "German", "el": "Greek",
    "en": "English", "es": "Spanish", "et": "Estonian", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "ga": "Irish", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian", "id": "Indonesian",
    "is": "Icelandic", "it": "Italian", "ja": "Japanese", "ko": "Korean", "la": "Latin", "lt": "Lithuanian",
    "lv": "Latvian", "nl": "Dutch", "no": "Norwegian", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian",
    "ru": "Russian", "sk": "Slovak", "sl": "Slovenian", "sr": "Serbian", "sv": "Swedish", "th": "Thai",
    "tr": "Turkish", "uk": "Ukrainian", "vi": "Vietnamese", "zh": "Chinese",
}  # fmt: skip


@dataclass
class UltraStarSong:
    """An UltraStar song as read: its lyrics (syllables with their times and pitches; freestyle notes have none) and
    its headers (keys in capitals, values as written)."""

    lyrics: Lyrics
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def bpm(self) -> float:
        return float(self.headers["BPM"].replace(",", "."))

    @property
    def gap_ms(self) -> float:
        return float(self.headers.get("GAP", "0").replace(",", ".") or 0)


@dataclass
class _Note:
    start: int  # beats from #GAP
    length: int
    pitch: int  # semitones from C4
    text: str
    freestyle: bool


def write_ultrastar(
    lyrics: Lyrics,
    path: Path,
    *,
    title: str,
    artist: str,
    audio_file: str,
    instrumental_file: str | None,
    vocals_file: str | None = None,
    bpm: float | None = None,
    language: str | None = None,
) -> Path:
    """Write ``lyrics`` (every word timed) as an UltraStar song at ``path``. ``audio_file``, ``instrumental_file``
    and ``vocals_file`` are the song's audio files, relative to ``path``'s folder (or absolute inside it).
    ``bpm``: the #BPM (default `DEFAULT_BPM`); ``language``: an ISO 639-1 code or an English language name
    (default the lyrics' language). An empty title becomes the file's name, an empty artist "Unknown artist". Raises
    StemDeskError for a word without a time."""
    path = Path(path)
    # games refuse a song without both (Performous: "Required header fields missing"), so a lyrics file that named
    # neither still gives a song that opens; the user renames it in the game's editor or here
    title = title.strip() or path.stem
    artist = artist.strip() or "Unknown artist"
    bpm = DEFAULT_BPM if bpm is None else bpm
    if not bpm > 0:
        raise StemDeskError(f"The BPM must be above 0, not {bpm}.", setting="bpm")
    beat = 15.0 / bpm
    lines = [line for line in lyrics.lines if line.words]
    if not lines:
        raise StemDeskError("The lyrics have no words to write. Load or type the lyrics first.")
    timed = [(number, line, _syllables(line, number)) for number, line in enumerate(lines, start=1)]
    first = min(start for _, _, syllables in timed for _, start, _, _, _ in syllables)
    gap_ms = max(0, round(first * 1000))
    known = [s.pitch for line in lines for word in line.words for s in word.syllables if s.pitch is not None]
    song_pitch = round(statistics.median(known)) - 60 if known else 0

    voices = {"lead": [t for t in timed if t[1].part == "lead"], "backing": [t for t in timed if t[1].part != "lead"]}
    duet = bool(voices["backing"])
    body: list[str] = []
    for voice, name in ((voices["lead"], "P1"), (voices["backing"], "P2")):
        if not voice:
            continue
        if duet:
            body.append(name)
        body.extend(_voice(voice, gap_ms, beat, song_pitch))
    body.append("E")

    language = lyrics.language if language is None else language
    headers = [
        ("VERSION", VERSION),
        ("TITLE", title),
        ("ARTIST", artist),
        ("LANGUAGE", LANGUAGE_NAMES.get(language.lower(), language) if language else ""),
        ("MP3", _reference(audio_file, path)),
        ("AUDIO", _reference(audio_file, path)),
        ("VOCALS", _reference(vocals_file, path) if vocals_file else ""),
        ("INSTRUMENTAL", _reference(instrumental_file, path) if instrumental_file else ""),
        ("BPM", _number(bpm)),
        ("GAP", str(gap_ms)),
        ("P1", "Lead" if duet else ""),
        ("P2", "Backing" if duet else ""),
    ]
    out = [f"#{key}:{_one_line(value)}" for key, value in headers if value]
    atomic_write_bytes(path, ("\n".join(out + body) + "\n").encode("utf-8"))
    return path


def _syllables(line: Line, number: int) -> list[tuple[str, float, float, int | None, bool]]:
    """The line's syllables as (text, start, end, MIDI pitch, starts a word). A word whose syllables lack times has
    its time shared evenly among them; a word whose syllables do not spell it is written as one note, so the text
    written is always the word's."""
    out: list[tuple[str, float, float, int | None, bool]] = []
    for word in line.words:
        if word.start is None or word.end is None or word.end < word.start:
            raise StemDeskError(
                f'Line {number} ("{line.text}"): the word "{word.text}" has no time. An UltraStar song times every '
                "syllable: align the lyrics first."
            )
        if not word.text.strip():
            raise StemDeskError(f"Line {number} has an empty word. Remove it from the lyrics and write again.")
        syllables = [s for s in word.syllables if s.text]
        if "".join(s.text for s in syllables) != word.text:
            syllables = [Syllable(word.text, word.start, word.end, _one_pitch(word))]
        if any(s.start is None or s.end is None for s in syllables):
            share = (word.end - word.start) / len(syllables)
            syllables = [
                Syllable(s.text, word.start + i * share, word.start + (i + 1) * share, s.pitch)
                for i, s in enumerate(syllables)
            ]
        for i, s in enumerate(syllables):
            assert s.start is not None and s.end is not None
            out.append((s.text, s.start, s.end, s.pitch, i == 0))
    return out


def _one_pitch(word: Word) -> int | None:
    pitches = [s.pitch for s in word.syllables if s.pitch is not None]
    return round(statistics.median(pitches)) if pitches else None


def _voice(
    lines: list[tuple[int, Line, list[tuple[str, float, float, int | None, bool]]]],
    gap_ms: int,
    beat: float,
    song_pitch: int,
) -> list[str]:
    """One voice's note and line-break lines."""

    def beats(seconds: float) -> int:
        return round((seconds - gap_ms / 1000) / beat)

    phrases: list[list[_Note]] = []
    previous: _Note | None = None
    previous_start = float("-inf")
    for number, line, syllables in lines:
        known = [pitch for _, _, _, pitch, _ in syllables if pitch is not None]
        line_pitch = round(statistics.median(known)) - 60 if known else song_pitch
        notes: list[_Note] = []
        for i, (text, start, end, pitch, word_start) in enumerate(syllables):
            if start < previous_start - 1e-6:
                raise StemDeskError(
                    f'Line {number} ("{line.text}"): "{text}" starts before the syllable sung before it. UltraStar '
                    "notes follow each other in time: align the lyrics again."
                )
            previous_start = start
            first, final = beats(start), beats(end)
            if previous is not None and first < previous.start + previous.length:
                if first <= previous.start:  # both rounded to one beat: keep them one beat apart
                    first = previous.start + 1
                previous.length = max(1, first - previous.start)
            note = _Note(
                start=max(0, first),
                length=max(1, final - first),
                pitch=pitch - 60 if pitch is not None else line_pitch,
                text=(" " + text) if word_start and i else text,
                freestyle=pitch is None,
            )
            notes.append(note)
            previous = note
        phrases.append(notes)

    for i in range(1, len(phrases)):
        last, following = phrases[i - 1][-1], phrases[i][0]
        if last.start + last.length >= following.start and last.length > 1:
            last.length -= 1  # so that the line break falls inside no note
    out: list[str] = []
    for i, notes in enumerate(phrases):
        if i:
            last = phrases[i - 1][-1]
            out.append(f"- {last.start + last.length}")
        out.extend(f"{'F' if n.freestyle else ':'} {n.start} {n.length} {n.pitch} {n.text}" for n in notes)
    return out


def _reference(file: str, song: Path) -> str:
    reference = Path(file)
    if reference.is_absolute():
        try:
            reference = reference.relative_to(song.parent.resolve())
        except ValueError:
            try:
                reference = reference.relative_to(song.parent.absolute())
            except ValueError:
                raise StemDeskError(
                    f'"{file}" is not in the song\'s folder "{song.parent}"; UltraStar games open only files named '
                    "relative to the song. Write the song beside its audio."
                ) from None
    return reference.as_posix()


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def _one_line(value: str) -> str:
    return " ".join(str(value).replace("\r", "\n").split("\n")).strip()


# --- reading ---------------------------------------------------------------------------------------------------------

_NOTE = re.compile(r"^([:*FRG])[ \t]+(-?\d+)[ \t]+(-?\d+)[ \t]+(-?\d+)[ \t](.*)$")
_BREAK = re.compile(r"^-[ \t]*(-?\d+)(?:[ \t]+-?\d+)?[ \t]*$")
_VOICE = re.compile(r"^P[ \t]*(\d)[ \t]*$")


def read_ultrastar(path: Path) -> UltraStarSong:
    """Read an UltraStar song (UTF-8, as version 1 requires): headers, and lyrics whose words are the notes between
    spaces and line breaks, each syllable with its time (from #GAP and #BPM) and its MIDI pitch (None for freestyle
    and rap notes). P1 lines are the lead part, later voices "backing". Raises StemDeskError on a malformed line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise StemDeskError(f'Cannot read the UltraStar song "{path}": {error.strerror or error}.') from error
    rows = decode_lyrics(data, source=f'"{path.name}"').replace("\r\n", "\n").replace("\r", "\n").split("\n")
    headers: dict[str, str] = {}
    body = len(rows)  # the index of the first row after the headers
    for index, row in enumerate(rows):
        if row.strip() and not row.startswith("#"):
            body = index
            break
        if row.strip():
            key, _, value = row[1:].partition(":")
            headers.setdefault(key.strip().upper(), value.strip())
    if "BPM" not in headers:
        raise StemDeskError(f'"{path.name}" has no #BPM header, so its beats have no time. Is it an UltraStar song?')
    if headers.get("RELATIVE", "").lower() == "yes":
        raise StemDeskError(f'"{path.name}" uses relative beats (#RELATIVE:yes), which StemDesk does not read.')
    song = UltraStarSong(Lyrics([]), headers)
    beat, gap = 15.0 / song.bpm, song.gap_ms / 1000

    lines: list[Line] = []
    part = "lead"
    notes: list[tuple[str, float, float, int | None]] = []

    def close() -> None:
        if notes:
            lines.append(Line(_words(notes), part=part))
            notes.clear()

    for index, row in enumerate(rows[body:], start=body + 1):
        if not row.strip():
            continue
        if row.rstrip() == "E":
            break
        if (voice := _VOICE.match(row)) is not None:
            close()
            part = "lead" if voice.group(1) == "1" else "backing"
            continue
        if _BREAK.match(row):
            close()
            continue
        note = _NOTE.match(row)
        if note is None:
            raise StemDeskError(
                f'Line {index} of "{path.name}" is neither a note, a line break nor a voice: {row[:60]!r}. '
                "Correct it and read the song again."
            )
        kind, start, length, pitch, text = note.groups()
        begin = gap + int(start) * beat
        notes.append((text, begin, begin + int(length) * beat, int(pitch) + 60 if kind in ":*" else None))
    close()
    code = {name.lower(): code for code, name in LANGUAGE_NAMES.items()}.get(headers.get("LANGUAGE", "").lower())
    song.lyrics = Lyrics(lines, language=code, title=headers.get("TITLE", ""), artist=headers.get("ARTIST", ""))
    return song


def _words(notes: list[tuple[str, float, float, int | None]]) -> list[Word]:
    """Notes to words: a note whose text starts with a space, or follows one that ends with a space, starts a word."""
    words: list[Word] = []
    syllables: list[Syllable] = []

    def close() -> None:
        if syllables:
            text = "".join(s.text for s in syllables)
            words.append(Word(text, syllables[0].start, syllables[-1].end, list(syllables)))
            syllables.clear()

    for text, start, end, pitch in notes:
        if text[:1] in (" ", "\t"):
            close()
        core = text.strip(" \t")
        if core:
            syllables.append(Syllable(core, round(start, 6), round(end, 6), pitch))
        if text[-1:] in (" ", "\t"):
            close()
    close()
    return words
