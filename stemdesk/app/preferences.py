"""What a change in the Settings dock does at once (it is saved with the settings), and the longer audio buffer
taken after a dropout."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..io import settings as settings_store

if TYPE_CHECKING:
    from .window import MainWindow


class Preferences:
    def __init__(self, window: MainWindow):
        self.w = window

    def changed(self, key: str, value) -> None:
        w = self.w
        w.settings[key] = value
        try:
            settings_store.save(w.settings)
        except (OSError, ValueError) as error:
            w.status(f"Settings not saved: {error}", 10000)
        if key == "device":
            w.device_box.setCurrentText(value)
        elif key == "autosave_seconds":
            w.autosave_timer.start(int(value) * 1000)
        elif key == "audio_buffer_ms" and int(value) != round(w.player.latency * 1000):  # else the player has it
            w.player.latency = int(value) / 1000
            if w.player.state == "playing":  # the sink's buffer is set when it starts: start it again here
                seconds = w.player.position_seconds()
                w.player.stop()
                w.player.seek(seconds)
                w.player.play()

    def audio_dropped_out(self, before: float, now: float) -> None:
        """The song dropped out while playing with a ``before`` buffer; the player went on with a ``now`` one, from
        the next frame (Settings → Audio buffer shows it and keeps it); when it was already the longest, say so."""
        w = self.w
        was, now_ms = round(before * 1000), round(now * 1000)
        if now_ms <= was:
            w.status(f"Playback dropped out even with a {was} ms audio buffer: close other busy programs.", 10000)
            return
        w.settings_panel.editors["audio_buffer_ms"].setCurrentText(str(now_ms))  # the player has it already
        w.status(
            f"Playback dropped out with a {was} ms audio buffer; it is {now_ms} ms now (Settings → Audio buffer).",
            10000,
        )
