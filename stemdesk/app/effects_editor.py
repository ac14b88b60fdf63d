"""The effects editor a strip's FX button opens: its insert chain in processing order, top to bottom, in a scroll area.
Each parameter is a slider in real units beside a box for exact entry; VST3 plugins are scanned in a child process
before they are added, so one that crashes shows an error instead of taking the app down."""

from __future__ import annotations

import copy
import math
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import MixError
from ..io.registry import Registry
from ..mixer import vst3
from ..mixer.effects import Effect, Param, effects_of
from .theme import DIMMED

STEPS = 1000  # slider positions of a continuous parameter
LOG_UNITS = {"Hz", "ms", "s"}  # a frequency or a time over more than a decade: equal ratios, equal travel
VST3_FOLDERS = ("~/.vst3", "/usr/local/lib/vst3", "/usr/lib/vst3")  # where Linux plugins are installed
ERROR = "#e5534b"


def _suffix(unit: str) -> str:
    return unit if unit.startswith(":") or not unit else f" {unit}"  # 4:1, 120 Hz


class _WheelGuard(QObject):
    """In a scrolling list the wheel scrolls the list: a slider or box takes it only once clicked into."""

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Wheel and not watched.hasFocus():
            event.ignore()  # ignored, the event goes on to the scroll area
            return True
        return False


class _Slider(QSlider):
    double_clicked = Signal()

    def mouseDoubleClickEvent(self, event) -> None:
        self.double_clicked.emit()


