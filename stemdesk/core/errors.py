"""Typed errors raised by StemDesk. Each says what happened and what to do; the UI decides how they look."""

from __future__ import annotations


class StemDeskError(Exception):
    """An error the user can act on. ``str(error)`` is one readable line that names no front end's controls.

    ``setting`` names the option that would fix it ("device", "segment_seconds", "threads", "start", "duration",
    "vocal_gate") and ``value`` the value to choose, if there is one: each front end says it its own way (a flag on
    the command line, a control in the app)."""

    def __init__(self, message: str = "", *, setting: str | None = None, value: str | None = None):
        super().__init__(message)
        self.setting, self.value = setting, value


class Cancelled(StemDeskError):
    """The user cancelled the operation. Front ends show nothing for it."""

    def __init__(self, message: str = "Cancelled."):
        super().__init__(message)


class OutOfMemory(StemDeskError):
    """The device ran out of memory even at the smallest segment size."""


class DeviceUnavailable(StemDeskError, ValueError):
    """The compute device asked for is not on this machine."""


class ModelError(StemDeskError):
    """A model is missing, unknown, corrupt or inconsistent with its card."""


class AudioError(StemDeskError):
    """An audio file cannot be read or written, or holds unusable audio."""


class MixError(StemDeskError):
    """A mix, preset or effect setting is invalid; the message names the field and the allowed range."""
