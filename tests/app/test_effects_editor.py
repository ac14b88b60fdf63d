"""The effects editor a strip's FX button opens, judged by what it does to the sound: the chain runs in the order
shown after a move, a slider sets its parameter in real units on a log scale for frequencies, a long chain scrolls
inside a dialog that fits the screen, and a VST3 plugin is scanned, added with its parameters and heard."""

# ruff: noqa: F811 - tests take the `window` fixture imported from test_app by name
from __future__ import annotations

import math

import numpy as np
import pedalboard
import pytest
import soundfile as sf

pytest.importorskip("pytestqt")
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QDialogButtonBox
from test_app import NAMES, real_song, separate, wheel, window  # noqa: F401 (window: the app's own fixture)

from stemdesk.app.effects_editor import EffectsDialog
from stemdesk.mixer.effects import Effect
from stemdesk.mixer.mix import Mix
from stemdesk.mixer.render import Renderer

RATE = 44100


@pytest.fixture
def dialog(qtbot):
    editor = EffectsDialog("vocals", [])
    qtbot.addWidget(editor)
    editor.show()
    qtbot.waitExposed(editor)
    return editor


def add(qtbot, dialog: EffectsDialog, kind: str) -> None:
    dialog.kind.setCurrentIndex(dialog.kind.findData(kind))
    qtbot.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)


def ok(qtbot, dialog: EffectsDialog) -> None:
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)


def noise(seconds: float = 1.0) -> np.ndarray:
    """(1 stem, 2 channels, n) of white noise: every frequency present."""
    return (np.random.default_rng(0).standard_normal((1, 2, int(seconds * RATE))) * 0.1).astype(np.float32)


def render(effects: list[Effect], stems: np.ndarray) -> np.ndarray:
    mix = Mix()
    mix.channel("vocals").effects = [e.validated() for e in effects]
    return Renderer(mix, ["vocals"], RATE, 2).process(stems)


def presence(audio: np.ndarray) -> float:
    """The energy from 2 to 8 kHz, where a high shelf's corner moves."""
    spectrum = np.abs(np.fft.rfft(audio, axis=-1)) ** 2
    hz = np.fft.rfftfreq(audio.shape[-1], 1 / RATE)
    return float(spectrum[:, (hz > 2000) & (hz < 8000)].sum())


def test_moving_an_effect_up_makes_it_process_first(qtbot, window, tmp_path):
    """Through the real window: a gain and a limiter added from the vocals strip's FX button, the limiter moved up;
    what the player renders is the vocals limited, then raised, not raised, then limited."""
    window.open_song(real_song(tmp_path, seconds=4.0))
    separate(qtbot, window)
    qtbot.mouseClick(window.mixer.strips["vocals"].fx, Qt.MouseButton.LeftButton)
    dialog = window.mixer.effects_dialog
    assert dialog.isVisible() and isinstance(dialog, EffectsDialog)
    add(qtbot, dialog, "gain")
    add(qtbot, dialog, "limiter")
    dialog.boxes[0].controls["gain_db"].spin.setValue(18.0)
    dialog.boxes[1].controls["threshold_db"].spin.setValue(-20.0)
    assert not dialog.boxes[0].up.isEnabled() and not dialog.boxes[1].down.isEnabled()
    qtbot.mouseClick(dialog.boxes[1].up, Qt.MouseButton.LeftButton)
    assert [box.title() for box in dialog.boxes] == ["1. Limiter", "2. Gain"]
    ok(qtbot, dialog)
    assert [e.kind for e in window.project.mix.channels["vocals"].effects] == ["limiter", "gain"]
    n = 2 * RATE
    stems = {
        name: sf.read(str(path), dtype="float32", always_2d=True)[0].T[:, :n] for name, path in window.stems.items()
    }
    source = window.player.source
    source.seek(0)
    played = source.read(n)
    others = sum(stems[name] for name in NAMES if name != "vocals")
    limiter, gain = pedalboard.Limiter(threshold_db=-20.0, release_ms=100.0), pedalboard.Gain(gain_db=18.0)
    limited_first = pedalboard.Pedalboard([limiter, gain]).process(stems["vocals"], RATE)
    raised_first = pedalboard.Pedalboard([gain, limiter]).process(stems["vocals"], RATE, reset=True)
    assert np.abs(played - (others + limited_first)).max() < 1e-4
    assert np.abs(played - (others + raised_first)).max() > 0.1  # the order is audible


