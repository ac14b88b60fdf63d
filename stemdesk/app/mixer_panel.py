"""The mixer dock: the vocal level, presets and MIDI learn up front, the key and tempo, then one strip per stem (fader
with its dB scale, meter, pan, mute, solo, effects) and the master's meter. The panel shows the mix it is given (in
the app, the workspace's, as announced) and keeps no copy of its own to edit: each change of a control is reported
as (before, after), and the window applies it through the workspace (with undo), which announces the mix shown
next."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

from PySide6.QtCore import QPoint, QPointF, Qt, Signal
from PySide6.QtGui import QFont, QPainter, QValidator
from PySide6.QtWidgets import (
    QComboBox,
    QDial,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QStyle,
    QStyleOptionSlider,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import MixError
from ..io.registry import Registry
from ..mixer.mix import (
    FADER_RANGE,
    PRESETS,
    SEMITONES_RANGE,
    TEMPO_RANGE,
    Mix,
    parent_of,
    preset,
    strips,
    with_preset,
)
from .audio_lane import gain_text
from .effects_editor import EffectsDialog
from .meters import Meter
from .playback import MeterBlock
from .theme import DIMMED

SCALE = 10  # fader steps per dB
MARKS = (0.0, 12.0, FADER_RANGE[0], -12.0, -24.0, 6.0, -6.0)  # the dB written beside a fader, most wanted first
# checked switches are filled, so a muted or soloed stem shows across the room: (fill, border)
SWITCH_COLOURS = {"mute": ("#f0883e", "#b3621f"), "solo": ("#56d364", "#2ea043")}


def _mark(db: float) -> str:
    return "−∞" if db <= FADER_RANGE[0] else "0" if db == 0 else f"{db:+.0f}".replace("-", "−")


def _pan_text(pan: float) -> str:
    """C, or the side and how far towards it in percent: "L 30", "R 45"."""
    amount = round(abs(pan) * 100)
    return "C" if amount == 0 else f"{'L' if pan < 0 else 'R'} {amount}"


MASTER = "master"  # the master strip's name for the effects editor (a stem cannot be called that: see Mix)


class Fader(QSlider):
    """A vertical strip fader in tenths of a dB. A double-click asks for 0 dB: `reset` carries the value from before
    the double-click, whose first click pages the fader towards the pointer."""

    reset = Signal(int)

    def __init__(self, parent=None):
        super().__init__(Qt.Orientation.Vertical, parent)
        self.setRange(int(FADER_RANGE[0] * SCALE), int(FADER_RANGE[1] * SCALE))
        self.pressed_at = self.value()

    def mousePressEvent(self, event) -> None:
        self.pressed_at = self.value()
        super().mousePressEvent(event)

    def mouseDoubleClickEvent(self, event) -> None:
        self.reset.emit(self.pressed_at)

    def handle_y(self, db: float) -> float:
        """Where the handle's centre is at ``db``, in this widget: where its scale writes ``db``."""
        option = QStyleOptionSlider()
        self.initStyleOption(option)
        groove = self.style().subControlRect(
            QStyle.ComplexControl.CC_Slider, option, QStyle.SubControl.SC_SliderGroove, self
        )
        handle = self.style().subControlRect(
            QStyle.ComplexControl.CC_Slider, option, QStyle.SubControl.SC_SliderHandle, self
        )
        span = groove.height() - handle.height()
        offset = QStyle.sliderPositionFromValue(self.minimum(), self.maximum(), int(db * SCALE), span, True)
        return groove.top() + offset + handle.height() / 2


