"""The app's undoable edits: each holds the state before and after, and a function that applies either."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QUndoCommand

from ..karaoke.model import Lyrics
from ..mixer.mix import Mix


class MixCommand(QUndoCommand):
    """A mixer edit. Consecutive moves of the same control merge into one undo step."""

    def __init__(self, apply: Callable[[Mix], None], text: str, control: str, before: Mix, after: Mix):
        super().__init__(text)
        self.apply, self.control, self.before, self.after = apply, control, before, after

    def id(self) -> int:
        return hash(self.control) & 0x7FFFFFFF

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, MixCommand) or other.control != self.control or self.control in ("preset",):
            return False
        self.after = other.after
        return True

    def redo(self) -> None:
        self.apply(self.after)

    def undo(self) -> None:
        self.apply(self.before)


class LoopCommand(QUndoCommand):
    def __init__(self, apply: Callable, before, after):
        super().__init__("Set loop region" if after else "Clear loop region")
        self.apply, self.before, self.after = apply, before, after

    def redo(self) -> None:
        self.apply(self.after)

    def undo(self) -> None:
        self.apply(self.before)


class LyricsCommand(QUndoCommand):
    """An edit of the song's lyrics (set, aligned, a word dragged, a tap): the lyrics before and after, each kept
    whole (the edits make new lyrics and never change the old)."""

    def __init__(self, apply: Callable[[Lyrics | None], None], text: str, before: Lyrics | None, after: Lyrics | None):
        super().__init__(text)
        self.apply, self.before, self.after = apply, before, after

    def redo(self) -> None:
        self.apply(self.after)

    def undo(self) -> None:
        self.apply(self.before)
