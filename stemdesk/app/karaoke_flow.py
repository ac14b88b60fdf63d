"""Karaoke in the app: the karaoke screen in a window of its own (full screen on demand) over the karaoke mix, and
Export → Karaoke… (the karaoke files, written as a job).

Opening the screen puts the mix on the mixer's karaoke preset (the vocals muted; one undoable step, effects kept)
and follows the player: what it plays is what the mixer says, the key included, which the screen's Key box changes
as the mixer's does.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from PySide6.QtWidgets import QSpinBox, QWidget

from ..core.errors import MixError
from ..karaoke.model import Lyrics
from ..mixer.mix import Mix, with_preset
from ..session.workspace import Workspace
from .front import Front
from .karaoke_view import KaraokeWindow
from .lyrics_flow import LyricsFlow

MixEdit = Callable[[str, str, Mix, Mix], None]  # (what was done, the control, the mix before, after): undoable


class KaraokeFlow:
    """``key`` is the mixer's Key box (the screen's follows it and moves it); ``edit_mix`` makes an undoable mix
    edit; ``position()`` is the player's position in seconds."""

    def __init__(
        self,
        front: Front,
        parent: QWidget,
        workspace: Workspace,
        lyrics: LyricsFlow,
        key: QSpinBox,
        edit_mix: MixEdit,
        position: Callable[[], float],
    ):
        self.front, self.parent, self.workspace, self.lyrics = front, parent, workspace, lyrics
        self.key, self.edit_mix, self.position = key, edit_mix, position
        self.window: KaraokeWindow | None = None
        lyrics.changed.connect(self._lyrics_changed)
        workspace.mix_changed.connect(self._mix_changed)  # an edit, its undo, a knob: the screen's key follows

    def open_view(self, full_screen: bool = False) -> KaraokeWindow:
        """The karaoke screen, over the karaoke mix."""
        if self.window is None:
            self.window = KaraokeWindow(self.position, self.parent)
            self.window.key_changed.connect(self.key.setValue)  # the mixer's key: an undoable edit, heard live
        self.window.view.show_lyrics(self.workspace.project.lyrics)
        self.window.show_key(round(self.workspace.mix.semitones))
        self.karaoke_mix()
        if full_screen:
            self.window.showFullScreen()
            self.window.controls.setVisible(False)
        else:
            self.window.show()
        self.window.raise_()
        self.window.view.show_time(self.position())
        return self.window

    def karaoke_mix(self) -> None:
        """The mix on the karaoke preset's levels (the vocals muted), unless it is there already."""
        work = self.workspace
        stems = [name for name, _ in work.lanes()]
        if not stems:
            self.front.status(
                "No stems yet: the karaoke screen plays the song as it is. Separate it for karaoke.", 10000
            )
            return
        try:
            after = with_preset(work.mix, "karaoke", stems)
        except MixError as error:
            self.front.status(f"The karaoke mix cannot be made from these stems: {error}", 10000)
            return
        if after.to_dict() != work.mix.to_dict():
            self.edit_mix("Apply preset karaoke", "preset", copy.deepcopy(work.mix), after)

    def _lyrics_changed(self, lyrics: Lyrics | None) -> None:
        if self.window is not None:
            self.window.view.show_lyrics(lyrics)

    def _mix_changed(self, mix: Mix) -> None:
        if self.window is not None:
            self.window.show_key(round(mix.semitones))