class FaderScale(QWidget):
    """The dB marks beside a fader, level with its handle. Each has a tick; its number is written only where it does
    not crowd one written before it (a short fader shows +12, 0, −12, −24, −∞)."""

    def __init__(self, fader: Fader, parent=None):
        super().__init__(parent)
        self.fader = fader
        font = QFont(self.font())
        font.setPointSizeF(6.5)
        self.setFont(font)
        self.setFixedWidth(self.fontMetrics().horizontalAdvance("+12") + 6)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        metrics = self.fontMetrics()
        height = metrics.height()
        written: list[int] = []
        for db in MARKS:
            y = self.mapFromGlobal(self.fader.mapToGlobal(QPoint(0, round(self.fader.handle_y(db))))).y()
            painter.drawLine(self.width() - 3, y, self.width() - 1, y)
            if all(abs(y - other) > height + 1 for other in written):
                text = _mark(db)  # right-aligned, its digits centred on the tick
                painter.drawText(
                    QPointF(self.width() - 4 - metrics.horizontalAdvance(text), y + metrics.capHeight() / 2), text
                )
                written.append(y)


class Pan(QDial):
    """The pan knob, in percent from left (−100) to right (100), turned by dragging up or down (a percent a pixel) as
    in a DAW: a click never makes it jump to the pointer. A double-click asks for the centre (`reset`, as a fader)."""

    reset = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setRange(-100, 100)
        self.setFixedSize(36, 36)
        self.pressed_at = self.value()
        self.pressed_y = 0.0

    def mousePressEvent(self, event) -> None:
        self.pressed_at, self.pressed_y = self.value(), event.position().y()
        self.setSliderDown(True)

    def mouseMoveEvent(self, event) -> None:
        self.setValue(self.pressed_at + round(self.pressed_y - event.position().y()))

    def mouseReleaseEvent(self, event) -> None:
        self.setSliderDown(False)

    def mouseDoubleClickEvent(self, event) -> None:
        self.reset.emit(self.pressed_at)


class KeyBox(QSpinBox):
    """The key in whole semitones, signed: "+2 st", "0 st", "−3 st"."""

    def textFromValue(self, value: int) -> str:
        return f"{value:+d}".replace("-", "−") if value else "0"

    def valueFromText(self, text: str) -> int:
        return int(text.replace("−", "-").replace("+", "") or 0)

    def validate(self, text: str, pos: int):
        body = text.removesuffix(self.suffix()).replace("−", "-").replace("+", "").strip()
        if body in ("", "-"):
            return QValidator.State.Intermediate, text, pos
        try:
            ok = self.minimum() <= int(body) <= self.maximum()
        except ValueError:
            return QValidator.State.Invalid, text, pos
        return (QValidator.State.Acceptable if ok else QValidator.State.Invalid), text, pos


