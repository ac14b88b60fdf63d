"""The track timeline: a ruler, the original mix on top and one lane per stem, drawn from cached peak data.

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

from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QApplication, QMenu, QScrollBar, QToolTip, QVBoxLayout, QWidget

from ..io.audio import AudioReader
from ..io.stems import colour_of
from ..jobs.peaks import Peaks
from ..mixer.mix import FADER_RANGE, Mix, parent_of

HEADER = 124
RULER = 26
MIX_COLOUR = "#b8c0cc"
BACKGROUND, LANE_BG, TEXT, GRID = "#1e2126", "#272b31", "#e6e9ee", "#3a3f47"
HEADER_BG, DIM_TEXT = "#2f343b", "#7d8590"
MUTE_ON, SOLO_ON, SWITCH_OFF = "#e8a33d", "#4cc76b", "#3a3f47"  # amber mute, green solo: seen at a glance
SPECTRUM_LOW = 30.0  # Hz at the bottom of a spectrogram (see spectrogram_image)


def gain_text(db: float) -> str:
    """A fader's gain as the lane headers and the mixer's strips show it."""
    return "−∞" if db <= FADER_RANGE[0] else f"{db:+.1f} dB"


NULL_RED = "#e0625e"
FLAG = (16, 14)  # a residual window's numbered flag on the ruler, px


@dataclass
class StemMark:
    """What a stem's lane header says about the null: its share of the stems' energy, whether its file is still the
    one the certificate hashed, and the residual when it is this stem's edit (None: silent, or not this stem's)."""

    share: float | None = None
    changed: bool = False
    residual_dbfs: float | None = None
    culprit: bool = False


def clock(seconds: float) -> str:
    """m:ss.s, as the ruler, the status bar and the null dock write times."""
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


@dataclass
class Lane:
    name: str
    peaks: Peaks
    spectrogram: QImage | None = None
    show_spectrogram: bool = False
    busy: bool = False
    extra: dict = field(default_factory=dict)
    notes: list | None = None  # the stem's MIDI notes (`stemdesk.transcribe.pitched.Note`), when it has them
    show_notes: bool = False


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
    lane_menu = Signal(object, str)  # a lane header's menu is being shown: others may add to it (QMenu, lane name)
    drag_out = Signal(str, str)  # a stem dragged out of the timeline: (lane name, "stem" or "region")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.lanes: list[Lane] = []
        self.folds: set[str] = set()  # the split stems whose children's lanes are folded away
        self.rate = 44100
        self.frames = 0
        self.spp = 1024.0  # samples per pixel
        self.offset = 0  # first visible sample
        self.playhead = 0.0  # seconds
        # each lane's waveform outline for the view it was built for: while playing only the playhead moves, so
        # a repaint draws the same outlines again instead of building them from the peaks 30 times a second
        self._outlines: dict[str, tuple[Peaks, tuple, QPainterPath | None]] = {}
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

    def lane_height(self) -> int:
        """Lanes share the height: at least 56 px, at most 160."""
        return int(np.clip((self.height() - RULER) // max(1, len(self.shown())), 56, 160))

    def lane_at(self, y: float) -> Lane | None:
        index, shown = int((y - RULER) // self.lane_height()), self.shown()
        return shown[index] if 0 <= index < len(shown) and y >= RULER else None

    def lane_top(self, name: str) -> int | None:
        index = next((i for i, lane in enumerate(self.shown()) if lane.name == name), None)
        return None if index is None else RULER + index * self.lane_height()

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
        if top is None or name == "mix" or self.mix is None:
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
        height = self.lane_height()
        for index, lane in enumerate(self.shown()):
            self._paint_lane(painter, lane, RULER + index * height, height)
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

    def _paint_lane(self, painter: QPainter, lane: Lane, top: int, LANE: int) -> None:
        heard = self.heard(lane.name)
        colour = QColor(MIX_COLOUR if lane.name == "mix" else colour_of(lane.name))
        if not heard:
            colour.setAlpha(70)
        painter.fillRect(QRectF(0, top, self.width(), LANE - 2), QColor(LANE_BG))
        painter.fillRect(QRectF(0, top, HEADER - 4, LANE - 2), QColor(HEADER_BG))
        child = parent_of(lane.name) is not None
        painter.fillRect(QRectF(8 if child else 0, top, 5, LANE - 2), colour)  # a child's indented under its stem
        painter.setPen(QColor(TEXT if heard else DIM_TEXT))
        fold = self.fold_rect(lane.name)
        if fold is not None:
            painter.drawText(fold, Qt.AlignmentFlag.AlignCenter, "▸" if lane.name in self.folds else "▾")
        title = lane.name.split("/")[-1]
        left = 24 if child or fold is not None else 12
        painter.drawText(QRectF(left, top + 6, HEADER - left - 8, 20), Qt.AlignmentFlag.AlignLeft, title)
        self._paint_controls(painter, lane.name)
        if not lane.busy and lane.name in self.stem_marks:
            self._paint_stem_mark(painter, self.stem_marks[lane.name], top, LANE)
        if lane.busy:
            done = lane.peaks.frames / max(1, lane.peaks.expected or self.frames or 1)
            painter.setPen(QColor("#9aa3ad"))
            painter.drawText(
                QRectF(60, top + 6, HEADER - 68, 20), Qt.AlignmentFlag.AlignRight, f"{min(100, int(done * 100))} %"
            )
        mid = top + (LANE - 2) / 2
        painter.setPen(QColor(GRID))
        painter.drawLine(QPointF(HEADER, mid), QPointF(self.width(), mid))
        if lane.show_spectrogram and lane.spectrogram is not None and self.frames:
            x0, x1 = self.x_of(0), self.x_of(self.frames / self.rate)
            painter.save()
            painter.setClipRect(QRectF(HEADER, top, self.width() - HEADER, LANE - 2))  # never over the header
            painter.drawImage(QRectF(x0, top, x1 - x0, LANE - 2), lane.spectrogram)
            if not heard:
                painter.fillRect(QRectF(HEADER, top, self.width() - HEADER, LANE - 2), QColor(30, 33, 38, 170))
            self._paint_frequency_axis(painter, top, LANE - 2)
            painter.restore()
            return
        path = self._outline(lane, mid, LANE)
        if path is not None:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(colour)
            painter.drawPath(path)
        if lane.show_notes and lane.notes:
            self._paint_notes(painter, lane, top, LANE - 2)

    @staticmethod
    def pitch_span(lane: Lane) -> tuple[int, int]:
        """The pitches a lane's piano roll spans: its lowest note to its highest, at least an octave."""
        pitches = [n.pitch for n in lane.notes or []]
        return min(pitches), max(max(pitches), min(pitches) + 12)

    def note_rect(self, lane: Lane, note, top: float, height: float, span: tuple[int, int] | None = None) -> QRectF:
        """Where a note is drawn over its lane: its time across, its pitch up the lane (`pitch_span`: the lowest
        note at the bottom, the highest at the top; ``span`` when the caller has it already)."""
        low, high = span or self.pitch_span(lane)
        row = (height - 4) / (high - low + 1)
        y = top + 2 + (high - note.pitch) * row
        x0, x1 = self.x_of(note.start), self.x_of(note.end)
        return QRectF(x0, y, max(2.0, x1 - x0), max(2.0, row - 1))

    def _paint_notes(self, painter: QPainter, lane: Lane, top: float, height: float) -> None:
        """The lane's notes as a small piano roll over its waveform (the waveform shows through)."""
        painter.save()
        painter.setClipRect(QRectF(HEADER, top, self.width() - HEADER, height))
        painter.fillRect(QRectF(HEADER, top, self.width() - HEADER, height), QColor(20, 22, 26, 150))
        painter.setPen(Qt.PenStyle.NoPen)
        first, last = self.seconds_at(HEADER), self.seconds_at(self.width())
        span = self.pitch_span(lane)  # once per paint, not once per note
        for note in lane.notes or []:
            if note.end < first or note.start > last:
                continue
            painter.setBrush(QColor(255, 255, 255, 90 + note.velocity))
            painter.drawRect(self.note_rect(lane, note, top, height, span))
        painter.restore()

    def _outline(self, lane: Lane, mid: float, height: int) -> QPainterPath | None:
        """The lane's waveform as a closed outline around its peaks, for the current view (None: no peaks there)."""
        pixels = self.width_px()
        start = self.offset
        view = (lane.peaks.frames, start, self.spp, pixels, mid, height, self.display_gain)
        cached = self._outlines.get(lane.name)
        if cached is not None and cached[0] is lane.peaks and cached[1] == view:
            return cached[2]
        mins, maxs = lane.peaks.envelope(start, int(start + pixels * self.spp), pixels)
        valid = ~np.isnan(mins)
        path = None
        if valid.any():
            half = (height - 10) / 2 * self.display_gain
            xs = HEADER + np.arange(pixels)[valid]
            upper = mid - np.clip(maxs[valid], -1, 1) * half
            lower = mid - np.clip(mins[valid], -1, 1) * half
            # plain Python floats: Qt never sees a numpy scalar
            points = [
                QPointF(x, y) for x, y in zip(xs.tolist() + xs[::-1].tolist(), upper.tolist() + lower[::-1].tolist())
            ]
            path = QPainterPath()
            path.addPolygon(QPolygonF(points))
            path.closeSubpath()
        self._outlines[lane.name] = (lane.peaks, view, path)
        return path

    def move_playhead(self, seconds: float) -> None:
        """Move the playhead line, repainting only the strips it leaves and enters."""
        strips = [self.x_of(t) for t in (self.playhead, seconds)]
        self.playhead = seconds
        for x in strips:
            self.update(QRect(int(x) - 3, 0, 7, self.height()))

    def stem_mark_rect(self, name: str) -> QRectF | None:
        """Where a stem's header writes its share or "changed" (right of its name)."""
        top = self.lane_top(name)
        return None if top is None else QRectF(60, top + 6, HEADER - 68, 20)

    def _paint_stem_mark(self, painter: QPainter, mark: StemMark, top: int, height: int) -> None:
        rect = QRectF(60, top + 6, HEADER - 68, 20)
        if mark.changed:
            painter.setPen(QColor(NULL_RED))
            painter.drawText(rect, Qt.AlignmentFlag.AlignRight, "changed")
        elif mark.share is not None:
            painter.setPen(QColor(DIM_TEXT))
            painter.drawText(rect, Qt.AlignmentFlag.AlignRight, f"{mark.share * 100:.0f} %")
        if mark.culprit and height >= 68:  # a third row under the controls, where the lane is tall enough
            painter.setPen(QColor(NULL_RED))
            db = "−∞" if mark.residual_dbfs is None else f"{mark.residual_dbfs:.1f}".replace("-", "−")
            painter.drawText(QRectF(12, top + 48, HEADER - 20, 16), Qt.AlignmentFlag.AlignLeft, f"residual {db} dB")

    def _paint_controls(self, painter: QPainter, name: str) -> None:
        rects = self.header_rects(name)
        if not rects or self.mix is None:
            return
        channel = self.mix.channels.get(name)
        for part, label, on_colour in (("mute", "M", MUTE_ON), ("solo", "S", SOLO_ON)):
            on = bool(channel and getattr(channel, part))
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(on_colour if on else SWITCH_OFF))
            painter.drawRoundedRect(rects[part], 3, 3)
            painter.setPen(QColor("#15171a" if on else TEXT))
            painter.drawText(rects[part], Qt.AlignmentFlag.AlignCenter, label)
        painter.setPen(QColor(TEXT if self.heard(name) else DIM_TEXT))
        painter.drawText(
            rects["gain_db"],
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
            gain_text(channel.gain_db if channel else 0.0),
        )

    def _paint_frequency_axis(self, painter: QPainter, top: float, height: float) -> None:
        """Labels for the spectrogram's log-frequency rows (the rows `spectrogram_image` computes)."""
        nyquist = self.rate / 2
        span = np.log(nyquist / SPECTRUM_LOW)
        for hz, label in ((100, "100"), (1000, "1k"), (10000, "10k")):
            if hz >= nyquist:
                continue
            y = top + (1 - np.log(hz / SPECTRUM_LOW) / span) * height
            painter.setPen(QColor(255, 255, 255, 150))
            painter.drawLine(QPointF(HEADER, y), QPointF(HEADER + 6, y))
            painter.drawText(QRectF(HEADER + 8, y - 8, 40, 16), Qt.AlignmentFlag.AlignVCenter, label)

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
        if self._starts_drag_out(event, lane):
            return
        region = self.null_region_at(x, event.position().y())
        if region is not None and event.button() == Qt.MouseButton.LeftButton:
            self.null_region_clicked.emit(region, bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier))
            return
        if event.button() == Qt.MouseButton.RightButton and x < HEADER:
            lane = self.lane_at(event.position().y())
            if lane is not None:
                menu = QMenu(self)
                action = menu.addAction("Show waveform" if lane.show_spectrogram else "Show spectrogram")
                action.triggered.connect(lambda: self.toggle_spectrogram(lane.name))
                if lane.notes is not None:
                    shown = lane.show_notes
                    action = menu.addAction("Hide notes" if shown else f"Show notes ({len(lane.notes)}, from MIDI)")
                    action.triggered.connect(lambda: self.toggle_notes(lane.name))
                if self.is_group(lane.name):
                    folded = lane.name in self.folds
                    action = menu.addAction(f"{'Unfold' if folded else 'Fold'} the stems {lane.name} was split into")
                    action.triggered.connect(lambda: self.fold(lane.name, not folded))
                self.lane_menu.emit(menu, lane.name)
                menu.popup(event.globalPosition().toPoint())
            return
        if x < HEADER or not self.frames:
            return
        t = self.seconds_at(x)
        kind = "loop" if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else "select"
        self._drag = (kind, t)
        self.seek.emit(t)

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
        lane = self.lane_at(y)
        rect = self.stem_mark_rect(lane.name) if lane is not None else None
        if lane is None or rect is None or lane.name not in self.stem_marks or x >= HEADER:
            return None
        mark = self.stem_marks[lane.name]
        if mark.changed:
            return f"{lane.name}: its file changed since the certificate was written" + (
                "; the residual is exactly this edit." if mark.culprit else "."
            )
        return f"{lane.name}: its share of the stems' energy" if rect.contains(QPointF(x, y)) else None

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
        self.canvas.lanes = lanes
        self.canvas.setMinimumHeight(RULER + 56 * max(2, len(lanes)))
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
