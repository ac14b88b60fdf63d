"""The window's side of MIDI: the Learn button in the mixer dock, the status bar's words, and the question of
which port. What a knob does to the mix is `stemdesk.session.midi_map.MidiLink`'s; the window applies its
``moved`` announcements as undoable edits."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QAbstractButton

from ..core.errors import StemDeskError
from ..mixer.midi import Binding
from ..session.midi_map import MidiLink
from .errors import words
from .playback import Player


class MidiView:
    """``learn`` is the mixer's Learn button; ``status(text, ms)`` and ``show_error(title, text)`` say things."""

    def __init__(
        self,
        link: MidiLink,
        player: Player,
        learn: QAbstractButton,
        status: Callable[[str, int], None],
        show_error: Callable[[str, str], None],
    ):
        self.link, self.player, self.learn, self.status, self.show_error = link, player, learn, status, show_error
        link.bound.connect(self.bound)
        link.problem.connect(lambda text: status(text, 10000))
        learn.toggled.connect(self.learn_toggled)

    def connect(self, port: str | None = None, api: str | None = None) -> str | None:
        """Listen to a MIDI input (default: the first one). Control changes arrive on rtmidi's thread and reach the
        mix through the bridge; during playback they are recorded as automation at the playhead."""
        player = self.player
        clock = lambda: player.position_seconds() if player.state == "playing" else None  # noqa: E731
        try:
            port = self.link.connect(port, api, clock)
        except StemDeskError as error:
            self.show_error("Cannot use the MIDI controller", words(error))
            return None
        if port is not None:
            self.status(f"MIDI: listening to {port}.", 0)
        return port

    def learn_toggled(self, on: bool) -> None:
        if on and self.link.controller is None and self.connect() is None:
            self.learn.setChecked(False)
            self.status(
                "No MIDI input found: connect a controller (and start JACK or ALSA MIDI), then try again.", 10000
            )
            return
        if on:
            self.link.learn()
            self.status("MIDI learn: move a knob or fader on your controller, then the control it should move.", 0)

    def control_touched(self, control: str) -> None:
        if self.link.controller is not None and self.learn.isChecked():
            self.link.touched(control)

    def bound(self, binding: Binding) -> None:
        self.learn.setChecked(False)
        self.status(f"MIDI channel {binding.channel + 1} CC {binding.cc} now moves {binding.control}.", 0)