class Strip(QWidget):
    """One stem: its fader (with a dB scale and its value), meter, pan (with its value), mute, solo and effects."""

    def __init__(self, panel: MixerPanel, name: str):
        super().__init__(panel)
        self.panel, self.name = panel, name
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        group = parent_of(name)
        # a split stem's child says whose it is ("› lead" after the vocals strip, its group)
        self.title = QLabel(f"› {name.split('/')[-1]}" if group else name)
        self.title.setToolTip(f"{name.split('/')[-1]}, split from {group}" if group else "")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.value = QLabel("0.0 dB")
        self.value.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.value.setMinimumWidth(64)
        self.fader = Fader()
        self.fader.setMinimumHeight(80)
        self.fader.setToolTip(f"{name} level (double-click: 0 dB)")
        self.scale = FaderScale(self.fader)
        self.meter = Meter(name)
        self.pan = Pan()
        self.pan.setToolTip(f"{name} pan (double-click: centre)")
        self.pan_value = QLabel("C")
        self.pan_value.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.mute, self.solo = QPushButton("M"), QPushButton("S")
        for button, tip in ((self.mute, "mute"), (self.solo, "solo")):
            button.setCheckable(True)
            button.setFixedWidth(27)
            button.setToolTip(f"{name} {tip}")
            fill, border = SWITCH_COLOURS[tip]
            button.setStyleSheet(
                f"QPushButton:checked {{ background-color: {fill}; color: #16181c; border: 1px solid {border};"
                " border-radius: 3px; font-weight: bold; }"
            )
        self.fx = QPushButton("FX")
        self.fx.setFixedWidth(58)
        self.fx.setToolTip(f"effects on {name}")
        controls = QVBoxLayout()
        controls.setSpacing(2)
        controls.addWidget(self.pan, alignment=Qt.AlignmentFlag.AlignHCenter)
        controls.addWidget(self.pan_value)
        buttons = QHBoxLayout()
        buttons.addWidget(self.mute)
        buttons.addWidget(self.solo)
        controls.addLayout(buttons)
        controls.addWidget(self.fx)
        controls.addStretch(1)
        body = QHBoxLayout()
        body.setSpacing(2)
        body.addWidget(self.scale)
        body.addWidget(self.fader)
        body.addWidget(self.meter)
        body.addSpacing(2)
        body.addLayout(controls)
        layout.addWidget(self.title)
        layout.addWidget(self.value)
        layout.addLayout(body, 1)
        self.fader.valueChanged.connect(lambda v: self.panel.edit(f"{name}/gain_db", v / SCALE))
        self.fader.sliderPressed.connect(lambda: self.panel.touched(f"{name}/gain_db"))
        self.fader.reset.connect(lambda was: self.panel.reset(f"{name}/gain_db", 0.0, was / SCALE))
        self.pan.valueChanged.connect(lambda v: self.panel.edit(f"{name}/pan", v / 100))
        self.pan.sliderPressed.connect(lambda: self.panel.touched(f"{name}/pan"))
        self.pan.reset.connect(lambda was: self.panel.reset(f"{name}/pan", 0.0, was / 100))
        self.mute.toggled.connect(lambda on: self.panel.edit(f"{name}/mute", float(on)))
        self.solo.toggled.connect(lambda on: self.panel.edit(f"{name}/solo", float(on)))
        self.fx.clicked.connect(lambda: self.panel.edit_effects(name))

    def show_state(self, mix: Mix) -> None:
        channel = mix.channels.get(self.name)
        gain = channel.gain_db if channel else 0.0
        pan = channel.pan if channel else 0.0
        for widget, value in (
            (self.fader, int(round(max(FADER_RANGE[0], min(FADER_RANGE[1], gain)) * SCALE))),
            (self.pan, int(round(pan * 100))),
            (self.mute, bool(channel and channel.mute)),
            (self.solo, bool(channel and channel.solo)),
        ):
            widget.blockSignals(True)
            if isinstance(widget, QPushButton):
                widget.setChecked(bool(value))
            else:
                widget.setValue(value)
            widget.blockSignals(False)
        self.value.setText(gain_text(gain))
        self.pan_value.setText(_pan_text(pan))
        count = len(channel.effects) if channel else 0
        self.fx.setText(f"FX ({count})" if count else "FX")
        heard = mix.heard(self.name)  # a muted stem, or one left out by a solo or its muted group, is greyed
        self.title.setStyleSheet("font-weight: bold;" + ("" if heard else f" color: {DIMMED};"))
        self.meter.set_dimmed(not heard)


