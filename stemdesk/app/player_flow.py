"""What the player plays: the workspace's stems (or the song alone) at the playhead, and, while a separation of the
open song runs, the stems separated so far (`LiveStems`), which it waits for where the separation has not got to."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .playback import LiveStems, MixSource

if TYPE_CHECKING:
    from .window import MainWindow

WAITING = "Waiting for the separation\u2026"


class PlayerFlow:
    def __init__(self, window: MainWindow):
        self.w = window
        self.live: LiveStems | None = None  # the stems of the running separation the player and the mixer are on
        self.waiting = False  # the player waits for the separation (the status line says so)

    def reload(self, resume: bool = False) -> None:
        """The player on the workspace's stems (or the song alone) at the same position; playing on if it was and
        ``resume``."""
        w = self.w
        position, playing = w.player.position_seconds(), resume and w.player.state == "playing"
        w.player.load(MixSource(Path(w.project.source), w.stems or None, w.workspace.mix, w.stems_offset))
        w.player.seek(position)
        w.player.set_loop(w._active_loop())
        if playing:
            w.player.play()

    def play_live(self, live: LiveStems, offset: int) -> None:
        """The player and the mixer take the stems of the running separation (its first block is in), at the same
        position, playing on if they were: what is separated so far plays through the mix, and the player waits where
        the separation has not got to yet."""
        w = self.w
        position, playing = w.player.position_seconds(), w.player.state == "playing"
        self.live = live
        w._show_stems_mix(live.names)
        w.player.load(MixSource(Path(w.project.source), None, w.workspace.mix, offset, live))
        w.player.seek(position)
        w.player.set_loop(w._active_loop())
        if playing:
            w.player.play()
        w.status(
            f"{'Playing' if playing else 'Play plays'} the stems separated so far; the rest follows as it is separated.",
            10000,
        )

    def end_live(self, live: LiveStems, done: bool) -> None:
        """The separation ``live`` holds ended. Done, the player goes on with the files it wrote (the workspace's
        stems now), in place of the buffer without stopping; cancelled or failed, it is back on what there was
        before. The buffer is freed either way."""
        w = self.w
        if self.live is live:
            self.live = None
            source = w.player.source
            if done:
                if source is None or not source.take_files(w.stems, w.stems_offset):
                    self.reload(resume=True)
            else:
                w._show_stems_mix(list(w.stems))
                self.reload(resume=True)
        live.release()

    def say_waiting(self, waiting: bool) -> None:
        """The status line says while playback waits for the separation, and stops saying it when it goes on."""
        w = self.w
        if waiting and not self.waiting:
            w.status(WAITING)
        elif not waiting and self.waiting and w.statusBar().currentMessage() == WAITING:
            w.statusBar().clearMessage()
        self.waiting = waiting