def test_a_frequency_slider_moves_in_equal_ratios_and_the_sound_follows(qtbot, dialog):
    """A high shelf's 1–20 kHz slider: its middle is the geometric mean, 4472 Hz, and the shelf cuts there; further
    left cuts more of the highs, further right less; a double-click brings back the default 8 kHz."""
    add(qtbot, dialog, "high_shelf")
    controls = dialog.boxes[0].controls
    controls["gain_db"].spin.setValue(-24.0)
    frequency = controls["cutoff_hz"]
    stems = noise()
    energy = {}
    for position in (0, frequency.slider.maximum() // 2, frequency.slider.maximum()):
        frequency.slider.setValue(position)
        energy[position] = presence(render(dialog.effects, stems))
    assert frequency.spin.text() == "20000.0 Hz"
    low, middle, high = energy.values()
    assert low < 0.1 * middle and middle < 0.5 * high
    frequency.slider.setValue(frequency.slider.maximum() // 2)
    assert frequency.spin.text() == "4472.1 Hz"
    shelf = pedalboard.HighShelfFilter(cutoff_frequency_hz=math.sqrt(1000 * 20000), gain_db=-24.0, q=0.707)
    expected = shelf.process(stems[0], RATE)
    assert np.abs(render(dialog.effects, stems) - expected).max() < 1e-3 * np.abs(expected).max()
    qtbot.mouseDClick(frequency.slider, Qt.MouseButton.LeftButton)
    assert frequency.spin.text() == "8000.0 Hz"
    shelf.cutoff_frequency_hz = 8000.0
    assert np.abs(render(dialog.effects, stems) - shelf.process(stems[0], RATE, reset=True)).max() < 1e-5
    frequency.spin.setValue(2000.0)  # typed: the slider follows on the same log scale
    assert frequency.slider.value() == round(1000 * math.log(2) / math.log(20))


def test_a_long_chain_scrolls_inside_a_dialog_that_fits_the_screen(qtbot, dialog):
    for _ in range(8):
        add(qtbot, dialog, "compressor")
    area, bar = dialog.area, dialog.area.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0)
    assert dialog.frameGeometry().height() <= dialog.screen().availableGeometry().height()

    def shown(box) -> bool:
        top = box.mapTo(area.viewport(), QPoint(0, 0)).y()
        return top >= 0 and top + box.height() <= area.viewport().height()

    qtbot.waitUntil(lambda: shown(dialog.boxes[-1]))  # the effect just added is scrolled into view
    bar.setValue(0)
    assert shown(dialog.boxes[0]) and not shown(dialog.boxes[-1])
    # the wheel over a slider scrolls the chain; the slider keeps its value
    slider = dialog.boxes[0].controls["threshold_db"].slider
    before = slider.value()
    wheel(slider, -120)
    assert bar.value() > 0 and slider.value() == before and dialog.effects[0].params["threshold_db"] == -18.0


def test_a_vst3_plugin_is_added_with_its_parameters_and_heard(qtbot, dialog, gain_plugin):
    assert dialog.add_vst3(gain_plugin)
    box = dialog.boxes[0]
    assert box.title() == "1. StemDesk Test Gain (VST3)"
    gain = box.controls["gain_db"]
    assert gain.label.text() == "Gain" and gain.spin.suffix() == " dB"
    assert (gain.spin.minimum(), gain.spin.maximum()) == (-60.0, 12.0)
    gain.spin.setValue(-6.0)  # pedalboard sets a VST3 parameter to 1/1000 of its range: -6 dB is exact here
    invert = box.controls["invert"]
    invert.slider.setValue(invert.slider.maximum())
    stems = noise(0.5)
    qtbot.mouseClick(box.bypass, Qt.MouseButton.LeftButton)
    assert np.abs(render(dialog.effects, stems) - stems[0]).max() < 1e-6
    qtbot.mouseClick(box.bypass, Qt.MouseButton.LeftButton)
    ok(qtbot, dialog)
    effect = dialog.effects[0]
    assert (effect.kind, effect.path) == ("vst3", str(gain_plugin))
    expected = -stems[0] * 10 ** (-6 / 20)
    assert np.abs(render(dialog.effects, stems) - expected).max() < 1e-3 * np.abs(expected).max()


def test_a_folder_that_is_no_plugin_shows_why_and_adds_nothing(qtbot, dialog, tmp_path):
    add(qtbot, dialog, "gain")
    folder = tmp_path / "notes.vst3"
    folder.mkdir()
    (folder / "readme.txt").write_text("not a plugin")
    assert not dialog.add_vst3(folder)
    assert dialog.error.isVisible() and "it was not loaded" in dialog.error.text()
    assert [e.kind for e in dialog.effects] == ["gain"] and len(dialog.boxes) == 1
    add(qtbot, dialog, "delay")
    assert not dialog.error.isVisible()


def test_a_crashing_plugin_is_refused_and_the_editor_stays(qtbot, dialog, crashing_plugin):
    assert not dialog.add_vst3(crashing_plugin)
    assert "crashed while loading" in dialog.error.text() and dialog.effects == []
    # a chain naming a plugin that is gone opens with the effect kept and the reason shown in its box
    gone = EffectsDialog("vocals", [Effect("vst3", {"gain_db": -6.0}, path=str(crashing_plugin.parent / "x.vst3"))])
    qtbot.addWidget(gone)
    assert "does not exist" in gone.boxes[0].note.text() and gone.effects[0].params == {"gain_db": -6.0}


def test_the_master_strip_has_a_fader_and_effects_that_the_player_renders(qtbot, window, tmp_path):
    """The mix always had a master gain and chain; the mixer showed only the master's meter. Its fader (−6 dB from
    the keyboard) and its FX button (a limiter) now set them, and the player renders the sum through both."""
    from PySide6.QtTest import QTest

    from stemdesk.app.mixer_panel import SCALE

    window.open_song(real_song(tmp_path, seconds=4.0))
    separate(qtbot, window)
    fader = window.mixer.master_fader
    fader.setFocus()
    steps = round(6.0 * SCALE / fader.singleStep())
    for _ in range(steps):
        QTest.keyClick(fader, Qt.Key.Key_Down)
    assert window.project.mix.master_gain_db == pytest.approx(-6.0)
    assert window.mixer.master_value.text().startswith("−6.0") or window.mixer.master_value.text().startswith("-6.0")
    qtbot.mouseClick(window.mixer.master_fx, Qt.MouseButton.LeftButton)
    dialog = window.mixer.effects_dialog
    add(qtbot, dialog, "limiter")
    dialog.boxes[0].controls["threshold_db"].spin.setValue(-12.0)
    ok(qtbot, dialog)
    assert [e.kind for e in window.project.mix.master] == ["limiter"] and window.mixer.master_fx.text() == "FX (1)"
    n = 2 * RATE
    total = sum(sf.read(str(p), dtype="float32", always_2d=True)[0].T[:, :n] for p in window.stems.values())
    source = window.player.source
    source.seek(0)
    played = source.read(n)
    limiter = pedalboard.Limiter(threshold_db=-12.0, release_ms=100.0)
    meant = limiter.process(total.astype(np.float32), RATE) * 10 ** (-6 / 20)
    assert np.abs(played - meant).max() < 1e-3, np.abs(played - meant).max()
    window.undo.undo()  # the chain, then the fader, as two undo steps
    window.undo.undo()
    assert window.project.mix.master == [] and window.project.mix.master_gain_db == 0.0
