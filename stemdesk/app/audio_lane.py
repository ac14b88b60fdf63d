"""The audio lanes: the song's mix on top and one lane per stem, each drawn from its cached peak data as a waveform,
or as its spectrogram (right-click its name), with its MIDI notes over it as a small piano roll when it has them.

A stem's header has its mute and solo buttons and its gain, and says its share of the music or that its file changed
since the certificate (`StemMark`); a stem that is not heard is drawn dimmed. A split stem's header has the triangle
that folds its children's lanes away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, TypeGuard

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPolygonF
from PySide6.QtWidgets import QMenu

from ..io.stems import colour_of
from ..jobs.peaks import Peaks
from ..mixer.mix import FADER_RANGE, Mix, parent_of
from .lane_kind import HEADER, LaneKind, TimeAxis
from .theme import DIM_TEXT, GRID, HEADER_BG, LANE_BG, MIX_COLOUR, MUTE_ON, NULL_RED, SOLO_ON, SWITCH_OFF, TEXT

SPECTRUM_LOW = 30.0  # Hz at the bottom of a spectrogram (see `timeline.spectrogram_image`)


def gain_text(db: float) -> str:
    """A fader's gain as the lane headers and the mixer's strips show it."""
    return "−∞" if db <= FADER_RANGE[0] else f"{db:+.1f} dB"


@dataclass
class StemMark:
    """What a stem's lane header says about the null: its share of the stems' energy, whether its file is still the
    one the certificate hashed, and the residual when it is this stem's edit (None: silent, or not this stem's)."""

    share: float | None = None
    changed: bool = False
    residual_dbfs: float | None = None
    culprit: bool = False


class StemsAxis(TimeAxis, Protocol):
    """What an audio lane reads of the canvas besides the time axis: the mix its header shows, the marks of the
    null, which split stems are folded, and how loud waveforms are drawn."""

    mix: Mix | None
    stem_marks: dict[str, StemMark]
    folds: set[str]
    display_gain: float

    def heard(self, name: str) -> bool: ...

    def fold_rect(self, name: str) -> QRectF | None: ...

    def header_rects(self, name: str) -> dict[str, QRectF]: ...

    def toggle_spectrogram(self, name: str) -> None: ...

    def toggle_notes(self, name: str) -> None: ...

    def is_group(self, name: str) -> bool: ...

    def fold(self, name: str, folded: bool) -> None: ...


@dataclass
class Lane(LaneKind):
    """The mix's or a stem's lane: its peaks (filling while ``busy``), its spectrogram once computed, its notes."""

    name: str
    peaks: Peaks
    spectrogram: QImage | None = None
    show_spectrogram: bool = False
    busy: bool = False
    extra: dict = field(default_factory=dict)
    notes: list | None = None  # the stem's MIDI notes (`stemdesk.transcribe.pitched.Note`), when it has them
    show_notes: bool = False
    # the waveform's outline for the view it was built for: while playing only the playhead moves, so a repaint
    # draws the same outline again instead of building it from the peaks 30 times a second
    outline: tuple[Peaks, tuple, QPainterPath | None] | None = field(default=None, repr=False, compare=False)

    # --- drawing ------------------------------------------------------------------------------------------------
    def paint(self, painter: QPainter, axis: TimeAxis, top: int, height: int) -> None:
        assert _is_stems_axis(axis)
        heard = axis.heard(self.name)
        colour = QColor(MIX_COLOUR if self.name == "mix" else colour_of(self.name))
        if not heard:
            colour.setAlpha(70)
        painter.fillRect(QRectF(0, top, axis.width(), height - 2), QColor(LANE_BG))
        painter.fillRect(QRectF(0, top, HEADER - 4, height - 2), QColor(HEADER_BG))
        child = parent_of(self.name) is not None
        painter.fillRect(QRectF(8 if child else 0, top, 5, height - 2), colour)  # a child's indented under its stem
        painter.setPen(QColor(TEXT if heard else DIM_TEXT))
        fold = axis.fold_rect(self.name)
        if fold is not None:
            painter.drawText(fold, Qt.AlignmentFlag.AlignCenter, "▸" if self.name in axis.folds else "▾")
        title = self.name.split("/")[-1]
        left = 24 if child or fold is not None else 12
        painter.drawText(QRectF(left, top + 6, HEADER - left - 8, 20), Qt.AlignmentFlag.AlignLeft, title)
        self._paint_controls(painter, axis)
        if not self.busy and self.name in axis.stem_marks:
            _paint_stem_mark(painter, axis.stem_marks[self.name], top, height)
        if self.busy:
            done = self.peaks.frames / max(1, self.peaks.expected or axis.frames or 1)
            painter.setPen(QColor("#9aa3ad"))
            painter.drawText(
                QRectF(60, top + 6, HEADER - 68, 20), Qt.AlignmentFlag.AlignRight, f"{min(100, int(done * 100))} %"
            )
        mid = top + (height - 2) / 2
        painter.setPen(QColor(GRID))
        painter.drawLine(QPointF(HEADER, mid), QPointF(axis.width(), mid))
        if self.show_spectrogram and self.spectrogram is not None and axis.frames:
            x0, x1 = axis.x_of(0), axis.x_of(axis.frames / axis.rate)
            painter.save()
            painter.setClipRect(QRectF(HEADER, top, axis.width() - HEADER, height - 2))  # never over the header
            painter.drawImage(QRectF(x0, top, x1 - x0, height - 2), self.spectrogram)
            if not heard:
                painter.fillRect(QRectF(HEADER, top, axis.width() - HEADER, height - 2), QColor(30, 33, 38, 170))
            _paint_frequency_axis(painter, axis, top, height - 2)
            painter.restore()
            return
        path = self.waveform(axis, mid, height)
        if path is not None:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(colour)
            painter.drawPath(path)
        if self.show_notes and self.notes:
            self._paint_notes(painter, axis, top, height - 2)

    def _paint_controls(self, painter: QPainter, axis: StemsAxis) -> None:
        rects = axis.header_rects(self.name)
        if not rects or axis.mix is None:
            return
        channel = axis.mix.channels.get(self.name)
        for part, label, on_colour in (("mute", "M", MUTE_ON), ("solo", "S", SOLO_ON)):
            on = bool(channel and getattr(channel, part))
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(on_colour if on else SWITCH_OFF))
            painter.drawRoundedRect(rects[part], 3, 3)
            painter.setPen(QColor("#15171a" if on else TEXT))
            painter.drawText(rects[part], Qt.AlignmentFlag.AlignCenter, label)
        painter.setPen(QColor(TEXT if axis.heard(self.name) else DIM_TEXT))
        painter.drawText(
            rects["gain_db"],
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
            gain_text(channel.gain_db if channel else 0.0),
        )

    def waveform(self, axis: StemsAxis, mid: float, height: int) -> QPainterPath | None:
        """The lane's waveform as a closed outline around its peaks, for the current view (None: no peaks there)."""
        pixels = axis.width_px()
        start = axis.offset
        view = (self.peaks.frames, start, axis.spp, pixels, mid, height, axis.display_gain)
        cached = self.outline
        if cached is not None and cached[0] is self.peaks and cached[1] == view:
            return cached[2]
        mins, maxs = self.peaks.envelope(start, int(start + pixels * axis.spp), pixels)
        valid = ~np.isnan(mins)
        path = None
        if valid.any():
            half = (height - 10) / 2 * axis.display_gain
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
        self.outline = (self.peaks, view, path)
        return path

    def pitch_span(self) -> tuple[int, int]:
        """The pitches the lane's piano roll spans: its lowest note to its highest, at least an octave."""
        pitches = [n.pitch for n in self.notes or []]
        return min(pitches), max(max(pitches), min(pitches) + 12)

    def note_rect(self, axis: TimeAxis, note, top: float, height: float, span: tuple[int, int] | None = None) -> QRectF:
        """Where a note is drawn over the lane: its time across, its pitch up the lane (`pitch_span`: the lowest
        note at the bottom, the highest at the top; ``span`` when the caller has it already)."""
        low, high = span or self.pitch_span()
        row = (height - 4) / (high - low + 1)
        y = top + 2 + (high - note.pitch) * row
        x0, x1 = axis.x_of(note.start), axis.x_of(note.end)
        return QRectF(x0, y, max(2.0, x1 - x0), max(2.0, row - 1))

    def _paint_notes(self, painter: QPainter, axis: TimeAxis, top: float, height: float) -> None:
        """The lane's notes as a small piano roll over its waveform (the waveform shows through)."""
        painter.save()
        painter.setClipRect(QRectF(HEADER, top, axis.width() - HEADER, height))
        painter.fillRect(QRectF(HEADER, top, axis.width() - HEADER, height), QColor(20, 22, 26, 150))
        painter.setPen(Qt.PenStyle.NoPen)
        first, last = axis.seconds_at(HEADER), axis.seconds_at(axis.width())
        span = self.pitch_span()  # once per paint, not once per note
        for note in self.notes or []:
            if note.end < first or note.start > last:
                continue
            painter.setBrush(QColor(255, 255, 255, 90 + note.velocity))
            painter.drawRect(self.note_rect(axis, note, top, height, span))
        painter.restore()

    # --- the header's menu and tooltip ---------------------------------------------------------------------------
    def fill_menu(self, menu: QMenu, axis: TimeAxis) -> None:
        assert _is_stems_axis(axis)
        action = menu.addAction("Show waveform" if self.show_spectrogram else "Show spectrogram")
        action.triggered.connect(lambda: axis.toggle_spectrogram(self.name))
        if self.notes is not None:
            shown = self.show_notes
            action = menu.addAction("Hide notes" if shown else f"Show notes ({len(self.notes)}, from MIDI)")
            action.triggered.connect(lambda: axis.toggle_notes(self.name))
        if axis.is_group(self.name):
            folded = self.name in axis.folds
            action = menu.addAction(f"{'Unfold' if folded else 'Fold'} the stems {self.name} was split into")
            action.triggered.connect(lambda: axis.fold(self.name, not folded))

    def tip(self, x: float, y: float, axis: TimeAxis, top: int, height: int) -> str | None:
        assert _is_stems_axis(axis)
        if self.name not in axis.stem_marks or x >= HEADER:
            return None
        mark = axis.stem_marks[self.name]
        if mark.changed:
            return f"{self.name}: its file changed since the certificate was written" + (
                "; the residual is exactly this edit." if mark.culprit else "."
            )
        return f"{self.name}: its share of the stems' energy" if stem_mark_rect(top).contains(QPointF(x, y)) else None


