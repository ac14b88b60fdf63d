"""What the window shows of the null: the last check's verdict in the status bar's meter, its loudest residual
windows on the timeline, each stem's mark in the lane headers and the Null dock; while playing, the live null of
the last second played."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from PySide6.QtWidgets import QLabel

from ..mixer.mix import parent_of
from ..session.workspace import Workspace
from .null_panel import CLIPPED, GOOD, NullPanel
from .playback import LiveNull
from .timeline import NULL_RED, Canvas, StemMark

LIVE_TICKS = 30  # the live null shown is over the last second played
NO_STEMS = "Null: no stems yet"


class NullView:
    """Listens to the workspace: other stems (or none) show their null. ``seek(seconds)`` moves the playhead;
    ``edit_loop(span)`` loops a residual window (an undoable edit)."""

    def __init__(
        self,
        workspace: Workspace,
        canvas: Canvas,
        label: QLabel,
        panel: NullPanel,
        edit_loop: Callable[[tuple[float, float]], None],
        seek: Callable[[float], None],
    ):
        self.workspace, self.canvas, self.label, self.panel = workspace, canvas, label, panel
        self.edit_loop, self.seek = edit_loop, seek
        self.live: deque[LiveNull] = deque(maxlen=LIVE_TICKS)  # the live null of the last ticks while playing
        workspace.stems_changed.connect(self._stems_changed)

    def _stems_changed(self, why: str) -> None:
        if why == "checked":  # the check that measured them shows itself (`StemsWatch.checked`)
            return
        self.show()
        if not self.workspace.stems:
            self.label.setText(NO_STEMS)

    def show(self) -> None:
        """The last null check of the stems: its verdict in the status bar, its loudest residual windows on the
        timeline, what it says of each stem in the lane headers and in the Null dock."""
        work, label = self.workspace, self.label
        null, check = work.null, work.check
        offset = work.stems_offset / work.info.sample_rate if work.info else 0.0
        self.canvas.null_regions = [
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
            label.setText("Null: not checked")
            label.setStyleSheet("")
            return
        peak = null.peak_dbfs
        changed = f"; {', '.join(check.changed)} changed" if check is not None and check.changed else ""
        clips = f"; the song clips at {null.domain[3:]}-bit" if null.clipped else ""
        label.setText(f"Null: {'−∞' if peak is None else f'{peak:.1f}'} dBFS ({null.verdict}{changed}{clips})")
        label.setToolTip(null.clipping or "")
        colour = NULL_RED if not null.passed else CLIPPED if null.clipped else GOOD
        label.setStyleSheet(f"color: {colour};")

    def show_views(self, live: LiveNull | None = None) -> None:
        """Each stem's header mark and the Null dock, from the last check and (while playing) the live null: a stem's
        share of the music, whether its file changed since the certificate, and the residual where it is that
        stem's edit alone."""
        work = self.workspace
        null, check = work.null, work.check
        playing = live if live is not None and live.seconds > 0 else None
        shares = playing.shares() if playing else (null.energy_share if null is not None else {})
        culprit = check.culprit if check is not None else None
        residual = playing.peak_dbfs if playing else (null.peak_dbfs if null is not None else None)
        self.canvas.stem_marks = {
            name: StemMark(
                shares.get(name),
                check is not None and name in check.changed,
                residual if name == culprit else None,
                name == culprit,
            )
            for name in work.stems
        }
        for group in work.groups:  # a split stem's share is its children's
            parts = [shares[name] for name in work.stems if parent_of(name) == group and name in shares]
            self.canvas.stem_marks[group] = StemMark(sum(parts) if parts else None)
        self.canvas.update()
        self.panel.show_null(null, check, list(work.stems), work.mix, self.canvas.null_regions, playing)

    def show_live(self, block: LiveNull, ticks: int) -> None:
        """The live null of what was just rendered: the last second's in the status bar, and a few times a second in
        the lane headers and the Null dock."""
        self.live.append(block)
        live = sum(self.live, LiveNull())  # over the last second
        peak = live.peak_dbfs
        self.label.setText(f"Null (live): {'−∞' if peak is None else f'{peak:.1f}'} dBFS")
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
        region = self.canvas.null_regions[index]
        if loop:
            self.loop_region((region["start_seconds"], region["end_seconds"]))
        self.seek(region["start_seconds"])

    def loop_region(self, span: tuple[float, float]) -> None:
        """Loop ``span`` (an undoable edit, like Shift+drag) and play from its start."""
        self.edit_loop(span)
        self.seek(float(span[0]))
