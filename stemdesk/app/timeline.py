"""The track timeline: a ruler over its lanes: the original mix on top, one lane per stem (`audio_lane`) and,
when the song has lyrics, the lyrics' lane under them (`lyrics_lane`). Each kind of lane draws itself and takes its
own clicks (`lane_kind.LaneKind`); the timeline lays them out and routes the clicks.

Zoom with Ctrl+wheel (around the mouse), scroll with the wheel or the scroll bar, click to seek, drag to select,
Shift+drag to set the loop region. Drag a stem lane's header out of the window for its file, or drag from inside the
selection for that region of the lane's stem (`drag_out`). A lane can show its spectrogram instead of its waveform
(right-click its name).
Each stem's header has its mute and solo buttons and its gain (wheel or drag it, double-click for 0 dB); a stem that
is not heard is drawn dimmed. The song stays fitted to the width when the window is resized, until the user zooms.

The null check's loudest residual windows are red spans on the ruler with numbered flags under them, over a faint
band across the lanes: a click on one plays from the window's start, Shift+click loops it. Each stem's header says its share of the music, or that its file
changed since the certificate (and, when the residual is that edit, how loud it is).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QApplication, QMenu, QScrollBar, QToolTip, QVBoxLayout, QWidget

from ..io.audio import AudioReader
from ..mixer.mix import FADER_RANGE, Mix, parent_of
from .audio_lane import SPECTRUM_LOW, Lane, StemMark
from .lane_kind import HEADER, RULER, LaneKind
from .theme import BACKGROUND, NULL_RED, TEXT

__all__ = ["HEADER", "NULL_RED", "RULER", "Canvas", "Lane", "StemMark", "Timeline", "clock", "spectrogram_image"]

FLAG = (16, 14)  # a residual window's numbered flag on the ruler, px
MIN_LANE, MAX_LANE = 56, 160  # px: the height lanes share, at least and at most


def clock(seconds: float) -> str:
    """m:ss.s, as the ruler, the status bar and the null dock write times."""
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


class Canvas(QWidget):
    seek = Signal(float)  # seconds
    loop_changed = Signal(object)  # (start, end) seconds or None
    selection_changed = Signal(object)
    spectrogram_requested = Signal(str)  # lane name
    view_changed = Signal()
    control_edited = Signal(str, float)  # a mix control from a lane header ("vocals/mute", 1.0)
    control_touched = Signal(str)  # a header's gain was grabbed (for MIDI learn and automation, like a fader)
    null_region_clicked = Signal(int, bool)  # a residual window's index, and whether to loop it (Shift)
    folded = Signal(str, bool)  # a split stem's lane folded its children away (True) or unfolded them
    lane_menu = Signal(object, str)  # an audio lane header's menu is being shown: others may add to it (QMenu, lane)
    drag_out = Signal(str, str)  # a stem dragged out of the timeline: (lane name, "stem" or "region")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.lanes: list[Lane] = []  # the mix's and the stems' lanes, in order
        self.below: list[LaneKind] = []  # lanes of other kinds under the stems' (the lyrics')
        self.folds: set[str] = set()  # the split stems whose children's lanes are folded away
        self.rate = 44100
        self.frames = 0
        self.spp = 1024.0  # samples per pixel
        self.offset = 0  # first visible sample
        self.playhead = 0.0  # seconds
        self.loop: tuple[float, float] | None = None
        self.display_gain = 1.0  # waveforms are scaled so the mix's peak fills a lane (all lanes alike)
        # the null check's loudest residual windows ({start_seconds, end_seconds, peak_dbfs} in song time), loudest
        # first: numbered flags on the ruler
        self.null_regions: list[dict] = []
        self.stem_marks: dict[str, StemMark] = {}  # per stem lane: what its header says about the null
        self.selection: tuple[float, float] | None = None
        self.mix: Mix | None = None  # the mix the headers show (None: no stems, no controls)
        self.fitted = True  # the whole song fills the width; kept so on resize until the user zooms
        self._drag: tuple[str, float] | None = None
        self._gain_drag: tuple[str, float, float] | None = None  # (stem, y at press, gain at press)
        # a press that becomes a drag out of the window once the mouse moves far enough: (lane, "stem" or "region",
        # where it was pressed)
        self._out: tuple[str, str, QPointF] | None = None
        self._taken: LaneKind | None = None  # the lane that took the press, until the button is let go
        self.setMinimumHeight(RULER + 56 * 2)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    # --- geometry ---------------------------------------------------------------------------------------------
    def width_px(self) -> int:
        return max(1, self.width() - HEADER)

    def sample_at(self, x: float) -> float:
        return self.offset + (x - HEADER) * self.spp

    def x_of(self, seconds: float) -> float:
        return HEADER + (seconds * self.rate - self.offset) / self.spp

    def seconds_at(self, x: float) -> float:
        return float(np.clip(self.sample_at(x) / self.rate, 0, self.frames / self.rate if self.frames else 0))

    def fit(self) -> None:
        if self.frames:
            self.spp = max(1.0, self.frames / self.width_px())
            self.offset = 0
        self.fitted = True
        self.view_changed.emit()
        self.update()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.fitted:
            self.fit()

    def zoom(self, factor: float, around_x: float | None = None) -> None:
        around_x = HEADER + self.width_px() / 2 if around_x is None else around_x
        anchor = self.sample_at(around_x)
        limit = max(1.0, self.frames / self.width_px()) if self.frames else 1e6
        self.spp = float(np.clip(self.spp * factor, 1.0, max(limit, 1.0)))
        self.fitted = self.spp >= limit
        self.offset = int(max(0, anchor - (around_x - HEADER) * self.spp))
        self.view_changed.emit()
        self.update()

    def shown(self) -> list[Lane]:
        """The lanes drawn, top to bottom: all but the children of a folded split stem."""
        return [lane for lane in self.lanes if parent_of(lane.name) not in self.folds]

    def is_group(self, name: str) -> bool:
        """Whether ``name``'s lane is a split stem's, with its children's lanes under it."""
        return any(parent_of(lane.name) == name for lane in self.lanes)

    @property
    def _outlines(self) -> dict[str, tuple]:
        """Each audio lane's waveform outline with the view it was built for (`Lane.outline`), by lane."""
        return {lane.name: lane.outline for lane in self.lanes if lane.outline is not None}

    def stack(self) -> list[LaneKind]:
        """Every lane drawn, top to bottom: the shown audio lanes, then the lanes under them."""
        return [*self.shown(), *self.below]

    def lane_height(self) -> int:
        """The audio lanes share the height the lanes of a fixed height leave: at least 56 px, at most 160."""
        stack = self.stack()
        fixed = sum(lane.fixed_height or 0 for lane in stack)
        sharing = sum(1 for lane in stack if lane.fixed_height is None)
        return int(np.clip((self.height() - RULER - fixed) // max(1, sharing), MIN_LANE, MAX_LANE))

    def _bands(self) -> list[tuple[LaneKind, int, int]]:
        """Each lane drawn with its top and height."""
        share, top, bands = self.lane_height(), RULER, []
        for lane in self.stack():
            height = lane.fixed_height or share
            bands.append((lane, top, height))
            top += height
        return bands

    def band_at(self, y: float) -> tuple[LaneKind, int, int] | None:
        """The lane at height ``y`` with its top and height."""
        return next((band for band in self._bands() if band[1] <= y < band[1] + band[2]), None) if y >= RULER else None

    def lane_at(self, y: float) -> Lane | None:
        """The audio lane at height ``y`` (None over a lane of another kind)."""
        band = self.band_at(y)
        return band[0] if band is not None and isinstance(band[0], Lane) else None

    def lane_top(self, name: str) -> int | None:
        return next((top for lane, top, _ in self._bands() if lane.name == name), None)

    def minimum_height(self) -> int:
        """What the lanes need at least: the audio lanes at their least (room for two), the others whole."""
        fixed = sum(lane.fixed_height or 0 for lane in self.below)
        return RULER + MIN_LANE * max(2, len(self.lanes)) + fixed

    def fold_rect(self, name: str) -> QRectF | None:
        """Where a split stem's lane draws the triangle that folds and unfolds its children's lanes."""
        top = self.lane_top(name)
        return QRectF(6, top + 6, 16, 18) if top is not None and self.is_group(name) else None

    def fold(self, name: str, folded: bool) -> None:
        """Fold a split stem's children's lanes away under its own, or unfold them."""
        if folded == (name in self.folds):
            return
        if folded:
            self.folds.add(name)
        else:
            self.folds.discard(name)
        self.folded.emit(name, folded)
        self.update()

    def header_rects(self, name: str) -> dict[str, QRectF]:
        """Where a stem lane's header draws its mute and solo buttons and its gain ({} for the mix or no stems)."""
        top = self.lane_top(name)
        if top is None or name == "mix" or self.mix is None or self.lane(name) is None:
            return {}
        return {
            "mute": QRectF(12, top + 28, 24, 18),
            "solo": QRectF(40, top + 28, 24, 18),
            "gain_db": QRectF(68, top + 28, HEADER - 74, 18),
        }

    def header_control_at(self, x: float, y: float) -> tuple[str, str] | None:
        lane = self.lane_at(y)
        if lane is None:
            return None
        for part, rect in self.header_rects(lane.name).items():
            if rect.contains(QPointF(x, y)):
                return lane.name, part
        return None

    def null_marker_rect(self, index: int) -> QRectF:
        """Where residual window ``index`` spans the ruler (at least a flag wide): a click there plays from it."""
        region = self.null_regions[index]
        a = self.x_of(region["start_seconds"])
        b = max(self.x_of(region["end_seconds"]), a + FLAG[0])
        return QRectF(a, 0, b - a, RULER)

    def null_flag_rect(self, index: int) -> QRectF:
        """The numbered flag of residual window ``index``, hanging under the ruler at the window's start (clear of
        the ruler's times)."""
        return QRectF(self.x_of(self.null_regions[index]["start_seconds"]), RULER, *FLAG)

    def null_region_at(self, x: float, y: float) -> int | None:
        """The residual window marked under (x, y), by its span on the ruler or its flag; the loudest where they
        overlap."""
        if x < HEADER:
            return None
        point = QPointF(x, y)
        return next(
            (
                i
                for i in range(len(self.null_regions))
                if self.null_marker_rect(i).contains(point) or self.null_flag_rect(i).contains(point)
            ),
            None,
        )

    def heard(self, name: str) -> bool:
        return name == "mix" or self.mix is None or self.mix.heard(name)

    # --- painting -----------------------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(BACKGROUND))
        self._paint_ruler(painter)
        for lane, top, height in self._bands():
            lane.paint(painter, self, top, height)
        self._paint_null_regions(painter)
        if self.loop:
            a, b = (self.x_of(t) for t in self.loop)
            painter.fillRect(QRectF(max(a, HEADER), 0, max(0.0, b - max(a, HEADER)), RULER), QColor(92, 141, 239, 150))
        if self.selection:
            a, b = (self.x_of(t) for t in self.selection)
            painter.fillRect(
                QRectF(max(a, HEADER), RULER, max(0.0, b - max(a, HEADER)), self.height()), QColor(255, 255, 255, 28)
            )
        x = self.x_of(self.playhead)
        if x >= HEADER:
            painter.setPen(QPen(QColor("#ffffff"), 1.5))
            painter.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        painter.end()

    def _paint_null_regions(self, painter: QPainter) -> None:
        """Where Σ stems departs most from the mix (if at all): a faint band across the lanes, a red bar along the
        ruler and a flag numbered by rank under it (1 is the loudest), drawn loudest last so it stays on top."""
        for index in reversed(range(len(self.null_regions))):
            region = self.null_regions[index]
            a, b = self.x_of(region["start_seconds"]), self.x_of(region["end_seconds"])
            if b < HEADER or a > self.width():
                continue
            left = max(a, HEADER)
            painter.fillRect(QRectF(left, RULER, max(2.0, b - left), self.height() - RULER), QColor(224, 98, 94, 30))
            painter.fillRect(QRectF(left, RULER - 5, max(2.0, b - left), 5), QColor(NULL_RED))
            if a >= HEADER:
                painter.setPen(QPen(QColor(NULL_RED), 1))
                painter.drawLine(QPointF(a, RULER), QPointF(a, self.height()))
                flag = self.null_flag_rect(index)
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(QColor(NULL_RED))
                painter.drawRect(flag)
                painter.setPen(QColor("#16181c"))
                painter.drawText(flag, Qt.AlignmentFlag.AlignCenter, str(index + 1))

    def _paint_ruler(self, painter: QPainter) -> None:
        painter.fillRect(QRectF(0, 0, self.width(), RULER), QColor("#16181c"))
        if not self.frames:
            return
        visible = self.width_px() * self.spp / self.rate
        step = next((s for s in (0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600) if visible / s <= 12), 1200)
        start = self.offset / self.rate
        t = np.ceil(start / step) * step
        painter.setPen(QColor(TEXT))
        while True:
            x = self.x_of(t)
            if x > self.width():
                break
            painter.drawLine(QPointF(x, RULER - 8), QPointF(x, RULER))
            label = f"{int(t // 60)}:{t % 60:04.1f}" if step < 1 else f"{int(t // 60)}:{int(t % 60):02d}"
            painter.drawText(QPointF(x + 3, RULER - 10), label)
            t += step

    def move_playhead(self, seconds: float) -> None:
        """Move the playhead line, repainting only the strips it leaves and enters."""
        strips = [self.x_of(t) for t in (self.playhead, seconds)]
        self.playhead = seconds
        for x in strips:
            self.update(QRect(int(x) - 3, 0, 7, self.height()))

    def note_rect(self, lane: Lane, note, top: float, height: float) -> QRectF:
        """Where ``lane`` draws ``note`` (`Lane.note_rect`)."""
        return lane.note_rect(self, note, top, height)

    # --- mouse and keys -----------------------------------------------------------------------------------------
    def _header_press(self, event) -> bool:
        """A click on a lane header's control: toggles mute or solo, or grabs the gain. True when handled."""
        hit = self.header_control_at(event.position().x(), event.position().y())
        if hit is None or self.mix is None or event.button() != Qt.MouseButton.LeftButton:
            return False
        name, part = hit
        channel = self.mix.channels.get(name)
        if part == "gain_db":
            self._gain_drag = (name, event.position().y(), channel.gain_db if channel else 0.0)
            self.control_touched.emit(f"{name}/gain_db")
        else:
            self.control_edited.emit(f"{name}/{part}", 0.0 if channel and getattr(channel, part) else 1.0)
        return True

    def mouseDoubleClickEvent(self, event) -> None:
        hit = self.header_control_at(event.position().x(), event.position().y())
        if hit is not None and hit[1] == "gain_db":
            self._gain_drag = None
            self.control_edited.emit(f"{hit[0]}/gain_db", 0.0)
        elif hit is not None:  # a double-click on M or S is two clicks
            self._header_press(event)
        else:
            super().mouseDoubleClickEvent(event)

    def mousePressEvent(self, event) -> None:
        x = event.position().x()
        if x < HEADER and self._header_press(event):
            return
        lane = self.lane_at(event.position().y())
        fold = self.fold_rect(lane.name) if lane is not None else None
        if lane is not None and fold is not None and fold.contains(event.position()):
            self.fold(lane.name, lane.name not in self.folds)
            return
        band = self.band_at(event.position().y())
        if band is not None and x >= HEADER and band[0].press(event, self, band[1], band[2]):
            self._taken = band[0]  # the lane's own click (a word's box dragged): its moves and release go to it
            return
        if self._starts_drag_out(event, lane):
            return
        region = self.null_region_at(x, event.position().y())
        if region is not None and event.button() == Qt.MouseButton.LeftButton:
            self.null_region_clicked.emit(region, bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier))
            return
        if event.button() == Qt.MouseButton.RightButton and x < HEADER:
            if band is not None:
                menu = self.lane_menu_of(band[0])
                menu.popup(event.globalPosition().toPoint())
            return
        if x < HEADER or not self.frames:
            return
        t = self.seconds_at(x)
        kind = "loop" if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else "select"
        self._drag = (kind, t)
        self.seek.emit(t)

    def lane_menu_of(self, lane: LaneKind) -> QMenu:
        """A lane header's menu: the lane's own entries, then, for a stem's or the mix's lane, what others add
        (`lane_menu`: splits, MIDI)."""
        menu = QMenu(self)
        lane.fill_menu(menu, self)
        if isinstance(lane, Lane):
            self.lane_menu.emit(menu, lane.name)
        return menu

    def _starts_drag_out(self, event, lane: Lane | None) -> bool:
        """A left press on a stem lane's header (the whole stem) or inside the selection on a stem lane (that
        region): a drag out of the window if the mouse moves on (`drag_out`), a click if not."""
        if lane is None or lane.name == "mix" or lane.busy or event.button() != Qt.MouseButton.LeftButton:
            return False
        x = event.position().x()
        inside = self.selection is not None and self.selection[0] <= self.seconds_at(x) <= self.selection[1]
        shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if x < HEADER or (inside and not shift):
            self._out = (lane.name, "stem" if x < HEADER else "region", event.position())
            return True
        return False

    def mouseMoveEvent(self, event) -> None:
        if self._taken is not None:
            self._taken.move(event, self)
            return
        if self._out is not None:
            name, kind, pressed = self._out
            if (event.position() - pressed).manhattanLength() >= QApplication.startDragDistance():
                self._out = None
                self.drag_out.emit(name, kind)
            return
        if self._gain_drag is not None:  # 0.1 dB per pixel up or down
            name, y0, start = self._gain_drag
            value = float(np.clip(round(start + (y0 - event.position().y()) * 0.1, 1), *FADER_RANGE))
            self.control_edited.emit(f"{name}/gain_db", value)
            return
        if self._drag is None:
            return
        kind, start = self._drag
        t = self.seconds_at(event.position().x())
        span = (min(start, t), max(start, t))
        if span[1] - span[0] < 0.01:
            return
        if kind == "loop":
            self.loop = span
        else:
            self.selection = span
        self.update()

    def mouseReleaseEvent(self, event) -> None:
        self._gain_drag = None
        if self._taken is not None:
            taken, self._taken = self._taken, None
            taken.release(event, self)
            return
        if self._out is not None:  # pressed to drag out, released in place: a click (in the selection: seek there)
            _, kind, pressed = self._out
            self._out = None
            if kind == "region":
                self.seek.emit(self.seconds_at(pressed.x()))
            return
        if self._drag is None:
            return
        kind, _ = self._drag
        self._drag = None
        if kind == "loop":
            self.loop_changed.emit(self.loop)
        else:
            self.selection_changed.emit(self.selection)

    def wheelEvent(self, event) -> None:
        delta = event.angleDelta().y() or event.angleDelta().x()
        hit = self.header_control_at(event.position().x(), event.position().y())
        if hit is not None and hit[1] == "gain_db" and self.mix is not None and delta:
            channel = self.mix.channels.get(hit[0])
            step = 0.1 if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else 0.5
            gain = (channel.gain_db if channel else 0.0) + step * (1 if delta > 0 else -1)
            self.control_edited.emit(f"{hit[0]}/gain_db", float(np.clip(round(gain, 1), *FADER_RANGE)))
            return
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom(0.8 if delta > 0 else 1.25, event.position().x())
        else:
            self.offset = int(max(0, self.offset - delta / 120 * 80 * self.spp))
            self.view_changed.emit()
            self.update()

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            QToolTip.showText(event.globalPos(), self._tip_at(event.pos().x(), event.pos().y()) or "", self)
            return True
        return super().event(event)

    def _tip_at(self, x: float, y: float) -> str | None:
        region = self.null_region_at(x, y)
        if region is not None:
            r = self.null_regions[region]
            peak = r.get("peak_dbfs")
            return (
                f"Residual window {region + 1}: {clock(r['start_seconds'])}–{clock(r['end_seconds'])}, peak "
                f"{'−∞' if peak is None else f'{peak:.1f}'} dBFS. Click: play from here; Shift+click: loop it."
            )
        band = self.band_at(y)
        return None if band is None else band[0].tip(x, y, self, band[1], band[2])

    def lane(self, name: str) -> Lane | None:
        return next((lane for lane in self.lanes if lane.name == name), None)

    def toggle_notes(self, name: str) -> None:
        """Show a lane's MIDI notes over its waveform, or hide them."""
        lane = self.lane(name)
        if lane is not None and lane.notes is not None:
            lane.show_notes = not lane.show_notes
            self.update()

    def toggle_spectrogram(self, name: str) -> None:
        lane = self.lane(name)
        if lane is not None:
            lane.show_spectrogram = not lane.show_spectrogram
            if lane.show_spectrogram and lane.spectrogram is None:
                self.spectrogram_requested.emit(name)
        self.update()


class Timeline(QWidget):
    """The canvas with its horizontal scroll bar."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.canvas = Canvas(self)
        self.scroll_bar = QScrollBar(Qt.Orientation.Horizontal, self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.scroll_bar)
        self.scroll_bar.valueChanged.connect(self._scrolled)
        self.canvas.view_changed.connect(self._sync_scroll)

    def _scrolled(self, value: int) -> None:
        self.canvas.offset = int(value * self.canvas.spp)
        self.canvas.update()

    def _sync_scroll(self) -> None:
        c = self.canvas
        total = int(c.frames / c.spp) if c.frames else 0
        self.scroll_bar.blockSignals(True)
        self.scroll_bar.setRange(0, max(0, total - c.width_px()))
        self.scroll_bar.setPageStep(c.width_px())
        self.scroll_bar.setValue(int(c.offset / c.spp))
        self.scroll_bar.blockSignals(False)

    def set_song(self, rate: int, frames: int) -> None:
        self.canvas.rate, self.canvas.frames = rate, frames
        self.canvas.mix = None
        self.canvas.lanes = []
        self.canvas.loop = self.canvas.selection = None
        self.canvas.playhead = 0.0
        self.canvas.fit()

    def set_lanes(self, lanes: list[Lane]) -> None:
        """The mix's and the stems' lanes."""
        self.canvas.lanes = lanes
        self.canvas.setMinimumHeight(self.canvas.minimum_height())
        self.canvas.update()

    def set_below(self, lanes: list[LaneKind]) -> None:
        """The lanes under the stems' (the lyrics')."""
        self.canvas.below = lanes
        self.canvas.setMinimumHeight(self.canvas.minimum_height())
        self.canvas.update()

    def lane(self, name: str) -> Lane | None:
        return self.canvas.lane(name)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._sync_scroll()


def spectrogram_image(path: str, max_frames: int = 3000, height: int = 160) -> np.ndarray:
    """A log-frequency, log-magnitude spectrogram of a whole file as uint8 (height, frames), bright = loud.
    Runs in a worker; the main thread only wraps the array in a QImage."""
    reader = AudioReader(path)
    info = reader.info
    hop = max(512, int(np.ceil(info.frames / max_frames)))
    n_fft = 2048
    window = np.hanning(n_fft).astype(np.float32)
    columns = []
    with reader:
        position = 0
        while position < info.frames:
            reader.seek(position)
            block = reader.read(n_fft).mean(axis=0)
            if block.size < n_fft:
                block = np.pad(block, (0, n_fft - block.size))
            columns.append(np.abs(np.fft.rfft(block * window)))
            position += hop
    spec = np.stack(columns, axis=1)  # (bins, frames)
    freqs = np.fft.rfftfreq(n_fft, 1 / info.sample_rate)
    targets = np.geomspace(SPECTRUM_LOW, info.sample_rate / 2, height)
    rows = np.clip(np.searchsorted(freqs, targets), 1, len(freqs) - 1)
    db = 20 * np.log10(spec[rows] + 1e-7)
    db = np.clip((db - (db.max() - 70)) / 70, 0, 1) ** 1.5
    return (db[::-1] * 255).astype(np.uint8)


def to_qimage(array: np.ndarray) -> QImage:
    """uint8 (height, width) → an RGB32 QImage in matplotlib's magma colour map (copied, so the array may go)."""
    from matplotlib import colormaps

    rgb = (colormaps["magma"](array / 255.0)[..., :3] * 255).astype(np.uint8)
    height, width = array.shape
    argb = np.empty((height, width, 4), np.uint8)
    argb[..., 0], argb[..., 1], argb[..., 2], argb[..., 3] = rgb[..., 2], rgb[..., 1], rgb[..., 0], 255
    image = QImage(argb.data, width, height, width * 4, QImage.Format.Format_RGB32)
    return image.copy()