class MixerPanel(QWidget):
    # (description, control, mix before, mix after)
    changed = Signal(str, str, object, object)
    control_touched = Signal(str)

    def __init__(self, parent=None, registry: Registry | None = None):
        super().__init__(parent)
        self.registry = registry  # the effect kinds its strips offer
        self.mix = Mix()
        self.stems: list[str] = []
        self.strips: dict[str, Strip] = {}  # by strip name: each stem's, a split stem's group and children
        self.folds: set[str] = set()  # the split stems whose children's strips are hidden
        self._shown_at = time.monotonic()  # when the meters last moved
        outer = QVBoxLayout(self)
        top = QHBoxLayout()  # one row, so the strips get the height
        self.vocal_row = vocal = QWidget()
        row = QHBoxLayout(vocal)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Vocal level"))
        self.vocal = QSlider(Qt.Orientation.Horizontal)
        self.vocal.setRange(int(FADER_RANGE[0] * SCALE), int(FADER_RANGE[1] * SCALE))
        self.vocal.setToolTip("vocal level")
        self.vocal_value = QLabel("0.0 dB")
        self.vocal_value.setMinimumWidth(56)
        row.addWidget(self.vocal, 1)
        row.addWidget(self.vocal_value)
        self.vocal.valueChanged.connect(lambda v: self.edit("vocals/gain_db", v / SCALE))
        self.vocal.sliderPressed.connect(lambda: self.touched("vocals/gain_db"))
        top.addWidget(vocal, 1)
        self.preset = QComboBox()
        self.preset.addItems(PRESETS)
        apply = QPushButton("Apply preset")
        apply.setObjectName("apply-preset")
        apply.clicked.connect(self.apply_preset)
        self.learn = QPushButton("MIDI learn")
        self.learn.setCheckable(True)
        self.learn.setToolTip("Move a knob on your controller, then the control it should move")
        top.addWidget(self.preset)
        top.addWidget(apply)
        top.addWidget(self.learn)
        outer.addLayout(top)
        # what a preset rests on when it is weak: the karaoke-backing preset on a lead/backing split that does worse
        # than an equal split on songs its model never heard
        self.cautions: dict[str, str] = {}
        self.preset_note = QLabel()
        self.preset_note.setObjectName("preset-note")
        self.preset_note.setWordWrap(True)
        self.preset_note.setVisible(False)
        outer.addWidget(self.preset_note)
        self.preset.currentTextChanged.connect(self._show_preset_note)
        # the key and tempo the whole mix plays at (karaoke in the singer's key, practice at a slower tempo)
        keys = QHBoxLayout()
        keys.addWidget(QLabel("Key"))
        self.key = KeyBox()
        self.key.setRange(int(SEMITONES_RANGE[0]), int(SEMITONES_RANGE[1]))
        self.key.setSuffix(" st")
        self.key.setToolTip("Key: semitones up or down; the tempo stays")
        self.key.valueChanged.connect(lambda v: self.edit("master/semitones", float(v)))
        keys.addWidget(self.key)
        keys.addSpacing(12)
        keys.addWidget(QLabel("Tempo"))
        self.tempo = QSpinBox()
        self.tempo.setRange(round(TEMPO_RANGE[0] * 100), round(TEMPO_RANGE[1] * 100))
        self.tempo.setSuffix(" %")
        self.tempo.setToolTip("Tempo in percent of the song's; the key stays")
        self.tempo.setValue(100)  # the song's own tempo until a mix is shown (not the range's lowest)
        self.tempo.valueChanged.connect(lambda v: self.edit("master/tempo", v / 100))
        keys.addWidget(self.tempo)
        self.key_reset = QPushButton("Original key and tempo")
        self.key_reset.setToolTip("Back to the song's own key and tempo")
        self.key_reset.clicked.connect(self.reset_key_tempo)
        keys.addWidget(self.key_reset)
        keys.addStretch(1)
        outer.addLayout(keys)
        self.area = QScrollArea()
        self.area.setWidgetResizable(True)
        self.strips_widget = QWidget()
        self.strips_layout = QHBoxLayout(self.strips_widget)
        self.strips_layout.setAlignment(Qt.AlignmentFlag.AlignLeft)
        self.area.setWidget(self.strips_widget)
        master = QVBoxLayout()  # beside the scrolling strips, always in view, level with their meters
        edge = self.area.frameWidth() + self.strips_layout.contentsMargins().top() + 2
        master.setContentsMargins(0, edge, 0, edge)
        master.setSpacing(2)
        title = QLabel("Master")
        title.setStyleSheet("font-weight: bold;")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.master_value = QLabel("0.0 dB")
        self.master_value.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.master_fader = Fader()
        self.master_fader.setMinimumHeight(80)
        self.master_fader.setToolTip("master level (double-click: 0 dB)")
        self.master = Meter("master")
        self.master_fx = QPushButton("FX")
        self.master_fx.setFixedWidth(58)
        self.master_fx.setToolTip("effects on the master (after the stems are summed)")
        body = QHBoxLayout()
        body.setSpacing(2)
        body.addWidget(FaderScale(self.master_fader))
        body.addWidget(self.master_fader)
        body.addWidget(self.master)
        master.addWidget(title)
        master.addWidget(self.master_value)
        master.addLayout(body, 1)
        master.addWidget(self.master_fx, alignment=Qt.AlignmentFlag.AlignHCenter)
        self.master_fader.valueChanged.connect(lambda v: self.edit("master/gain_db", v / SCALE))
        self.master_fader.sliderPressed.connect(lambda: self.touched("master/gain_db"))
        self.master_fader.reset.connect(lambda was: self.reset("master/gain_db", 0.0, was / SCALE))
        self.master_fx.clicked.connect(lambda: self.edit_effects(MASTER))
        strips = QHBoxLayout()
        strips.addWidget(self.area, 1)
        strips.addLayout(master)
        outer.addLayout(strips, 1)
        self.empty = QLabel("Separate a song to mix its stems.")
        self.empty.setStyleSheet("color: #9aa3ad;")
        self.strips_layout.addWidget(self.empty)
        self.setEnabled(False)

    def set_stems(self, stems: list[str], mix: Mix, cautions: dict[str, str] | None = None) -> None:
        """Strips for ``stems`` (what plays): a split stem's children ("vocals/lead") each have one, after their
        group's strip ("vocals"). ``cautions``: split stem → what its split model's card warns of
        (`tasks.split_cautions`), said where a preset uses that split."""
        self.cautions = dict(cautions or {})
        if stems != self.stems:
            for strip in self.strips.values():
                strip.deleteLater()
            self.strips = {}
            self.empty.setVisible(not stems)
            for name in strips(stems):
                self.strips[name] = Strip(self, name)
                self.strips_layout.addWidget(self.strips[name])
                self.strips[name].setVisible(parent_of(name) not in self.folds)
            self.stems = list(stems)
        self.setEnabled(bool(stems))
        self.vocal_row.setEnabled("vocals" in strips(stems))
        self._offer_presets(stems)
        self._show_preset_note()
        self.show_mix(mix)

    def _show_preset_note(self) -> None:
        """Under the presets, while karaoke-backing is chosen on a lead/backing split whose model warns of itself,
        that warning: the backing vocals it keeps are only as good as the split."""
        caution = self.cautions.get("vocals")
        shown = bool(caution) and self.preset.currentText() == "karaoke-backing" and "vocals/lead" in self.stems
        self.preset_note.setText(f"karaoke-backing keeps the backing vocals of the vocals' split. Caution: {caution}")
        self.preset_note.setVisible(shown)

    def _offer_presets(self, stems: list[str]) -> None:
        """Only the presets these stems can take are offered; the others say why (karaoke-backing wants the vocals
        split into lead and backing)."""
        model = self.preset.model()
        for index, name in enumerate(PRESETS):
            try:
                preset(name, stems)
                why = ""
            except MixError as error:
                why = str(error)
            item = model.item(index)  # type: ignore[attr-defined]  # a combo box's model is a QStandardItemModel
            item.setEnabled(not why)
            item.setToolTip(why)
        if not model.item(self.preset.currentIndex()).isEnabled():  # type: ignore[attr-defined]
            first = next((i for i in range(len(PRESETS)) if model.item(i).isEnabled()), 0)  # type: ignore[attr-defined]
            self.preset.setCurrentIndex(first)

    def fold(self, group: str, folded: bool) -> None:
        """Hide the strips of a split stem's children (its lane folded them away), or show them again."""
        if folded:
            self.folds.add(group)
        else:
            self.folds.discard(group)
        for name, strip in self.strips.items():
            strip.setVisible(parent_of(name) not in self.folds)

    def show_levels(self, blocks: list[MeterBlock] | None) -> None:
        """Move the meters by the blocks heard since the last call; None while nothing plays, so they fall back."""
        now = time.monotonic()
        elapsed, self._shown_at = now - self._shown_at, now
        if blocks is None:
            for meter in [self.master, *(strip.meter for strip in self.strips.values())]:
                meter.fall(elapsed)
        for seconds, stems, master in blocks or []:
            for name, strip in self.strips.items():
                strip.meter.feed(*stems.get(name, (0.0, 0.0)), seconds)
            self.master.feed(*master, seconds)

    def show_mix(self, mix: Mix) -> None:
        """Show ``mix``: the panel keeps it to read (never to change) until the next one it is shown."""
        self.mix = mix
        for strip in self.strips.values():
            strip.show_state(mix)
        for widget, value in (
            (self.master_fader, int(round(max(FADER_RANGE[0], min(FADER_RANGE[1], mix.master_gain_db)) * SCALE))),
            (self.vocal, int(round(max(FADER_RANGE[0], mix.vocal_db) * SCALE))),
            (self.key, round(mix.semitones)),
            (self.tempo, round(mix.tempo * 100)),
        ):
            widget.blockSignals(True)
            widget.setValue(value)
            widget.blockSignals(False)
        self.vocal_value.setText(gain_text(mix.vocal_db))
        self.master_value.setText(gain_text(mix.master_gain_db))
        count = len(mix.master)
        self.master_fx.setText(f"FX ({count})" if count else "FX")
        self.key_reset.setEnabled(mix.changes_key_or_tempo)

    def touched(self, control: str) -> None:
        self.control_touched.emit(control)

    def _report(self, text: str, control: str, change: Callable[[Mix], None], before: Mix | None = None) -> None:
        """Report ``change`` made to a copy of the mix shown, from ``before`` (default: the mix shown)."""
        after = copy.deepcopy(self.mix)
        change(after)
        self.changed.emit(text, control, copy.deepcopy(self.mix if before is None else before), after)

    def edit(self, control: str, value: float) -> None:
        self._report(
            f"Set {control.replace('/', ' ')} to {value:g}", control, lambda mix: mix.set_control(control, value)
        )

    def reset(self, control: str, value: float, was: float) -> None:
        """A double-click sets ``control`` back to ``value``, as an undo step of its own that returns it to ``was``:
        where it was before the double-click's first click moved it."""
        before = copy.deepcopy(self.mix)
        before.set_control(control, was)
        self._report(
            f"Reset {control.replace('/', ' ')}",
            f"{control}/reset",
            lambda mix: mix.set_control(control, value),
            before,
        )

    def reset_key_tempo(self) -> None:
        """The song's own key and tempo again, as one undo step."""

        def original(mix: Mix) -> None:
            mix.semitones, mix.tempo = 0.0, 1.0

        self._report("Original key and tempo", "key-tempo/reset", original)

    def edit_effects(self, name: str) -> None:
        """The effects editor for a stem's insert chain, or the master's (name MASTER)."""
        channel = self.mix.channels.get(name)
        effects = self.mix.master if name == MASTER else channel.effects if channel else []
        dialog = EffectsDialog(name, effects, self, self.registry)
        dialog.setModal(True)

        def accepted() -> None:
            chain = [e.validated() for e in dialog.effects]

            def change(mix: Mix) -> None:
                if name == MASTER:
                    mix.master = chain
                else:
                    mix.channel(name).effects = chain

            self._report(f"Edit effects on {name}", f"{name}/fx", change)

        dialog.accepted.connect(accepted)
        dialog.open()
        self.effects_dialog = dialog

    def apply_preset(self) -> None:
        after = with_preset(self.mix, self.preset.currentText(), self.stems)  # levels only: effects stay
        self.changed.emit(f"Apply preset {self.preset.currentText()}", "preset", copy.deepcopy(self.mix), after)
