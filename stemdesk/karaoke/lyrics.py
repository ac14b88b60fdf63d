"""Lyrics in: the text a user gives (plain text, LRC or ASS subtitles) read into `Lyrics`, every word kept as written.

Three kinds, told apart by their content when the caller does not say (`detect_kind`):

- ``"text"``: one sung line a line; blank lines separate verses (``Line.verse`` counts the blocks).
- ``"lrc"``: line-timed ``[mm:ss.xx]text`` (several time tags before one text: the line repeats at each), word-timed
  enhanced LRC (the A2 extension: ``[mm:ss.xx] <mm:ss.xx> word <mm:ss.xx> word … <mm:ss.xx>``; a tag inside a word
  starts a syllable), an empty ``[mm:ss.xx]`` line ends the line before it, and the ``[ti:]``, ``[ar:]`` and
  ``[offset:]`` tags (milliseconds; a positive offset shows the words sooner).
- ``"ass"``: the ``Dialogue`` events of an ASS/SSA ``[Events]`` section, their start and end, and the karaoke tags
  ``{\\k}``, ``{\\kf}`` (``{\\K}``) and ``{\\ko}`` that give each syllable's length in centiseconds; other override
  tags are dropped. A file with Aegisub's generated ``fx`` lines is read from its ``karaoke`` comment lines instead,
  so the words are not read once per effect layer.

Only the times a file gives are kept, none is guessed: a line-timed LRC line gives its first word's start (and its last
word's end when an empty time tag follows), an event without karaoke tags its first word's start and last word's end.
The aligner refines them.

Words are split on whitespace, except the no-break spaces (U+00A0, U+2007, U+202F), which join words as their
writers meant. Nothing else is changed: no Unicode normalisation, no case, no punctuation stripped, so emoji,
right-to-left scripts, CJK and combining marks come back exactly as written. A byte order mark at the start of a
file and the line endings (LF, CRLF, CR) are not part of any word.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from stemdesk.core.errors import StemDeskError
from stemdesk.karaoke.model import Line, Lyrics, Syllable, Word

KINDS = ("text", "lrc", "ass")

# A song's lyrics are a few kilobytes; an ASS file with karaoke effects a few hundred. Past this it is not lyrics.
MAX_LYRICS_BYTES = 4 * 1024 * 1024

# Word separators: whitespace but the no-break spaces.
_NO_BREAK = "\u00a0\u2007\u202f"
_SEPARATOR = re.compile(rf"[^\S{_NO_BREAK}]+")
_SPLIT = re.compile(rf"([^\S{_NO_BREAK}]+)")

_BOMS = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
)


def read_lyrics(path: Path, *, kind: str | None = None, encoding: str | None = None) -> Lyrics:
    """Read a lyrics file (plain text, LRC or ASS; ``kind`` as for `parse_lyrics`, else told by the file's name and
    content). The file is UTF-8 unless it starts with a UTF-16 or UTF-32 byte order mark, or ``encoding`` names
    another: a file in an old code page is refused rather than guessed, because a wrong guess changes words."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_LYRICS_BYTES:
            raise StemDeskError(
                f'"{path.name}" is {size / 1e6:.1f} MB; lyrics files are a few kilobytes (at most '
                f"{MAX_LYRICS_BYTES // (1024 * 1024)} MB). Choose the lyrics file itself, not an audio or video file."
            )
        data = path.read_bytes()
    except OSError as error:
        raise StemDeskError(f'Cannot read the lyrics file "{path}": {error.strerror or error}.') from error
    text = decode_lyrics(data, encoding=encoding, source=f'"{path.name}"')
    if kind is None:
        kind = {".lrc": "lrc", ".ass": "ass", ".ssa": "ass"}.get(path.suffix.lower())
    return _parse(text, kind, f'"{path.name}"')


def decode_lyrics(data: bytes, *, encoding: str | None = None, source: str = "the lyrics") -> str:
    """The text of a lyrics file's bytes (see `read_lyrics` for the encodings), its byte order mark removed."""
    if encoding is None:
        encoding = next((name for bom, name in _BOMS if data.startswith(bom)), None)
        if encoding is None:
            if b"\x00" in data:
                raise StemDeskError(
                    f"{_capital(source)} holds NUL bytes, so it is not a text file (an audio, image or word-processor file?). "
                    "Save the lyrics as plain text (UTF-8) and choose that file."
                )
            encoding = "utf-8"
    try:
        text = data.decode(encoding)
    except LookupError as error:
        raise StemDeskError(f'"{encoding}" is not an encoding Python knows.', setting="encoding") from error
    except UnicodeDecodeError as error:
        raise StemDeskError(
            f"{_capital(source)} is not text in {encoding.upper()} (byte {error.start} cannot be decoded): a binary file, or "
            "text saved in another encoding. Save it as UTF-8, or name its encoding.",
            setting="encoding",
        ) from error
    return text.removeprefix("\ufeff")


