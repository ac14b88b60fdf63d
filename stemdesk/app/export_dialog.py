"""The Export dialog: stems, the instrumental, the mix and DAW sessions, each chosen."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class ExportDialog(QWidget):
    """What to export and where: the stems themselves, the instrumental, the user's mix, and each session format
    (DAWproject, REAPER, and what plugins add). Nothing heavy is checked unless asked for."""

    LABELS = {
        "stems": "Stems (a copy of each stem file, with the certificate)",
        "instrumental": "Instrumental (mixture − vocals, exact)",
        "mix": "Mix (your levels, pans and effects)",
        "dawproject": "DAWproject session (embeds the stems: large)",
        "rpp": "REAPER project (refers to the stems)",
        "ardour": "Ardour session (a folder; refers to the stems)",
        "aaf": "AAF for Pro Tools, Logic, Nuendo (embeds the stems: large)",
        "aaf-linked": "AAF linking the stem files (small; keep the stems where they are)",
        "stems-mp4": "NI Stem file for DJ software (.stem.mp4, ALAC: nulls)",
        "stems-mp4-aac": "NI Stem file in AAC (a fifth of the size; does not null)",
    }

    accepted = Signal(object, dict)  # folder, {choice: bool}

    def __init__(self, folder: str, exporters, choices: dict | None = None, parent=None):
        from PySide6.QtWidgets import QDialogButtonBox

        super().__init__(parent, Qt.WindowType.Dialog)
        self.setWindowTitle("Export")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        layout = QVBoxLayout(self)
        self.boxes: dict[str, QCheckBox] = {}
        keys = ["stems", "instrumental", "mix", *exporters]
        for key in keys:
            box = QCheckBox(self.LABELS.get(key, f"{key} (plugin exporter)"))
            box.setChecked((choices or {}).get(key, key == "instrumental"))
            self.boxes[key] = box
            layout.addWidget(box)
        row = QHBoxLayout()
        self.folder = QLineEdit(folder)
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._browse)
        row.addWidget(QLabel("Into"))
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        layout.addLayout(row)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.close)
        layout.addWidget(self.buttons)
        for box in self.boxes.values():
            box.toggled.connect(self._enable)
        self._enable()

    def _enable(self) -> None:
        from PySide6.QtWidgets import QDialogButtonBox

        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(
            any(b.isChecked() for b in self.boxes.values())
        )

    def _browse(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Export into", self.folder.text())
        if chosen:
            self.folder.setText(chosen)

    def _accept(self) -> None:
        self.accepted.emit(Path(self.folder.text()), {k: b.isChecked() for k, b in self.boxes.items()})
        self.close()
