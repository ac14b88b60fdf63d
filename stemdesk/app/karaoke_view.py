"""The karaoke screen in the app: the current line filling word by word with colour as it is sung, the next line
under or over it, three dots counting in a line after a long gap, the backing part's lines in their own colours,
the title card before the first line. What is on screen when is `stemdesk.karaoke.screen`'s plan, the one the ASS
file, the video and CD+G draw too; this widget only draws it at the time it is given.

`KaraokeWindow` holds the screen with its controls (the key, full screen) and follows the player's position.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QKeySequence, QLinearGradient, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..karaoke import screen
from ..karaoke.model import Lyrics
from ..mixer.mix import SEMITONES_RANGE
from .mixer_panel import KeyBox

TICK_MS = 33  # the words fill at 30 Hz


def _colour(rgb: tuple[int, int, int]) -> QColor:
    return QColor(*rgb)


class KaraokeView(QWidget):
    """Draws the karaoke screen of ``lyrics`` at ``seconds`` (`show`); says why there is none when the lyrics are
    missing or not timed."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.lyrics: Lyrics | None = None
        self.seconds = 0.0
        self.problem = "No lyrics: paste or open them (Karaoke → Paste lyrics…)."
        self._plan: screen.Plan | None = None
        self._planned_for: tuple | None = None  # (lyrics, width, height) the plan was made for
        self.setMinimumSize(480, 270)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def show_lyrics(self, lyrics: Lyrics | None) -> None:
        self.lyrics = lyrics
        self._planned_for = None
        self.update()

    def show_time(self, seconds: float) -> None:
        if seconds != self.seconds:
            self.seconds = seconds
            self.update()

    # --- geometry ------------------------------------------------------------------------------------------------
    def font_at(self, size: float) -> QFont:
        font = QFont(screen.FONT_FAMILY)
        font.setBold(True)
        font.setPixelSize(max(6, round(size)))
        return font

    def screen_layout(self) -> screen.Layout:
        height = self.height()
        sizes = [height / d for d in (9, 11, 13, 16, 20)]
        return screen.Layout(
            width=self.width() * 0.9,
            slot_height=height * 0.3,
            sizes=sizes,
            measure=lambda text, size: QFontMetricsF(self.font_at(size)).horizontalAdvance(text),
            row_height=lambda size: size * 1.3,
        )

    def plan(self) -> screen.Plan | None:
        """The song's screens at this size (made again when the lyrics or the size change); None with
        ``problem`` set when there are none."""
        key = (id(self.lyrics), self.lyrics, self.width(), self.height())
        if self._planned_for == key:
            return self._plan
        self._planned_for, self._plan = key, None
        if self.lyrics is None:
            self.problem = "No lyrics: paste or open them (Karaoke → Paste lyrics…)."
            return None
        try:
            self._plan = screen.plan(self.lyrics, self.screen_layout())
        except screen.LyricsNotTimed:
            self.problem = (
                "The lyrics are not timed yet: Karaoke → Align lyrics, or play the song and tap T at each word."
            )
        return self._plan

    def slot_top(self, slot: int) -> float:
        return self.height() * (0.22 + 0.36 * slot)

    def row_geometry(self, shown: screen.ShownLine, row: int) -> tuple[float, float, QFont]:
        """Where a row of a shown line starts across and where its text's baseline is, and its font."""
        font = self.font_at(shown.size)
        metrics = QFontMetricsF(font)
        text = screen.row_text(shown.rows[row])
        x = (self.width() - metrics.horizontalAdvance(text)) / 2
        baseline = self.slot_top(shown.slot) + shown.size * 1.3 * row + metrics.ascent()
        return x, baseline, font

    def sung_x(self, shown: screen.ShownLine, row: int, t: float) -> float:
        """How far across a row the colour has filled at ``t`` (its start: nothing yet)."""
        x, _, font = self.row_geometry(shown, row)
        metrics = QFontMetricsF(font)
        pieces = shown.rows[row]
        for index, piece in enumerate(pieces):
            before = metrics.horizontalAdvance(screen.row_text(pieces[:index]) + (" " if index else ""))
            width = metrics.horizontalAdvance(piece.text)
            progress = piece.progress(t)
            if progress < 1.0:
                return x + before + progress * width
        return x + metrics.horizontalAdvance(screen.row_text(pieces))

    # --- drawing -------------------------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        gradient = QLinearGradient(0, 0, 0, self.height())
        gradient.setColorAt(0, _colour(screen.BACKGROUND_TOP))
        gradient.setColorAt(1, _colour(screen.BACKGROUND_BOTTOM))
        painter.fillRect(self.rect(), gradient)
        plan = self.plan()
        if plan is None:
            painter.setPen(QColor("#d0d4dc"))
            font = QFont(self.font())
            font.setPixelSize(max(12, self.height() // 30))
            painter.setFont(font)
            painter.drawText(
                self.rect().adjusted(40, 0, -40, 0),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                self.problem,
            )
            painter.end()
            return
        now = plan.at(self.seconds)
        if now.title is not None:
            self._paint_title(painter, now.title)
        for shown in now.slots:
            if shown is not None:
                self._paint_line(painter, shown, shown is now.current)
        if now.count_in:
            self._paint_count_in(painter, now)
        painter.end()

    def _paint_title(self, painter: QPainter, card: screen.TitleCard) -> None:
        for text, rgb, y, size in (
            (card.title, screen.TITLE_COLOUR, 0.40, self.height() / 10),
            (card.artist, screen.ARTIST_COLOUR, 0.55, self.height() / 16),
        ):
            if text:
                font = self.font_at(size)
                x = (self.width() - QFontMetricsF(font).horizontalAdvance(text)) / 2
                self._text(painter, text, font, x, self.height() * y, _colour(rgb))

    def _paint_line(self, painter: QPainter, shown: screen.ShownLine, current: bool) -> None:
        if shown.backing:
            unsung, sung = screen.BACKING_UNSUNG, screen.BACKING_SUNG
            waiting = screen.BACKING_NEXT
        else:
            unsung, sung, waiting = screen.LEAD_UNSUNG, screen.LEAD_SUNG, screen.LEAD_NEXT
        for row in range(len(shown.rows)):
            x, baseline, font = self.row_geometry(shown, row)
            text = screen.row_text(shown.rows[row])
            if not current:
                self._text(painter, text, font, x, baseline, _colour(waiting))
                continue
            self._text(painter, text, font, x, baseline, _colour(unsung))
            edge = self.sung_x(shown, row, self.seconds)
            if edge > x:
                painter.save()
                painter.setClipRect(QRectF(0, baseline - shown.size * 1.3, edge, shown.size * 2))
                self._text(painter, text, font, x, baseline, _colour(sung))
                painter.restore()

    def _paint_count_in(self, painter: QPainter, now: screen.Screen) -> None:
        """The dots left before a line after a long gap, over the line they count in."""
        counted = next((s for s in now.slots if s is not None and s.count_in), None)
        slot = counted.slot if counted is not None else 0
        radius = self.height() / 60
        y = self.slot_top(slot) - radius * 3
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(_colour(screen.COUNT_IN_COLOUR))
        for dot in range(now.count_in):
            painter.drawEllipse(
                QPointF(self.width() / 2 + (dot - (now.count_in - 1) / 2) * radius * 4, y), radius, radius
            )

    @staticmethod
    def _text(painter: QPainter, text: str, font: QFont, x: float, baseline: float, colour: QColor) -> None:
        """Text with a dark outline, readable over any background."""
        path = QPainterPath()
        path.addText(QPointF(x, baseline), font, text)
        painter.strokePath(path, QPen(_colour(screen.OUTLINE), max(2.0, font.pixelSize() / 12)))
        painter.fillPath(path, colour)


class KaraokeWindow(QWidget):
    """The karaoke screen in a window of its own, with the key (the mixer's: every change is an undoable mix edit)
    and full screen (F11; Escape leaves it). ``position()`` is the player's position in seconds."""

    key_changed = Signal(int)  # semitones

    def __init__(self, position: Callable[[], float], parent=None):
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Karaoke — StemDesk")
        self.position = position
        self.view = KaraokeView(self)
        self.key = KeyBox()
        self.key.setRange(int(SEMITONES_RANGE[0]), int(SEMITONES_RANGE[1]))
        self.key.setSuffix(" st")
        self.key.setToolTip("Key: semitones up or down (the mixer's key; the tempo stays)")
        self.key.valueChanged.connect(self.key_changed.emit)
        self.full = QPushButton("Full screen")
        self.full.setToolTip("Full screen (F11); Escape leaves it")
        self.full.clicked.connect(self.toggle_full_screen)
        self.controls = QWidget()
        row = QHBoxLayout(self.controls)
        row.setContentsMargins(8, 4, 8, 4)
        row.addWidget(QLabel("Key"))
        row.addWidget(self.key)
        row.addStretch(1)
        row.addWidget(self.full)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.view, 1)
        column.addWidget(self.controls)
        self.timer = QTimer(self)
        self.timer.timeout.connect(lambda: self.view.show_time(self.position()))
        self.resize(960, 600)

    def show_key(self, semitones: int) -> None:
        self.key.blockSignals(True)
        self.key.setValue(semitones)
        self.key.blockSignals(False)

    def toggle_full_screen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        else:
            self.showFullScreen()
        self.controls.setVisible(not self.isFullScreen())

    def keyPressEvent(self, event) -> None:
        if event.matches(QKeySequence.StandardKey.FullScreen) or event.key() == Qt.Key.Key_F11:
            self.toggle_full_screen()
        elif event.key() == Qt.Key.Key_Escape and self.isFullScreen():
            self.toggle_full_screen()
        else:
            super().keyPressEvent(event)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.timer.start(TICK_MS)

    def hideEvent(self, event) -> None:
        super().hideEvent(event)
        self.timer.stop()
