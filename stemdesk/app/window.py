"""The main window: timeline in the centre, transport and job controls on the toolbar, docks for the mixer, jobs, the
null check, models, trainer and settings, the null meter always visible in the status bar.

The window wires views to the Qt-free session objects and shows what they announce: the workspace owns the one mix
and the loop (`mix_changed`, `loop_changed`), the job book says what to do when a job ends (`failed`, `ended`), the
stems watch decides when the files are checked again and what a check means (`reload`, `checked`, `departed`), the
MIDI link turns knob moves into mix edits (`moved`, `bound`, `problem`), and the recent files follow what is opened
(`changed`). The panels are built in `docks` and `actions`; the separation flow, the null views, the model work, the
exports and the projects live in their own modules.

Work runs in `stemdesk.jobs` queues (one per device); their events come back to this thread through `Bridge`.
Nothing outside this thread touches a widget or changes the workspace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import QMainWindow, QMessageBox

from ..core.device import resolve_device
from ..core.errors import StemDeskError
from ..core.version import __version__
from ..io import settings as settings_store
from ..io.audio import AudioInfo
from ..io.model_store import sha256_file
from ..io.paths import log_file
from ..io.registry import Registry
from ..jobs.peaks import Peaks
from ..jobs.queue import Job, JobQueue
from ..mixer.mix import Mix
from ..session import project as projects
from ..session import tasks
from ..session.jobs import JobBook
from ..session.midi_map import MidiLink
from ..session.recent import RecentFiles
from ..session.watch import StemsWatch
from ..session.workspace import Workspace
from . import actions
from .bridge import Bridge
from .commands import MixCommand
from .docks import build_status_bar, build_views
from .errors import words
from .export_flow import ExportFlow
from .midi_view import MidiView
from .models_flow import ModelsFlow
from .null_view import NullView
from .panels import open_files_dialog
from .playback import LiveNull, LiveStems, MixSource, Player
from .player_flow import PlayerFlow
from .preferences import Preferences
from .project_flow import ProjectFlow
from .separation import SeparationFlow
from .timeline import Lane, clock

log = logging.getLogger("stemdesk.app")
TICK_MS = 33  # the playhead and the meters, at 30 Hz
WATCH_TICKS = 30  # how often the song's and stems' files are looked at (a stem edited elsewhere is checked again)


class MainWindow(QMainWindow):
    song_loaded = Signal(str)
    separation_finished = Signal(object)  # the Job
    job_finished = Signal(object)

    # what the views show, owned by the workspace
    project = property(lambda self: self.workspace.project)
    info: AudioInfo | None = property(lambda self: self.workspace.info)
    stems: dict[str, Path] = property(lambda self: self.workspace.stems)
    stems_offset: int = property(lambda self: self.workspace.stems_offset)
    dirty: bool = property(lambda self: self.workspace.changed)
    midi = property(lambda self: self.midi_link.controller)  # the MIDI controller, once connected
    midi_port = property(lambda self: self.midi_link.port)

    def __init__(self, settings: dict | None = None, ask: bool = True, registry: Registry | None = None):
        super().__init__()
        from PySide6.QtWidgets import QApplication

        from .theme import apply_dark_theme

        apply_dark_theme(QApplication.instance())
        self.ask = ask  # False in tests and scripts: never block on a question
        # What plugins added (built once by the app's start): None means the built-ins only.
        self.registry = registry
        self.settings = settings or settings_store.load()
        self.setWindowTitle("StemDesk")
        self.setAcceptDrops(True)
        self.bridge = Bridge(self)
        self.queue = JobQueue(lambda job, what, payload: self.bridge.post(self._job_event, job, what, payload))
        self.display = JobQueue(lambda job, what, payload: self.bridge.post(self._display_event, job, what))
        self.engines = tasks.Engines(registry)
        # the session: Qt-free, announcing what changed; the window listens below and shows it
        self.workspace = Workspace(self.settings)
        self.job_book = JobBook()
        self.watch = StemsWatch(self.workspace)
        self.recent = RecentFiles(self.settings)
        self.midi_link = MidiLink(self.workspace, self.bridge.post)  # knob moves reach this thread by the bridge
        self.last_error: tuple[str, str] | None = None  # (title, text) of the last error shown
        self.dialogs: list[QMessageBox] = []
        self.question: QMessageBox | None = None  # the modal question being asked, if any
        self.undo = QUndoStack(self)
        self.undo.cleanChanged.connect(self._clean_changed)
        self.player = Player(self)
        self.player.latency = int(self.settings["audio_buffer_ms"]) / 1000
        self.player.problem.connect(lambda text: self.status(text, 10000))
        self.player.dropped_out.connect(lambda before, now: self.preferences.audio_dropped_out(before, now))
        self.player.state_changed.connect(self._player_state)
        self.closed = False
        self.separation, self.null_view, self.playing = SeparationFlow(self), NullView(self), PlayerFlow(self)
        self.model_flow, self.export_flow, self.project_flow = ModelsFlow(self), ExportFlow(self), ProjectFlow(self)
        self.preferences = Preferences(self)

        build_views(self)
        actions.build_actions(self)
        build_status_bar(self)
        self._ticks = 0
        self.tick = QTimer(self)
        self.tick.timeout.connect(self._tick)
        self.tick.start(TICK_MS)
        self.autosave_timer = QTimer(self)
        self.autosave_timer.timeout.connect(self.autosave)
        self.autosave_timer.start(int(self.settings["autosave_seconds"]) * 1000)
        self.midi_view = MidiView(self)
        self.mixer.learn.toggled.connect(self.midi_view.learn_toggled)

        # what the window shows of the session's announcements
        self.workspace.mix_changed.connect(self._mix_changed)
        self.workspace.loop_changed.connect(self._loop_changed)
        self.job_book.failed.connect(self._job_failed)
        self.job_book.ended.connect(self._job_ended)
        self.watch.reload.connect(self._stems_reloaded)
        self.watch.checked.connect(lambda check: self.null_view.show())
        self.watch.departed.connect(self._stems_departed)
        self.midi_link.moved.connect(
            lambda before, after: self.undo.push(MixCommand(self.apply_mix, "MIDI control", "midi", before, after))
        )
        self.status(f"StemDesk {__version__} ready. Open a song (Ctrl+O) or drop one here.")

    # --- what moved out, called by name (tests, scripts, the app's start) ---------------------------------------------
    def separate(self, audition: bool = False, selection: bool = False) -> Job | None:
        return self.separation.separate(audition, selection)

    def stems_folder(self, label: str = "") -> Path:
        return self.separation.stems_folder(label)

    def save_project(self, ask_path: bool = False, path: Path | None = None) -> Path | None:
        return self.project_flow.save_project(ask_path, path)

    def open_project(self, path: Path) -> bool:
        return self.project_flow.open_project(path)

    def autosave(self) -> Path | None:
        return self.project_flow.autosave()

    def offer_recovery(self, accept: bool | None = None) -> bool:
        return self.project_flow.offer_recovery(accept)

    def confirm_discard(self, doing: str) -> bool:
        return self.project_flow.confirm_discard(doing)

    def export_dialog(self) -> None:
        self.export_flow.export_dialog()

    def export(self, folder: Path, sessions=(), instrumental: bool = True, stems: bool = False, mix: bool = False):
        return self.export_flow.export(folder, sessions, instrumental, stems, mix)

    def bounce(self, path: Path) -> Job | None:
        return self.export_flow.bounce(path)

    def install_model(self, name: str) -> None:
        self.model_flow.install_model(name)

    def import_checkpoint(self, files: list[Path] | None = None) -> Job | None:
        return self.model_flow.import_checkpoint(files)

    def refresh_models(self) -> None:
        actions.refresh_models(self)

    def connect_midi(self, port: str | None = None, api: str | None = None) -> str | None:
        return self.midi_view.connect(port, api)

    def show_live_null(self, block: LiveNull) -> None:
        self.null_view.show_live(block, self._ticks)

    def status(self, text: str, ms: int = 0) -> None:
        self.statusBar().showMessage(text, ms)
        log.info(text)

    def show_error(self, title: str, text: str, unexpected: bool = False) -> None:
        """A known error shows its message (it says what to do); an unexpected one adds the log file's path."""
        if unexpected:
            text = f"{text}\n\nThis is a bug in StemDesk. Details are in the log:\n{log_file()}"
        self.last_error = (title, text)
        log.warning("%s: %s", title, text)
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        box.setModal(False)
        box.open()
        self.dialogs = [d for d in self.dialogs if d.isVisible()] + [box]

    # --- songs -------------------------------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        self.open_songs(open_files_dialog(self))

    def open_songs(self, paths: list[Path]) -> list[Job]:
        """One song opens in the timeline; several are a batch: the first opens, and every one of them is queued
        for separation with the current model, each with its own progress and Cancel in the Jobs dock."""
        if not paths:
            return []
        if len(paths) == 1:
            self.open_song(paths[0])
            return []
        if not self.open_song(paths[0]):
            return []
        jobs = [self.separate()] + [self.separation.separate_file(path) for path in paths[1:]]
        self.status(f"Queued {len(paths)} songs for separation with {self.model_box.currentText()}.")
        return [job for job in jobs if job is not None]

    def _separation_options(self, start: float = 0.0, duration: float | None = None):
        """The toolbar's and the settings' choices as separation options (the one `separate_options` every front
        end uses), or None after saying what is wrong."""
        from ..io.formats import LOSSLESS_FORMATS
        from ..jobs.separate import separate_options

        lossless = self.settings["format"] in LOSSLESS_FORMATS
        try:
            return separate_options(
                model=self.model_box.currentText(),
                format=self.settings["format"],
                bit_depth=self.settings["bit_depth"] if lossless else None,
                device=str(resolve_device(self.device_box.currentText())),
                start=start,
                duration=duration,
                segment=float(self.settings["segment_seconds"]),
            )
        except (ValueError, StemDeskError) as error:
            self.show_error("Cannot separate", words(error))
            return None

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        projects_ = [p for p in paths if p.suffix == projects.SUFFIX]
        if projects_:
            self.open_project(projects_[0])
        elif paths:
            self.open_songs(paths)

    def open_song(self, path: str | Path) -> bool:
        path = Path(path).resolve()
        if not self.confirm_discard(f"opening {path.name}"):
            return False
        try:
            self.workspace.open_song(path, self.model_box.currentText())
        except StemDeskError as error:
            self.show_error("Cannot open this song", words(error))
            return False
        self.undo.clear()
        self._show_stems_mix([])
        self._show_song()
        return True

    def _show_song(self) -> None:
        """The open song in the timeline and the player (its stems come after, if any)."""
        path, info = self.workspace.song, self.info
        self.player.close()
        self.playing.live = None
        self.timeline.set_song(info.sample_rate, info.frames)
        mix_lane = Lane("mix", Peaks(info.sample_rate, info.frames), busy=True)
        self.timeline.set_lanes([mix_lane])
        fill = self.separation.fill_peaks
        self.display.submit(
            Job("peaks", f"Waveform of {path.name}", lambda job: fill(job, path, mix_lane), device="display")
        )
        if not self.project.source_sha256:  # hashed on the display thread, kept on this one
            project, keep = self.project, self.workspace.set_fingerprint
            self.display.submit(
                Job(
                    "hash",
                    f"Fingerprint of {path.name}",
                    lambda job: self.bridge.post(keep, project, sha256_file(path)),
                    device="display",
                )
            )
        self.player.load(MixSource(path, None, self.workspace.mix))
        self.setWindowTitle(f"{path.name} — StemDesk")
        self.recent.add(path)
        self.null_label.setText("Null: no stems yet")
        self.null_label.setStyleSheet("")
        self.watch.new_stems()
        self.null_view.show_views()
        self._show_stems_folder()
        self.status(f"Opened {path.name}: {info.seconds:.1f} s, {info.sample_rate} Hz, {info.channels} ch.")
        self.song_loaded.emit(str(path))

    def _display_event(self, job: Job, what: str) -> None:
        if what == "failed":
            self.show_error(job.title, job.error or "failed", job.unexpected)
        self.timeline.canvas.update()

    def _show_stems_folder(self) -> None:
        folder = Path(self.project.stems_dir) if self.project.stems_dir and self.stems else None
        self.folder_button.setEnabled(folder is not None)
        self.folder_button.setText(f"Stems: {folder.parent.name}/{folder.name}" if folder else "Stems: none yet")
        self.folder_button.setToolTip(f"Open {folder} in the file manager" if folder else "")

    def open_stems_folder(self) -> bool:
        from PySide6.QtCore import QUrl
        from PySide6.QtGui import QDesktopServices

        if not self.project.stems_dir or not Path(self.project.stems_dir).is_dir():
            return False
        return QDesktopServices.openUrl(QUrl.fromLocalFile(self.project.stems_dir))

    # --- the stems' files: checked again when they change (`session.watch` decides) ----------------------------------
    def check_stems(self) -> Job | None:
        """Check the stems' files against their certificate in the background (see `tasks.recheck`); when one
        changed, the null is measured again, and the timeline, the lanes and the player show the files as they are."""
        checking = self.watch.start()
        if checking is None:
            return None
        task = tasks.recheck(checking.folder, self.workspace.song)
        return self.run_task(task, "check-stems", on_done=lambda check: self.watch.finished(checking, check))

    def _stems_reloaded(self, check: tasks.Recheck) -> None:
        """The files are not the ones playing and drawn: take them again."""
        self.playing.reload(resume=True)
        self.separation.restore_stem_lanes()

    def _stems_departed(self, names: list[str]) -> None:
        self.docks["Null"].raise_()
        self.status(
            f"Changed since the certificate: {', '.join(names)}. The Null dock shows where the stems depart.", 15000
        )

    # --- jobs (`session.jobs` keeps the book) -------------------------------------------------------------------------
    def run_task(
        self,
        task: tasks.Task,
        kind: str,
        on_done: Callable | None = None,
        on_end: Callable | None = None,
        finished: Signal | None = None,
    ) -> Job:
        """Queue ``task``; ``on_done(result)`` runs on this thread when it succeeds, ``on_end(job)`` whenever it
        ends (done, failed or cancelled), and ``finished`` is emitted after `job_finished`. Failures are shown
        here, cancels are not."""
        job = Job(kind, task.title, lambda job: task.work(job.report, job.cancel_token), task.device, task.model)
        self.job_book.track(job.id, kind, on_done, on_end, finished, cancel=job.cancel)
        self.queue.submit(job)
        self.jobs_panel.update_job(job, task.model)
        return job

    def _job_event(self, job: Job, what: str, payload: Any) -> None:
        self.jobs_panel.update_job(job, job.model)
        if what == "progress" and isinstance(payload, dict) and "valid_usdr" in payload:
            self.trainer.add_validation(payload)
        self.job_book.event(job, what)

    def _job_failed(self, job: Job) -> None:
        self.show_error(
            f"{job.title} failed", words(job.exception) if job.exception else job.error or "", job.unexpected
        )

    def _job_ended(self, job: Job, finished: Signal | None) -> None:
        self.job_finished.emit(job)
        if finished is not None:
            finished.emit(job)

    # --- the mix (the workspace owns it), MIDI, transport ---------------------------------------------------------
    def _show_stems_mix(self, stems: list[str]) -> None:
        """The mixer's strips and the lane headers show these stems and the workspace's mix (the one mix: neither
        keeps a copy of its own)."""
        self.mixer.set_stems(stems, self.workspace.mix)
        self.timeline.canvas.mix = self.workspace.mix if stems else None
        self.timeline.canvas.update()

    def apply_mix(self, mix: Mix) -> None:
        """An edit of the mix (undo, redo, a strip, a lane header, a knob): the workspace takes it and announces it."""
        self.workspace.set_mix(mix)

    def _mix_changed(self, mix: Mix) -> None:
        """The workspace's new mix reaches every view as it is: the strips, the lane headers and the player keep
        this one (the workspace never changes it; the next edit replaces it), so none can drift from it."""
        self._show_stems_mix(self.playing.live.names if self.playing.live is not None else list(self.stems))
        self.null_view.show_views(self.null_view.live_null())  # the dock says what the mix does to each stem
        if self.player.source is not None:
            self.player.source.set_mix(mix)

    def player_toggle(self) -> None:
        self.player.toggle()

    def stop(self) -> None:
        self.player.stop()
        loop = self._active_loop()
        self.seek(loop[0] if loop else 0.0)

    def seek(self, seconds: float) -> None:
        self.player.seek(seconds)
        self.timeline.canvas.playhead = seconds
        self.timeline.canvas.update()

    def set_loop(self, span) -> None:
        self.workspace.set_loop(span)

    def _loop_changed(self, loop: tuple[float, float] | None) -> None:
        self.timeline.canvas.loop = loop
        self.timeline.canvas.update()
        if loop and not self.loop_action.isChecked():
            self.loop_action.setChecked(True)
        self.toggle_loop()

    def toggle_loop(self) -> None:
        self.player.set_loop(self._active_loop())

    def _active_loop(self) -> tuple[float, float] | None:
        """The loop region when looping is on."""
        return self.workspace.loop if self.loop_action.isChecked() else None

    def _player_state(self, state: str) -> None:
        self.play_action.setText("Pause" if state == "playing" else "Play")
        if state != "playing":
            self.null_view.stopped()

    def _tick(self) -> None:
        self._ticks += 1
        if self._ticks % WATCH_TICKS == 0:
            book = self.job_book
            if self.watch.due(checking=book.running("check-stems") > 0, separating=book.running("separate") > 0):
                self.check_stems()
        self.mixer.show_levels(self.player.take_levels() if self.player.state == "playing" else None)
        if self.player.source is None:
            return
        seconds = self.player.position_seconds()
        if self.player.state == "playing":
            self.timeline.canvas.move_playhead(seconds)
            if self.stems and self.playing.live is None:  # a running separation's stems are not measured
                self.show_live_null(self.player.source.take_null())
        self.position_label.setText(clock(seconds))
        self.playing.say_waiting(self.player.state == "playing" and self.player.source.waiting)

    @property
    def live(self) -> LiveStems | None:
        """The running separation's stems the player is on (`PlayerFlow.live`)."""
        return self.playing.live

    # --- unsaved work, settings, closing -------------------------------------------------------------------------
    def _clean_changed(self, clean: bool) -> None:
        self._set_dirty(not clean)

    def _set_dirty(self, dirty: bool) -> None:
        self.workspace.changed = dirty
        self.setWindowTitle(f"{'• ' if dirty else ''}{self.workspace.name} — StemDesk")

    def closeEvent(self, event) -> None:
        if not self.confirm_discard("closing"):
            event.ignore()
            return
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Stop playback, cancel jobs and wait for the worker threads (closing leaves no thread behind)."""
        if self.closed:
            return
        self.closed = True
        self.tick.stop()
        self.autosave_timer.stop()
        self.bridge.timer.stop()
        self.undo.cleanChanged.disconnect(self._clean_changed)
        self.player.close()
        self.midi_link.close()
        self.queue.shutdown(cancel=True)
        self.display.shutdown(cancel=True)
        self.workspace.close()
