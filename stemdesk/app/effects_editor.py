"""The effects editor a strip's FX button opens: one strip's insert chain."""

from __future__ import annotations

import copy

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QVBoxLayout,
)

from ..io.registry import Registry
from ..mixer.effects import Effect, effects_of


class EffectsDialog(QDialog):
    """Edit one strip's insert chain: add, remove, bypass, parameters in real units. The kinds offered are
    ``registry``'s (default: the built-ins)."""

    def __init__(self, name: str, effects: list[Effect], parent=None, registry: Registry | None = None):
        super().__init__(parent)
        self.registry = registry
        self.setWindowTitle(f"Effects on {name}")
        self.effects = [copy.deepcopy(e) for e in effects]
        self.layout_ = QVBoxLayout(self)
        self.body = QVBoxLayout()
        self.layout_.addLayout(self.body)
        row = QHBoxLayout()
        self.kind = QComboBox()
        for kind, spec in effects_of(registry).items():
            self.kind.addItem(spec.label, kind)
        add = QPushButton("Add")
        add.clicked.connect(self._add)
        row.addWidget(self.kind)
        row.addWidget(add)
        self.layout_.addLayout(row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.layout_.addWidget(buttons)
        self._rebuild()

    def _add(self) -> None:
        self.effects.append(Effect(self.kind.currentData()).validated(self.registry))
        self._rebuild()

    def _rebuild(self) -> None:
        while self.body.count():
            item = self.body.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        for index, effect in enumerate(self.effects):
            spec = effect.known_spec()
            box = QGroupBox(spec.label if spec else effect.kind)
            form = QFormLayout(box)
            bypass = QCheckBox("Bypass")
            bypass.setChecked(effect.bypass)
            bypass.toggled.connect(lambda on, e=effect: setattr(e, "bypass", on))
            remove = QPushButton("Remove")
            remove.clicked.connect(lambda _=False, i=index: (self.effects.pop(i), self._rebuild()))
            top = QHBoxLayout()
            top.addWidget(bypass)
            top.addWidget(remove)
            form.addRow(top)
            for pname, param in spec.params.items() if spec else []:
                spin = QDoubleSpinBox()
                spin.setRange(param.low, param.high)
                spin.setDecimals(3 if param.high - param.low <= 2 else 1)
                spin.setSuffix(f" {param.unit}" if param.unit else "")
                spin.setValue(effect.params.get(pname, param.default))
                spin.valueChanged.connect(lambda v, e=effect, n=pname: e.params.__setitem__(n, v))
                form.addRow(param.label or pname, spin)
            self.body.addWidget(box)
