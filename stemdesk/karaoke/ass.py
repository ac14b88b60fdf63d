"""Karaoke as an ASS subtitle file (Advanced SubStation Alpha, as libass, mpv, VLC and Aegisub read it): the screens
of `stemdesk.karaoke.screen` with each word filling with colour as it is sung (``{\\kf}``), in the video's pixels.

Each row of a line is its own event, placed with ``\\pos``: the layout (wrapping, shrinking) is StemDesk's, measured
with the same font libass draws (DejaVu Sans Bold), so a player never wraps or cuts a line on its own. A line waiting
as the next line is one event in the dimmer "Next" style; from when it is the current line it is another, whose
``{\\k}`` durations in centiseconds add up, from the event's start, to the end of the row's last word exactly: a
silent lead-in, each word's ``{\\kf}``, and the gaps between words (with the space) as instant ``{\\k}``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..io.atomic import atomic_write_bytes
from . import screen
from .model import Lyrics
from .screen import Layout, Piece, Plan, ShownLine

DOTS = "\u25cf"  # ●, the count-in's dot


def _ass_colour(rgb: tuple[int, int, int], alpha: int = 0) -> str:
    """ASS writes colours as &HAABBGGRR (alpha 0 is opaque)."""
    red, green, blue = rgb
    return f"&H{alpha:02X}{blue:02X}{green:02X}{red:02X}"


def _cs(seconds: float) -> int:
    """Seconds to ASS's centiseconds, rounded to nearest (all event and karaoke times go through this)."""
    return max(0, round(seconds * 100))


def _time(centiseconds: int) -> str:
    hours, rest = divmod(centiseconds, 360000)
    minutes, rest = divmod(rest, 6000)
    seconds, cs = divmod(rest, 100)
    return f"{hours}:{minutes:02d}:{seconds:02d}.{cs:02d}"


def escape(text: str) -> str:
    """Text shown as written: ASS reads ``{`` as the start of an override and ``\\N``, ``\\n``, ``\\h`` as breaks, so
    braces become their full-width forms and a backslash is followed by a word joiner (invisible)."""
    return text.replace("\\", "\\\u2060").replace("{", "\uff5b").replace("}", "\uff5d")


@dataclass(frozen=True)
class Geometry:
    """Where things go on a ``width`` × ``height`` screen, in ASS script pixels (PlayRes = the video's pixels)."""

    width: int
    height: int

    @property
    def size(self) -> int:
        """The lyrics' font size (ASS sizes are a line's height, ascender to descender): 7.5 % of the height,
        81 px at 1080p and 54 at 720p: readable from across a room."""
        return round(self.height * 0.075)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(round(self.size * scale) for scale in (1.0, 0.85, 0.72, 0.6))

    def outline(self, size: float) -> float:
        return max(2.0, round(size * 0.06, 1))

    def row_height(self, size: float) -> float:
        return size * 1.12

    @property
    def slot_height(self) -> float:
        return 2 * self.row_height(self.size)

    @property
    def centre(self) -> float:
        return self.width / 2

    @property
    def slot0_bottom(self) -> float:
        """The upper slot's rows end here (rows grow upwards from it), the lower slot's begin a little lower: one-row
        lines sit together just above the middle of the screen."""
        return self.height * 0.5 - self.row_height(self.size) * 0.1

    @property
    def slot1_top(self) -> float:
        return self.slot0_bottom + self.row_height(self.size) * 0.35

    def row_top(self, shown: ShownLine, row: int) -> float:
        pitch = self.row_height(shown.size)
        if shown.slot == 0:
            return self.slot0_bottom - (len(shown.rows) - row) * pitch
        return self.slot1_top + row * pitch

    def layout(self) -> Layout:
        em = _em_per_size()
        width = self.width * 0.84  # 8 % margins left and right: inside any TV's safe area

        def measure(text: str, size: float) -> float:
            return screen.text_width(text, size * em) * 1.03 + 2 * self.outline(size)

        return Layout(width, self.slot_height, self.sizes, measure, self.row_height)


def _em_per_size() -> float:
    """libass scales a font so that its ascender plus descender is the ASS size: the em is this fraction of it
    (0.86 for DejaVu Sans)."""
    try:
        font = screen.pillow_font(100)
    except screen.StemDeskError:
        return 0.86
    ascent, descent = font.getmetrics()
    return 100 / max(1, ascent + descent)


def plan_for(lyrics: Lyrics, width: int, height: int, title: str = "", artist: str = "") -> tuple[Plan, Geometry]:
    """The screens laid out for a ``width`` × ``height`` picture (as `write_ass` lays them out)."""
    geometry = Geometry(width, height)
    return screen.plan(lyrics, geometry.layout(), title=title, artist=artist), geometry


def _karaoke_row(row: tuple[Piece, ...], origin: int) -> str:
    """The row's text with karaoke tags, from an event that starts at ``origin`` centiseconds: the lead-in, then per
    piece its ``\\kf`` and the gap to the next as an instant ``\\k`` carrying the space. Every boundary is rounded to
    centiseconds once, so the durations add up exactly to the row's last end."""
    at = origin
    parts = []
    for index, piece in enumerate(row):
        start = max(at, _cs(piece.start))
        end = max(start, _cs(piece.end))
        if start > at or index == 0:
            parts.append(f"{{\\k{start - at}}}")
        parts.append(f"{{\\kf{end - start}}}{escape(piece.text)}")
        at = end
        if index < len(row) - 1:
            following = max(at, _cs(row[index + 1].start))
            space = " " if piece.space else ""
            if following > at or space:
                parts.append(f"{{\\k{following - at}}}{space}")
            at = following
    return "".join(parts)


