"""Aligned lyrics out as an LRC file: enhanced (word-timed, the A2 extension) by default, or line-timed.

Enhanced, each line is ``[mm:ss.xx] <mm:ss.xx> word <mm:ss.xx> word … <mm:ss.xx>``: the line tag is its first word's
start, each word follows the tag of its start, and the last tag is the line's end. A word tag marks where a player's
highlight has reached, so a rest between two words is written as the first word's end tag followed at once by the
next word's start tag (an empty stretch: the highlight waits); without it a word's end could not be told from the
next word's start, and the times would not come back from the file.

Line-timed, each line is ``[mm:ss.xx]the line's words``, followed by an empty ``[mm:ss.xx]`` at its end where a gap
follows (so a player clears it in the gap), and at the end of the last line.

Times are written to the hundredth of a second (as LRC players read them); blank lines separate verses. The headers
are [ti:], [ar:], [by:] (when given), [length:] (when given), [re:StemDesk] and [ve:] (StemDesk's version). The file is
UTF-8 without a byte order mark, with LF line ends, written atomically. `stemdesk.karaoke.lyrics.parse_lyrics` reads
it back to the same words and times.
"""

from __future__ import annotations

import re
from pathlib import Path

from stemdesk.core.errors import StemDeskError
from stemdesk.core.version import __version__
from stemdesk.io.atomic import atomic_write_bytes
from stemdesk.karaoke.model import Line, Lyrics, Word

_BREAKS = re.compile(r"[^\S\u00a0\u2007\u202f]")  # what would split a word when the file is read back


def lrc_time(seconds: float) -> str:
    """``mm:ss.xx`` for a time in seconds, rounded to the hundredth (minutes go past 99 if they must)."""
    hundredths = max(0, round(seconds * 100))
    minutes, rest = divmod(hundredths, 6000)
    return f"{minutes:02d}:{rest // 100:02d}.{rest % 100:02d}"


def write_lrc(
    lyrics: Lyrics,
    path: Path,
    *,
    title: str | None = None,
    artist: str | None = None,
    length: float | None = None,
    by: str | None = None,
    enhanced: bool = True,
) -> Path:
    """Write ``lyrics`` as an LRC file at ``path`` (enhanced: every word timed; line-timed: every line's start).
    ``title`` and ``artist`` default to the lyrics' own; ``length`` is the song's length in seconds; ``by`` the
    person who made the timing. Raises StemDeskError naming the first line or word without the times it needs."""
    lines = [line for line in lyrics.lines if line.words]
    if not lines:
        raise StemDeskError("The lyrics have no words to write. Load or type the lyrics first.")
    for number, line in enumerate(lines, start=1):
        _check_words(line, number)
    headers = [
        ("ti", lyrics.title if title is None else title),
        ("ar", lyrics.artist if artist is None else artist),
        ("by", by or ""),
        ("length", "" if length is None else _length(length)),
        ("re", "StemDesk"),
        ("ve", __version__),
    ]
    out = [f"[{key}:{_one_line(value)}]" for key, value in headers if value or key in ("ti", "ar")]
    out.append("")
    for i, line in enumerate(lines):
        if i and line.verse != lines[i - 1].verse:
            out.append("")
        if enhanced:
            out.append(_enhanced_line(line, i + 1))
        else:
            following = lines[i + 1] if i + 1 < len(lines) else None
            out.extend(_plain_line(line, i + 1, following))
    atomic_write_bytes(Path(path), ("\n".join(out) + "\n").encode("utf-8"))
    return Path(path)


def _check_words(line: Line, number: int) -> None:
    for word in line.words:
        if not word.text or _BREAKS.search(word.text):
            raise StemDeskError(
                f"Line {number} has the word {word.text!r}, which is empty or holds a space or line break; an LRC "
                "reader would not read it back as one word. Split or join it in the lyrics and write again."
            )


def _enhanced_line(line: Line, number: int) -> str:
    times: list[tuple[Word, int, int]] = []
    for word in line.words:
        if word.start is None or word.end is None:
            raise StemDeskError(
                f'Line {number} ("{line.text}"): the word "{word.text}" has no time. An enhanced LRC file times '
                "every word: align the lyrics first, or write a line-timed LRC file."
            )
        times.append((word, _cs(word.start), _cs(word.end)))
    parts: list[str] = []
    for i, (word, start, end) in enumerate(times):
        if end < start:
            raise StemDeskError(f'Line {number}: the word "{word.text}" ends before it starts. Align it again.')
        if i:
            previous, _, previous_end = times[i - 1]
            if start < previous_end:
                raise StemDeskError(
                    f'Line {number}: the word "{word.text}" starts before "{previous.text}" ends; one LRC line '
                    "cannot hold overlapping words. Align the line again."
                )
            if start > previous_end:
                parts.append(f"<{_tag(previous_end)}>")
        parts.append(f"<{_tag(start)}> {word.text}")
    parts.append(f"<{_tag(times[-1][2])}>")
    return f"[{_tag(times[0][1])}] " + " ".join(parts)


def _plain_line(line: Line, number: int, following: Line | None) -> list[str]:
    if line.start is None:
        raise StemDeskError(
            f'Line {number} ("{line.text}") has no start time. Align the lyrics, or set the line\'s time, first.'
        )
    out = [f"[{lrc_time(line.start)}]{line.text}"]
    if line.end is not None:
        next_start = following.start if following is not None else None
        if next_start is None or _cs(line.end) < _cs(next_start):
            out.append(f"[{lrc_time(line.end)}]")
    return out


def _cs(seconds: float) -> int:
    return max(0, round(seconds * 100))


def _tag(hundredths: int) -> str:
    return lrc_time(hundredths / 100)


def _length(seconds: float) -> str:
    whole = max(0, round(seconds))
    return f"{whole // 60:02d}:{whole % 60:02d}"


def _one_line(value: str) -> str:
    return " ".join(str(value).split("\n")).replace("\r", " ").strip()
