"""One dark theme for the whole app, in the timeline's colours: Qt's Fusion style with a dark palette, so docks,
dialogs, menus and the timeline read as one surface."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

# the timeline's colours, which the whole app takes
BACKGROUND, LANE_BG, TEXT, GRID = "#1e2126", "#272b31", "#e6e9ee", "#3a3f47"
HEADER_BG, DIM_TEXT = "#2f343b", "#7d8590"
MUTE_ON, SOLO_ON, SWITCH_OFF = "#e8a33d", "#4cc76b", "#3a3f47"  # amber mute, green solo: seen at a glance
MIX_COLOUR = "#b8c0cc"
NULL_RED = "#e0625e"
ACCENT = "#5b8def"  # the bass lane's blue: selection and focus
DIMMED = "#7d8590"


def apply_dark_theme(app: QApplication) -> None:
    """Fusion with a dark palette (idempotent)."""
    if app.property("stemdesk-theme") == "dark":
        return
    app.setStyle("Fusion")
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: BACKGROUND,
        QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: "#16181c",
        QPalette.ColorRole.AlternateBase: LANE_BG,
        QPalette.ColorRole.ToolTipBase: LANE_BG,
        QPalette.ColorRole.ToolTipText: TEXT,
        QPalette.ColorRole.PlaceholderText: DIMMED,
        QPalette.ColorRole.Text: TEXT,
        QPalette.ColorRole.Button: LANE_BG,
        QPalette.ColorRole.ButtonText: TEXT,
        QPalette.ColorRole.BrightText: "#ffffff",
        QPalette.ColorRole.Highlight: ACCENT,
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: ACCENT,
        QPalette.ColorRole.Mid: GRID,
        QPalette.ColorRole.Dark: "#111316",
        QPalette.ColorRole.Light: "#3f4550",
    }
    for role, colour in roles.items():
        palette.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(DIMMED))
    app.setPalette(palette)
    app.setProperty("stemdesk-theme", "dark")
