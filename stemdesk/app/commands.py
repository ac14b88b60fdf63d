"""The app's undoable edits: each holds the state before and after, and the window applies one or the other."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QUndoCommand

from ..mixer.mix import Mix

if TYPE_CHECKING:
    from .window import MainWindow


class MixCommand(QUndoCommand):
    """A mixer edit. Consecutive moves of the same control merge into one undo step."""

    def __init__(self, window: MainWindow, text: str, control: str, before: Mix, after: Mix):
        super().__init__(text)
        self.window, self.control, self.before, self.after = window, control, before, after

    def id(self) -> int:
        return hash(self.control) & 0x7FFFFFFF

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, MixCommand) or other.control != self.control or self.control in ("preset",):
            return False
        self.after = other.after
        return True

    def redo(self) -> None:
        self.window.apply_mix(self.after)

    def undo(self) -> None:
        self.window.apply_mix(self.before)


class LoopCommand(QUndoCommand):
    def __init__(self, window: MainWindow, before, after):
        super().__init__("Set loop region" if after else "Clear loop region")
        self.window, self.before, self.after = window, before, after

    def redo(self) -> None:
        self.window.set_loop(self.after)

    def undo(self) -> None:
        self.window.set_loop(self.before)