def parse_lyrics(text: str, *, kind: str | None = None) -> Lyrics:
    """The lyrics in ``text``: ``kind`` is "text", "lrc" or "ass" (see the module's notes), or None to tell it from
    the text (`detect_kind`). Raises StemDeskError when there are no words, a time tag is malformed (naming its
    line) or the text is too large to be lyrics."""
    return _parse(text, kind, "the lyrics")


def detect_kind(text: str) -> str:
    """ "ass" for text with an ASS section header or Dialogue lines, "lrc" for text with an LRC time tag at the start
    of a line or a word tag, else "text"."""
    if re.search(r"(?im)^[ \t]*\[(events|script info|v4\+? styles)\][ \t]*$", text) or re.search(
        r"(?m)^Dialogue:", text
    ):
        return "ass"
    if re.search(r"(?m)^[ \t\ufeff]*\[\d+:\d", text) or re.search(r"<\d+:\d{1,2}[.:]\d", text):
        return "lrc"
    return "text"


def _parse(text: str, kind: str | None, source: str) -> Lyrics:
    if len(text) > MAX_LYRICS_BYTES:
        raise StemDeskError(
            f"{_capital(source)} is {len(text):,} characters long; lyrics are a few thousand. Give the lyrics text itself."
        )
    text = text.removeprefix("\ufeff")
    if kind is None:
        kind = detect_kind(text)
    readers = {"text": _parse_text, "lrc": _parse_lrc, "ass": _parse_ass}
    if kind not in readers:
        raise StemDeskError(f'"{kind}" is not a kind of lyrics StemDesk reads: choose one of {", ".join(KINDS)}.')
    lyrics = readers[kind](_split_lines(text), source)
    if not lyrics.words:
        raise StemDeskError(
            f"{_capital(source)} has no words"
            + (" (only time tags, metadata or styles)" if kind != "text" and text.strip() else "")
            + ". Give the lyrics as text, one sung line a line."
        )
    return lyrics


def _capital(source: str) -> str:
    return source[:1].upper() + source[1:]


def _split_lines(text: str) -> list[str]:
    """The text's lines: LF, CRLF and CR end a line; other Unicode line separators are whitespace inside one."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


# --- words from timed pieces of text -------------------------------------------------------------------------------


@dataclass
class _Piece:
    """A stretch of a line's text between two time marks: its start and end where the file gives them."""

    text: str
    start: float | None = None
    end: float | None = None


def _words_from_pieces(pieces: Iterable[_Piece]) -> list[Word]:
    """Split timed pieces of one line into words at whitespace. A piece that ends inside a word and the next that
    continues it give one word of two syllables. A piece's start goes to its first syllable, its end to its last;
    syllables in the middle of a piece get no time."""
    words: list[Word] = []
    open_word: list[Syllable] = []

    def close() -> None:
        if open_word:
            syllables = list(open_word)
            text = "".join(syllable.text for syllable in syllables)
            words.append(Word(text, syllables[0].start, syllables[-1].end, syllables))
            open_word.clear()

    for piece in pieces:
        tokens = [token for token in _SPLIT.split(piece.text) if token]
        solid = [i for i, token in enumerate(tokens) if not _SEPARATOR.fullmatch(token)]
        for i, token in enumerate(tokens):
            if i not in solid:
                close()
                continue
            start = piece.start if i == solid[0] else None
            end = piece.end if i == solid[-1] else None
            open_word.append(Syllable(token, start, end))
    close()
    return words


# --- plain text ------------------------------------------------------------------------------------------------------


def _parse_text(lines: list[str], source: str) -> Lyrics:
    result: list[Line] = []
    verse, gap = 0, False
    for raw in lines:
        words = _words_from_pieces([_Piece(raw)])
        if not words:
            gap = True
            continue
        if gap and result:
            verse += 1
        gap = False
        result.append(Line(words, verse=verse))
    return Lyrics(result)


# --- LRC -------------------------------------------------------------------------------------------------------------