def stem_mark_rect(top: float) -> QRectF:
    """Where a stem's header writes its share or "changed" (right of its name), for a lane at ``top``."""
    return QRectF(60, top + 6, HEADER - 68, 20)


def _paint_stem_mark(painter: QPainter, mark: StemMark, top: int, height: int) -> None:
    rect = stem_mark_rect(top)
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


def _paint_frequency_axis(painter: QPainter, axis: TimeAxis, top: float, height: float) -> None:
    """Labels for the spectrogram's log-frequency rows (the rows `timeline.spectrogram_image` computes)."""
    nyquist = axis.rate / 2
    span = np.log(nyquist / SPECTRUM_LOW)
    for hz, label in ((100, "100"), (1000, "1k"), (10000, "10k")):
        if hz >= nyquist:
            continue
        y = top + (1 - np.log(hz / SPECTRUM_LOW) / span) * height
        painter.setPen(QColor(255, 255, 255, 150))
        painter.drawLine(QPointF(HEADER, y), QPointF(HEADER + 6, y))
        painter.drawText(QRectF(HEADER + 8, y - 8, 40, 16), Qt.AlignmentFlag.AlignVCenter, label)


def _is_stems_axis(axis: TimeAxis) -> TypeGuard[StemsAxis]:
    """Audio lanes are drawn on the stems' canvas, which has their mix and marks (a check for the type checker)."""
    return hasattr(axis, "stem_marks")
