"""Cooperative cancellation: a token the caller sets and long loops check."""

from __future__ import annotations

from .errors import Cancelled


class CancelToken:
    """Set from any thread with `cancel()`; work checks it with `raise_if_cancelled()` between steps.

    Setting a Python attribute is atomic, so no lock is needed for one writer and many readers.
    """

    def __init__(self) -> None:
        self._cancelled = False

    def cancel(self) -> None:
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def raise_if_cancelled(self) -> None:
        if self._cancelled:
            raise Cancelled()
