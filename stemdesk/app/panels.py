"""The file dialog that opens songs (the dock panels live in their own modules: jobs_panel, models_panel,
trainer_panel, settings_panel, export_dialog)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog


def open_files_dialog(parent) -> list[Path]:
    from ..io.audio import SONG_SUFFIXES_READ

    patterns = " ".join(f"*{s}" for s in SONG_SUFFIXES_READ)
    files, _ = QFileDialog.getOpenFileNames(parent, "Open songs", "", f"Audio ({patterns});;All files (*)")
    return [Path(f) for f in files]
