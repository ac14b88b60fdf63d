"""MIDI in the app: a stem lane's menu writes the stems' MIDI as a job, each lane then shows its stem's notes over
its waveform as a small piano roll, where they were played and at their pitch, and the app's Export carries them
into the DAW session and the exported stems."""

# ruff: noqa: F811 - tests take the `window` fixture imported from test_app by name
from __future__ import annotations

import numpy as np
import soundfile as sf
from helpers import rpp_midi, song
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QMenu
from test_app import window  # noqa: F401 - the app's own window fixture

from stemdesk.app.timeline import HEADER
from stemdesk.transcribe.pitched import Note
from stemdesk.transcribe.smf import Part, Timing, write_smf


def menu_of(qtbot, window, name: str) -> QMenu:
    canvas = window.timeline.canvas
    shown: list[QMenu] = []
    canvas.lane_menu.connect(lambda menu, lane: shown.append(menu))
    qtbot.mouseClick(
        canvas, Qt.MouseButton.RightButton, pos=QPoint(HEADER // 2, canvas.lane_top(name) + canvas.lane_height() // 2)
    )
    shown[-1].hide()
    return shown[-1]


def brightness(window, x: float, y: float) -> int:
    colour = window.timeline.canvas.grab().toImage().pixelColor(int(x), int(y))
    return colour.red() + colour.green() + colour.blue()


def test_the_lanes_show_their_stems_notes_and_the_menu_writes_them(qtbot, window, tmp_path, basic_pitch):
    path = tmp_path / "song.wav"
    sf.write(str(path), song(4.0), 44100, subtype="PCM_16")
    assert window.open_song(path)
    with qtbot.waitSignal(window.separation_finished, timeout=120_000):
        window.separate()
    canvas = window.timeline.canvas
    assert not [a for a in menu_of(qtbot, window, "bass").actions() if a.text().startswith("Show notes")]
    # the menu's "Write MIDI of the stems" runs `stemdesk midi` as a job: a .mid beside each stem
    (write,) = [a for a in menu_of(qtbot, window, "bass").actions() if a.text().startswith("Write MIDI")]
    with qtbot.waitSignal(window.job_finished, timeout=120_000) as finished:
        write.trigger()
    assert finished.args[0].title == "MIDI of song"  # the Jobs list names the song, not the stems folder
    folder = window.workspace.stems_dir
    assert sorted(p.stem for p in folder.glob("*.mid")) == ["bass", "drums", "other", "song", "vocals"]
    qtbot.waitUntil(lambda: all(lane.notes is not None for lane in canvas.lanes[1:]), timeout=20_000)
    # known notes beside the bass: drawn where they sound, higher notes higher up the lane
    notes = [Note(1.0, 2.0, 40, 100), Note(2.5, 3.5, 52, 100)]
    write_smf(folder / "bass.mid", [Part("bass", notes, 33)], Timing(120.0))
    window.lanes.show_stems()
    qtbot.waitUntil(lambda: window.timeline.lane("bass").notes == notes, timeout=20_000)
    lane = window.timeline.lane("bass")
    top, height = canvas.lane_top("bass"), canvas.lane_height() - 2
    low, high = (canvas.note_rect(lane, n, top, height) for n in notes)
    assert low.center().y() > high.center().y() and low.left() < high.left()
    assert abs(low.left() - canvas.x_of(1.0)) < 1 and abs(high.right() - canvas.x_of(3.5)) < 1
    before = brightness(window, *low.center().toTuple())
    (show,) = [a for a in menu_of(qtbot, window, "bass").actions() if a.text().startswith("Show notes")]
    assert show.text() == "Show notes (2, from MIDI)"
    show.trigger()
    assert lane.show_notes
    lit = brightness(window, *low.center().toTuple())
    gap = brightness(window, canvas.x_of(2.25), low.center().y())  # between the notes: no note drawn
    assert lit > before + 150 and lit > gap + 150, (before, lit, gap)
    window.grab().save(str(tmp_path / "notes.png"))
    (hide,) = [a for a in menu_of(qtbot, window, "bass").actions() if a.text() == "Hide notes"]
    hide.trigger()
    assert not lane.show_notes and np.isclose(brightness(window, *low.center().toTuple()), before, atol=30)
    # the app's Export takes the notes along: a MIDI track per stem in the DAW session, at its seconds, and the
    # files in the exported stems
    with qtbot.waitSignal(window.job_finished, timeout=120_000):
        window.export(tmp_path / "daw", sessions=("rpp",), instrumental=False, stems=True)
    bass = rpp_midi((tmp_path / "daw" / "song.rpp").read_text())["bass MIDI"]
    assert [(round(start, 2), pitch) for start, _, pitch, _ in bass] == [(1.0, 40), (2.5, 52)]
    assert (tmp_path / "daw" / "song stems" / "bass.mid").read_bytes() == (folder / "bass.mid").read_bytes()
