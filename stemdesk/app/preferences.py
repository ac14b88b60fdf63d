"""What a change in the Settings dock does at once (it is saved with the settings), and the longer audio buffer
taken after a dropout."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QComboBox

from ..io import settings as settings_store
from .playback import Player
from .settings_panel import SettingsPanel


class Preferences:
    """``settings`` is the app's settings (saved on each change); the Device box, the autosave timer and the
    player take what concerns them; ``status(text, ms)`` says what went wrong."""

    def __init__(
        self,
        settings: dict,
        panel: SettingsPanel,
        player: Player,
        device_box: QComboBox,
        autosave_timer: QTimer,
        status: Callable[[str, int], None],
    ):
        self.settings, self.panel, self.player = settings, panel, player
        self.device_box, self.autosave_timer, self.status = device_box, autosave_timer, status
        panel.changed.connect(self.changed)
        player.dropped_out.connect(self.audio_dropped_out)

    def changed(self, key: str, value) -> None:
        player = self.player
        self.settings[key] = value
        try:
            settings_store.save(self.settings)
        except (OSError, ValueError) as error:
            self.status(f"Settings not saved: {error}", 10000)
        if key == "device":
            self.device_box.setCurrentText(value)
        elif key == "autosave_seconds":
            self.autosave_timer.start(int(value) * 1000)
        elif key == "audio_buffer_ms" and int(value) != round(player.latency * 1000):  # else the player has it
            player.latency = int(value) / 1000
            if player.state == "playing":  # the sink's buffer is set when it starts: start it again here
                seconds = player.position_seconds()
                player.stop()
                player.seek(seconds)
                player.play()

    def audio_dropped_out(self, before: float, now: float) -> None:
        """The song dropped out while playing with a ``before`` buffer; the player went on with a ``now`` one, from
        the next frame (Settings → Audio buffer shows it and keeps it); when it was already the longest, say so."""
        was, now_ms = round(before * 1000), round(now * 1000)
        if now_ms <= was:
            self.status(f"Playback dropped out even with a {was} ms audio buffer: close other busy programs.", 10000)
            return
        editor = self.panel.editors["audio_buffer_ms"]
        assert isinstance(editor, QComboBox)  # the setting's choices
        editor.setCurrentText(str(now_ms))  # the player has it already
        self.status(
            f"Playback dropped out with a {was} ms audio buffer; it is {now_ms} ms now (Settings → Audio buffer).",
            10000,
        )
