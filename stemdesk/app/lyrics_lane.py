"""The lyrics' lane, under the stems: each timed word a box at its time, each line a handle over its words.

Drag a word's left or right edge to move its start or its end, its middle to move the word; Ctrl+drag a word, or
drag its line's handle (the bar over the words), to move the whole line. A line the aligner was unsure of is drawn
in amber; the backing part's lines in their own colour. What the lane changes it hands on as an edit (``edited``:
the words, before and after) when the button is let go; until then it only shows the move.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QAction, QColor, QFont, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QMenu

from ..karaoke.model import Lyrics
from .lane_kind import HEADER, LaneKind, TimeAxis
from .lyrics_edits import drag_word, move_line
from .theme import DIM_TEXT, HEADER_BG, LANE_BG, TEXT

UNSURE = 0.5  # a line whose aligner's confidence is below this is drawn as unsure (as `stemdesk karaoke` lists it)
LYRICS_COLOUR = "#c9a0ff"  # the lane's colour bar
LEAD_BOX, BACKING_BOX, UNSURE_BOX = "#4b5a78", "#7a4b70", "#a8741f"
HANDLE_COLOUR = "#8c96a8"
EDGE = 5  # px: a press this close to a word's edge moves that edge
HANDLE = (4, 8)  # px: the line handle's distance from the lane's top, and its thickness
Edited = Callable[[str, Lyrics, Lyrics], None]  # (what was done, the lyrics before, after)


@dataclass
class _Drag:
    part: str  # "start", "end", "move" (a word) or "line"
    line: int
    word: int
    pressed: float  # seconds under the mouse at the press
    before: Lyrics


class LyricsLane(LaneKind):
    """``lyrics``: what the lane shows (replaced, never changed, by each edit); ``edited(text, before, after)``
    takes an edit when the mouse lets go; ``actions`` go in the header's menu."""

    fixed_height = 72

    def __init__(self, lyrics: Lyrics, edited: Edited, actions: Sequence[QAction] = ()):
        self.name = "lyrics"
        self.lyrics, self.edited, self.actions = lyrics, edited, list(actions)
        self._drag: _Drag | None = None
        self.tap_next: int | None = None  # the word tap to sync sets next, shown with a marker (None: none)

    # --- geometry ----------------------------------------------------------------------------------------------
    @staticmethod
    def word_band(top: float, height: float) -> tuple[float, float]:
        """The words' boxes' top and height in a lane at ``top``."""
        return top + HANDLE[0] + HANDLE[1] + 4, height - HANDLE[0] - HANDLE[1] - 10

    def word_rect(self, axis: TimeAxis, line: int, word: int, top: float, height: float) -> QRectF | None:
        """Where word ``word`` of line ``line`` is drawn (None: it has no time yet)."""
        w = self.lyrics.lines[line].words[word]
        if w.start is None or w.end is None:
            return None
        y, h = self.word_band(top, height)
        x0, x1 = axis.x_of(w.start), axis.x_of(w.end)
        return QRectF(x0, y, max(3.0, x1 - x0), h)

    def handle_rect(self, axis: TimeAxis, line: int, top: float) -> QRectF | None:
        """The bar over a timed line's words that moves the line whole."""
        start, end = self.lyrics.lines[line].start, self.lyrics.lines[line].end
        if start is None or end is None:
            return None
        x0, x1 = axis.x_of(start), axis.x_of(end)
        return QRectF(x0, top + HANDLE[0], max(3.0, x1 - x0), HANDLE[1])

    def hit(self, axis: TimeAxis, x: float, y: float, top: float, height: float) -> tuple[str, int, int] | None:
        """What is under (x, y): ("line", line, 0) on a line's handle, ("start" | "end" | "move", line, word) on a
        word's box by its left edge, right edge or middle."""
        point = QPointF(x, y)
        for n, line in enumerate(self.lyrics.lines):
            handle = self.handle_rect(axis, n, top)
            if handle is not None and handle.adjusted(0, -2, 0, 2).contains(point):
                return "line", n, 0
            for k in range(len(line.words)):
                rect = self.word_rect(axis, n, k, top, height)
                if rect is None or not rect.adjusted(-2, 0, 2, 0).contains(point):
                    continue
                edge = min(EDGE, rect.width() / 3)
                part = "start" if x <= rect.left() + edge else "end" if x >= rect.right() - edge else "move"
                return part, n, k
        return None

    # --- drawing -----------------------------------------------------------------------------------------------
    def paint(self, painter: QPainter, axis: TimeAxis, top: int, height: int) -> None:
        lyrics = self.lyrics
        painter.fillRect(QRectF(0, top, axis.width(), height - 2), QColor(LANE_BG))
        painter.fillRect(QRectF(0, top, HEADER - 4, height - 2), QColor(HEADER_BG))
        painter.fillRect(QRectF(0, top, 5, height - 2), QColor(LYRICS_COLOUR))
        painter.setPen(QColor(TEXT))
        painter.drawText(QRectF(12, top + 6, HEADER - 20, 20), Qt.AlignmentFlag.AlignLeft, "lyrics")
        timed = sum(1 for word in lyrics.words if word.timed)
        unsure = sum(1 for line in lyrics.lines if line.confidence is not None and line.confidence < UNSURE)
        painter.setPen(QColor(DIM_TEXT))
        painter.drawText(
            QRectF(12, top + 26, HEADER - 20, 16), Qt.AlignmentFlag.AlignLeft, f"{len(lyrics.lines)} lines"
        )
        if timed < len(lyrics.words):
            state = f"{timed}/{len(lyrics.words)} timed"
        else:
            state = f"{unsure} unsure" if unsure else "all timed"
        painter.drawText(QRectF(12, top + 42, HEADER - 20, 16), Qt.AlignmentFlag.AlignLeft, state)
        painter.save()
        painter.setClipRect(QRectF(HEADER, top, axis.width() - HEADER, height - 2))
        if not timed:
            painter.setPen(QColor(DIM_TEXT))
            painter.drawText(
                QRectF(HEADER + 10, top, axis.width() - HEADER - 20, height - 2),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                "Not timed yet: Karaoke → Align lyrics, or play the song and tap T at each word (Shift+T: each line).",
            )
        font = QFont(painter.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.9))
        painter.setFont(font)
        first, last = axis.seconds_at(HEADER), axis.seconds_at(axis.width())
        for n, line in enumerate(lyrics.lines):
            if line.start is not None and line.end is not None and (line.end < first or line.start > last):
                continue  # out of view (a line timed in part is drawn as far as it is)
            self._paint_line(painter, axis, n, top, height)
        self._paint_tap_marker(painter, axis, top, height)
        painter.restore()

    def _paint_line(self, painter: QPainter, axis: TimeAxis, n: int, top: float, height: float) -> None:
        line = self.lyrics.lines[n]
        unsure = line.confidence is not None and line.confidence < UNSURE
        box = QColor(UNSURE_BOX if unsure else BACKING_BOX if line.part == "backing" else LEAD_BOX)
        handle = self.handle_rect(axis, n, top)
        if handle is not None:
            painter.fillRect(handle, QColor(UNSURE_BOX if unsure else HANDLE_COLOUR))
        for k, word in enumerate(line.words):
            rect = self.word_rect(axis, n, k, top, height)
            if rect is None or rect.right() < HEADER or rect.left() > axis.width():
                continue
            painter.setPen(QPen(box.lighter(150), 1))
            painter.setBrush(box)
            painter.drawRoundedRect(rect.adjusted(0.5, 0.5, -0.5, -0.5), 3, 3)
            if rect.width() > 12:
                painter.setPen(QColor(TEXT))
                painter.drawText(rect.adjusted(3, 0, -2, 0), Qt.AlignmentFlag.AlignVCenter, word.text)

    def _paint_tap_marker(self, painter: QPainter, axis: TimeAxis, top: float, height: float) -> None:
        """A small triangle at the word tap to sync sets next, where it has a time."""
        if self.tap_next is None or self.tap_next >= len(self.lyrics.words):
            return
        word = self.lyrics.words[self.tap_next]
        if word.start is None:
            return
        x, y = axis.x_of(word.start), top + height - 6
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("#ffffff"))
        painter.drawPolygon([QPointF(x - 4, y), QPointF(x + 4, y), QPointF(x, y - 6)])

    # --- editing -----------------------------------------------------------------------------------------------
    def press(self, event: QMouseEvent, axis: TimeAxis, top: int, height: int) -> bool:
        if event.button() != Qt.MouseButton.LeftButton:
            return False
        x, y = event.position().x(), event.position().y()
        hit = self.hit(axis, x, y, top, height)
        if hit is None:
            return False
        part, line, word = hit
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            part = "line"  # Ctrl+drag a word: its whole line
        self._drag = _Drag(part, line, word, _seconds_at(axis, x), self.lyrics)
        return True

    @staticmethod
    def _dragged(drag: _Drag, axis: TimeAxis, x: float) -> Lyrics:
        delta = _seconds_at(axis, x) - drag.pressed
        length = axis.frames / axis.rate if axis.frames else float("inf")
        if drag.part == "line":
            return move_line(drag.before, drag.line, delta, length)
        return drag_word(drag.before, drag.line, drag.word, drag.part, delta, length)

    def move(self, event: QMouseEvent, axis: TimeAxis) -> None:
        if self._drag is not None:
            self.lyrics = self._dragged(self._drag, axis, event.position().x())
            axis.update()

    def release(self, event: QMouseEvent, axis: TimeAxis) -> None:
        drag, self._drag = self._drag, None
        if drag is None:
            return
        after = self._dragged(drag, axis, event.position().x())
        self.lyrics = drag.before  # the edit, once taken, shows the lyrics after it
        if after != drag.before:
            line = drag.before.lines[drag.line]
            what = {
                "line": f'Move the line "{_short(line.text)}"',
                "move": f'Move "{line.words[drag.word].text}"',
                "start": f'Move the start of "{line.words[drag.word].text}"',
                "end": f'Move the end of "{line.words[drag.word].text}"',
            }[drag.part]
            self.edited(what, drag.before, after)
        axis.update()

    # --- the header's menu and tooltip ---------------------------------------------------------------------------
    def fill_menu(self, menu: QMenu, axis: TimeAxis) -> None:
        for action in self.actions:
            menu.addAction(action)

    def tip(self, x: float, y: float, axis: TimeAxis, top: int, height: int) -> str | None:
        if x < HEADER:
            return "The song's words. Right-click for lyrics, alignment and tap to sync."
        hit = self.hit(axis, x, y, top, height)
        if hit is None:
            return None
        part, n, k = hit
        line = self.lyrics.lines[n]
        sure = "" if line.confidence is None else f" (aligned with confidence {line.confidence:.2f})"
        if part == "line":
            return f'"{_short(line.text)}"{sure}: drag to move the line'
        word = line.words[k]
        assert word.start is not None and word.end is not None
        return (
            f'"{word.text}" {word.start:.2f}–{word.end:.2f} s{sure}: drag an edge to move its start or end, the '
            "middle to move the word, Ctrl+drag to move the line"
        )


def _seconds_at(axis: TimeAxis, x: float) -> float:
    """Seconds at ``x``, not clipped to the song (a drag past its end is clamped by the edit)."""
    return (axis.offset + (x - HEADER) * axis.spp) / axis.rate


def _short(text: str, most: int = 40) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"
