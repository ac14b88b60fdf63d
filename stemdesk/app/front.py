"""What a flow may ask of the window it works in, named for what it does (the window is one, `MainWindow`): say a
thing in the status bar, show an error, ask a modal question or keep a box open, queue a task, bring a dock forward.
A flow types its window as `Front` and so reaches nothing else of it; what else it needs it is given by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import SignalInstance
from PySide6.QtWidgets import QMessageBox

from ..jobs.queue import Job
from ..session import tasks


class Front(Protocol):
    ask: bool  # False in tests and scripts: never block on a question
    closed: bool  # the window was closed (a SIGTERM while a question was open)

    def status(self, text: str, ms: int = 0) -> None: ...

    def show_error(self, title: str, text: str, unexpected: bool = False) -> None: ...

    def put(self, box: QMessageBox) -> int: ...

    def keep_open(self, box: QMessageBox) -> None: ...

    def run_task(
        self,
        task: tasks.Task,
        kind: str,
        on_done: Callable | None = None,
        on_end: Callable | None = None,
        finished: SignalInstance | None = None,
        on_progress: Callable | None = None,
    ) -> Job: ...

    def raise_dock(self, title: str) -> None: ...