_TIME = r"(\d+):(\d{1,2})(?:[.:](\d{1,3}))?"  # mm:ss.xx; some writers use a colon before the hundredths
_LINE_TAG = re.compile(r"\[([^\]]*)\]")
_TIME_TAG = re.compile(rf"^{_TIME}$")
_META_TAG = re.compile(r"^\[([A-Za-z#][A-Za-z0-9_#-]*):(.*)\]\s*$")
_WORD_TAG = re.compile(r"<([^<>]*)>")
_LOOKS_TIMED = re.compile(r"^\s*\d+\s*:")


def _lrc_seconds(tag: str, number: int, source: str, shown: str) -> float:
    match = _TIME_TAG.match(tag.strip())
    if match is None or int(match.group(2)) >= 60:
        raise StemDeskError(
            f'Line {number} of {source}: the time tag "{shown}" is not '
            "minutes:seconds.hundredths (like [01:07.50]). Correct it and load the lyrics again."
        )
    minutes, seconds, fraction = match.groups()
    value = int(minutes) * 60 + int(seconds)
    return value + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


@dataclass
class _LrcEntry:
    time: float | None  # the line tag's time (None: a line without one)
    order: tuple[float, int, int]  # sort key: time (or the time before it), the source line, the repeat
    verse: int
    pieces: list[_Piece]
    empty: bool  # an empty timed line: the end of the line before it


def _parse_lrc(lines: list[str], source: str) -> Lyrics:
    title = artist = ""
    language: str | None = None
    offset = 0.0
    for raw in lines:  # the offset applies to every tag, wherever it is written
        meta = _META_TAG.match(raw.strip())
        if meta and meta.group(1).lower() == "offset":
            try:
                offset = float(meta.group(2).strip() or 0) / 1000
            except ValueError:
                pass

    def shift(value: float) -> float:
        return max(0.0, round(value - offset, 6))

    entries: list[_LrcEntry] = []
    verse, gap, last_time = 0, False, 0.0
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if not stripped:
            gap = True
            continue
        meta = _META_TAG.match(stripped)
        if meta:
            key, value = meta.group(1).lower(), meta.group(2).strip()
            if key == "ti":
                title = value
            elif key == "ar":
                artist = value
            elif key in ("la", "lang") and re.fullmatch(r"[A-Za-z]{2}", value):
                language = value.lower()
            continue
        rest = raw.lstrip()
        times: list[float] = []
        while True:
            tag = _LINE_TAG.match(rest)
            if tag is None or not _LOOKS_TIMED.match(tag.group(1)):
                break
            times.append(shift(_lrc_seconds(tag.group(1), number, source, tag.group(0))))
            rest = rest[tag.end() :]
        pieces = _lrc_pieces(rest, times[0] if times else None, number, source, shift)
        has_words = bool(_words_from_pieces(pieces))
        if has_words and gap and entries:
            verse += 1
        if has_words:
            gap = False
        if not times:
            entries.append(_LrcEntry(None, (last_time, number, 0), verse, pieces, not has_words))
        for repeat, time in enumerate(times):
            delta = time - times[0]  # a repeat: its word tags move with its line tag
            moved = [_Piece(p.text, _moved(p.start, delta), _moved(p.end, delta)) for p in pieces]
            entries.append(_LrcEntry(time, (time, number, repeat), verse, moved, not has_words))
        if times:
            last_time = times[0]

    entries.sort(key=lambda entry: entry.order)
    result: list[Line] = []
    verse_of: list[int] = []
    for entry in entries:
        if entry.empty:
            if entry.time is not None and result and result[-1].words[-1].end is None:
                last = result[-1].words[-1]
                if last.start is None or last.start <= entry.time:
                    last.end = entry.time
                    last.syllables[-1].end = entry.time
            continue
        words = _words_from_pieces(entry.pieces)
        if not words:
            continue
        result.append(Line(words))
        verse_of.append(entry.verse)
    # verses in time order: a new block wherever the source block changes
    block = 0
    for i, line in enumerate(result):
        if i and verse_of[i] != verse_of[i - 1]:
            block += 1
        line.verse = block
    return Lyrics(result, language=language, title=title, artist=artist)


def _moved(time: float | None, delta: float) -> float | None:
    return None if time is None else round(time + delta, 6)


def _lrc_pieces(rest: str, line_time: float | None, number: int, source: str, shift) -> list[_Piece]:
    """The pieces of an LRC line's text after its line tags: each word tag starts a piece that the next tag ends."""
    pieces: list[_Piece] = []
    position, time = 0, line_time
    for tag in _WORD_TAG.finditer(rest):
        if not _LOOKS_TIMED.match(tag.group(1)):
            continue  # "<3", "<b>": text, not a time
        moment = shift(_lrc_seconds(tag.group(1), number, source, tag.group(0)))
        pieces.append(_Piece(rest[position : tag.start()], time, moment if time is not None else None))
        position, time = tag.end(), moment
    pieces.append(_Piece(rest[position:], time, None))
    return pieces


