"""Dock panels: jobs, models, trainer, settings (each in its own module, named here too), and the file dialogs.
Each panel shows state and asks the window to act; none runs work itself."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from .export_dialog import ExportDialog
from .jobs_panel import JobsPanel
from .models_panel import ModelsPanel, card_html, checkpoint_files_dialog, ensemble_html
from .settings_panel import SettingsPanel
from .trainer_panel import TrainerPanel

__all__ = [
    "ExportDialog",
    "JobsPanel",
    "ModelsPanel",
    "SettingsPanel",
    "TrainerPanel",
    "card_html",
    "checkpoint_files_dialog",
    "ensemble_html",
    "open_files_dialog",
]


def open_files_dialog(parent) -> list[Path]:
    from ..io.audio import SONG_SUFFIXES_READ

    patterns = " ".join(f"*{s}" for s in SONG_SUFFIXES_READ)
    files, _ = QFileDialog.getOpenFileNames(parent, "Open songs", "", f"Audio ({patterns});;All files (*)")
    return [Path(f) for f in files]
