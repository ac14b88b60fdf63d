"""What the timeline asks of a lane, whatever it shows: its height, its drawing, what a press on it does, its menu,
its tooltip. Each kind of lane is a room of its own (`audio_lane`: the song's and the stems' waveforms, with their
spectrograms and notes; `lyrics_lane`: the words of the song); the timeline (`timeline.Canvas`) only lays them out
top to bottom under its ruler and routes the clicks, as Ardour's time axis views and Audacity's track views do.

A lane draws on the canvas through `TimeAxis`, the few things every lane reads of it: where a time is across and
which time is at a point, and how wide the lanes are.
"""

from __future__ import annotations

from typing import Protocol

from PySide6.QtGui import QMouseEvent, QPainter
from PySide6.QtWidgets import QMenu

HEADER = 124  # px: the lanes' headers, left of their contents
RULER = 26  # px: the time ruler over the lanes


class TimeAxis(Protocol):
    """The canvas as a lane sees it: the song's rate and length, the view (samples per pixel from ``offset``), and
    the conversions between seconds and pixels."""

    rate: int
    frames: int
    spp: float
    offset: int
    playhead: float

    def x_of(self, seconds: float) -> float: ...

    def seconds_at(self, x: float) -> float: ...

    def width(self) -> int: ...

    def width_px(self) -> int: ...

    def update(self) -> None: ...


class LaneKind:
    """One lane of the timeline. ``name`` is how the timeline and its menus know it ("mix", "vocals/lead",
    "lyrics"). A lane of a fixed height says so in `fixed_height`; the others share what is left (56–160 px)."""

    name: str
    fixed_height: int | None = None

    def paint(self, painter: QPainter, axis: TimeAxis, top: int, height: int) -> None:
        """Draw the lane, its header included, in the band ``top`` … ``top + height`` of the canvas."""
        raise NotImplementedError

    def press(self, event: QMouseEvent, axis: TimeAxis, top: int, height: int) -> bool:
        """A press on the lane, right of its header: True when the lane took it (then the moves and the release
        until the button is let go go to it too), False to let the timeline seek and select."""
        return False

    def move(self, event: QMouseEvent, axis: TimeAxis) -> None:
        """The mouse moved with the button the lane took held."""

    def release(self, event: QMouseEvent, axis: TimeAxis) -> None:
        """The button the lane took was let go."""

    def fill_menu(self, menu: QMenu, axis: TimeAxis) -> None:
        """Add the lane's own entries to its header's menu (others may add theirs after: `Canvas.lane_menu`)."""

    def tip(self, x: float, y: float, axis: TimeAxis, top: int, height: int) -> str | None:
        """The tooltip at (x, y) on the lane, if it has one there."""
        return None
