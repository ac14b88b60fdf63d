"""What a karaoke screen shows at each moment: one plan that the ASS file, the MP4 video, CD+G and the app's karaoke
view all draw, so that every one of them shows the same lines at the same times.

The screen has two line slots, an upper (0) and a lower (1). A phrase of singing (lines with less than
GAP_FOR_COUNT_IN seconds between them) fills them alternately: line 0 of the phrase goes in the upper slot, line 1 in
the lower, and when a line has been sung, the line two after it takes its slot. So the next line is always on screen
before it is sung, and a change of line never moves or redraws the line about to be sung: the eye keeps its place,
and a CD+G player, which needs most of a second to draw a line, has that line's whole singing time to draw the one
after. A line waits in its slot as the "next line" (drawn dimmer) until the line before it has been sung; then it is
the current line and its words fill with colour as they are sung.

Before a phrase that follows a long gap (or the song's start), three dots count in the last three seconds. Before
the first line, a title card shows the title and artist.

Long lines are wrapped over the rows a slot has (balanced, so no row is left with one word), shrunk when that is not
enough, and, when a line does not fit at the smallest size either, shown as consecutive screen lines, each with its
own words; a word too wide for a row is broken between characters. Nothing is ever cut off or dropped.

Sizes and widths are the renderer's own (ASS pixels, CD+G pixels): each builds a `Layout` with its measure of text
and calls `plan`.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import StemDeskError
from .model import Line, Lyrics

GAP_FOR_COUNT_IN = 5.0  # seconds without singing before a line that gets a count-in (and starts a new phrase)
COUNT_IN = 3  # dots, one a second, before such a line
LEAD = 4.0  # seconds a phrase's first lines are on screen before the first is sung (the count-in is the last 3)
HOLD = 0.5  # seconds a phrase's last lines stay on screen after they were sung
TITLE_MIN = 2.0  # the title card is shown when the first lines appear this late or later


class LyricsNotTimed(StemDeskError):
    """A karaoke screen needs every word's start and end, and one is missing (or not a number)."""


@dataclass(frozen=True)
class Piece:
    """What fills with colour as one unit: a word, or a part of a word too wide for a row. ``space``: a space
    follows it on its row (not after a word's last row-piece, nor between parts of one word)."""

    text: str
    start: float
    end: float
    space: bool = True

    def progress(self, t: float) -> float:
        """How much of the piece is filled at ``t``, 0…1 (a piece of no duration is filled at once at its start)."""
        if t >= self.end:
            return 1.0
        if t <= self.start:
            return 0.0
        return (t - self.start) / (self.end - self.start)


@dataclass(frozen=True)
class ShownLine:
    """One line as the screen shows it: its rows of pieces at font ``size`` in ``slot`` (0 upper, 1 lower).
    From ``appear`` it is on screen as the next line; from ``active`` it is the current line (its part's colours,
    filling as sung); at ``gone`` it leaves the screen. ``line`` is the lyric line it shows (part, verse); a lyric
    line too long for one screen is shown as several ShownLines with the same ``line``. ``count_in``: three dots
    count in the last seconds before it (it starts a phrase after a long gap)."""

    number: int
    line: Line
    rows: tuple[tuple[Piece, ...], ...]
    size: float
    slot: int
    appear: float
    active: float
    gone: float
    count_in: bool = False

    @property
    def pieces(self) -> Iterator[Piece]:
        return (piece for row in self.rows for piece in row)

    @property
    def start(self) -> float:
        return self.rows[0][0].start

    @property
    def end(self) -> float:
        return self.rows[-1][-1].end

    @property
    def backing(self) -> bool:
        return self.line.part == "backing"


@dataclass(frozen=True)
class TitleCard:
    """The title and artist, shown from the song's start until ``end`` (when the first lines appear)."""

    title: str
    artist: str
    end: float


@dataclass(frozen=True)
class Screen:
    """What is on screen at one moment: the title card or the two slots (each a ShownLine or None), which of them
    is the current line (being sung or sung next) and which the next, and the count-in's dots left (0: none)."""

    title: TitleCard | None
    slots: tuple[ShownLine | None, ShownLine | None]
    current: ShownLine | None
    next: ShownLine | None
    count_in: int


