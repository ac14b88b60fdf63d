"""The Settings dock, generated from the declared schema in stemdesk.io.settings."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ..io import settings as settings_store


class SettingsPanel(QWidget):
    """Generated from the declared schema in stemdesk.io.settings; every change is checked and saved."""

    changed = Signal(str, object)

    def __init__(self, values: dict, parent=None):
        super().__init__(parent)
        self.values = dict(values)
        form = QFormLayout(self)
        self.editors: dict[str, QWidget] = {}
        for setting in settings_store.SCHEMA:
            editor: QWidget
            if setting.kind == "list":  # kept by the app itself (recent files)
                continue
            value = self.values[setting.key]
            if setting.kind == "folder":
                row = QHBoxLayout()
                edit = QLineEdit(value)
                edit.setPlaceholderText(str(settings_store.default_output_folder()))
                browse = QPushButton("…")
                browse.setFixedWidth(30)
                browse.clicked.connect(lambda _=False, e=edit: self._browse(e))
                edit.editingFinished.connect(lambda k=setting.key, e=edit: self._set(k, e.text()))
                row.addWidget(edit, 1)
                row.addWidget(browse)
                form.addRow(setting.label, row)
                editor = edit
            elif setting.choices is not None:
                box = editor = QComboBox()
                box.addItems([str(c) for c in setting.choices])
                box.setCurrentText(str(value))
                # the choice itself, not its text: a number setting's choices are numbers
                box.currentIndexChanged.connect(lambda i, k=setting.key, c=setting.choices: self._set(k, c[i]))
                form.addRow(setting.label, box)
            elif isinstance(setting.default, bool):
                check = editor = QCheckBox()
                check.setChecked(value)
                check.toggled.connect(lambda on, k=setting.key: self._set(k, on))
                form.addRow(setting.label, check)
            elif isinstance(setting.default, int):
                assert setting.low is not None and setting.high is not None
                spin = editor = QSpinBox()
                spin.setRange(int(setting.low), int(setting.high))
                spin.setValue(value)
                spin.valueChanged.connect(lambda v, k=setting.key: self._set(k, v))
                form.addRow(setting.label, spin)
            elif isinstance(setting.default, float):
                assert setting.low is not None and setting.high is not None
                real = editor = QDoubleSpinBox()
                real.setRange(setting.low, setting.high)
                real.setValue(value)
                real.valueChanged.connect(lambda v, k=setting.key: self._set(k, v))
                form.addRow(setting.label, real)
            else:
                line = editor = QLineEdit(str(value))
                line.editingFinished.connect(lambda k=setting.key, e=line: self._set(k, e.text()))
                form.addRow(setting.label, line)
            editor.setToolTip(setting.help)
            self.editors[setting.key] = editor

    def _browse(self, edit: QLineEdit) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder", edit.text())
        if folder:
            edit.setText(folder)
            edit.editingFinished.emit()

    def _set(self, key: str, value) -> None:
        value = settings_store.BY_KEY[key].check(value)
        self.values[key] = value
        self.changed.emit(key, value)
