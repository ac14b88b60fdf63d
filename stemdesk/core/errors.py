"""Typed errors raised by StemDesk. Each says what happened and what to do; the UI decides how they look."""

from __future__ import annotations


class StemDeskError(Exception):
    """An error the user can act on. ``str(error)`` is one readable line that names no front end's controls.

    ``setting`` names the option that would fix it ("device", "segment_seconds", "threads", "start", "duration",
    "vocal_gate") and ``value`` the value to choose, if there is one: each front end says it its own way (a flag on
    the command line, a control in the app). ``setting="install"`` says that installing the model ``value`` (an id
    of stemdesk.io.installable.INSTALLABLE or of the model catalog) fixes it: each front end names its own way to
    install. ``setting="model"``
    says that choosing another model fixes it: each front end says where its models are listed."""

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


class StemsExist(StemDeskError):
    """A separation would replace the stems an earlier one left in ``folder`` (``names``: its files). With
    ``setting="overwrite"`` each front end names its own way to allow it (a flag, an argument, a question)."""

    def __init__(self, folder: str, names: list[str]):
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        super().__init__(f'"{folder}" already holds stems from an earlier separation ({shown}).', setting="overwrite")
        self.folder, self.names = folder, list(names)