class ParamControl(QWidget):
    """One parameter: a slider (logarithmic for frequencies and times spanning a decade), the value in its unit for
    exact entry, and a reset to the default (also a double-click on the slider). Emits ``changed`` in real units."""

    changed = Signal(float)

    def __init__(self, param: Param, value: float, step: float | None = None, guard: QObject | None = None):
        super().__init__()
        self.param = param
        self.log = param.unit in LOG_UNITS and param.low > 0 and param.high / param.low > 10
        span = param.high - param.low
        self.steps = round(span / step) if step and span / step <= STEPS else STEPS  # a switch or a choice: its steps
        self.label = QLabel(param.label)
        self.label.setMinimumWidth(76)  # one column width in every box, whatever its labels
        self.slider = _Slider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, self.steps)
        self.slider.setMinimumWidth(140)
        self.spin = QDoubleSpinBox()
        self.spin.setRange(param.low, param.high)
        self.spin.setDecimals(0 if step and step >= 1 else 3 if span <= 20 else 1)
        self.spin.setStepType(QDoubleSpinBox.StepType.AdaptiveDecimalStepType)
        self.spin.setSuffix(_suffix(param.unit))
        self.spin.setKeyboardTracking(False)  # typing "500" sets 500, not 5 and 50 on the way
        self.spin.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.spin.setMinimumWidth(104)
        self.reset_button = QPushButton("↺")
        self.reset_button.setFixedWidth(28)
        self.reset_button.setToolTip(
            f"Back to the default, {self.spin.textFromValue(param.default)}{self.spin.suffix()}"
        )
        self.slider.setToolTip("Double-click: back to the default")
        for widget in (self.slider, self.spin):
            widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            if guard is not None:
                widget.installEventFilter(guard)
        self.spin.setValue(value)
        self.slider.setValue(self.position_of(value))
        self.slider.valueChanged.connect(self._slid)
        self.spin.valueChanged.connect(self._typed)
        self.slider.double_clicked.connect(self.reset)
        self.reset_button.clicked.connect(self.reset)

    def position_of(self, value: float) -> int:
        low, high = self.param.low, self.param.high
        if self.log:
            return round(self.steps * math.log(max(value, low) / low) / math.log(high / low))
        return round(self.steps * (value - low) / (high - low))

    def value_at(self, position: int) -> float:
        low, high, t = self.param.low, self.param.high, position / self.steps
        return low * (high / low) ** t if self.log else low + (high - low) * t

    def reset(self) -> None:
        self.spin.setValue(self.param.default)

    def _slid(self, position: int) -> None:
        self.spin.blockSignals(True)
        self.spin.setValue(self.value_at(position))
        self.spin.blockSignals(False)
        self.changed.emit(self.spin.value())  # the value shown (rounded to the box's decimals) is the value used

    def _typed(self, value: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(self.position_of(value))
        self.slider.blockSignals(False)
        self.changed.emit(value)


class EffectBox(QGroupBox):
    """One effect of the chain: bypass, move up or down, remove, and its parameters as `ParamControl`s."""

    def __init__(self, dialog: EffectsDialog, effect: Effect):
        super().__init__()
        self.effect, self.index = effect, 0  # its place in the chain, set by `number`
        self.bypass = QCheckBox("Bypass")
        self.bypass.setChecked(effect.bypass)
        self.bypass.toggled.connect(self._bypass)
        self.up, self.down, self.remove = QPushButton("↑"), QPushButton("↓"), QPushButton("Remove")
        self.up.setToolTip("Move up: process earlier")
        self.down.setToolTip("Move down: process later")
        for button in (self.up, self.down):
            button.setFixedWidth(32)
        self.up.clicked.connect(lambda: dialog.move_effect(self, -1))
        self.down.clicked.connect(lambda: dialog.move_effect(self, +1))
        self.remove.clicked.connect(lambda: dialog.remove(self))
        top = QHBoxLayout()
        top.addWidget(self.bypass)
        top.addStretch(1)
        for button in (self.up, self.down, self.remove):
            top.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        grid = QGridLayout()
        grid.setColumnStretch(1, 1)
        grid.setHorizontalSpacing(8)
        layout.addLayout(grid)
        self.controls: dict[str, ParamControl] = {}
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet(f"color: {DIMMED};")
        if effect.kind == "vst3":
            self.setToolTip(effect.path or "")
            params, self.name = self._vst3_params()
        elif (spec := effect.known_spec()) is not None:
            params, self.name = [(name, param, None) for name, param in spec.params.items()], spec.label
        else:
            params, self.name = [], effect.kind
            self.note.setText("An effect kind this copy of StemDesk does not know: it is kept as it is.")
        for row, (name, param, step) in enumerate(params):
            control = ParamControl(param, effect.params.get(name, param.default), step, dialog.guard)
            control.changed.connect(lambda v, n=name: effect.params.__setitem__(n, v))
            for column, widget in enumerate((control.label, control.slider, control.spin, control.reset_button)):
                grid.addWidget(widget, row, column)
            self.controls[name] = control
        self.note.setVisible(bool(self.note.text()))
        layout.addWidget(self.note)

    def _vst3_params(self) -> tuple[list[tuple[str, Param, float | None]], str]:
        """(name, spec, step) per parameter the scan gives numbers for, and the plugin's name; the note says the
        rest."""
        try:
            description = vst3.scan(self.effect.path or "")
        except MixError as error:  # a plugin gone or broken since the chain was made: say so, keep the effect
            self.note.setText(str(error))
            self.note.setStyleSheet(f"color: {ERROR};")
            return [], f"{Path(self.effect.path or '').stem} (VST3)"
        params, text = [], []
        for key, p in description["parameters"].items():
            if all(isinstance(p[k], (int, float)) for k in ("min", "max", "value")) and p["max"] > p["min"]:
                value = min(max(p["value"], p["min"]), p["max"])
                params.append((key, Param(p["unit"] or "", p["min"], p["max"], value, p["label"] or key), p["step"]))
            else:
                text.append(p["label"] or key)
        if text:
            self.note.setText(f"Left at the plugin's own settings (not numbers): {', '.join(text)}.")
        return params, f"{description['name']} (VST3)"

    def number(self, index: int, count: int) -> None:
        """Show the place in the chain: the title's number, and no move past either end."""
        self.index = index
        self.up.setEnabled(index > 0)
        self.down.setEnabled(index < count - 1)
        self._bypass(self.effect.bypass)

    def _bypass(self, on: bool) -> None:
        self.effect.bypass = on
        self.setTitle(f"{self.index + 1}. {self.name}{' (bypassed)' if on else ''}")


class EffectsDialog(QDialog):
    """Edit one strip's insert chain: add (``registry``'s kinds, default the built-ins, or a VST3 plugin), reorder,
    bypass, remove, and set parameters in real units. ``effects`` is the edited chain in processing order."""

    def __init__(self, name: str, effects: list[Effect], parent=None, registry: Registry | None = None):
        super().__init__(parent)
        self.registry = registry
        self.setWindowTitle(f"Effects on {name}")
        self.effects = [copy.deepcopy(e) for e in effects]
        self.guard = _WheelGuard(self)
        layout = QVBoxLayout(self)
        hint = QLabel("Effects run top to bottom; ↑ and ↓ change the order.")
        hint.setStyleSheet(f"color: {DIMMED};")
        layout.addWidget(hint)
        self.area = QScrollArea()
        self.area.setWidgetResizable(True)
        chain = QWidget()
        self.body = QVBoxLayout(chain)
        self.body.setContentsMargins(0, 0, 4, 0)
        self.empty = QLabel("No effects yet: add one below.")
        self.empty.setStyleSheet(f"color: {DIMMED};")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.body.addWidget(self.empty)
        self.body.addStretch(1)
        self.area.setWidget(chain)
        layout.addWidget(self.area, 1)
        row = QHBoxLayout()
        self.kind = QComboBox()
        for kind, spec in effects_of(registry).items():
            self.kind.addItem(spec.label, kind)
        self.add_button = QPushButton("Add")
        self.add_button.clicked.connect(lambda: self._append(Effect(self.kind.currentData()).validated(self.registry)))
        self.vst3_button = QPushButton("Add VST3…")
        self.vst3_button.setToolTip("Add a VST3 plugin (a .vst3 folder)")
        self.vst3_button.clicked.connect(self._choose_vst3)
        row.addWidget(self.kind, 1)
        row.addWidget(self.add_button)
        row.addWidget(self.vst3_button)
        layout.addLayout(row)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet(f"color: {ERROR};")
        self.error.hide()
        layout.addWidget(self.error)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        screen = (parent.screen() if parent is not None else QApplication.primaryScreen()).availableGeometry()
        self.resize(min(520, screen.width()), min(600, screen.height() - 60))  # 60: room for the title bar
        self.boxes = [EffectBox(self, effect) for effect in self.effects]
        self._lay_out()

    def move_effect(self, box: EffectBox, by: int) -> None:
        """Swap an effect with its neighbour above (-1) or below (+1)."""
        index = self.boxes.index(box)
        other = index + by
        self.effects[index], self.effects[other] = self.effects[other], self.effects[index]
        self.boxes[index], self.boxes[other] = self.boxes[other], self.boxes[index]
        self._lay_out(box)

    def remove(self, box: EffectBox) -> None:
        index = self.boxes.index(box)
        del self.effects[index], self.boxes[index]
        box.deleteLater()
        self._lay_out()

    def add_vst3(self, path: str | Path) -> bool:
        """Add the VST3 plugin at ``path`` once a scan in a child process has loaded it; else show why not."""
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            vst3.scan(path)
        except MixError as error:
            self.error.setText(str(error))
            self.error.show()
            return False
        finally:
            QApplication.restoreOverrideCursor()
        self._append(Effect("vst3", {}, path=str(path)))
        return True

    def _choose_vst3(self) -> None:
        folder = next((f for f in (Path(f).expanduser() for f in VST3_FOLDERS) if f.is_dir()), Path.home())
        path = QFileDialog.getExistingDirectory(self, "Add a VST3 plugin (its .vst3 folder)", str(folder))
        if path:
            self.add_vst3(path)

    def _append(self, effect: Effect) -> None:
        self.effects.append(effect)
        self.boxes.append(EffectBox(self, effect))
        self._lay_out(self.boxes[-1])

    def _lay_out(self, focus: EffectBox | None = None) -> None:
        """Place the boxes in chain order and number them; scroll ``focus`` (one added or moved) into view."""
        self.error.hide()
        for box in self.boxes:
            self.body.removeWidget(box)
        for index, box in enumerate(self.boxes):
            self.body.insertWidget(index, box)
            box.show()  # now, not on the event loop's next turn: the scroll below needs it laid out
            box.number(index, len(self.boxes))
        self.empty.setVisible(not self.boxes)
        if focus is not None:
            QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)  # the boxes' new places, then scroll
            self.area.ensureWidgetVisible(focus, 0, 0)
