"""The window's projects: save, open (a file, a recent entry, a dropped one), autosave, recovery after a crash
(the decision is `stemdesk.session.recovery`'s; this asks it), and the question before unsaved work is replaced."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from ..core.errors import StemDeskError
from ..io.registry import Registry
from ..session import project as projects
from ..session import recovery
from ..session.recent import RecentFiles
from ..session.workspace import SongMissing, Workspace
from .errors import words
from .front import Front
from .timeline import Canvas

log = logging.getLogger("stemdesk.app")


class ProjectFlow:
    """Projects of the ``workspace``: ``undo`` is clean where one was saved, ``canvas`` keeps its view of the
    timeline; ``select_model(id)`` shows a project's model in the toolbar, ``check_stems()`` checks its stems
    against their certificate, ``open_song(path)`` opens a recent song; questions open over ``parent``."""

    def __init__(
        self,
        front: Front,
        parent: QWidget,
        workspace: Workspace,
        registry: Registry | None,
        recent: RecentFiles,
        undo: QUndoStack,
        canvas: Canvas,
        select_model: Callable[[str], None],
        check_stems: Callable[[], object],
        open_song: Callable[[Path], bool],
    ):
        self.front, self.parent, self.workspace, self.registry = front, parent, workspace, registry
        self.recent, self.undo, self.canvas = recent, undo, canvas
        self.select_model, self.check_stems, self.open_song = select_model, check_stems, open_song

    def save_project(self, ask_path: bool = False, path: Path | None = None) -> Path | None:
        if path is None and (ask_path or self.workspace.project.path is None):
            start = (
                str(Path(self.workspace.project.source).with_suffix(projects.SUFFIX))
                if self.workspace.project.source
                else ""
            )
            chosen, _ = QFileDialog.getSaveFileName(self.parent, "Save project", start, "StemDesk project (*.stemdesk)")
            if not chosen:
                return None
            path = Path(chosen)
        try:
            saved = self.workspace.save(path)
        except StemDeskError as error:
            self.front.show_error("Cannot save the project", words(error))
            return None
        self.undo.setClean()
        self.recent.add(saved)
        self.front.status(f"Saved {saved}")
        return saved

    def open_project_dialog(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(self.parent, "Open project", "", "StemDesk project (*.stemdesk)")
        if chosen:
            self.open_project(Path(chosen))

    def open_recent(self, entry: str) -> None:
        if self.recent.is_project(entry):
            self.open_project(Path(entry))
        else:
            self.open_song(Path(entry))

    def open_project(self, path: Path) -> bool:
        if not self.confirm_discard(f"opening {Path(path).name}"):
            return False
        try:
            project = projects.load(path, self.registry)
        except StemDeskError as error:
            self.front.show_error("Cannot open the project", words(error))
            return False
        return self.use_project(project)

    def use_project(self, project: projects.Project, recovered: bool = False) -> bool:
        """Open ``project`` (``recovered``: from an autosave, unsaved work); the views follow the workspace's
        announcements. Then its model is the toolbar's, its view of the timeline comes back, and its stems are
        checked against their certificate."""
        try:
            opened = self.workspace.open_project(project, recovered=recovered)
        except StemDeskError as error:
            self.front.show_error(
                "The song is missing" if isinstance(error, SongMissing) else "Cannot open the project", words(error)
            )
            return False
        if opened.stems_problem:
            self.front.show_error("The stems could not be used", opened.stems_problem)
        if project.model:
            self.select_model(project.model)
        canvas = self.canvas
        canvas.loop = self.workspace.loop
        if project.view.get("spp"):
            canvas.spp = float(project.view["spp"])
            canvas.offset = int(project.view.get("offset", 0))
            canvas.fitted = False
            canvas.view_changed.emit()
        if self.workspace.stems:
            self.check_stems()
        if project.path:
            self.recent.add(project.path)
        return True

    def autosave(self) -> Path | None:
        if not self.workspace.changed:
            return None
        self.workspace.project.view.update({"spp": self.canvas.spp, "offset": self.canvas.offset})
        try:
            return self.workspace.autosave()
        except OSError as error:
            self.front.status(f"Autosave failed: {error}", 10000)
            return None

    def offer_recovery(self, accept: bool | None = None) -> bool:
        """After a crash: offer the newest autosave (`session.recovery` picks it). ``accept`` answers without
        asking (tests, scripts)."""
        try:
            offer = recovery.offer(self.workspace, self.registry)
        except StemDeskError as error:
            self.front.show_error("Cannot recover", words(error))
            return False
        if offer is None:
            return False
        if accept is None:
            if not self.front.ask:
                return False
            box = QMessageBox(
                QMessageBox.Icon.Question,
                "Recover unsaved work?",
                offer.question,
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                self.parent,
            )
            log.info("asking whether to recover %s", offer.autosave.name)
            accept = self.front.put(box) == QMessageBox.StandardButton.Yes
            if self.front.closed:  # the app was closed (a SIGTERM) while asking: nobody answered, keep the autosave
                return False
        if not accept:
            recovery.declined(offer)
            return False
        return self.use_project(offer.project, recovered=True)

    def confirm_discard(self, doing: str) -> bool:
        """Before ``doing`` replaces the project: with unsaved changes, ask whether to save them, discard them or
        cancel. Discard removes the project's autosave, so the next start does not offer it back. True: go on."""
        if not self.workspace.changed or not self.front.ask:
            return True
        name = Path(self.workspace.project.source).name if self.workspace.project.source else "this project"
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Save changes?",
            f"The project of \u201c{name}\u201d has unsaved changes. Save them before {doing}?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            self.parent,
        )
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        answer = self.front.put(box)
        if answer == QMessageBox.StandardButton.Save:
            return self.save_project() is not None
        if answer == QMessageBox.StandardButton.Discard:
            self.workspace.discard()
            self.undo.setClean()
            return True
        return False
