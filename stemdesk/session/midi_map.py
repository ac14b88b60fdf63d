"""The MIDI controller and the mix, without Qt: MIDI-learn binds a knob to the next mix control touched, and a
knob's moves become edits of the workspace's mix (recorded as automation at the playhead while playing).

rtmidi calls the controller on its own thread; `MidiLink` hands each move to ``post`` (the app: its bridge, which
runs it on the UI thread) and only there makes it, on the workspace's mix as it is then, and announces it. The
controller keeps no mix of its own (no copy to follow the workspace's, or to fall behind it), and nothing on the MIDI
thread reads or writes the workspace."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ..core.errors import MixError, StemDeskError
from ..mixer.midi import Binding, MidiController, MidiMap, input_names, move_mix, open_input
from .events import Announcement
from .workspace import Workspace


def _now(fn: Callable[..., Any], *args: Any) -> None:
    fn(*args)


class MidiLink:
    """Announces ``moved(before, after)`` on the front end's thread when a controller moved a mix control (the
    front end applies it as an undoable edit), ``bound(binding)`` when MIDI-learn bound a knob to a control, and
    ``problem(text)`` when the saved mappings could not be used."""

    def __init__(self, workspace: Workspace, post: Callable[..., None] = _now):
        self.workspace = workspace
        self.post = post
        self.controller: MidiController | None = None
        self.port: Any = None
        self.moved = Announcement()
        self.bound = Announcement()
        self.problem = Announcement()

    def connect(
        self, port: str | None = None, api: str | None = None, clock: Callable[[], float | None] = lambda: None
    ) -> str | None:
        """Listen to MIDI input ``port`` (default: the first one); None when there is none. ``clock()``: the playhead
        while playing, else None. Raises StemDeskError when the port cannot be opened (then nothing listens)."""
        if port is None:
            names = input_names(api)
            port = names[0] if names else None
        if port is None:
            return None
        try:
            midi_map = MidiMap.load()
        except StemDeskError as error:
            self.problem.emit(f"MIDI mappings ignored: {error}")
            midi_map = None
        self.controller = self.controller_for(midi_map, clock)
        try:
            self.port = open_input(port, self.controller, api)
        except StemDeskError:
            self.controller = None
            raise
        return port

    def controller_for(self, midi_map: MidiMap | None, clock: Callable[[], float | None]) -> MidiController:
        """A controller with no mix of its own: its moves reach `_moved` through ``post``."""
        controller = MidiController(
            None,
            midi_map=midi_map,
            clock=clock,
            autosave=True,
            move=lambda control, value, seconds: self.post(self._moved, control, value, seconds),
        )
        controller.recording = True
        return controller

    def _moved(self, control: str, value: int, seconds: float | None) -> None:
        """On the front end's thread: the knob's move made on a copy of the workspace's mix as it is now, announced
        as (before, after) for the front end to apply through the workspace."""
        after = copy.deepcopy(self.workspace.mix)
        try:
            move_mix(after, control, value, seconds)
        except MixError as error:  # a binding to a control the mix no longer has
            if self.controller is not None:
                self.controller.last_error = str(error)
            return
        self.moved.emit(copy.deepcopy(self.workspace.mix), after)

    def learn(self) -> None:
        """Arm MIDI-learn (a controller must be connected)."""
        assert self.controller is not None
        self.controller.learn()

    def touched(self, control: str) -> Binding | None:
        """The user touched mix ``control`` while learning: the binding made, if a knob was moved first."""
        if self.controller is None:
            return None
        self.workspace.mix.control_range(control)  # refuse names that are not controls of the mix
        binding = self.controller.touched(control)
        if binding is not None:
            self.bound.emit(binding)
        return binding

    def close(self) -> None:
        if self.port is not None:
            self.port.close()
