"""Watching the song's and the stems' files, without Qt: a file written since it was last checked (another program
edited a stem) means the stems are checked against their certificate again (`tasks.recheck`); a check that measured
the files anew means the player and the lanes take them again.

The front end polls `due` now and then (the app: every second) and runs the check; `finished` applies its result
to the workspace (which announces the files measured anew as ``stems_changed("checked")``) and announces what the
check found."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .events import Announcement
from .tasks import Recheck
from .workspace import Workspace


@dataclass(frozen=True)
class Checking:
    """A check under way: of ``folder``, for the stems of ``generation`` (see `StemsWatch.new_stems`)."""

    folder: Path
    generation: int


class StemsWatch:
    """Announces ``checked(check)`` when a check became what is known of the stems, and ``departed(names)`` when
    files changed since their certificate (the names, "the song" last). It follows the workspace's stems itself:
    other stems (a song opened, a separation adopted) make a running check of the earlier ones come too late."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.seen: tuple = ()  # the files' signature as last checked
        self.generation = 0  # counts the stems the workspace took on: a check of earlier ones is dropped
        self.checked = Announcement()
        self.departed = Announcement()
        workspace.stems_changed.connect(self._stems_changed)

    def _stems_changed(self, why: str) -> None:
        if why != "checked":  # the same stems, measured anew: the check that did it is this watch's own
            self.new_stems(seen=why == "adopted")

    def new_stems(self, seen: bool = False) -> None:
        """The workspace has other stems (or a new song); ``seen``: their files are the ones just written."""
        self.generation += 1
        if seen:
            self.seen = self.workspace.files_signature()

    def changed_on_disk(self) -> bool:
        return self.workspace.files_signature() != self.seen

    def due(self, checking: bool, separating: bool) -> bool:
        """Check the stems again now? When a file changed since the last look, there are stems, no check runs,
        and no separation of the song runs (it is writing them)."""
        if not self.workspace.stems or checking or separating:
            return False
        return self.changed_on_disk()

    def start(self) -> Checking | None:
        """A check begins: the files as they are now count as seen. None: nothing to check."""
        folder, song = self.workspace.stems_dir, self.workspace.song
        if folder is None or song is None:
            return None
        self.seen = self.workspace.files_signature()
        return Checking(folder, self.generation)

    def finished(self, checking: Checking, check: Recheck) -> bool:
        """The check's result, applied unless the stems were replaced meanwhile (False)."""
        if checking.generation != self.generation or not self.workspace.apply_check(check, checking.folder):
            return False
        self.checked.emit(check)
        if check.changed or check.song_changed:
            self.departed.emit(check.changed + (["the song"] if check.song_changed else []))
        return True
