"""Split models in the app: they split one stem, so the Model box (what separates a song) and the Trainer's
"Start from" leave them out, and the Models dock lists them with the stem they split. A stem's lane splits it with
one: its children's lanes unfold under it, each with its mixer strip, and presets and the bounce use them."""

# ruff: noqa: F811 - tests take the `window` fixture imported from test_app by name
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from helpers import screenshot_path, song, tiny_split_model
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QComboBox, QMenu, QPushButton
from test_app import window  # noqa: F401 - the app's own window fixture

from stemdesk.app.docks import fill_model_box
from stemdesk.app.models_panel import ModelsPanel
from stemdesk.app.timeline import HEADER
from stemdesk.app.trainer_panel import TrainerPanel
from stemdesk.io.stems import CERTIFICATE
from stemdesk.mixer.mix import PRESETS


def test_split_models_are_listed_as_splits_and_never_offered_to_separate_a_song(qtbot):
    tiny_split_model()
    box = QComboBox()
    qtbot.addWidget(box)
    fill_model_box(box, None, "stemdesk-4stem")
    offered = [box.itemText(i) for i in range(box.count())]
    assert "stemdesk-4stem" in offered and "tiny-split" not in offered and "stemdesk-drumkit" not in offered
    panel = ModelsPanel()
    qtbot.addWidget(panel)
    panel.refresh()
    rows = [panel.list.item(i).text() for i in range(panel.list.count())]
    assert "tiny-split  · splits vocals into lead, backing" in rows
    assert "stemdesk-drumkit  · splits drums into kick, snare, cymbals, toms, other" in rows
    trainer = TrainerPanel()
    qtbot.addWidget(trainer)
    trainer.refresh_bases()
    bases = [trainer.base.itemText(i) for i in range(trainer.base.count())]
    assert "stemdesk-4stem" in bases and "tiny-split" not in bases


def read(path) -> np.ndarray:
    return sf.read(str(path), dtype="float64", always_2d=True)[0].T


