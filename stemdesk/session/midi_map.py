"""The MIDI controller and the mix, without Qt: MIDI-learn binds a knob to the next mix control touched, and a
knob's moves become edits of the workspace's mix (recorded as automation at the playhead while playing).

rtmidi calls the controller on its own thread; `MidiLink` hands each move to ``post`` (the app: its bridge, which
runs it on the UI thread) and only there announces it. The controller's copy of the mix follows the workspace's."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ..core.errors import StemDeskError
from ..mixer.midi import Binding, MidiController, MidiMap, input_names, open_input
from ..mixer.mix import Mix
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
        workspace.mix_changed.connect(self._mix_changed)

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
        """A controller on a copy of the workspace's mix; its moves reach `moved` through ``post``."""
        controller = MidiController(
            copy.deepcopy(self.workspace.mix),
            lambda mix: self.post(self._moved, copy.deepcopy(mix)),
            midi_map,
            clock=clock,
            autosave=True,
        )
        controller.recording = True
        return controller

    def _moved(self, mix: Mix) -> None:
        self.moved.emit(copy.deepcopy(self.workspace.mix), mix)

    def _mix_changed(self, mix: Mix) -> None:
        if self.controller is not None:
            self.controller.mix = copy.deepcopy(mix)

    def learn(self) -> None:
        """Arm MIDI-learn on the workspace's mix as it is now (a controller must be connected)."""
        assert self.controller is not None
        self.controller.mix = copy.deepcopy(self.workspace.mix)
        self.controller.learn()

    def touched(self, control: str) -> Binding | None:
        """The user touched mix ``control`` while learning: the binding made, if a knob was moved first."""
        if self.controller is None:
            return None
        binding = self.controller.touched(control)
        if binding is not None:
            self.bound.emit(binding)
        return binding

    def close(self) -> None:
        if self.port is not None:
            self.port.close()
