"""The window's projects: save, open (a file, a recent entry, a dropped one), autosave, recovery after a crash
(the decision is `stemdesk.session.recovery`'s; this asks it), and the question before unsaved work is replaced."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFileDialog, QMessageBox

from ..core.errors import StemDeskError
from ..session import project as projects
from ..session import recovery
from ..session.workspace import SongMissing
from .errors import words

if TYPE_CHECKING:
    from .window import MainWindow

log = logging.getLogger("stemdesk.app")


class ProjectFlow:
    def __init__(self, window: MainWindow):
        self.w = window

    def save_project(self, ask_path: bool = False, path: Path | None = None) -> Path | None:
        w = self.w
        if path is None and (ask_path or w.project.path is None):
            start = str(Path(w.project.source).with_suffix(projects.SUFFIX)) if w.project.source else ""
            chosen, _ = QFileDialog.getSaveFileName(w, "Save project", start, "StemDesk project (*.stemdesk)")
            if not chosen:
                return None
            path = Path(chosen)
        try:
            saved = w.workspace.save(path)
        except StemDeskError as error:
            w.show_error("Cannot save the project", words(error))
            return None
        w.undo.setClean()
        w.recent.add(saved)
        w.status(f"Saved {saved}")
        return saved

    def open_project_dialog(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(self.w, "Open project", "", "StemDesk project (*.stemdesk)")
        if chosen:
            self.open_project(Path(chosen))

    def open_recent(self, entry: str) -> None:
        if self.w.recent.is_project(entry):
            self.open_project(Path(entry))
        else:
            self.w.open_song(Path(entry))

    def open_project(self, path: Path) -> bool:
        w = self.w
        if not self.confirm_discard(f"opening {Path(path).name}"):
            return False
        try:
            project = projects.load(path, w.registry)
        except StemDeskError as error:
            w.show_error("Cannot open the project", words(error))
            return False
        return self.use_project(project)

    def use_project(self, project: projects.Project, recovered: bool = False) -> bool:
        """Open ``project`` (``recovered``: from an autosave, unsaved work); the views follow the workspace's
        announcements. Then its model is the toolbar's, its view of the timeline comes back, and its stems are
        checked against their certificate."""
        w = self.w
        try:
            opened = w.workspace.open_project(project, recovered=recovered)
        except StemDeskError as error:
            w.show_error(
                "The song is missing" if isinstance(error, SongMissing) else "Cannot open the project", words(error)
            )
            return False
        if opened.stems_problem:
            w.show_error("The stems could not be used", opened.stems_problem)
        if project.model:
            w.model_box.setCurrentText(project.model)
            w.models_panel.select(project.model)
        canvas = w.timeline.canvas
        canvas.loop = w.workspace.loop
        if project.view.get("spp"):
            canvas.spp = float(project.view["spp"])
            canvas.offset = int(project.view.get("offset", 0))
            canvas.fitted = False
            canvas.view_changed.emit()
        if w.workspace.stems:
            w.check_stems()
        if project.path:
            w.recent.add(project.path)
        return True

    def autosave(self) -> Path | None:
        w = self.w
        if not w.dirty:
            return None
        w.project.view.update({"spp": w.timeline.canvas.spp, "offset": w.timeline.canvas.offset})
        try:
            return w.workspace.autosave()
        except OSError as error:
            w.status(f"Autosave failed: {error}", 10000)
            return None

    def offer_recovery(self, accept: bool | None = None) -> bool:
        """After a crash: offer the newest autosave (`session.recovery` picks it). ``accept`` answers without
        asking (tests, scripts)."""
        w = self.w
        try:
            offer = recovery.offer(w.workspace, w.registry)
        except StemDeskError as error:
            w.show_error("Cannot recover", words(error))
            return False
        if offer is None:
            return False
        if accept is None:
            if not w.ask:
                return False
            box = QMessageBox(
                QMessageBox.Icon.Question,
                "Recover unsaved work?",
                offer.question,
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                w,
            )
            log.info("asking whether to recover %s", offer.autosave.name)
            accept = w.put(box) == QMessageBox.StandardButton.Yes
            if w.closed:  # the app was closed (a SIGTERM) while asking: nobody answered, keep the autosave
                return False
        if not accept:
            recovery.declined(offer)
            return False
        return self.use_project(offer.project, recovered=True)

    def confirm_discard(self, doing: str) -> bool:
        """Before ``doing`` replaces the project: with unsaved changes, ask whether to save them, discard them or
        cancel. Discard removes the project's autosave, so the next start does not offer it back. True: go on."""
        w = self.w
        if not w.dirty or not w.ask:
            return True
        name = Path(w.project.source).name if w.project.source else "this project"
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Save changes?",
            f"The project of \u201c{name}\u201d has unsaved changes. Save them before {doing}?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            w,
        )
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        answer = w.put(box)
        if answer == QMessageBox.StandardButton.Save:
            return self.save_project() is not None
        if answer == QMessageBox.StandardButton.Discard:
            w.workspace.discard()
            w.undo.setClean()
            return True
        return False
