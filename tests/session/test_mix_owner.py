"""The workspace is the one owner of the mix (issue 54): every edit, whichever view or knob made it, goes through
`Workspace.set_mix`, reaches every listener as the workspace's own mix, and leaves no listener a copy of its own that
could drift from it. No thread but the front end's changes the workspace: a MIDI knob's move, made on rtmidi's
thread, is only applied once the front end's thread runs it. Qt-free: the app's side is in tests/app."""

import copy
import threading
from types import SimpleNamespace

import pytest
import soundfile as sf
from helpers import song

from stemdesk.mixer.midi import MidiMap
from stemdesk.mixer.mix import Mix
from stemdesk.session import project as projects
from stemdesk.session.midi_map import MidiLink
from stemdesk.session.workspace import Workspace

TINY = "tiny-4stem"


class Knob(SimpleNamespace):
    type = "control_change"


class View:
    """A listener as the app's views are: it keeps the mix announced, to read (the mixer strips, the player)."""

    def __init__(self, work: Workspace):
        self.mix = work.mix
        self.seen: list[Mix] = []
        work.mix_changed.connect(self.show)

    def show(self, mix: Mix) -> None:
        self.mix = mix
        self.seen.append(mix)


def _link(work: Workspace, tmp_path, monkeypatch) -> tuple[MidiLink, list]:
    """A MIDI link whose controller has CC 21 bound to the vocal fader; what it posts waits in the list returned."""
    monkeypatch.setattr("stemdesk.mixer.midi.mappings_path", lambda: tmp_path / "midi.json")
    posted: list = []
    link = MidiLink(work, lambda fn, *args: posted.append((fn, args)))
    midi_map = MidiMap()
    midi_map.bind(0, 21, "vocals/gain_db")
    midi_map.bind(0, 22, "drums/mute")
    link.controller = link.controller_for(midi_map, clock=lambda: None)
    link.controller.recording = False
    link.moved.connect(lambda before, after: work.set_mix(after))  # the front end applies each move (undoably)
    return link, posted


def _drain(posted: list) -> None:
    while posted:
        fn, args = posted.pop(0)
        fn(*args)


def test_edits_by_the_mixer_and_by_a_knob_reach_every_listener_as_the_workspaces_one_mix(tmp_path, monkeypatch):
    work = Workspace({"model": TINY})
    panel, player = View(work), View(work)
    link, posted = _link(work, tmp_path, monkeypatch)

    # the mixer's path: an edit of a copy of the mix shown, applied through the workspace
    edited = copy.deepcopy(panel.mix)
    edited.set_control("bass/gain_db", -3.0)
    work.set_mix(edited)
    assert panel.mix is work.mix and player.mix is work.mix and work.mix is not edited
    first = work.mix

    # the knob's path: the move is made on the workspace's mix as it is when the front end runs it
    link.controller.handle(Knob(channel=0, control=21, value=0))
    link.controller.handle(Knob(channel=0, control=22, value=127))
    assert work.mix is first and panel.seen == [first]  # nothing changed on the MIDI thread's call
    _drain(posted)
    low, _ = work.mix.control_range("vocals/gain_db")
    for view in (panel, player):
        assert view.mix is work.mix and view.seen[-1] is work.mix and len(view.seen) == 3
    assert (work.mix.vocal_db, work.mix.channels["drums"].mute, work.mix.channels["bass"].gain_db) == (low, True, -3.0)
    assert link.controller.mix is None  # the controller keeps no mix of its own

    # what a listener was handed is never changed afterwards (the audio thread may still be reading it)
    assert first.vocal_db == 0.0 and "drums" not in first.channels and first.channels["bass"].gain_db == -3.0
    # and the mixer's next edit starts from what the knob did
    edited = copy.deepcopy(panel.mix)
    edited.set_control("vocals/mute", 1.0)
    work.set_mix(edited)
    assert player.mix is work.mix and work.mix.vocal_db == low and work.mix.channels["drums"].mute


def test_a_knob_moved_after_another_project_opened_starts_from_that_projects_mix(tmp_path, monkeypatch):
    """The controller used to keep a copy of the mix that followed only `mix_changed`: after opening another project
    its next move put the old project's mix back. Now each move is made on the workspace's mix of the moment."""
    path = tmp_path / "song.wav"
    sf.write(str(path), song(1.0), 44100, subtype="PCM_16")
    work = Workspace({"model": TINY})
    work.open_song(path)
    link, posted = _link(work, tmp_path, monkeypatch)
    old = Mix()
    old.channel("bass").gain_db = -20.0
    work.set_mix(old)  # the first project's mix

    other = projects.Project(source=str(path), model=TINY)
    other.mix.channel("drums").gain_db = -6.0
    work.open_project(other)  # another project: its own mix
    link.controller.handle(Knob(channel=0, control=21, value=127))
    _drain(posted)
    assert work.mix.channels["drums"].gain_db == -6.0 and "bass" not in work.mix.channels
    assert work.mix.vocal_db == work.mix.control_range("vocals/gain_db")[1]


def test_no_other_thread_changes_the_workspace_and_a_knobs_move_waits_for_the_front_ends_thread(tmp_path, monkeypatch):
    work = Workspace({"model": TINY})
    announced: list = []
    work.mix_changed.connect(announced.append)
    link, posted = _link(work, tmp_path, monkeypatch)
    before = work.mix
    refused: list[str] = []

    def worker() -> None:
        link.controller.handle(Knob(channel=0, control=21, value=0))  # rtmidi's thread: only posts
        edited = Mix()
        edited.vocal_db = -9.0
        for name, edit in (
            ("set_mix", lambda: work.set_mix(edited)),
            ("set_loop", lambda: work.set_loop((1.0, 2.0))),
            ("set_fingerprint", lambda: work.set_fingerprint(work.project, "ab" * 32)),
        ):
            with pytest.raises(RuntimeError, match="worker thread"):
                edit()
            refused.append(name)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert refused == ["set_mix", "set_loop", "set_fingerprint"]
    assert work.mix is before and announced == [] and work.loop is None and not work.project.source_sha256
    assert len(posted) == 1 and not work.changed
    _drain(posted)  # the front end's thread runs the move
    assert announced == [work.mix] and work.mix.vocal_db == work.mix.control_range("vocals/gain_db")[0]
