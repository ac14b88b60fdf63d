"""Announcements without Qt: a session object keeps a list of listeners per kind of change and calls them, in the
order they listened, on the thread that made the change (always the front end's own: no worker thread changes
session state; the app marshals a worker's results through its bridge first)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Announcement:
    """One kind of change: ``connect(listener)``, and ``emit(*what)`` calls every listener with what changed."""

    def __init__(self) -> None:
        self._listeners: list[Callable[..., Any]] = []

    def connect(self, listener: Callable[..., Any]) -> Callable[..., Any]:
        self._listeners.append(listener)
        return listener

    def disconnect(self, listener: Callable[..., Any]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def emit(self, *what: Any) -> None:
        for listener in list(self._listeners):
            listener(*what)

    def __len__(self) -> int:
        return len(self._listeners)