@dataclass(frozen=True)
class Plan:
    """The whole song's screens: its ShownLines in order and the title card (None when there is none)."""

    lines: tuple[ShownLine, ...]
    title: TitleCard | None

    def at(self, t: float) -> Screen:
        """The screen at ``t`` seconds (for a view that draws frame by frame)."""
        slots: list[ShownLine | None] = [None, None]
        for shown in self.lines:
            if shown.appear > t:
                break
            if t < shown.gone:
                slots[shown.slot] = shown
        on = [shown for shown in slots if shown is not None]
        active = sorted((shown for shown in on if shown.active <= t), key=lambda shown: shown.start)
        current = active[-1] if active else None
        following = [shown for shown in on if shown is not current and shown.start > t]
        dots = 0
        for shown in on:
            if shown.count_in and shown.start - COUNT_IN <= t < shown.start:
                dots = math.ceil(shown.start - t)
        title = self.title if self.title is not None and t < self.title.end else None
        return Screen(title, (slots[0], slots[1]), current, following[0] if following else None, dots)

    def count_ins(self) -> Iterator[ShownLine]:
        return (shown for shown in self.lines if shown.count_in)


@dataclass(frozen=True)
class Layout:
    """A renderer's geometry: a row is ``width`` wide and a slot ``slot_height`` high, in the renderer's pixels;
    ``sizes`` are the font sizes to try, biggest first; ``measure(text, size)`` is the width text takes;
    ``row_height(size)`` the pitch of rows at that size."""

    width: float
    slot_height: float
    sizes: Sequence[float]
    measure: Callable[[str, float], float]
    row_height: Callable[[float], float]

    def rows_at(self, size: float) -> int:
        return max(1, int(self.slot_height // self.row_height(size)))


# Timing ------------------------------------------------------------------------------------------------------------


def check_timed(lyrics: Lyrics) -> None:
    """LyricsNotTimed naming the first word without a usable start and end: karaoke screens place every word."""
    for number, line in enumerate(lyrics.lines, 1):
        for word in line.words:
            times = (word.start, word.end)
            if any(time is None or not math.isfinite(time) for time in times):
                raise LyricsNotTimed(
                    f'The word "{word.text}" (line {number}: "{line.text}") has no time, so it cannot be placed '
                    "on the karaoke screen. Align the lyrics to the song first, or give every word a start and an "
                    "end, and try again.",
                    setting="lyrics",
                )


def _timed_words(line: Line) -> list[tuple[str, float, float]]:
    """The line's words as (text, start, end), times made to follow one another (a word starting before the one
    before it ended starts when that one ends), none before 0."""
    words = []
    at = 0.0
    for word in line.words:
        assert word.start is not None and word.end is not None  # check_timed ran
        start = max(at, float(word.start))
        end = max(start, float(word.end))
        words.append((" ".join(word.text.split()), start, end))
        at = end
    return words


# Layout ------------------------------------------------------------------------------------------------------------


def _break_word(text: str, start: float, end: float, fits: Callable[[str], bool]) -> list[Piece]:
    """A word too wide for a row, in parts that each fit (at least one character each), its time shared by
    characters."""
    parts: list[str] = []
    current = ""
    for char in text:
        if current and not fits(current + char):
            parts.append(current)
            current = ""
        current += char
    parts.append(current)
    pieces, done = [], 0
    for index, part in enumerate(parts):
        a = start + (end - start) * done / len(text)
        done += len(part)
        b = start + (end - start) * done / len(text)
        pieces.append(Piece(part, a, b, space=index == len(parts) - 1))
    return pieces


def row_text(row: Sequence[Piece]) -> str:
    """A row as shown: its pieces with the spaces between words (none after the last)."""
    return "".join(
        piece.text + (" " if piece.space and index < len(row) - 1 else "") for index, piece in enumerate(row)
    )


def _wrap(pieces: Sequence[Piece], fits: Callable[[str], bool]) -> list[list[Piece]]:
    """Greedy wrap: as many pieces on each row as fit (a piece that fits nowhere alone still gets a row)."""
    rows: list[list[Piece]] = []
    for piece in pieces:
        if rows and rows[-1][-1].space and fits(row_text([*rows[-1], piece])):
            rows[-1].append(piece)
        else:
            rows.append([piece])
    return rows


def _narrower(layout: Layout, size: float, width: float, text: str) -> bool:
    return layout.measure(text, size) <= width


def _balanced(pieces: Sequence[Piece], layout: Layout, size: float) -> list[list[Piece]]:
    """The fewest rows the greedy wrap needs at ``size``, with the narrowest widest row that still needs no more:
    "all the words on one row / and one" becomes two even rows."""
    width = layout.width
    rows = _wrap(pieces, lambda text: layout.measure(text, size) <= width)
    if len(rows) < 2:
        return rows
    low, high = 0.0, width
    for _ in range(12):
        middle = (low + high) / 2
        trial = _wrap(pieces, functools.partial(_narrower, layout, size, middle))
        if len(trial) <= len(rows) and all(layout.measure(row_text(row), size) <= width for row in trial):
            high = middle
        else:
            low = middle
    return _wrap(pieces, lambda text: layout.measure(text, size) <= high)


def fit_line(words: Sequence[tuple[str, float, float]], layout: Layout) -> list[tuple[float, list[list[Piece]]]]:
    """A line's words laid out as (size, rows) screens: one, at the biggest size whose rows fit a slot; else, at the
    smallest size, as many screens as its rows need, a too-wide word broken between characters."""
    pieces = [Piece(text, start, end) for text, start, end in words]
    for size in layout.sizes:
        rows = _balanced(pieces, layout, size)
        widest = max(layout.measure(row_text(row), size) for row in rows)
        if len(rows) <= layout.rows_at(size) and widest <= layout.width:
            return [(size, rows)]
    size = layout.sizes[-1]

    def fits(text: str) -> bool:
        return layout.measure(text, size) <= layout.width

    broken = [part for piece in pieces for part in _break_word(piece.text, piece.start, piece.end, fits)]
    rows = _wrap(broken, fits)
    per_screen = layout.rows_at(size)
    return [(size, rows[at : at + per_screen]) for at in range(0, len(rows), per_screen)]


def plan(lyrics: Lyrics, layout: Layout, *, title: str = "", artist: str = "") -> Plan:
    """The song's screens (see the module's docstring). Raises LyricsNotTimed for a word without times. Lines
    without words are skipped (they have nothing to show or time)."""
    check_timed(lyrics)
    title, artist = title or lyrics.title, artist or lyrics.artist
    screens: list[tuple[Line, float, list[list[Piece]]]] = []
    for line in lyrics.lines:
        if line.words:
            screens.extend((line, size, rows) for size, rows in fit_line(_timed_words(line), layout))

    shown: list[ShownLine] = []
    sung_until = 0.0  # the end of the latest line so far
    phrase: list[int] = []  # indexes in ``shown`` of the current phrase's lines
    for line, size, rows in screens:
        start, end = rows[0][0].start, rows[-1][-1].end
        new_phrase = not shown or start - sung_until >= GAP_FOR_COUNT_IN
        if new_phrase:
            _close_phrase(shown, phrase)
            phrase = []
            before = shown[-1].gone if shown else 0.0
            appear = max(before, start - LEAD, 0.0)
            active = appear
        else:
            k = len(phrase)
            first = shown[phrase[0]]
            appear = first.appear if k < 2 else max(shown[phrase[k - 2]].end, first.appear)
            previous = shown[phrase[k - 1]]
            active = min(start, max(appear, previous.end))
        count_in = new_phrase and start - (shown[-1].end if shown else 0.0) >= GAP_FOR_COUNT_IN
        row_tuple = tuple(tuple(row) for row in rows)
        slot = len(phrase) % 2
        shown.append(ShownLine(len(shown), line, row_tuple, size, slot, appear, active, math.inf, count_in))
        phrase.append(len(shown) - 1)
        sung_until = max(sung_until, end)
    _close_phrase(shown, phrase)

    first_appear = shown[0].appear if shown else math.inf
    card = TitleCard(title, artist, first_appear) if (title or artist) and first_appear >= TITLE_MIN else None
    return Plan(tuple(shown), card)


def _close_phrase(shown: list[ShownLine], phrase: list[int]) -> None:
    """Set when each line of a finished phrase leaves: when the line two after it takes its slot, else (the
    phrase's last two) HOLD after the phrase's last word."""
    if not phrase:
        return
    last = max(shown[index].end for index in phrase) + HOLD
    for k, index in enumerate(phrase):
        gone = shown[phrase[k + 2]].appear if k + 2 < len(phrase) else last
        line = shown[index]
        shown[index] = ShownLine(
            line.number, line.line, line.rows, line.size, line.slot, line.appear, line.active, gone, line.count_in
        )


# Colours (red, green, blue), the same in every renderer: lead lines white filling with gold, backing lines light
# blue filling with pink, the next line dimmer than the current one.
LEAD_UNSUNG, LEAD_SUNG = (255, 255, 255), (255, 200, 40)
BACKING_UNSUNG, BACKING_SUNG = (150, 225, 255), (255, 90, 200)
LEAD_NEXT, BACKING_NEXT = (170, 170, 185), (100, 150, 175)
OUTLINE = (0, 0, 0)
COUNT_IN_COLOUR = LEAD_SUNG
TITLE_COLOUR, ARTIST_COLOUR = (255, 255, 255), (255, 200, 40)
BACKGROUND_TOP, BACKGROUND_BOTTOM = (16, 20, 64), (58, 16, 72)  # a deep blue to purple


# Fonts -------------------------------------------------------------------------------------------------------------

# DejaVu Sans Bold: big, plain, with the Latin, Greek, Cyrillic, Hebrew and Arabic letters lyrics use. Debian's
# fonts-dejavu-core has it; matplotlib (a StemDesk dependency) carries a copy, so it is there on every install.
FONT_FILE = "DejaVuSans-Bold.ttf"
FONT_FAMILY = "DejaVu Sans"
_SYSTEM_FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
    Path("/usr/local/share/fonts"),
    Path("/Library/Fonts"),
    Path.home() / ".fonts",
)


@functools.lru_cache(maxsize=1)
def font_path() -> Path | None:
    """The DejaVu Sans Bold file: the system's, else fontconfig's match, else matplotlib's copy; None when none is
    found (text is then measured by estimate, and CD+G uses Pillow's built-in font)."""
    for folder in _SYSTEM_FONT_DIRS:
        if (folder / FONT_FILE).is_file():
            return folder / FONT_FILE
    if shutil.which("fc-match"):
        try:
            found = subprocess.run(
                ["fc-match", "-f", "%{file}", f"{FONT_FAMILY}:bold"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            found = ""
        if found.endswith(FONT_FILE) and Path(found).is_file():
            return Path(found)
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / FONT_FILE
        if bundled.is_file():
            return bundled
    return None


def pillow():
    """Pillow's Image, ImageDraw and ImageFont modules, which draw CD+G's text and measure every screen's; a
    StemDeskError saying how to install it where it is missing (matplotlib, a StemDesk dependency, brings it)."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        raise StemDeskError(
            "Drawing karaoke text needs Pillow, which is not installed. Install it (pip install Pillow) and try again."
        ) from None
    return Image, ImageDraw, ImageFont


@functools.lru_cache(maxsize=64)
def pillow_font(size: int):
    """DejaVu Sans Bold at ``size`` pixels per em as a Pillow font; Pillow's own scalable default where the file is
    missing. Raises StemDeskError when Pillow is not installed."""
    _, _, ImageFont = pillow()
    path = font_path()
    if path is not None:
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size)


def text_width(text: str, size: float) -> float:
    """Width in pixels of ``text`` in DejaVu Sans Bold at ``size`` pixels per em (an estimate without Pillow)."""
    try:
        font = pillow_font(max(1, round(size)))
    except StemDeskError:
        return 0.7 * size * len(text)
    return float(font.getlength(text)) * size / max(1, round(size))