def lane_menu(qtbot, window, name: str) -> QMenu:
    """Right-click a lane's header, as a user does, and take the menu that pops up."""
    canvas = window.timeline.canvas
    shown: list[QMenu] = []
    canvas.lane_menu.connect(lambda menu, lane: shown.append(menu))
    at = QPoint(HEADER // 2, canvas.lane_top(name) + canvas.lane_height() // 2)
    qtbot.mouseClick(canvas, Qt.MouseButton.RightButton, pos=at)
    assert shown, f"no menu on the {name} lane"
    shown[-1].hide()
    return shown[-1]


CAUTION = ("worse than an equal split on unheard songs", "On songs it never heard it loses 2 dB to halving.")


def test_a_stem_split_in_the_app_unfolds_into_lanes_and_strips_that_play_its_children(qtbot, window, tmp_path):
    model = tiny_split_model(caution=CAUTION)
    path = tmp_path / "song.wav"
    sf.write(str(path), song(6.0), 44100, subtype="PCM_16")
    assert window.open_song(path)
    with qtbot.waitSignal(window.separation_finished, timeout=120_000):
        window.separate()
    mixer, canvas = window.mixer, window.timeline.canvas
    index = PRESETS.index("karaoke-backing")
    item = mixer.preset.model().item(index)
    assert not item.isEnabled() and "split into lead and backing" in item.toolTip()  # nothing to keep yet
    assert "No split model splits bass" in " ".join(a.text() for a in lane_menu(qtbot, window, "bass").actions())
    # a stem lane's menu offers the split models of that stem; choosing one splits it in the stems folder
    drums = next(a.menu() for a in lane_menu(qtbot, window, "drums").actions() if a.menu() is not None)
    assert drums.title() == "Split drums with" and [a.text() for a in drums.actions()] == ["stemdesk-drumkit"]
    submenu = next(a.menu() for a in lane_menu(qtbot, window, "vocals").actions() if a.menu() is not None)
    offered = {a.text().split(" (")[0]: a for a in submenu.actions()}
    assert submenu.title() == "Split vocals with" and set(offered) == {"stemdesk-vocals-leadback", model}
    # a split model that does worse than an equal split on unheard songs says so where it is chosen
    assert offered[model].text() == f"{model} ({CAUTION[0]})" and offered[model].toolTip() == CAUTION[1]
    leadback = offered["stemdesk-vocals-leadback"]
    assert "unheard songs" in leadback.text() and "leave one song out" in leadback.toolTip()
    offered[model].trigger()
    qtbot.waitUntil(lambda: "vocals/lead" in window.stems, timeout=60_000)
    folder = window.workspace.stems_dir
    assert window.stems["vocals/lead"] == folder / "vocals" / "lead.wav"
    leaves = ["vocals/lead", "vocals/backing", "drums", "bass", "other"]
    assert list(window.stems) == leaves
    # the lanes: the vocals lane, its children's under it, each drawn from its file
    names = [lane.name for lane in canvas.lanes]
    assert names == ["mix", "vocals", *leaves]
    qtbot.waitUntil(lambda: not any(lane.busy for lane in canvas.lanes), timeout=20_000)
    frames = sf.info(str(path)).frames
    assert all(window.timeline.lane(n).peaks.frames == frames for n in names)
    # the strips: the vocals group's, then one per child, then the other stems'
    assert list(mixer.strips) == ["vocals", *leaves] and mixer.strips["vocals/lead"].title.text() == "› lead"
    # the tree nulls, as the certificate and the status bar say
    cert = json.loads((folder / CERTIFICATE).read_text())
    assert cert["splits"]["vocals"]["model"]["id"] == model and cert["tree_null"]["bit_exact"]
    assert "bit-exact" in window.null_label.text()
    # checked again (as when another program writes the files): the tree's shares, the group's its children's sum
    with qtbot.waitSignal(window.job_finished, timeout=60_000):
        window.check_stems()
    marks = canvas.stem_marks
    assert all(marks[name].share is not None for name in leaves)
    assert marks["vocals"].share == pytest.approx(marks["vocals/lead"].share + marks["vocals/backing"].share)
    files = {name: read(p) for name, p in window.stems.items()}
    assert np.array_equal(files["vocals/lead"] + files["vocals/backing"], read(folder / "vocals.wav"))
    # karaoke keeping the backing vocals: what the player plays is everything but the lead
    assert item.isEnabled()
    assert not mixer.preset_note.isVisibleTo(mixer)
    mixer.preset.setCurrentIndex(index)
    # the preset that keeps the backing vocals says what the split it rests on is worth
    assert mixer.preset_note.isVisibleTo(mixer) and CAUTION[1] in mixer.preset_note.text()
    qtbot.mouseClick(mixer.findChild(QPushButton, "apply-preset"), Qt.MouseButton.LeftButton)
    assert window.project.mix.channels["vocals/lead"].mute and not window.project.mix.heard("vocals/lead")
    source = window.player.source
    source.seek(0)
    played = source.read(2 * 44100)
    kept = sum(files[n] for n in leaves if n != "vocals/lead")[:, : played.shape[1]]
    assert np.abs(played[:, 4096:] - kept[:, 4096:]).max() < 1e-4
    # the group's fader moves both children: -6.02 dB on vocals halves the backing vocals that are left
    mixer.strips["vocals"].fader.setValue(-60)
    source.seek(0)
    played = source.read(2 * 44100)
    kept = kept - files["vocals/backing"][:, : played.shape[1]] * (1 - 10 ** (-6 / 20))
    assert np.abs(played[:, 4096:] - kept[:, 4096:]).max() < 1e-4
    window.undo.undo()
    # the bounce renders what plays: exactly the stems but the lead, at 24 bits
    bounced = tmp_path / "karaoke.wav"
    with qtbot.waitSignal(window.job_finished, timeout=60_000):
        window.bounce(bounced)
    assert np.abs(read(bounced) - sum(files[n] for n in leaves if n != "vocals/lead")).max() < 2**-23
    # folding the vocals lane hides its children's lanes and strips; unfolding shows them again
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=canvas.fold_rect("vocals").center().toPoint())
    assert [lane.name for lane in canvas.shown()] == ["mix", "vocals", "drums", "bass", "other"]
    assert not mixer.strips["vocals/lead"].isVisible() and mixer.strips["vocals"].isVisible()
    window.grab().save(screenshot_path("app-split-folded.png"))
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=canvas.fold_rect("vocals").center().toPoint())
    assert [lane.name for lane in canvas.shown()] == names and mixer.strips["vocals/lead"].isVisible()
    window.grab().save(screenshot_path("app-split.png"))
    # saved and opened again, the project plays the children with their mix
    saved = window.save_project(path=tmp_path / "song.stemdesk")
    assert window.open_project(saved)
    assert list(window.stems) == leaves and list(window.mixer.strips) == ["vocals", *leaves]
    assert window.project.mix.channels["vocals/lead"].mute
