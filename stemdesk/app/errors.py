"""How the app says an error: its message, then the control that fixes it."""

from __future__ import annotations

from ..io.installable import INSTALLABLE

# How the app names the settings an error says would fix it (StemDeskError.setting).
CONTROLS = {
    "device": "the Device box in the toolbar",
    "segment_seconds": "Segment in Settings",
    "threads": "Threads in Settings",
    "start": "the selection",
    "duration": "the selection",
}


def words(error: BaseException) -> str:
    """An error as the app says it: its message, then the control that fixes it."""
    text = str(error)
    setting, value = getattr(error, "setting", None), getattr(error, "value", None)
    if setting == "install" and value in INSTALLABLE:  # a model not installed yet: the Models dock installs it
        return f"{text} Install it in the Models dock: Install\u2026 \u2192 {INSTALLABLE[value].title}."
    if setting == "install" and value:  # a model of the catalog: the dock's Catalog tab installs it
        return f"{text} Install it in the Models dock: Catalog \u2192 {value} \u2192 Install\u2026."
    if setting == "model":
        return f"{text} The Models dock lists the installed models."
    control = CONTROLS.get(setting or "")
    if control:
        text += f" Choose \u201c{value}\u201d in {control}." if value else f" Check {control}."
    return text