def _events(plan: Plan, geometry: Geometry) -> Iterator[tuple[int, str]]:
    """(start in centiseconds, Dialogue line) for every event of the song."""
    size = geometry.size
    if plan.title is not None:
        end = _cs(plan.title.end)
        fade = r"{\fad(300,300)}"
        top = geometry.height * 0.42
        if plan.title.title:
            where = rf"{{\an2\pos({geometry.centre:.0f},{top:.0f})}}"
            yield 0, f"Dialogue: 0,{_time(0)},{_time(end)},Title,,0,0,0,,{where}{fade}{escape(plan.title.title)}"
        if plan.title.artist:
            where = rf"{{\an8\pos({geometry.centre:.0f},{top + size * 0.3:.0f})}}"
            yield 0, f"Dialogue: 0,{_time(0)},{_time(end)},Artist,,0,0,0,,{where}{fade}{escape(plan.title.artist)}"
    for shown in plan.lines:
        part = "Backing" if shown.backing else "Lead"
        appear, active, gone = _cs(shown.appear), _cs(shown.active), _cs(shown.gone)
        resize = rf"\fs{shown.size:g}\bord{geometry.outline(shown.size):g}" if shown.size != size else ""
        for number, row in enumerate(shown.rows):
            where = rf"{{\an8\pos({geometry.centre:.0f},{geometry.row_top(shown, number):.0f}){resize}}}"
            if active > appear:
                text = escape(screen.row_text(row))
                yield appear, f"Dialogue: 0,{_time(appear)},{_time(active)},Next{part},,0,0,0,,{where}{text}"
            if gone > active:
                text = _karaoke_row(row, active)
                yield active, f"Dialogue: 1,{_time(active)},{_time(gone)},{part},,0,0,0,,{where}{text}"
        if shown.count_in:
            y = geometry.row_top(shown, 0) - geometry.row_height(size) * 0.8
            where = rf"{{\an8\pos({geometry.centre:.0f},{y:.0f})}}"
            start = _cs(shown.start)
            for dots in range(screen.COUNT_IN, 0, -1):
                begin, end = max(0, start - dots * 100), start - (dots - 1) * 100
                if end > begin:
                    text = " ".join(DOTS * dots)
                    yield begin, f"Dialogue: 2,{_time(begin)},{_time(end)},CountIn,,0,0,0,,{where}{text}"


def _styles(geometry: Geometry) -> list[str]:
    size, outline = geometry.size, geometry.outline(geometry.size)
    shadow = max(1.0, round(outline / 2, 1))
    black, shade = _ass_colour(screen.OUTLINE), _ass_colour(screen.OUTLINE, 0x70)
    font = screen.FONT_FAMILY

    def style(name: str, fontsize: float, sung, unsung) -> str:
        # the fill goes from SecondaryColour (not yet sung) to PrimaryColour (sung); without karaoke tags an
        # event shows PrimaryColour, so the Next styles and the title have their colour there
        return (
            f"Style: {name},{font},{fontsize:g},{_ass_colour(sung)},{_ass_colour(unsung)},{black},{shade},"
            f"-1,0,0,0,100,100,0,0,1,{outline:g},{shadow:g},8,0,0,0,1"
        )

    return [
        style("Lead", size, screen.LEAD_SUNG, screen.LEAD_UNSUNG),
        style("Backing", size, screen.BACKING_SUNG, screen.BACKING_UNSUNG),
        style("NextLead", size, screen.LEAD_NEXT, screen.LEAD_NEXT),
        style("NextBacking", size, screen.BACKING_NEXT, screen.BACKING_NEXT),
        style("CountIn", round(size * 0.7), screen.COUNT_IN_COLOUR, screen.COUNT_IN_COLOUR),
        style("Title", round(size * 1.3), screen.TITLE_COLOUR, screen.TITLE_COLOUR),
        style("Artist", round(size * 0.9), screen.ARTIST_COLOUR, screen.ARTIST_COLOUR),
    ]


def ass_text(lyrics: Lyrics, *, width: int = 1920, height: int = 1080, title: str = "", artist: str = "") -> str:
    """The ASS file's text (see `write_ass`)."""
    plan, geometry = plan_for(lyrics, width, height, title, artist)
    shown_title = plan.title.title if plan.title else (title or lyrics.title)
    header = [
        "[Script Info]",
        f"Title: {escape(shown_title)}" if shown_title else "Title: Karaoke",
        "ScriptType: v4.00+",
        f"PlayResX: {width}",
        f"PlayResY: {height}",
        "WrapStyle: 2",  # never wrap: every row was laid out to fit
        "ScaledBorderAndShadow: yes",
        "YCbCr Matrix: None",
        "",
        "[V4+ Styles]",
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, "
        "Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, "
        "MarginR, MarginV, Encoding",
        *_styles(geometry),
        "",
        "[Events]",
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
    ]
    events = sorted(_events(plan, geometry), key=lambda event: event[0])
    return "\n".join([*header, *(line for _, line in events)]) + "\n"


def write_ass(
    lyrics: Lyrics,
    path: str | os.PathLike,
    *,
    width: int = 1920,
    height: int = 1080,
    title: str = "",
    artist: str = "",
) -> Path:
    """Write the karaoke as an ASS file for a ``width`` × ``height`` picture, UTF-8, atomically. ``title`` and
    ``artist`` (else the lyrics' own) make the title card. Raises LyricsNotTimed when a word has no time."""
    return atomic_write_bytes(
        Path(path), ass_text(lyrics, width=width, height=height, title=title, artist=artist).encode("utf-8")
    )
