"""What the window shows of the null: the last check's verdict in the status bar's meter, its loudest residual
windows on the timeline, each stem's mark in the lane headers and the Null dock; while playing, the live null of
the last second played."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from .commands import LoopCommand
from .null_panel import CLIPPED, GOOD
from .playback import LiveNull
from .timeline import NULL_RED, StemMark

if TYPE_CHECKING:
    from .window import MainWindow

LIVE_TICKS = 30  # the live null shown is over the last second played


class NullView:
    def __init__(self, window: MainWindow):
        self.w = window
        self.live: deque[LiveNull] = deque(maxlen=LIVE_TICKS)  # the live null of the last ticks while playing

    def show(self) -> None:
        """The last null check of the stems: its verdict in the status bar, its loudest residual windows on the
        timeline, what it says of each stem in the lane headers and in the Null dock."""
        w = self.w
        null, check = w.workspace.null, w.workspace.check
        offset = w.stems_offset / w.info.sample_rate if w.info else 0.0
        w.timeline.canvas.null_regions = [
            {
                "start_seconds": r["start_seconds"] + offset,
                "end_seconds": r["end_seconds"] + offset,
                "peak_dbfs": r.get("peak_dbfs"),
            }
            for r in (null.worst_regions if null is not None else [])
            if isinstance(r, dict) and "start_seconds" in r and "end_seconds" in r
        ]
        self.show_views()
        if null is None:
            w.null_label.setText("Null: not checked")
            w.null_label.setStyleSheet("")
            return
        peak = null.peak_dbfs
        changed = f"; {', '.join(check.changed)} changed" if check is not None and check.changed else ""
        clips = f"; the song clips at {null.domain[3:]}-bit" if null.clipped else ""
        w.null_label.setText(f"Null: {'−∞' if peak is None else f'{peak:.1f}'} dBFS ({null.verdict}{changed}{clips})")
        w.null_label.setToolTip(null.clipping or "")
        colour = NULL_RED if not null.passed else CLIPPED if null.clipped else GOOD
        w.null_label.setStyleSheet(f"color: {colour};")

    def show_views(self, live: LiveNull | None = None) -> None:
        """Each stem's header mark and the Null dock, from the last check and (while playing) the live null: a stem's
        share of the music, whether its file changed since the certificate, and the residual where it is that
        stem's edit alone."""
        w = self.w
        null, check = w.workspace.null, w.workspace.check
        playing = live is not None and live.seconds > 0
        shares = live.shares() if playing else (null.energy_share if null is not None else {})
        culprit = check.culprit if check is not None else None
        residual = live.peak_dbfs if playing else (null.peak_dbfs if null is not None else None)
        w.timeline.canvas.stem_marks = {
            name: StemMark(
                shares.get(name),
                check is not None and name in check.changed,
                residual if name == culprit else None,
                name == culprit,
            )
            for name in w.stems
        }
        w.timeline.canvas.update()
        regions = w.timeline.canvas.null_regions
        w.null_panel.show_null(null, check, list(w.stems), w.project.mix, regions, live if playing else None)

    def show_live(self, block: LiveNull, ticks: int) -> None:
        """The live null of what was just rendered: the last second's in the status bar, and a few times a second in
        the lane headers and the Null dock."""
        self.live.append(block)
        live = sum(self.live, LiveNull())  # over the last second
        peak = live.peak_dbfs
        self.w.null_label.setText(f"Null (live): {'−∞' if peak is None else f'{peak:.1f}'} dBFS")
        if ticks % 10 == 0 or len(self.live) == 1:
            self.show_views(live)

    def live_null(self) -> LiveNull | None:
        """The live null of the last second played, while playing."""
        return sum(self.live, LiveNull()) if self.live else None

    def stopped(self) -> None:
        """Playback stopped or paused: back to what the last check found."""
        if self.live:
            self.live.clear()
            self.show()

    def goto_region(self, index: int, loop: bool = False) -> None:
        """Play from residual window ``index`` (the timeline's numbering), or loop it."""
        region = self.w.timeline.canvas.null_regions[index]
        if loop:
            self.loop_region((region["start_seconds"], region["end_seconds"]))
        self.w.seek(region["start_seconds"])

    def loop_region(self, span: tuple[float, float]) -> None:
        """Loop ``span`` (an undoable edit, like Shift+drag) and play from its start."""
        w = self.w
        w.undo.push(LoopCommand(w.set_loop, w.project.view.get("loop"), [float(span[0]), float(span[1])]))
        w.seek(float(span[0]))
