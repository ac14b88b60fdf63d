"""The mixer dock: the vocal level up front, then one strip per stem (fader, pan, mute, solo, effects), presets and
MIDI learn. The panel edits a copy of the mix and reports each change; the window applies it (with undo)."""

from __future__ import annotations

import copy

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDial,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from ..io.registry import Registry
from ..mixer.mix import FADER_RANGE, PRESETS, Mix, with_preset
from .effects_editor import EffectsDialog

SCALE = 10  # fader steps per dB


def _db_text(db: float) -> str:
    return "−∞" if db <= FADER_RANGE[0] else f"{db:+.1f} dB"


class Strip(QWidget):
    def __init__(self, panel: MixerPanel, name: str):
        super().__init__(panel)
        self.panel, self.name = panel, name
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(2)
        title = QLabel(name)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        title.setStyleSheet("font-weight: bold;")
        self.value = QLabel("0.0 dB")
        self.value.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.value.setMinimumWidth(64)
        self.fader = QSlider(Qt.Orientation.Vertical)
        self.fader.setRange(int(FADER_RANGE[0] * SCALE), int(FADER_RANGE[1] * SCALE))
        self.fader.setMinimumHeight(80)
        self.fader.setToolTip(f"{name} level")
        self.pan = QDial()
        self.pan.setRange(-100, 100)
        self.pan.setFixedSize(36, 36)
        self.pan.setToolTip(f"{name} pan")
        self.mute, self.solo = QPushButton("M"), QPushButton("S")
        for button, tip in ((self.mute, "mute"), (self.solo, "solo")):
            button.setCheckable(True)
            button.setFixedWidth(28)
            button.setToolTip(f"{name} {tip}")
        self.fx = QPushButton("FX")
        self.fx.setToolTip(f"effects on {name}")
        controls = QVBoxLayout()
        controls.setSpacing(2)
        controls.addWidget(self.pan, alignment=Qt.AlignmentFlag.AlignHCenter)
        buttons = QHBoxLayout()
        buttons.addWidget(self.mute)
        buttons.addWidget(self.solo)
        controls.addLayout(buttons)
        controls.addWidget(self.fx)
        controls.addStretch(1)
        body = QHBoxLayout()
        body.addWidget(self.fader, alignment=Qt.AlignmentFlag.AlignHCenter)
        body.addLayout(controls)
        layout.addWidget(title)
        layout.addWidget(self.value)
        layout.addLayout(body, 1)
        self.fader.valueChanged.connect(lambda v: self.panel.edit(f"{name}/gain_db", v / SCALE))
        self.fader.sliderPressed.connect(lambda: self.panel.touched(f"{name}/gain_db"))
        self.pan.valueChanged.connect(lambda v: self.panel.edit(f"{name}/pan", v / 100))
        self.pan.sliderPressed.connect(lambda: self.panel.touched(f"{name}/pan"))
        self.mute.toggled.connect(lambda on: self.panel.edit(f"{name}/mute", float(on)))
        self.solo.toggled.connect(lambda on: self.panel.edit(f"{name}/solo", float(on)))
        self.fx.clicked.connect(lambda: self.panel.edit_effects(name))

    def show_state(self, mix: Mix) -> None:
        channel = mix.channels.get(self.name)
        gain = channel.gain_db if channel else 0.0
        for widget, value in (
            (self.fader, int(round(max(FADER_RANGE[0], min(FADER_RANGE[1], gain)) * SCALE))),
            (self.pan, int(round((channel.pan if channel else 0.0) * 100))),
            (self.mute, bool(channel and channel.mute)),
            (self.solo, bool(channel and channel.solo)),
        ):
            widget.blockSignals(True)
            widget.setChecked(value) if isinstance(value, bool) else widget.setValue(value)
            widget.blockSignals(False)
        self.value.setText(_db_text(gain))
        count = len(channel.effects) if channel else 0
        self.fx.setText(f"FX ({count})" if count else "FX")


