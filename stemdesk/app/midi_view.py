"""The window's side of MIDI: the Learn button in the mixer dock, the status bar's words, and the question of
which port. What a knob does to the mix is `stemdesk.session.midi_map.MidiLink`'s; the window applies its
``moved`` announcements as undoable edits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import StemDeskError
from ..mixer.midi import Binding
from .errors import words

if TYPE_CHECKING:
    from .window import MainWindow


class MidiView:
    def __init__(self, window: MainWindow):
        self.w = window
        window.midi_link.bound.connect(self.bound)
        window.midi_link.problem.connect(lambda text: window.status(text, 10000))

    def connect(self, port: str | None = None, api: str | None = None) -> str | None:
        """Listen to a MIDI input (default: the first one). Control changes arrive on rtmidi's thread and reach the
        mix through the bridge; during playback they are recorded as automation at the playhead."""
        w = self.w
        clock = lambda: w.player.position_seconds() if w.player.state == "playing" else None  # noqa: E731
        try:
            port = w.midi_link.connect(port, api, clock)
        except StemDeskError as error:
            w.show_error("Cannot use the MIDI controller", words(error))
            return None
        if port is not None:
            w.status(f"MIDI: listening to {port}.")
        return port

    def learn_toggled(self, on: bool) -> None:
        w = self.w
        if on and w.midi is None and w.connect_midi() is None:
            w.mixer.learn.setChecked(False)
            w.status("No MIDI input found: connect a controller (and start JACK or ALSA MIDI), then try again.", 10000)
            return
        if on:
            w.midi_link.learn()
            w.status("MIDI learn: move a knob or fader on your controller, then the control it should move.")

    def control_touched(self, control: str) -> None:
        if self.w.midi is not None and self.w.mixer.learn.isChecked():
            self.w.midi_link.touched(control)

    def bound(self, binding: Binding) -> None:
        self.w.mixer.learn.setChecked(False)
        self.w.status(f"MIDI channel {binding.channel + 1} CC {binding.cc} now moves {binding.control}.")
