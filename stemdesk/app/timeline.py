"""The track timeline: a ruler, the original mix on top and one lane per stem, drawn from cached peak data.

Zoom with Ctrl+wheel (around the mouse), scroll with the wheel or the scroll bar, click to seek, drag to select,
Shift+drag to set the loop region. A lane can show its spectrogram instead of its waveform (right-click its name).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QMenu, QScrollBar, QVBoxLayout, QWidget

from ..io.audio import AudioReader
from ..io.stems import colour_of
from ..jobs.peaks import Peaks

HEADER = 110
RULER = 26
MIX_COLOUR = "#b8c0cc"
BACKGROUND, LANE_BG, TEXT, GRID = "#1e2126", "#272b31", "#e6e9ee", "#3a3f47"


@dataclass
class Lane:
    name: str
    peaks: Peaks
    spectrogram: QImage | None = None
    show_spectrogram: bool = False
    busy: bool = False
    extra: dict = field(default_factory=dict)


class Canvas(QWidget):
    seek = Signal(float)  # seconds
    loop_changed = Signal(object)  # (start, end) seconds or None
    selection_changed = Signal(object)
    spectrogram_requested = Signal(str)  # lane name
    view_changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.lanes: list[Lane] = []
        self.rate = 44100
        self.frames = 0
        self.spp = 1024.0  # samples per pixel
        self.offset = 0  # first visible sample
        self.playhead = 0.0  # seconds
        self.loop: tuple[float, float] | None = None
        self.display_gain = 1.0  # waveforms are scaled so the mix's peak fills a lane (all lanes alike)
        self.null_regions: list[dict] = []  # the certificate's loudest residual windows, marked on the ruler
        self.selection: tuple[float, float] | None = None
        self._drag: tuple[str, float] | None = None
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
        self.view_changed.emit()
        self.update()

    def zoom(self, factor: float, around_x: float | None = None) -> None:
        around_x = HEADER + self.width_px() / 2 if around_x is None else around_x
        anchor = self.sample_at(around_x)
        limit = max(1.0, self.frames / self.width_px()) if self.frames else 1e6
        self.spp = float(np.clip(self.spp * factor, 1.0, max(limit, 1.0)))
        self.offset = int(max(0, anchor - (around_x - HEADER) * self.spp))
        self.view_changed.emit()
        self.update()

    def lane_height(self) -> int:
        """Lanes share the height: at least 56 px, at most 160."""
        return int(np.clip((self.height() - RULER) // max(1, len(self.lanes)), 56, 160))

    def lane_at(self, y: float) -> Lane | None:
        index = int((y - RULER) // self.lane_height())
        return self.lanes[index] if 0 <= index < len(self.lanes) and y >= RULER else None

    # --- painting -----------------------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(BACKGROUND))
        self._paint_ruler(painter)
        height = self.lane_height()
        for index, lane in enumerate(self.lanes):
            self._paint_lane(painter, lane, RULER + index * height, height)
        for region in self.null_regions:  # where Σ stems departs most from the mix (if at all)
            a, b = self.x_of(region["start_seconds"]), self.x_of(region["end_seconds"])
            if b >= HEADER:
                painter.fillRect(QRectF(max(a, HEADER), RULER - 5, max(2.0, b - max(a, HEADER)), 5), QColor("#e0625e"))
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
        colour = QColor(MIX_COLOUR if lane.name == "mix" else colour_of(lane.name))
        painter.fillRect(QRectF(0, top, self.width(), LANE - 2), QColor(LANE_BG))
        painter.fillRect(QRectF(0, top, HEADER - 4, LANE - 2), QColor("#2f343b"))
        painter.fillRect(QRectF(0, top, 5, LANE - 2), colour)
        painter.setPen(QColor(TEXT))
        painter.drawText(QRectF(12, top + 6, HEADER - 20, 20), Qt.AlignmentFlag.AlignLeft, lane.name)
        if lane.busy:
            done = lane.peaks.frames / max(1, lane.peaks.expected or self.frames or 1)
            painter.setPen(QColor("#9aa3ad"))
            painter.drawText(
                QRectF(12, top + 28, HEADER - 20, 20), Qt.AlignmentFlag.AlignLeft, f"{min(100, int(done * 100))} %"
            )
        mid = top + (LANE - 2) / 2
        painter.setPen(QColor(GRID))
        painter.drawLine(QPointF(HEADER, mid), QPointF(self.width(), mid))
        if lane.show_spectrogram and lane.spectrogram is not None and self.frames:
            x0, x1 = self.x_of(0), self.x_of(self.frames / self.rate)
            painter.drawImage(QRectF(x0, top, x1 - x0, LANE - 2), lane.spectrogram)
            return
        pixels = self.width_px()
        start = self.offset
        mins, maxs = lane.peaks.envelope(start, int(start + pixels * self.spp), pixels)
        valid = ~np.isnan(mins)
        if not valid.any():
            return
        half = (LANE - 10) / 2 * self.display_gain
        xs = HEADER + np.arange(pixels)[valid]
        upper = mid - np.clip(maxs[valid], -1, 1) * half
        lower = mid - np.clip(mins[valid], -1, 1) * half
        # plain Python floats: Qt never sees a numpy scalar
        points = [QPointF(x, y) for x, y in zip(xs.tolist() + xs[::-1].tolist(), upper.tolist() + lower[::-1].tolist())]
        path = QPainterPath()
        path.addPolygon(QPolygonF(points))
        path.closeSubpath()
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawPath(path)

    # --- mouse and keys -----------------------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:
        x = event.position().x()
        if event.button() == Qt.MouseButton.RightButton and x < HEADER:
            lane = self.lane_at(event.position().y())
            if lane is not None:
                menu = QMenu(self)
                action = menu.addAction("Show waveform" if lane.show_spectrogram else "Show spectrogram")
                action.triggered.connect(lambda: self.toggle_spectrogram(lane.name))
                menu.popup(event.globalPosition().toPoint())
            return
        if x < HEADER or not self.frames:
            return
        t = self.seconds_at(x)
        kind = "loop" if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else "select"
        self._drag = (kind, t)
        self.seek.emit(t)

    def mouseMoveEvent(self, event) -> None:
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
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom(0.8 if delta > 0 else 1.25, event.position().x())
        else:
            self.offset = int(max(0, self.offset - delta / 120 * 80 * self.spp))
            self.view_changed.emit()
            self.update()

    def toggle_spectrogram(self, name: str) -> None:
        for lane in self.lanes:
            if lane.name == name:
                lane.show_spectrogram = not lane.show_spectrogram
                if lane.show_spectrogram and lane.spectrogram is None:
                    self.spectrogram_requested.emit(name)
        self.update()


class Timeline(QWidget):
    """The canvas with its horizontal scroll bar."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.canvas = Canvas(self)
        self.scroll = QScrollBar(Qt.Orientation.Horizontal, self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.scroll)
        self.scroll.valueChanged.connect(self._scrolled)
        self.canvas.view_changed.connect(self._sync_scroll)

    def _scrolled(self, value: int) -> None:
        self.canvas.offset = int(value * self.canvas.spp)
        self.canvas.update()

    def _sync_scroll(self) -> None:
        c = self.canvas
        total = int(c.frames / c.spp) if c.frames else 0
        self.scroll.blockSignals(True)
        self.scroll.setRange(0, max(0, total - c.width_px()))
        self.scroll.setPageStep(c.width_px())
        self.scroll.setValue(int(c.offset / c.spp))
        self.scroll.blockSignals(False)

    def set_song(self, rate: int, frames: int) -> None:
        self.canvas.rate, self.canvas.frames = rate, frames
        self.canvas.lanes = []
        self.canvas.loop = self.canvas.selection = None
        self.canvas.playhead = 0.0
        self.canvas.fit()

    def set_lanes(self, lanes: list[Lane]) -> None:
        self.canvas.lanes = lanes
        self.canvas.setMinimumHeight(RULER + 56 * max(2, len(lanes)))
        self.canvas.update()

    def lane(self, name: str) -> Lane | None:
        return next((lane for lane in self.canvas.lanes if lane.name == name), None)

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
    targets = np.geomspace(30, info.sample_rate / 2, height)
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