# --- ASS -------------------------------------------------------------------------------------------------------------

_ASS_TIME = re.compile(r"^(\d+):(\d{1,2}):(\d{1,2})(?:\.(\d{1,3}))?$")
_ASS_DEFAULT_FORMAT = ["layer", "start", "end", "style", "name", "marginl", "marginr", "marginv", "effect", "text"]
_OVERRIDE = re.compile(r"\{([^}]*)\}")
_KARAOKE = re.compile(r"\\(kf|ko|k|K)(\d+)")
_BLOCK_TAG = re.compile(r"\\(kf|ko|k|K)(\d+)|\\p(\d+)")  # a karaoke tag, or a drawing-mode switch


def _ass_seconds(value: str, number: int, source: str) -> float:
    match = _ASS_TIME.match(value.strip())
    if match is None:
        raise StemDeskError(
            f'Line {number} of {source}: the time "{value.strip()}" is not hours:minutes:seconds.hundredths (like '
            "0:01:07.50). Correct it and load the subtitles again."
        )
    hours, minutes, seconds, fraction = match.groups()
    value_s = int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    return value_s + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


@dataclass
class _AssEvent:
    kind: str  # "dialogue" or "comment"
    number: int
    fields: dict[str, str]


def _parse_ass(lines: list[str], source: str) -> Lyrics:
    section, title = "", ""
    fields = list(_ASS_DEFAULT_FORMAT)
    events: list[_AssEvent] = []
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip().lower()
            continue
        key, colon, value = stripped.partition(":")
        if not colon:
            continue
        key = key.strip().lower()
        if section == "script info" and key == "title":
            title = value.strip()
        elif section == "events" and key == "format":
            fields = [name.strip().lower() for name in value.split(",")]
        elif section in ("events", "") and key in ("dialogue", "comment"):
            values = value.lstrip().split(",", len(fields) - 1)
            if len(values) < len(fields):
                raise StemDeskError(
                    f"Line {number} of {source} has "
                    f"{len(values)} fields where the Format line names {len(fields)}. Correct it and load the "
                    "subtitles again."
                )
            events.append(_AssEvent(key, number, dict(zip(fields, values))))

    # Aegisub's applied karaoke templates: the "fx" lines are effects generated from the "karaoke" comments
    generated = any(e.kind == "dialogue" and e.fields.get("effect", "").strip().lower() == "fx" for e in events)
    if generated:
        chosen = [
            e
            for e in events
            if (e.kind == "dialogue" and e.fields.get("effect", "").strip().lower() != "fx")
            or (e.kind == "comment" and e.fields.get("effect", "").strip().lower() == "karaoke")
        ]
    else:
        chosen = [e for e in events if e.kind == "dialogue"]

    timed: list[tuple[float, int, list[Word]]] = []
    for event in chosen:
        start = _ass_seconds(event.fields.get("start", ""), event.number, source)
        end = _ass_seconds(event.fields.get("end", ""), event.number, source)
        words = _words_from_pieces(_ass_pieces(event.fields.get("text", ""), start, end))
        if words:
            timed.append((start, event.number, words))
    timed.sort(key=lambda item: (item[0], item[1]))
    return Lyrics([Line(words) for _, _, words in timed], title=title)


def _ass_pieces(text: str, start: float, end: float) -> list[_Piece]:
    """An event's text as pieces: each karaoke tag starts a syllable that lasts its centiseconds; an event without
    karaoke tags is one piece from its start to its end."""
    text = text.replace("\\N", " ").replace("\\n", " ").replace("\\h", "\u00a0")
    pieces: list[_Piece] = []
    karaoke = any(_KARAOKE.search(block) for block in _OVERRIDE.findall(text))
    position, cursor, drawing = 0, start, False
    current = _Piece("", start, None if karaoke else end)
    for block in _OVERRIDE.finditer(text):
        if not drawing:
            current.text += text[position : block.start()]
        position = block.end()
        for tag in _BLOCK_TAG.finditer(block.group(1)):
            if tag.group(3) is not None:
                drawing = int(tag.group(3)) > 0
                continue
            length = int(tag.group(2)) / 100
            pieces.append(current)
            current = _Piece("", round(cursor, 6), round(cursor + length, 6))
            cursor += length
    if not drawing:
        current.text += text[position:]
    pieces.append(current)
    return pieces
