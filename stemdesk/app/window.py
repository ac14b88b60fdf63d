"""The main window: timeline in the centre, transport and job controls on the toolbar, docks for the mixer, jobs, the
null check, models, trainer and settings, the null meter always visible in the status bar.

The window wires views to the Qt-free session objects and shows what they announce: the workspace owns the song, its
stems, the one mix and the loop (`song_opened`, `stems_changed`, `dirty`, `mix_changed`, `loop_changed`), the job
book says what to do when a job ends (`failed`, `ended`), the stems watch decides when the files are checked again
and what a check found (`checked`, `departed`), the MIDI link turns knob moves into mix edits (`moved`, `bound`,
`problem`), and the recent files follow what is opened (`changed`). Each view listens to what it shows: the lanes
(`lanes`), the player (`player_flow`) and the null (`null_view`) subscribe to the workspace themselves.

Built in three steps, each in one place: the widgets (`docks.build_views`, `actions.build_actions`), the helpers, each
given the collaborators it uses (the flows of separation, projects, models and exports see the window only as a
`Front`: status, errors, questions, tasks, docks), then the wiring of the widgets' signals (`_wire`). Every attribute is declared here.

Work runs in `stemdesk.jobs` queues (one per device); their events come back to this thread through `Bridge`.
Nothing outside this thread touches a widget or changes the workspace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer, Signal, SignalInstance
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import QMainWindow, QMessageBox

from ..core.errors import StemDeskError
from ..core.version import __version__
from ..io import settings as settings_store
from ..io.audio import AudioInfo
from ..io.model_store import DEFAULT_MODEL, sha256_file
from ..io.paths import log_file
from ..io.registry import Registry
from ..jobs.queue import Job, JobQueue
from ..mixer.mix import Mix
from ..session import hints, tasks
from ..session import project as projects
from ..session.jobs import JobBook
from ..session.midi_map import MidiLink
from ..session.recent import RecentFiles
from ..session.watch import StemsWatch
from ..session.workspace import Workspace
from .actions import build_actions, build_menus
from .bridge import Bridge
from .commands import LoopCommand, MixCommand
from .docks import build_views, fill_model_box
from .drag_out import DragOut
from .errors import words
from .export_dialog import ExportDialog
from .export_flow import ExportFlow
from .karaoke_flow import KaraokeFlow
from .lanes import LanesView
from .lyrics_flow import LyricsFlow
from .midi_view import MidiView
from .models_flow import ModelsFlow
from .null_view import NullView
from .panels import open_files_dialog
from .playback import LiveNull, LiveStems, Player
from .player_flow import PlayerFlow
from .preferences import Preferences
from .project_flow import ProjectFlow
from .separation import SeparationFlow
from .timeline import clock

log = logging.getLogger("stemdesk.app")
TICK_MS = 33  # the playhead and the meters, at 30 Hz
WATCH_TICKS = 30  # how often the song's and stems' files are looked at (a stem edited elsewhere is checked again)


class MainWindow(QMainWindow):
    song_loaded = Signal(str)
    separation_finished = Signal(object)  # the Job
    job_finished = Signal(object)

    # what the views show, owned by the workspace
    @property
    def project(self) -> projects.Project:
        return self.workspace.project

    @property
    def info(self) -> AudioInfo | None:
        return self.workspace.info

    @property
    def stems(self) -> dict[str, Path]:
        return self.workspace.stems

    @property
    def stems_offset(self) -> int:
        return self.workspace.stems_offset

    @property
    def dirty(self) -> bool:
        return self.workspace.changed

    @property
    def midi(self):
        """The MIDI controller, once connected."""
        return self.midi_link.controller

    # dialogs the flows opened, for tests and scripts
    @property
    def licence_box(self) -> QMessageBox | None:
        return self.model_flow.licence_box

    @property
    def export_box(self) -> ExportDialog | None:
        return self.export_flow.box

    def __init__(self, settings: dict | None = None, ask: bool = True, registry: Registry | None = None):
        super().__init__()
        from PySide6.QtWidgets import QApplication

        from .theme import apply_dark_theme

        app = QApplication.instance()
        assert isinstance(app, QApplication)  # a window needs the widgets' application
        apply_dark_theme(app)
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
        # the session: Qt-free, announcing what changed; the views listen and show it
        self.workspace = Workspace(self.settings)
        self.job_book = JobBook()
        self.watch = StemsWatch(self.workspace)
        self.recent = RecentFiles(self.settings)
        self.midi_link = MidiLink(self.workspace, self.bridge.post)  # knob moves reach this thread by the bridge
        self.last_error: tuple[str, str] | None = None  # (title, text) of the last error shown
        self.dialogs: list[QMessageBox] = []
        self.question: QMessageBox | None = None  # the modal question being asked, if any
        self.undo = QUndoStack(self)
        self.player = Player(self)
        self.player.latency = int(self.settings["audio_buffer_ms"]) / 1000
        self.closed = False
        self._ticks = 0
        self.tick = QTimer(self)
        self.autosave_timer = QTimer(self)

        self._build_widgets()
        self._build_helpers()
        self._build_actions()
        self._wire()
        self.tick.start(TICK_MS)
        self.autosave_timer.start(int(self.settings["autosave_seconds"]) * 1000)
        self.status(f"StemDesk {__version__} ready. Open a song (Ctrl+O) or drop one here.")

    def _build_widgets(self) -> None:
        """1. The widgets: the timeline, the docks' panels, the toolbar's boxes and the status bar's labels."""
        v = build_views(self, self.registry, self.settings)
        self.timeline, self.offer_bar, self.mixer, self.jobs_panel = v.timeline, v.offer_bar, v.mixer, v.jobs_panel
        self.models_panel, self.trainer, self.settings_panel = v.models_panel, v.trainer, v.settings_panel
        self.null_panel, self.docks, self.model_box, self.device_box = v.null_panel, v.docks, v.model_box, v.device_box
        self.null_label, self.position_label, self.folder_button = v.null_label, v.position_label, v.folder_button

    def _build_helpers(self) -> None:
        """2. The helpers, each given what it uses: the views that listen to the workspace, and the flows (which type
        the window as a `Front`)."""
        registry = self.registry
        self.lanes = LanesView(self.timeline, self.workspace, self.display, self.bridge.post)
        self.playing = PlayerFlow(
            self.player, self.workspace, self._show_strips, self.active_loop, self.status, self.statusBar()
        )
        canvas = self.timeline.canvas
        self.null_view = NullView(self.workspace, canvas, self.null_label, self.null_panel, self.edit_loop, self.seek)
        self.midi_view = MidiView(self.midi_link, self.player, self.mixer.learn, self.status, self.show_error)
        self.preferences = Preferences(
            self.settings, self.settings_panel, self.player, self.device_box, self.autosave_timer, self.status
        )
        self.model_flow = ModelsFlow(
            self,
            self,
            registry,
            self.settings,
            self.job_book,
            self.offer_bar,
            self.models_panel,
            self.trainer,
            self.refresh_models,
        )
        self.separation = SeparationFlow(
            self,
            self,
            self.workspace,
            self.settings,
            self.engines,
            self.bridge.post,
            self.lanes,
            self.playing,
            self.model_box,
            self.device_box,
            canvas,
            self.model_flow.offer_better_model,
            self.separation_finished,
        )
        self.export_flow = ExportFlow(self, self, self.workspace, self.settings, registry)
        self.lyrics_flow = LyricsFlow(self, self, self.workspace, self.undo, self.timeline, self.playhead_seconds)
        self.karaoke_flow = KaraokeFlow(
            self, self, self.workspace, self.lyrics_flow, self.mixer.key, self.edit_mix, self.playhead_seconds
        )
        self.drag_out = DragOut(self, self.workspace, canvas)  # stems and regions dragged out of the timeline
        self.project_flow = ProjectFlow(
            self,
            self,
            self.workspace,
            registry,
            self.recent,
            self.undo,
            canvas,
            self.select_model,
            self.check_stems,
            self.open_song,
        )

    def _build_actions(self) -> None:
        """The actions, in the menus and the toolbar."""
        a = build_actions(self)
        self.open_action, self.open_project_action, self.save_action = (
            a.open_action,
            a.open_project_action,
            a.save_action,
        )
        self.save_as_action, self.export_action, self.bounce_action = a.save_as_action, a.export_action, a.bounce_action
        self.quit_action, self.play_action, self.stop_action = a.quit_action, a.play_action, a.stop_action
        self.loop_action, self.separate_action, self.audition_action = (
            a.loop_action,
            a.separate_action,
            a.audition_action,
        )
        self.separate_selection_action = a.separate_selection_action
        self.zoom_in_action, self.zoom_out_action, self.fit_action = a.zoom_in_action, a.zoom_out_action, a.fit_action
        self.paste_lyrics_action, self.open_lyrics_action = a.paste_lyrics_action, a.open_lyrics_action
        self.align_lyrics_action, self.remove_lyrics_action = a.align_lyrics_action, a.remove_lyrics_action
        self.tap_word_action, self.tap_line_action = a.tap_word_action, a.tap_line_action
        self.karaoke_view_action, self.karaoke_full_screen_action = a.karaoke_view_action, a.karaoke_full_screen_action
        self.export_karaoke_action = a.export_karaoke_action
        self.lyrics_flow.lane_actions[:] = a.lyrics_actions()  # the lyrics' lane offers them in its menu
        self.recent_menu = build_menus(self, a)

    def _wire(self) -> None:
        """3. What each widget's signal asks for, and what the window itself shows of the session's announcements."""
        canvas, work = self.timeline.canvas, self.workspace
        self.offer_bar.install_requested.connect(self.model_flow.offer_install)
        self.offer_bar.declined.connect(lambda model: hints.record("app", "declined"))
        canvas.seek.connect(self.seek)
        canvas.loop_changed.connect(self.edit_loop)
        canvas.selection_changed.connect(lambda span: self.separate_selection_action.setEnabled(bool(span)))
        canvas.spectrogram_requested.connect(self.lanes.compute_spectrogram)
        canvas.control_touched.connect(self.midi_view.control_touched)
        canvas.null_region_clicked.connect(self.null_view.goto_region)
        canvas.control_edited.connect(self.mixer.edit)  # lane headers edit the mix the way the strips do (undo, MIDI)
        canvas.folded.connect(self.mixer.fold)  # a split stem folded on the timeline folds its strips too
        canvas.lane_menu.connect(self.separation.offer_splits)  # a stem lane offers the split models that split it
        canvas.lane_menu.connect(self.separation.offer_midi)  # and to write the stems' MIDI
        self.mixer.changed.connect(self.edit_mix)
        self.mixer.control_touched.connect(self.midi_view.control_touched)
        self.jobs_panel.cancel_requested.connect(lambda job: job.cancel())
        models = self.models_panel
        models.install_requested.connect(self.model_flow.install_model)
        models.install_from_files_requested.connect(self.model_flow.install_from_files)
        models.import_requested.connect(lambda: self.model_flow.import_checkpoint())
        models.remove_requested.connect(self.model_flow.remove_model)
        models.cancel_download_requested.connect(self.model_flow.cancel_download)
        models.use_requested.connect(self.model_box.setCurrentText)
        self.model_box.currentTextChanged.connect(models.show_model)
        self.trainer.check_requested.connect(self.model_flow.check_data)
        self.trainer.train_requested.connect(self.model_flow.start_training)
        self.trainer.cancel_requested.connect(self.model_flow.cancel_training)
        self.null_panel.seek_requested.connect(self.seek)
        self.null_panel.loop_requested.connect(self.null_view.loop_region)
        self.folder_button.clicked.connect(self.open_stems_folder)
        self.player.problem.connect(lambda text: self.status(text, 10000))
        self.player.state_changed.connect(self._player_state)
        self.undo.cleanChanged.connect(self._clean_changed)
        self.tick.timeout.connect(self._tick)
        self.autosave_timer.timeout.connect(self.autosave)

        work.song_opened.connect(self._song_opened)
        work.stems_changed.connect(self._stems_changed)
        work.dirty.connect(self._show_title)
        work.mix_changed.connect(self._mix_changed)
        work.loop_changed.connect(self._loop_changed)
        self.job_book.failed.connect(self._job_failed)
        self.job_book.ended.connect(self._job_ended)
        self.watch.checked.connect(lambda check: self.null_view.show())
        self.watch.departed.connect(self._stems_departed)
        self.midi_link.moved.connect(
            lambda before, after: self.undo.push(MixCommand(self.apply_mix, "MIDI control", "midi", before, after))
        )

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
        fill_model_box(self.model_box, self.registry, self.settings.get("model", DEFAULT_MODEL))

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
        self.keep_open(box)

    def raise_dock(self, title: str) -> None:
        """Bring the dock ``title`` ("Jobs", "Models", "Null"...) forward."""
        self.docks[title].raise_()

    def select_model(self, model_id: str) -> None:
        """The toolbar's Model box and the Models dock show ``model_id``."""
        self.model_box.setCurrentText(model_id)
        self.models_panel.select(model_id)

    def keep_open(self, box: QMessageBox) -> None:
        """A modeless box stays referenced (so alive) while it is open."""
        self.dialogs = [d for d in self.dialogs if d.isVisible()] + [box]

    def put(self, box: QMessageBox) -> int:
        """Ask the modal question ``box`` and wait for its answer (`question` is it meanwhile: tests answer it, a
        SIGTERM rejects it)."""
        self.question = box
        try:
            return box.exec()
        finally:
            self.question = None

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
            self.workspace.open_song(path, self.model_box.currentText())  # the views follow its announcements
        except StemDeskError as error:
            self.show_error("Cannot open this song", words(error))
            return False
        return True

    def _song_opened(self, info: AudioInfo) -> None:
        """A song or a project opened: nothing to undo, its fingerprint (hashed on the display thread, kept on this
        one), the recent files, and what the status bar says (the lanes, the player and the null follow themselves)."""
        path, project = self.workspace.song, self.project
        assert path is not None
        self.undo.clear()
        if not project.source_sha256:
            keep = self.workspace.set_fingerprint
            self.display.submit(
                Job(
                    "hash",
                    f"Fingerprint of {path.name}",
                    lambda job: self.bridge.post(keep, project, sha256_file(path)),
                    device="display",
                )
            )
        self.recent.add(path)
        self.status(f"Opened {path.name}: {info.seconds:.1f} s, {info.sample_rate} Hz, {info.channels} ch.")
        self.song_loaded.emit(str(path))

    def _stems_changed(self, why: str) -> None:
        """Other stems, or none: the mixer's strips and the stems folder in the status bar show them."""
        self._show_strips(self.playing.names())
        folder = self.workspace.stems_dir
        self.folder_button.setEnabled(folder is not None)
        self.folder_button.setText(f"Stems: {folder.parent.name}/{folder.name}" if folder else "Stems: none yet")
        self.folder_button.setToolTip(f"Open {folder} in the file manager" if folder else "")

    def _show_title(self, dirty: bool) -> None:
        self.setWindowTitle(f"{'• ' if dirty else ''}{self.workspace.name} — StemDesk")

    def _display_event(self, job: Job, what: str) -> None:
        if what == "failed":
            self.show_error(job.title, job.error or "failed", job.unexpected)
        self.timeline.canvas.update()

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
        song = self.workspace.song
        assert song is not None  # there are stems (`StemsWatch.start`)
        task = tasks.recheck(checking.folder, song)
        return self.run_task(task, "check-stems", on_done=lambda check: self.watch.finished(checking, check))

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
        finished: SignalInstance | None = None,
        on_progress: Callable | None = None,
    ) -> Job:
        """Queue ``task``; ``on_progress(payload)`` runs on this thread at each of its progress reports,
        ``on_done(result)`` when it succeeds, ``on_end(job)`` whenever it ends (done, failed or cancelled), and
        ``finished`` is emitted after `job_finished`. Failures are shown here, cancels are not."""
        job = Job(kind, task.title, lambda job: task.work(job.report, job.cancel_token), task.device, task.model)
        self.job_book.track(job.id, kind, on_done, on_end, finished, cancel=job.cancel, on_progress=on_progress)
        self.queue.submit(job)
        self.jobs_panel.update_job(job, task.model)
        return job

    def _job_event(self, job: Job, what: str, payload: Any) -> None:
        self.jobs_panel.update_job(job, job.model)
        self.job_book.event(job, what, payload)

    def _job_failed(self, job: Job) -> None:
        self.show_error(
            f"{job.title} failed", words(job.exception) if job.exception else job.error or "", job.unexpected
        )

    def _job_ended(self, job: Job, finished: SignalInstance | None) -> None:
        self.job_finished.emit(job)
        if finished is not None:
            finished.emit(job)

    # --- the mix (the workspace owns it), MIDI, transport ---------------------------------------------------------
    def _show_strips(self, stems: list[str]) -> None:
        """The mixer's strips and the lane headers show these stems and the workspace's mix (the one mix: neither
        keeps a copy of its own)."""
        self.mixer.set_stems(stems, self.workspace.mix, tasks.split_cautions(self.workspace.stems_dir))
        self.timeline.canvas.mix = self.workspace.mix if stems else None
        self.timeline.canvas.update()

    def edit_mix(self, text: str, control: str, before: Mix, after: Mix) -> None:
        """An undoable edit of the mix (a strip, a preset, the karaoke screen's key)."""
        self.undo.push(MixCommand(self.apply_mix, text, control, before, after))

    def apply_mix(self, mix: Mix) -> None:
        """An edit of the mix (undo, redo, a strip, a lane header, a knob): the workspace takes it and announces it."""
        self.workspace.set_mix(mix)

    def _mix_changed(self, mix: Mix) -> None:
        """The workspace's new mix reaches every view as it is: the strips, the lane headers and the player keep
        this one (the workspace never changes it; the next edit replaces it), so none can drift from it."""
        self._show_strips(self.playing.names())
        self.null_view.show_views(self.null_view.live_null())  # the dock says what the mix does to each stem
        if self.player.source is not None:
            self.player.source.set_mix(mix)

    def player_toggle(self) -> None:
        self.player.toggle()

    def stop(self) -> None:
        self.player.stop()
        loop = self.active_loop()
        self.seek(loop[0] if loop else 0.0)

    def playhead_seconds(self) -> float:
        """Where the song is: the player's position while it has something to play, else the timeline's playhead."""
        return self.player.position_seconds() if self.player.source is not None else self.timeline.canvas.playhead

    def seek(self, seconds: float) -> None:
        self.player.seek(seconds)
        self.timeline.canvas.playhead = seconds
        self.timeline.canvas.update()

    def edit_loop(self, span) -> None:
        """An undoable edit of the loop region (Shift+drag, a residual window looped); None: no loop."""
        work = self.workspace
        self.undo.push(
            LoopCommand(work.set_loop, work.project.view.get("loop"), [float(t) for t in span] if span else None)
        )

    def set_loop(self, span) -> None:
        self.workspace.set_loop(span)

    def _loop_changed(self, loop: tuple[float, float] | None) -> None:
        self.timeline.canvas.loop = loop
        self.timeline.canvas.update()
        if loop and not self.loop_action.isChecked():
            self.loop_action.setChecked(True)
        self.toggle_loop()

    def toggle_loop(self) -> None:
        self.player.set_loop(self.active_loop())

    def active_loop(self) -> tuple[float, float] | None:
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
        """The undo stack is back where the project was saved (or left it): the workspace says so (`_show_title`)."""
        self.workspace.changed = not clean

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
