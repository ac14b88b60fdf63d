"""Level meters for the mixer: an RMS bar with a peak-hold line and a clip light, in dBFS, over green, yellow and red
zones. The levels are measured in the audio thread (`playback.MixSource`, per block); a meter keeps only the
ballistics and paints."""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QColor, QFont, QPainter
from PySide6.QtWidgets import QWidget

FLOOR_DB = -60.0  # the bottom of the scale; quieter reads as silence
ZONES = ((-18.0, "#3fb950"), (-6.0, "#e3b341"), (0.0, "#f85149"))  # (up to this dB, colour)
TICKS = (0, -6, -12, -24, -36, -48)
RMS_SECONDS = 0.3  # the RMS bar's integration time (a VU meter's)
HOLD_SECONDS = 1.0  # how long the peak line stays before it falls
FALL_DB_PER_SECOND = 20.0
CLIP = "#ff3b30"
LIGHT = 10  # height of the clip light, px
BAR = 8  # width of the bar, px


def to_db(amplitude: float) -> float:
    return 20 * math.log10(amplitude) if amplitude > 0 else -math.inf


class Meter(QWidget):
    """One strip's (or the master's) meter. `feed` it each block heard; `fall` lets time pass with nothing playing.
    The clip light latches at full scale (a sample with |x| ≥ 1.0) until the meter is clicked."""

    def __init__(self, name: str, parent=None):
        super().__init__(parent)
        self.power = 0.0  # mean square over about RMS_SECONDS
        self.peak = 0.0  # the held peak, as an amplitude
        self.hold = 0.0  # seconds before the held peak starts to fall
        self.clipped = False
        self.dimmed = False  # the stem is not heard (muted, or another is soloed)
        self.setMinimumHeight(60)
        self.setToolTip(f"{name} level (dBFS): RMS bar, peak line; click to clear the clip light")
        font = QFont(self.font())
        font.setPointSizeF(6.5)
        self.setFont(font)
        self.setFixedWidth(BAR + 5 + self.fontMetrics().horizontalAdvance("−48"))

    @property
    def rms_db(self) -> float:
        return 10 * math.log10(self.power) if self.power > 0 else -math.inf

    @property
    def peak_db(self) -> float:
        return to_db(self.peak)

    def feed(self, peak: float, mean_square: float, seconds: float) -> None:
        """One block's levels (its peak and mean square, lasting ``seconds``)."""
        keep = math.exp(-seconds / RMS_SECONDS)
        self.power = self.power * keep + mean_square * (1 - keep)
        self._fall_peak(seconds)
        if peak >= self.peak:
            self.peak, self.hold = peak, HOLD_SECONDS
        self.clipped = self.clipped or peak >= 1.0
        self.update()

    def fall(self, seconds: float) -> None:
        """Time passes with nothing playing: the bar and the peak line fall back."""
        self.power *= math.exp(-seconds / RMS_SECONDS)
        self._fall_peak(seconds)
        self.update()

    def _fall_peak(self, seconds: float) -> None:
        falling = max(0.0, seconds - self.hold)
        self.hold = max(0.0, self.hold - seconds)
        self.peak *= 10 ** (-FALL_DB_PER_SECOND * falling / 20)

    def clear_clip(self) -> None:
        self.clipped = False
        self.update()

    def set_dimmed(self, dimmed: bool) -> None:
        if dimmed != self.dimmed:
            self.dimmed = dimmed
            self.update()

    def mousePressEvent(self, event) -> None:
        self.clear_clip()

    def _y(self, db: float) -> float:
        """Where ``db`` is on the bar (0 dBFS at its top, FLOOR_DB at its bottom)."""
        top, height = LIGHT + 3, self.height() - LIGHT - 4
        return top + height * min(1.0, max(0.0, db / FLOOR_DB))

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        if self.dimmed:
            painter.setOpacity(0.35)
        bottom = self._y(FLOOR_DB)
        painter.fillRect(QRectF(0, 0, BAR + 2, LIGHT), QColor(CLIP if self.clipped else "#2b3038"))
        painter.fillRect(QRectF(0, self._y(0), BAR + 2, bottom - self._y(0) + 1), QColor("#111316"))
        rms, low = self.rms_db, FLOOR_DB
        for high, colour in ZONES:
            zone = QColor(colour)
            zone.setAlphaF(0.18)  # the zones are visible, faintly, where the bar is not
            painter.fillRect(QRectF(1, self._y(high), BAR, self._y(low) - self._y(high)), zone)
            if rms > low:
                top = self._y(min(rms, high))
                painter.fillRect(QRectF(1, top, BAR, self._y(low) - top), QColor(colour))
            low = high
        if self.peak_db > FLOOR_DB:
            colour = next((c for high, c in ZONES if self.peak_db <= high), CLIP)
            painter.fillRect(QRectF(0, self._y(self.peak_db) - 1, BAR + 2, 2), QColor(colour))
        painter.setPen(self.palette().color(self.foregroundRole()))
        for db in TICKS:
            y = self._y(db)
            painter.fillRect(QRectF(1, y, BAR, 1), QColor(0, 0, 0, 140))  # a notch across the bar
            painter.drawText(QPointF(BAR + 4, y + self.fontMetrics().capHeight() / 2), f"{db}".replace("-", "−"))
