"""The song's lyrics in the app: pasted or opened (text, LRC or ASS), aligned on the lead vocal as a job, dragged on
their lane, tapped in time while the song plays. Every change is one undoable step (`commands.LyricsCommand`) and
the lyrics live in the project (`Project.lyrics`), so they are saved, autosaved and opened with it.

The lyrics' lane (`lyrics_lane.LyricsLane`) is under the stems' whenever the song has lyrics.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtGui import QAction, QUndoStack
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFileDialog, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from ..core.errors import StemDeskError
from ..jobs.queue import Job
from ..karaoke.model import Lyrics
from ..session import karaoke
from ..session.events import Announcement
from ..session.workspace import Workspace
from .commands import LyricsCommand
from .errors import words
from .front import Front
from .lyrics_edits import next_to_tap, tap
from .lyrics_lane import LyricsLane
from .timeline import Timeline


class LyricsFlow:
    """``position()`` is the playhead in seconds (the player's while it plays); ``changed`` announces the lyrics
    after every change (the karaoke view listens)."""

    def __init__(
        self,
        front: Front,
        parent: QWidget,
        workspace: Workspace,
        undo: QUndoStack,
        timeline: Timeline,
        position: Callable[[], float],
    ):
        self.front, self.parent, self.workspace, self.undo = front, parent, workspace, undo
        self.timeline, self.position = timeline, position
        self.lane: LyricsLane | None = None
        self.lane_actions: list[QAction] = []  # offered in the lane's menu (the Karaoke menu's)
        self.changed = Announcement()  # (lyrics): after every change of the song's lyrics
        self._tapped: tuple[int, float, Lyrics] | None = None  # (the word tapped next, when, the lyrics it made)
        workspace.song_opened.connect(lambda info: self.show(workspace.project.lyrics))

    @property
    def lyrics(self) -> Lyrics | None:
        return self.workspace.project.lyrics

    # --- setting them ----------------------------------------------------------------------------------------------
    def edit(self, text: str, before: Lyrics | None, after: Lyrics | None) -> None:
        """An undoable change of the lyrics from ``before`` to ``after`` (applied now)."""
        self.undo.push(LyricsCommand(self.apply, text, before, after))

    def apply(self, lyrics: Lyrics | None) -> None:
        """The project's lyrics are ``lyrics`` (an edit, its undo or redo): the lane and the karaoke view show them."""
        self.workspace.project.lyrics = lyrics
        self.show(lyrics)

    def show(self, lyrics: Lyrics | None) -> None:
        if lyrics is None:
            self.lane = None
            self.timeline.set_below([])
        elif self.lane is None:
            self.lane = LyricsLane(lyrics, self.edit, self.lane_actions)
            self.timeline.set_below([self.lane])
        else:
            self.lane.lyrics = lyrics
            self.timeline.canvas.update()
        self.changed.emit(lyrics)

    def set_text(self, text: str, kind: str | None = None) -> bool:
        """Lyrics pasted as text (plain, LRC or ASS: told by its look unless ``kind`` says)."""
        from ..karaoke.lyrics import parse_lyrics

        return self._take(lambda: parse_lyrics(text, kind=kind), "Paste lyrics")

    def open_file(self, path: Path) -> bool:
        from ..karaoke.lyrics import read_lyrics

        return self._take(lambda: read_lyrics(Path(path)), f"Open lyrics {Path(path).name}")

    def _take(self, read: Callable[[], Lyrics], text: str) -> bool:
        if self.workspace.song is None:
            self.front.show_error("No song", "Open a song first; then give it its lyrics.")
            return False
        try:
            lyrics = read()
        except StemDeskError as error:
            self.front.show_error("Cannot use these lyrics", words(error))
            return False
        if not lyrics.title:
            lyrics.title = self.workspace.song.stem
        self.edit(text, self.lyrics, lyrics)
        timed = "" if lyrics.timed else " Align them (Karaoke → Align lyrics) or play and tap T at each word."
        self.front.status(f"Lyrics: {len(lyrics.lines)} lines, {len(lyrics.words)} words.{timed}", 10000)
        return True

    def paste_dialog(self) -> None:
        """A box to paste the lyrics into (plain text, LRC or ASS)."""
        box = QDialog(self.parent)
        box.setWindowTitle("Paste lyrics")
        layout = QVBoxLayout(box)
        layout.addWidget(QLabel("The song's words, a line per sung line (plain text, LRC or ASS):"))
        editor = QPlainTextEdit()
        editor.setMinimumSize(480, 360)
        layout.addWidget(editor)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(box.accept)
        buttons.rejected.connect(box.reject)
        layout.addWidget(buttons)
        if self.front.ask and box.exec() == QDialog.DialogCode.Accepted:
            self.set_text(editor.toPlainText())

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.parent, "Open lyrics", "", "Lyrics (*.txt *.lrc *.ass *.ssa);;All files (*)"
        )
        if path:
            self.open_file(Path(path))

    def remove(self) -> None:
        if self.lyrics is not None:
            self.edit("Remove the lyrics", self.lyrics, None)

    # --- alignment ---------------------------------------------------------------------------------------------
    def lead(self) -> tuple[str, Path] | None:
        """The stem the words are aligned on: the lead vocal where the vocals are split, else the vocals."""
        stems = dict(self.workspace.lanes())
        return karaoke.default_lead(stems)

    def align(self) -> Job | None:
        """Place every word on the lead vocal, as a job; the lyrics it places are one undoable step."""
        lyrics, lead = self.lyrics, self.lead()
        if lyrics is None:
            self.front.show_error("No lyrics", "Paste or open the song's lyrics first (Karaoke → Paste lyrics…).")
            return None
        if lead is None:
            self.front.show_error(
                "No vocals to align on",
                "Separate the song with a model that gives vocals first; the words are placed on the sung vocal.",
            )
            return None
        info = self.workspace.info
        offset = self.workspace.stems_offset / info.sample_rate if info else 0.0
        task = karaoke.align_lyrics(lyrics, lead[1], lead[0], offset=offset)
        return self.front.run_task(task, "align-lyrics", on_done=lambda timed: self._aligned(lyrics, timed, lead[0]))

    def _aligned(self, given: Lyrics, timed: Lyrics, lead: str) -> None:
        timed.title, timed.artist = given.title, given.artist
        self.edit(f"Align the lyrics on {lead}", self.lyrics, timed)
        unsure = [
            str(n) for n, line in enumerate(timed.lines, 1) if line.confidence is not None and line.confidence < 0.5
        ]
        self.front.status(
            f"Lyrics aligned on {lead}."
            + (f" Unsure of line {', '.join(unsure)} (amber): drag their words or tap them in time." if unsure else ""),
            15000,
        )

    # --- tap to sync ------------------------------------------------------------------------------------------------
    def tap(self, whole_line: bool = False) -> None:
        """The next word (``whole_line``: the next line) starts at the playhead; the word before ends there."""
        lyrics = self.lyrics
        if lyrics is None or not lyrics.words:
            self.front.status("No lyrics to tap: paste or open them first (Karaoke → Paste lyrics…).", 5000)
            return
        at = self.position()
        last = self._tapped
        # go on from the last tap unless the lyrics changed since, or the playhead went back
        index = last[0] if last is not None and last[2] is lyrics and at >= last[1] else next_to_tap(lyrics, at)
        if index >= len(lyrics.words):
            self.front.status("Every word is tapped; seek back to tap again from there.", 5000)
            return
        after, following = tap(lyrics, index, at, whole_line)
        what = f'Tap "{after.words[index].text}"' if not whole_line else "Tap a line"
        self.edit(what, lyrics, after)
        self._tapped = (following, at, after)
        if self.lane is not None:
            self.lane.tap_next = following
            self.timeline.canvas.update()
