"""What the player plays: the workspace's stems (or the song alone) at the playhead, and, while a separation of the
open song runs, the stems separated so far (`LiveStems`), which it waits for where the separation has not got to."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QStatusBar

from ..session.workspace import Workspace
from .playback import LiveStems, MixSource, Player

WAITING = "Waiting for the separation\u2026"


class PlayerFlow:
    """Listens to the workspace: a song opened stops the player; stems changed put it on them (unless it plays a
    running separation's, whose end decides). ``show_strips(names)`` shows the mixer's strips of the stems it is
    on; ``loop()`` is the loop it plays, if any; ``status(text, ms)`` says a thing in the status bar."""

    def __init__(
        self,
        player: Player,
        workspace: Workspace,
        show_strips: Callable[[list[str]], None],
        loop: Callable[[], tuple[float, float] | None],
        status: Callable[[str, int], None],
        status_bar: QStatusBar,
    ):
        self.player, self.workspace, self.show_strips, self.loop = player, workspace, show_strips, loop
        self.status, self.status_bar = status, status_bar
        self.live: LiveStems | None = None  # the stems of the running separation the player and the mixer are on
        self.waiting = False  # the player waits for the separation (the status line says so)
        workspace.song_opened.connect(self._song_opened)
        workspace.stems_changed.connect(self._stems_changed)

    def _song_opened(self, info) -> None:
        self.player.close()
        self.live = None

    def _stems_changed(self, why: str) -> None:
        if self.live is None:  # else the separation's end puts the player on its files (`end_live`)
            self.reload(resume=why == "checked")

    def names(self) -> list[str]:
        """The stems the player plays: the running separation's, or the workspace's."""
        return self.live.names if self.live is not None else list(self.workspace.stems)

    def reload(self, resume: bool = False) -> None:
        """The player on the workspace's stems (or the song alone) at the same position; playing on if it was and
        ``resume``."""
        work = self.workspace
        assert work.song is not None
        self._load(MixSource(work.song, work.stems or None, work.mix, work.stems_offset), resume)

    def play_live(self, live: LiveStems, offset: int) -> None:
        """The player and the mixer take the stems of the running separation (its first block is in), at the same
        position, playing on if they were: what is separated so far plays through the mix, and the player waits where
        the separation has not got to yet."""
        work = self.workspace
        assert work.song is not None
        self.live = live
        self.show_strips(live.names)
        playing = self._load(MixSource(work.song, None, work.mix, offset, live), resume=True)
        self.status(
            f"{'Playing' if playing else 'Play plays'} the stems separated so far; the rest follows as it is separated.",
            10000,
        )

    def _load(self, source: MixSource, resume: bool) -> bool:
        """The player on ``source`` at the same position and loop, playing on if it was and ``resume`` (returned)."""
        player = self.player
        position, playing = player.position_seconds(), resume and player.state == "playing"
        player.load(source)
        player.seek(position)
        player.set_loop(self.loop())
        if playing:
            player.play()
        return playing

    def end_live(self, live: LiveStems, done: bool) -> None:
        """The separation ``live`` holds ended. Done, the player goes on with the files it wrote (the workspace's
        stems now), in place of the buffer without stopping; cancelled or failed, it is back on what there was
        before. The buffer is freed either way."""
        if self.live is live:
            self.live = None
            source = self.player.source
            if done:
                if source is None or not source.take_files(self.workspace.stems, self.workspace.stems_offset):
                    self.reload(resume=True)
            else:
                self.show_strips(list(self.workspace.stems))
                self.reload(resume=True)
        live.release()

    def say_waiting(self, waiting: bool) -> None:
        """The status line says while playback waits for the separation, and stops saying it when it goes on."""
        if waiting and not self.waiting:
            self.status(WAITING, 0)
        elif not waiting and self.waiting and self.status_bar.currentMessage() == WAITING:
            self.status_bar.clearMessage()
        self.waiting = waiting