class MixerPanel(QWidget):
    # (description, control, mix before, mix after)
    changed = Signal(str, str, object, object)
    control_touched = Signal(str)

    def __init__(self, parent=None, registry: Registry | None = None):
        super().__init__(parent)
        self.registry = registry  # the effect kinds its strips offer
        self.mix = Mix()
        self.stems: list[str] = []
        self.strips: dict[str, Strip] = {}
        outer = QVBoxLayout(self)
        top = QGroupBox("Vocal level")
        row = QHBoxLayout(top)
        self.vocal = QSlider(Qt.Orientation.Horizontal)
        self.vocal.setRange(int(FADER_RANGE[0] * SCALE), int(FADER_RANGE[1] * SCALE))
        self.vocal.setToolTip("vocal level")
        self.vocal_value = QLabel("0.0 dB")
        self.vocal_value.setMinimumWidth(70)
        row.addWidget(self.vocal, 1)
        row.addWidget(self.vocal_value)
        self.vocal.valueChanged.connect(lambda v: self.edit("vocals/gain_db", v / SCALE))
        self.vocal.sliderPressed.connect(lambda: self.touched("vocals/gain_db"))
        outer.addWidget(top)
        presets = QHBoxLayout()
        self.preset = QComboBox()
        self.preset.addItems(PRESETS)
        apply = QPushButton("Apply preset")
        apply.clicked.connect(self.apply_preset)
        self.learn = QPushButton("MIDI learn")
        self.learn.setCheckable(True)
        self.learn.setToolTip("Move a knob on your controller, then the control it should move")
        presets.addWidget(self.preset, 1)
        presets.addWidget(apply)
        presets.addWidget(self.learn)
        outer.addLayout(presets)
        self.area = QScrollArea()
        self.area.setWidgetResizable(True)
        self.strips_widget = QWidget()
        self.strips_layout = QHBoxLayout(self.strips_widget)
        self.strips_layout.setAlignment(Qt.AlignmentFlag.AlignLeft)
        self.area.setWidget(self.strips_widget)
        outer.addWidget(self.area, 1)
        self.empty = QLabel("Separate a song to mix its stems.")
        self.empty.setStyleSheet("color: #9aa3ad;")
        self.strips_layout.addWidget(self.empty)
        self.setEnabled(False)

    def set_stems(self, stems: list[str], mix: Mix) -> None:
        if stems != self.stems:
            for strip in self.strips.values():
                strip.deleteLater()
            self.strips = {}
            self.empty.setVisible(not stems)
            for name in stems:
                self.strips[name] = Strip(self, name)
                self.strips_layout.addWidget(self.strips[name])
            self.stems = list(stems)
        self.setEnabled(bool(stems))
        self.vocal.parent().setEnabled("vocals" in stems)
        self.show_mix(mix)

    def show_mix(self, mix: Mix) -> None:
        self.mix = copy.deepcopy(mix)
        for strip in self.strips.values():
            strip.show_state(self.mix)
        self.vocal.blockSignals(True)
        self.vocal.setValue(int(round(max(FADER_RANGE[0], self.mix.vocal_db) * SCALE)))
        self.vocal.blockSignals(False)
        self.vocal_value.setText(_db_text(self.mix.vocal_db))

    def touched(self, control: str) -> None:
        self.control_touched.emit(control)

    def edit(self, control: str, value: float) -> None:
        before = copy.deepcopy(self.mix)
        self.mix.set_control(control, value)
        self.show_mix(self.mix)
        self.changed.emit(f"Set {control.replace('/', ' ')} to {value:g}", control, before, copy.deepcopy(self.mix))

    def edit_effects(self, name: str) -> None:
        dialog = EffectsDialog(name, self.mix.channel(name).effects, self, self.registry)
        dialog.setModal(True)

        def accepted() -> None:
            before = copy.deepcopy(self.mix)
            self.mix.channel(name).effects = [e.validated() for e in dialog.effects]
            self.show_mix(self.mix)
            self.changed.emit(f"Edit effects on {name}", f"{name}/fx", before, copy.deepcopy(self.mix))

        dialog.accepted.connect(accepted)
        dialog.open()
        self.effects_dialog = dialog

    def apply_preset(self) -> None:
        before = copy.deepcopy(self.mix)
        after = with_preset(self.mix, self.preset.currentText(), self.stems)  # levels only: effects stay
        self.show_mix(after)
        self.changed.emit(f"Apply preset {self.preset.currentText()}", "preset", before, copy.deepcopy(after))
