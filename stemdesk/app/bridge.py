"""Posting work from worker threads to the app's main thread."""

from __future__ import annotations

import queue
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer


class Bridge(QObject):
    """Runs callables on the main thread, posted from any thread: workers put them in a thread-safe queue and a
    timer on the main thread drains it every 15 ms.

    Workers make no Qt call at all: emitting a Qt signal from a plain Python thread while torch runs there crashed
    PySide6 6.12 here ("deallocating None"), so, as Friture does with its audio callback, the UI polls instead."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._pending: queue.SimpleQueue = queue.SimpleQueue()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.drain)
        self.timer.start(15)

    def post(self, fn: Callable, *args) -> None:
        self._pending.put((fn, args))

    def drain(self) -> None:
        while True:
            try:
                fn, args = self._pending.get_nowait()
            except queue.Empty:
                return
            fn(*args)
