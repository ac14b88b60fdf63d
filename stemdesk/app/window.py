"""The main window: timeline in the centre, transport and job controls on the toolbar, docks for the mixer, jobs, the
null check, models, trainer and settings, the null meter always visible in the status bar.

Work runs in `stemdesk.jobs` queues (one per device); their events come back to this thread through `Bridge`.
Nothing outside this thread touches a widget.
"""

from __future__ import annotations

import copy
import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QUndoStack
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from .. import __version__
from ..core.device import DEVICES, resolve_device
from ..core.errors import StemDeskError
from ..io import settings as settings_store
from ..io.audio import AudioInfo, iter_blocks, probe
from ..io.installable import INSTALLABLE
from ..io.model_store import DEFAULT_MODEL, list_models, remove_model, sha256_file
from ..io.paths import log_file
from ..io.registry import Registry
from ..io.stems import earlier_stems
from ..jobs.peaks import Peaks
from ..jobs.queue import Job, JobQueue
from ..mixer.mix import Mix
from ..session import hints, tasks
from ..session import project as projects
from ..session.workspace import SongMissing, Workspace
from .bridge import Bridge
from .commands import LoopCommand, MixCommand
from .mixer_panel import MixerPanel
from .null_panel import CLIPPED, GOOD, NullPanel
from .offer_bar import OfferBar
from .panels import (
    ExportDialog,
    JobsPanel,
    ModelsPanel,
    SettingsPanel,
    TrainerPanel,
    checkpoint_files_dialog,
    open_files_dialog,
)
from .playback import LiveNull, MixSource, Player
from .timeline import NULL_RED, Lane, StemMark, Timeline, clock, spectrogram_image, to_qimage

log = logging.getLogger("stemdesk.app")
MAX_RECENT = 10
TICK_MS = 33  # the playhead and the meters, at 30 Hz
LIVE_TICKS = 30  # the live null shown is over the last second played
WATCH_TICKS = 30  # how often the song's and stems' files are looked at (a stem edited elsewhere is checked again)

# How the app names the settings an error says would fix it (StemDeskError.setting).
CONTROLS = {
    "device": "the Device box in the toolbar",
    "segment_seconds": "Segment in Settings",
    "threads": "Threads in Settings",
    "start": "the selection",
    "duration": "the selection",
}


def words(error: BaseException) -> str:
    """An error as the app says it: its message, then the control that fixes it."""
    text = str(error)
    setting, value = getattr(error, "setting", None), getattr(error, "value", None)
    if setting == "install" and value in INSTALLABLE:  # a model not installed yet: the Models dock installs it
        return f"{text} Install it in the Models dock: Install\u2026 \u2192 {INSTALLABLE[value].title}."
    if setting == "model":
        return f"{text} The Models dock lists the installed models."
    control = CONTROLS.get(setting or "")
    if control:
        text += f" Choose \u201c{value}\u201d in {control}." if value else f" Check {control}."
    return text


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
        self.workspace = Workspace(self.settings)
        self._then: dict[int, tuple] = {}  # job id -> (on done, on any end, signal to emit at the end)
        self.last_error: tuple[str, str] | None = None  # (title, text) of the last error shown
        self.dialogs: list[QMessageBox] = []
        self.question: QMessageBox | None = None  # the modal question being asked, if any
        self.undo = QUndoStack(self)
        self.undo.cleanChanged.connect(self._clean_changed)
        self.player = Player(self)
        self.player.latency = int(self.settings["audio_buffer_ms"]) / 1000
        self.player.problem.connect(lambda text: self.status(text, 10000))
        self.player.dropped_out.connect(self._audio_dropped_out)
        self.player.state_changed.connect(self._player_state)
        self.training_job: Job | None = None
        self.closed = False

        self.timeline = Timeline(self)
        # above the timeline, hidden until there is something to offer (a better model after the default's stems)
        self.offer_bar = OfferBar()
        self.offer_bar.install_requested.connect(self._offer_install)
        self.offer_bar.declined.connect(lambda model: hints.record("app", "declined"))
        centre = QWidget()
        column = QVBoxLayout(centre)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.offer_bar)
        column.addWidget(self.timeline, 1)
        self.setCentralWidget(centre)
        c = self.timeline.canvas
        c.seek.connect(self.seek)
        c.loop_changed.connect(
            lambda span: self.undo.push(
                LoopCommand(self.set_loop, self.project.view.get("loop"), list(span) if span else None)
            )
        )
        c.selection_changed.connect(lambda span: self.separate_selection_action.setEnabled(bool(span)))
        c.spectrogram_requested.connect(self.compute_spectrogram)
        c.control_touched.connect(lambda control: self._control_touched(control))
        c.null_region_clicked.connect(self.goto_null_region)

        self.mixer = MixerPanel(registry=registry)
        self.mixer.changed.connect(
            lambda text, control, before, after: self.undo.push(
                MixCommand(self.apply_mix, text, control, before, after)
            )
        )
        self.mixer.control_touched.connect(self._control_touched)
        c.control_edited.connect(self.mixer.edit)  # lane headers edit the mix the way the strips do (undo, MIDI)
        self.jobs_panel = JobsPanel()
        self.jobs_panel.cancel_requested.connect(lambda job: job.cancel())
        self.models_panel = ModelsPanel(registry=registry)
        self.models_panel.install_requested.connect(self.install_model)
        self.models_panel.import_requested.connect(lambda: self.import_checkpoint())
        self.models_panel.remove_requested.connect(self.remove_model)
        self.models_panel.use_requested.connect(lambda model_id: self.model_box.setCurrentText(model_id))
        self.trainer = TrainerPanel()
        self.trainer.check_requested.connect(self.check_data)
        self.trainer.train_requested.connect(self.start_training)
        self.trainer.cancel_requested.connect(lambda: self.training_job and self.training_job.cancel())
        self.settings_panel = SettingsPanel(self.settings)
        self.settings_panel.changed.connect(self._setting_changed)
        self.null_panel = NullPanel()
        self.null_panel.seek_requested.connect(self.seek)
        self.null_panel.loop_requested.connect(self.loop_region)
        self.docks = {}
        for title, widget in (
            ("Mixer", self.mixer),
            ("Jobs", self.jobs_panel),
            ("Null", self.null_panel),
            ("Models", self.models_panel),
            ("Trainer", self.trainer),
            ("Settings", self.settings_panel),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(title)
            dock.setWidget(widget)
            self.docks[title] = dock
        # placed once each: a dock added to an area and then moved into a tab group left a stray tab bar painted
        # over the mixer
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.docks["Mixer"])
        self.splitDockWidget(self.docks["Mixer"], self.docks["Jobs"], Qt.Orientation.Horizontal)
        self.tabifyDockWidget(self.docks["Jobs"], self.docks["Null"])
        self.docks["Jobs"].raise_()
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.docks["Models"])
        self.tabifyDockWidget(self.docks["Models"], self.docks["Trainer"])
        self.tabifyDockWidget(self.docks["Trainer"], self.docks["Settings"])
        self.docks["Models"].raise_()
        self.resizeDocks([self.docks["Mixer"]], [330], Qt.Orientation.Vertical)
        # the mixer's four strips and the master fit without scrolling at 1280 px
        self.resizeDocks([self.docks["Mixer"], self.docks["Jobs"]], [730, 410], Qt.Orientation.Horizontal)

        self._build_actions()
        self.null_label = QLabel("Null: no stems yet")
        self.null_label.setObjectName("null-meter")
        self.null_label.setMinimumWidth(260)
        self.position_label = QLabel("0:00.0")
        # where the stems are: always visible, one click opens the folder in the file manager
        self.folder_button = QPushButton("Stems: none yet")
        self.folder_button.setFlat(True)
        self.folder_button.setEnabled(False)
        self.folder_button.clicked.connect(self.open_stems_folder)
        self.statusBar().addPermanentWidget(self.folder_button)
        self.statusBar().addPermanentWidget(self.position_label)
        self.statusBar().addPermanentWidget(self.null_label)
        self._ticks = 0
        self._live: deque[LiveNull] = deque(maxlen=LIVE_TICKS)  # the live null of the last ticks while playing
        self._files_seen: tuple = ()  # the song's and stems' files as last checked
        self._checking = False  # a check of the stems against their certificate is running
        self._separating = 0  # separations of the open song running (they write the files being watched)
        self._stems_made = 0  # counts the stems the workspace took on, so a check of earlier ones is dropped
        self.tick = QTimer(self)
        self.tick.timeout.connect(self._tick)
        self.tick.start(TICK_MS)
        self.autosave_timer = QTimer(self)
        self.autosave_timer.timeout.connect(self.autosave)
        self.autosave_timer.start(int(self.settings["autosave_seconds"]) * 1000)
        self.midi = None
        self.midi_port = None
        self.mixer.learn.toggled.connect(self._learn_toggled)
        self.status(f"StemDesk {__version__} ready. Open a song (Ctrl+O) or drop one here.")

    # --- actions and toolbar ------------------------------------------------------------------------------------
    def _build_actions(self) -> None:
        def action(text, slot, shortcut=None, tip=None) -> QAction:
            act = QAction(text, self)
            act.triggered.connect(slot)
            if shortcut:
                act.setShortcut(QKeySequence(shortcut))
            if tip:
                act.setToolTip(tip)
            self.addAction(act)
            return act

        self.open_action = action("Open song…", self.open_dialog, "Ctrl+O")
        self.open_project_action = action("Open project…", self.open_project_dialog, "Ctrl+Shift+O")
        self.save_action = action("Save project", self.save_project, "Ctrl+S")
        self.save_as_action = action("Save project as…", lambda: self.save_project(ask_path=True), "Ctrl+Shift+S")
        self.export_action = action("Export stems, instrumental and sessions…", self.export_dialog, "Ctrl+E")
        self.bounce_action = action(
            "Export mix…",
            self.bounce_dialog,
            "Ctrl+B",
            "Render your mix (levels, pans, effects, automation) to one file",
        )
        self.quit_action = action("Quit", self.close, "Ctrl+Q")
        self.play_action = action("Play", self.player_toggle, "Space", "Play / pause (Space)")
        self.stop_action = action("Stop", self.stop, None, "Stop and return to the start")
        self.loop_action = action("Loop", self.toggle_loop, "L", "Loop the region set with Shift+drag")
        self.loop_action.setCheckable(True)
        self.separate_action = action("Separate", lambda: self.separate(), "Ctrl+R", "Separate the whole song")
        self.audition_action = action(
            "Audition",
            lambda: self.separate(audition=True),
            None,
            "Separate the first seconds only, to judge the model quickly",
        )
        self.separate_selection_action = action("Separate selection", lambda: self.separate(selection=True))
        self.separate_selection_action.setEnabled(False)
        self.zoom_in_action = action("Zoom in", lambda: self.timeline.canvas.zoom(0.5), "Ctrl+=")
        self.zoom_out_action = action("Zoom out", lambda: self.timeline.canvas.zoom(2.0), "Ctrl+-")
        self.fit_action = action("Fit song", self.timeline.canvas.fit, "Ctrl+0")
        undo, redo = self.undo.createUndoAction(self, "Undo"), self.undo.createRedoAction(self, "Redo")
        undo.setShortcut(QKeySequence.StandardKey.Undo)
        redo.setShortcut(QKeySequence.StandardKey.Redo)

        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        for act in (self.open_action, self.open_project_action):
            file_menu.addAction(act)
        self.recent_menu = file_menu.addMenu("Open recent")
        self._fill_recent()
        for act in (self.save_action, self.save_as_action, self.export_action, self.bounce_action):
            file_menu.addAction(act)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit_menu = menu.addMenu("&Edit")
        edit_menu.addAction(undo)
        edit_menu.addAction(redo)
        view_menu = menu.addMenu("&View")
        for act in (self.zoom_in_action, self.zoom_out_action, self.fit_action):
            view_menu.addAction(act)
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        transport = menu.addMenu("&Transport")
        for act in (self.play_action, self.stop_action, self.loop_action):
            transport.addAction(act)
        jobs_menu = menu.addMenu("&Separate")
        for act in (self.separate_action, self.audition_action, self.separate_selection_action):
            jobs_menu.addAction(act)

        bar = QToolBar("Main", self)
        bar.setObjectName("main-toolbar")
        bar.setMovable(False)
        self.addToolBar(bar)
        for act in (self.open_action, self.play_action, self.stop_action, self.loop_action):
            bar.addAction(act)
        bar.addSeparator()
        bar.addWidget(QLabel(" Model "))
        self.model_box = QComboBox()
        self.model_box.setMinimumContentsLength(16)
        # editable, so that an ensemble can be typed: A+B averages two models, A*2+B weighs A twice
        self.model_box.setEditable(True)
        self.model_box.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.model_box.setToolTip(
            "A model, or an ensemble of installed models: A+B averages them, A*2+B weighs A twice"
        )
        self.refresh_models()
        self.model_box.currentTextChanged.connect(self.models_panel.show_model)
        self.models_panel.show_model(self.model_box.currentText())
        bar.addWidget(self.model_box)
        bar.addWidget(QLabel(" Device "))
        self.device_box = QComboBox()
        self.device_box.addItems(list(DEVICES))
        self.device_box.setCurrentText(self.settings["device"])
        bar.addWidget(self.device_box)
        for act in (self.separate_action, self.audition_action, self.separate_selection_action):
            bar.addAction(act)

    def refresh_models(self) -> None:
        current = self.model_box.currentText() or self.settings.get("model", DEFAULT_MODEL)
        self.model_box.blockSignals(True)
        self.model_box.clear()
        # the models for work first; the research models (the papers' methods, trained from scratch) after a line
        cards = list_models(registry=self.registry)
        self.model_box.addItems([card.id for card in cards if card.raw.get("purpose") != "research"])
        research = [card.id for card in cards if card.raw.get("purpose") == "research"]
        if research:
            self.model_box.insertSeparator(self.model_box.count())
            self.model_box.addItems(research)
        self.model_box.setCurrentText(current)
        self.model_box.blockSignals(False)

    def status(self, text: str, ms: int = 0) -> None:
        self.statusBar().showMessage(text, ms)
        log.info(text)

    # --- errors --------------------------------------------------------------------------------------------------
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
        jobs = [self.separate()] + [self.separate_file(path) for path in paths[1:]]
        self.status(f"Queued {len(paths)} songs for separation with {self.model_box.currentText()}.")
        return [job for job in jobs if job is not None]

    def _separation_options(self, start: float = 0.0, duration: float | None = None):
        """The toolbar's and the settings' choices as separation options, or None after saying what is wrong."""
        from ..io.formats import LOSSLESS_FORMATS, OutputFormat
        from ..jobs.separate import SeparateOptions

        try:
            device = str(resolve_device(self.device_box.currentText()))
            fmt = OutputFormat.parse(
                self.settings["format"],
                self.settings["bit_depth"] if self.settings["format"] in LOSSLESS_FORMATS else None,
            )
        except (ValueError, StemDeskError) as error:
            self.show_error("Cannot separate", words(error))
            return None
        return SeparateOptions(
            model=self.model_box.currentText(),
            format=fmt,
            device=device,
            start=start,
            duration=duration,
            segment_seconds=float(self.settings["segment_seconds"]),
        )

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
        self._then[job.id] = (on_done, on_end, finished)
        self.queue.submit(job)
        self.jobs_panel.update_job(job, task.model)
        return job

    def separate_file(self, path: Path) -> Job | None:
        """Separate a song that is not open (a batch's other songs) into the output folder; the open song's lanes
        and project are left alone."""
        options = self._separation_options()
        if options is None:
            return None
        folder = self.workspace.song_folder(path, options.model)
        if not self.confirm_replace(folder):
            return None
        task = tasks.separate(
            self.engines, Path(path), folder, options, threads=int(self.settings["threads"]), overwrite=True
        )
        return self.run_task(
            task,
            "separate-file",
            on_done=lambda made: self.status(f"{task.title}: stems in {made.result.outputs[0].parent}", 15000),
        )

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

    def confirm_discard(self, doing: str) -> bool:
        """Before ``doing`` replaces the project: with unsaved changes, ask whether to save them, discard them or
        cancel. Discard removes the project's autosave, so the next start does not offer it back. True: go on."""
        if not self.dirty or not self.ask:
            return True
        name = Path(self.project.source).name if self.project.source else "this project"
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Save changes?",
            f"The project of \u201c{name}\u201d has unsaved changes. Save them before {doing}?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        self.question = box  # for tests: the box being asked
        answer = box.exec()
        self.question = None
        if answer == QMessageBox.StandardButton.Save:
            return self.save_project() is not None
        if answer == QMessageBox.StandardButton.Discard:
            self.workspace.discard()
            self.undo.setClean()
            self._set_dirty(False)
            return True
        return False

    def confirm_replace(self, folder: Path) -> bool:
        """Before a separation writes into ``folder``: when an earlier one left stems there, ask whether to replace
        them (True) or keep them and not separate (False). Without questions (tests, scripts) they are replaced
        and the status bar says so."""
        found = earlier_stems(folder)
        if not found:
            return True
        if not self.ask:
            self.status(f"Replacing the earlier stems in {folder}", 15000)
            return True
        names = ", ".join(p.name for p in found[:4]) + (", \u2026" if len(found) > 4 else "")
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Replace stems?",
            f"\u201c{folder}\u201d already holds stems from an earlier separation ({names}). Replace them?",
            QMessageBox.StandardButton.Cancel,
            self,
        )
        replace = box.addButton("Replace", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        self.question = box  # for tests: the box being asked
        box.exec()
        self.question = None
        return box.clickedButton() is replace

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
        self._show_stems_mix([], Mix())
        self._show_song()
        return True

    def _show_song(self) -> None:
        """The open song in the timeline and the player (its stems come after, if any)."""
        path, info = self.workspace.song, self.info
        self.player.close()
        self.timeline.set_song(info.sample_rate, info.frames)
        mix_lane = Lane("mix", Peaks(info.sample_rate, info.frames), busy=True)
        self.timeline.set_lanes([mix_lane])
        self.display.submit(
            Job(
                "peaks", f"Waveform of {path.name}", lambda job: self._fill_peaks(job, path, mix_lane), device="display"
            )
        )
        if not self.project.source_sha256:
            project = self.project
            self.display.submit(
                Job(
                    "hash",
                    f"Fingerprint of {path.name}",
                    lambda job: setattr(project, "source_sha256", sha256_file(path)),
                    device="display",
                )
            )
        self.player.load(MixSource(path, None, self.project.mix))
        self.setWindowTitle(f"{path.name} — StemDesk")
        self._add_recent(path)
        self.null_label.setText("Null: no stems yet")
        self.null_label.setStyleSheet("")
        self._stems_made += 1
        self._show_null_views()
        self._show_stems_folder()
        self.status(f"Opened {path.name}: {info.seconds:.1f} s, {info.sample_rate} Hz, {info.channels} ch.")
        self.song_loaded.emit(str(path))

    def _fill_peaks(self, job: Job, path: Path, lane: Lane) -> None:
        for block in iter_blocks(probe(path), block=1 << 17):
            job.cancel_token.raise_if_cancelled()
            lane.peaks.append(block)
            self.bridge.post(self.timeline.canvas.update)
        lane.peaks.finish()
        lane.busy = False
        if lane.name == "mix":
            lo, hi = lane.peaks.levels()[-1]
            peak = float(max(np.abs(lo).max(initial=0), np.abs(hi).max(initial=0)))
            self.bridge.post(self._set_display_gain, 1.0 / peak if peak > 1e-4 else 1.0)

    def _set_display_gain(self, gain: float) -> None:
        self.timeline.canvas.display_gain = min(gain, 20.0)
        self.timeline.canvas.update()

    def _display_event(self, job: Job, what: str) -> None:
        if what == "failed":
            self.show_error(job.title, job.error or "failed", job.unexpected)
        self.timeline.canvas.update()

    def _show_spectrogram(self, name: str, image) -> None:
        lane = self.timeline.lane(name)
        if lane is not None:
            lane.spectrogram = to_qimage(image)
            self.timeline.canvas.update()

    def compute_spectrogram(self, name: str) -> None:
        path = self.project.source if name == "mix" else self.stems.get(name)
        if path:
            self.display.submit(
                Job(
                    "spectrogram",
                    f"Spectrogram of {name}",
                    lambda job: self.bridge.post(self._show_spectrogram, name, spectrogram_image(str(path))),
                    device="display",
                )
            )

    # --- separation --------------------------------------------------------------------------------------------------
    def stems_folder(self, label: str = "") -> Path:
        return self.workspace.stems_folder(self.model_box.currentText(), label)

    def separate(self, audition: bool = False, selection: bool = False) -> Job | None:
        """Separate the open song (or its first seconds, or the selection) with the toolbar's model. The lanes
        fill while it runs. An audition never replaces full-song stems: it is written beside them, to listen to
        in its own folder."""
        if self.info is None:
            self.show_error("Nothing to separate", "Open a song first (File → Open song, or drop a file here).")
            return None
        start, duration, label = 0.0, None, ""
        if audition:
            duration, label = float(self.settings["audition_seconds"]), "audition"
        elif selection and self.timeline.canvas.selection:
            start, end = self.timeline.canvas.selection
            duration, label = end - start, f"{start:.1f}-{end:.1f}s"
        options = self._separation_options(start, duration)
        if options is None:
            return None
        folder = self.stems_folder(label)
        if not audition and not self.confirm_replace(folder):  # an audition is a preview: the next one replaces it
            return None
        keep = audition and self.workspace.has_whole_song_stems  # full-song stems stay the project's
        source, info = self.workspace.song, self.info
        offset = int(round(start * info.sample_rate))
        lanes: dict[str, Lane] = {}

        def on_start(names) -> None:
            if keep:
                return
            for name in names:
                peaks = Peaks(info.sample_rate, info.frames)
                if offset:
                    peaks.append(_zeros(offset))
                lanes[name] = Lane(name, peaks, busy=True)
            self.bridge.post(self._show_stem_lanes, dict(lanes))

        def on_block(at: int, block) -> None:
            for lane, stem in zip(lanes.values(), block):
                lane.peaks.append(stem)
            self.bridge.post(self.timeline.canvas.update)

        def done(made: tasks.Separation) -> None:
            for lane in lanes.values():
                lane.peaks.finish()
                lane.busy = False
            if keep:
                self.status(
                    f"Audition ({made.result.frames / info.sample_rate:.0f} s) written to "
                    f"{made.result.outputs[0].parent}; the full-song stems stay in the project.",
                    15000,
                )
            else:
                self._separation_done(made, start)
            self.offer_better_model(options.model)

        def ended(job: Job) -> None:
            self._separating -= 1
            if job.status != "done" and not keep:
                self._restore_stem_lanes()

        task = tasks.separate(
            self.engines,
            source,
            folder,
            options,
            threads=int(self.settings["threads"]),
            on_start=on_start,
            on_block=on_block,
            overwrite=True,  # asked above
        )
        title = f"{'Audition' if audition else 'Separate'} {source.name}" + (f" ({label})" if selection else "")
        task.title = title
        self._separating += 1
        job = self.run_task(task, "separate", on_done=done, on_end=ended, finished=self.separation_finished)
        self.docks["Jobs"].raise_()
        return job

    def _show_stem_lanes(self, lanes: dict[str, Lane]) -> None:
        mix_lane = self.timeline.lane("mix")
        self.timeline.set_lanes([mix_lane, *lanes.values()] if mix_lane else list(lanes.values()))

    def _separation_done(self, made: tasks.Separation, start: float) -> None:
        result = made.result
        self.workspace.adopt(result, start)
        self._show_stems_folder()
        self._show_stems_mix(list(self.stems), self.project.mix)
        self._reload_player()
        self._files_seen = self.workspace.files_signature()
        self._stems_made += 1
        self._show_null()
        self._set_dirty(True)
        seconds = result.frames / result.info.sample_rate
        self.status(
            f"Separated {seconds:.1f} s in {result.seconds:.1f} s ({seconds / result.seconds:.1f}x real time) "
            f"with {result.description or result.model} into {self.project.stems_dir}",
            15000,
        )

    def _reload_player(self) -> None:
        position = self.player.position_seconds()
        source = MixSource(Path(self.project.source), self.stems or None, self.project.mix, self.stems_offset)
        self.player.load(source)
        self.player.seek(position)
        self.player.set_loop(self._active_loop())

    def _show_null(self) -> None:
        """The last null check of the stems: its verdict in the status bar, its loudest residual windows on the
        timeline, what it says of each stem in the lane headers and in the Null dock."""
        null, check = self.workspace.null, self.workspace.check
        offset = self.stems_offset / self.info.sample_rate if self.info else 0.0
        self.timeline.canvas.null_regions = [
            {
                "start_seconds": r["start_seconds"] + offset,
                "end_seconds": r["end_seconds"] + offset,
                "peak_dbfs": r.get("peak_dbfs"),
            }
            for r in (null.worst_regions if null is not None else [])
            if isinstance(r, dict) and "start_seconds" in r and "end_seconds" in r
        ]
        self._show_null_views()
        if null is None:
            self.null_label.setText("Null: not checked")
            self.null_label.setStyleSheet("")
            return
        peak = null.peak_dbfs
        changed = f"; {', '.join(check.changed)} changed" if check is not None and check.changed else ""
        clips = f"; the song clips at {null.domain[3:]}-bit" if null.clipped else ""
        self.null_label.setText(
            f"Null: {'−∞' if peak is None else f'{peak:.1f}'} dBFS ({null.verdict}{changed}{clips})"
        )
        self.null_label.setToolTip(null.clipping or "")
        colour = NULL_RED if not null.passed else CLIPPED if null.clipped else GOOD
        self.null_label.setStyleSheet(f"color: {colour};")

    def _show_null_views(self, live: LiveNull | None = None) -> None:
        """Each stem's header mark and the Null dock, from the last check and (while playing) the live null: a stem's
        share of the music, whether its file changed since the certificate, and the residual where it is that
        stem's edit alone."""
        null, check = self.workspace.null, self.workspace.check
        playing = live is not None and live.seconds > 0
        shares = live.shares() if playing else (null.energy_share if null is not None else {})
        culprit = check.culprit if check is not None else None
        residual = live.peak_dbfs if playing else (null.peak_dbfs if null is not None else None)
        self.timeline.canvas.stem_marks = {
            name: StemMark(
                shares.get(name),
                check is not None and name in check.changed,
                residual if name == culprit else None,
                name == culprit,
            )
            for name in self.stems
        }
        self.timeline.canvas.update()
        regions = self.timeline.canvas.null_regions
        self.null_panel.show_null(null, check, list(self.stems), self.project.mix, regions, live if playing else None)

    def goto_null_region(self, index: int, loop: bool = False) -> None:
        """Play from residual window ``index`` (the timeline's numbering), or loop it."""
        region = self.timeline.canvas.null_regions[index]
        if loop:
            self.loop_region((region["start_seconds"], region["end_seconds"]))
        self.seek(region["start_seconds"])

    def loop_region(self, span: tuple[float, float]) -> None:
        """Loop ``span`` (an undoable edit, like Shift+drag) and play from its start."""
        self.undo.push(LoopCommand(self.set_loop, self.project.view.get("loop"), [float(span[0]), float(span[1])]))
        self.seek(float(span[0]))

    def check_stems(self) -> Job | None:
        """Check the stems' files against their certificate in the background (see `tasks.recheck`); when one
        changed, the null is measured again, and the timeline, the lanes and the player show the files as they are."""
        folder, song = self.workspace.stems_dir, self.workspace.song
        if folder is None or song is None:
            return None
        self._files_seen = self.workspace.files_signature()
        self._checking = True
        made = self._stems_made

        def done(check: tasks.Recheck) -> None:
            if made != self._stems_made or not self.workspace.apply_check(check, folder):
                return  # these stems were replaced while they were checked
            if check.measured:  # the files are not the ones playing and drawn: take them again
                playing = self.player.state == "playing"
                self._reload_player()
                self._restore_stem_lanes()
                if playing:
                    self.player.play()
            self._show_null()
            if check.changed or check.song_changed:
                self.docks["Null"].raise_()
                what = ", ".join(check.changed + (["the song"] if check.song_changed else []))
                self.status(
                    f"Changed since the certificate: {what}. The Null dock shows where the stems depart.", 15000
                )

        def ended(job: Job) -> None:
            self._checking = False

        return self.run_task(tasks.recheck(folder, song), "check-stems", on_done=done, on_end=ended)

    def _watch_files(self) -> None:
        """A stem's or the song's file written since it was last checked (by another program): check again. Not
        while a separation of the song runs: it is writing them."""
        if not self.stems or self._checking or self._separating:
            return
        if self.workspace.files_signature() != self._files_seen:
            self.check_stems()

    def _live_null(self) -> LiveNull | None:
        """The live null of the last second played, while playing."""
        return sum(self._live, LiveNull()) if self._live else None

    # --- jobs --------------------------------------------------------------------------------------------------------
    def _job_event(self, job: Job, what: str, payload: Any) -> None:
        self.jobs_panel.update_job(job, job.model)
        if what == "progress" and isinstance(payload, dict) and "valid_usdr" in payload:
            self.trainer.add_validation(payload)
        if what not in ("done", "failed", "cancelled"):
            return
        on_done, on_end, finished = self._then.pop(job.id, (None, None, None))
        if what == "done" and on_done is not None:
            on_done(job.result)
        if on_end is not None:
            on_end(job)
        if what == "failed":
            self.show_error(
                f"{job.title} failed", words(job.exception) if job.exception else job.error or "", job.unexpected
            )
        self.job_finished.emit(job)
        if finished is not None:
            finished.emit(job)

    def _restore_stem_lanes(self) -> None:
        """After a cancelled or failed separation the lanes show the stems there were before (if any)."""
        lanes = [self.timeline.lane("mix")]
        for name, path in self.stems.items():
            lane = Lane(name, Peaks(self.info.sample_rate, self.info.frames), busy=True)
            lanes.append(lane)
            self.display.submit(
                Job(
                    "peaks",
                    f"Waveform of {name}",
                    lambda job, p=path, lane=lane: self._fill_peaks_offset(job, p, lane),
                    device="display",
                )
            )
        self.timeline.set_lanes([lane for lane in lanes if lane is not None])

    def _fill_peaks_offset(self, job: Job, path: Path, lane: Lane) -> None:
        if self.stems_offset:
            lane.peaks.append(_zeros(self.stems_offset))
        self._fill_peaks(job, path, lane)

    def offer_better_model(self, model: str) -> None:
        """After a separation with ``model``: the bar above the timeline offers HTDemucs when ``model`` is the default
        and HTDemucs is not installed, until the user answers it (`stemdesk.session.hints`)."""
        if not self.offer_bar.isHidden():  # already offered, not yet answered
            return
        offer = hints.offer_after_separation(model, "app", self.registry)
        if offer is not None:
            self.offer_bar.show_offer(offer)

    def _offer_install(self, model: str) -> None:
        """Install… on the offer: the Models dock's install, with its licence to accept (for HTDemucs)."""
        hints.record("app", "accepted")
        self.docks["Models"].raise_()
        self.install_model(model)

    def install_model(self, name: str) -> None:
        """Install a registry model; one whose licence is not free (HTDemucs) is installed only after the user
        has read its licence and pressed Install."""
        item = INSTALLABLE[name]

        def start() -> None:
            self.run_task(tasks.install_model(name), "install", on_end=lambda job: self._models_changed())
            self.docks["Jobs"].raise_()

        if item.licence_note is None:
            start()
            return
        box = QMessageBox(
            QMessageBox.Icon.Question,
            f"Install {item.title}?",
            f"{item.summary}.\n\n{item.licence_note}\n\nStemDesk downloads {item.download}.",
            QMessageBox.StandardButton.Cancel,
            self,
        )
        install = box.addButton("Install for personal or research use", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setModal(False)
        box.buttonClicked.connect(lambda button: start() if button is install else None)
        box.open()
        self.dialogs = [d for d in self.dialogs if d.isVisible()] + [box]
        self.licence_box = box

    def import_checkpoint(self, files: list[Path] | None = None) -> Job | None:
        """Import a checkpoint (asking for the files unless given): a .yaml/.yml/.json chosen with it is its
        config. The new model is listed and selected when the job ends."""
        files = checkpoint_files_dialog(self) if files is None else files
        if not files:
            return None

        def done(card) -> None:
            self._models_changed()
            self.models_panel.select(card.id)
            self.status(f"Imported {card.id} ({', '.join(card.sources)}); its licence is unknown.", 15000)

        job = self.run_task(tasks.import_model(files), "import", on_done=done)
        self.docks["Jobs"].raise_()
        return job

    def remove_model(self, model_id: str) -> None:
        try:
            folder = remove_model(model_id)
        except StemDeskError as error:
            self.show_error("Cannot remove the model", words(error))
            return
        self.status(f"Removed {model_id} ({folder}).")
        self._models_changed()

    def _models_changed(self) -> None:
        self.models_panel.refresh()
        self.refresh_models()

    def check_data(self, folder: str) -> Job:
        return self.run_task(
            tasks.check_data(Path(folder)), "check", on_done=lambda report: self.trainer.show_text(report.text)
        )

    def start_training(self, request: dict) -> Job | None:
        if not request["data"] or not request["name"]:
            self.show_error("Cannot train", "Choose a data folder and a name for the new model.")
            return None

        def done(tuned: tasks.Tuned) -> None:
            self.trainer.report.setSearchPaths([tuned.folder])  # the card's curves.png
            self.trainer.show_text(tuned.markdown, markdown=True)

        def ended(job: Job) -> None:
            self.trainer.running(False)
            self._models_changed()

        task = tasks.fine_tune(
            tasks.FineTune(
                Path(request["data"]),
                request["base"],
                request["name"],
                minutes=request["minutes"],
                threads=int(self.settings["threads"]),
            )
        )
        self.training_job = self.run_task(task, "train", on_done=done, on_end=ended)
        self.trainer.running(True)
        return self.training_job

    # --- export ------------------------------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        from ..export.session import exporters_of

        if not self.stems:
            self.show_error("Nothing to export", "Separate the song first.")
            return
        kinds = list(exporters_of(self.registry))
        self.export_box = ExportDialog(
            str(Path(self.project.stems_dir).parent), kinds, self.settings.get("export_choices") or None, self
        )
        self.export_box.accepted.connect(self._export_chosen)
        self.export_box.show()

    def _export_chosen(self, folder: Path, choices: dict) -> None:
        self.settings["export_choices"] = choices  # the next export starts from these (not saved to disk)
        self.export(
            folder,
            sessions=[k for k, on in choices.items() if on and k not in ("stems", "instrumental", "mix")],
            instrumental=choices.get("instrumental", False),
            stems=choices.get("stems", False),
            mix=choices.get("mix", False),
        )

    def export(
        self, folder: Path, sessions=(), instrumental: bool = True, stems: bool = False, mix: bool = False
    ) -> Job | None:
        """Write what was chosen into ``folder``, named after the song: "NAME stems/", "NAME instrumental.EXT",
        "NAME mix.wav" and a session file per format."""
        song = self.workspace.song
        instrumental = instrumental and "vocals" in self.stems  # stems without vocals are the instrumental
        try:
            task = tasks.export(
                self.workspace.stems_dir,
                folder / song.stem,
                tasks.ExportChoice(stems, instrumental, mix, tuple(sessions)),
                self.project.mix,
                song,
                self.registry,
            )
        except StemDeskError as error:
            self.show_error("Nothing exported", words(error))
            return None
        return self.run_task(
            task,
            "export",
            on_done=lambda made: self.status(
                " ".join(["Exported: " + ", ".join(str(p) for p in made.paths) + ".", *made.notes]), 30000
            ),
        )

    def bounce_dialog(self) -> None:
        if not self.stems:
            self.show_error("Nothing to bounce", "Separate the song first; the mix is made of its stems.")
            return
        start = str(Path(self.project.stems_dir) / f"{Path(self.project.source).stem} mix.wav")
        chosen, _ = QFileDialog.getSaveFileName(
            self, "Export mix", start, "WAV (*.wav);;FLAC (*.flac);;MP3 (*.mp3);;AIFF (*.aiff);;OGG (*.ogg)"
        )
        if chosen:
            self.bounce(Path(chosen))

    def bounce(self, path: Path) -> Job | None:
        """Render the project's mix of its stems to ``path`` (format from its extension, 24-bit for PCM), with a
        certificate beside it; a unity mix is checked to null against the song."""
        try:
            task = tasks.bounce(self.workspace.stems_dir, self.project.mix, path, mixture=self.workspace.song)
        except StemDeskError as error:
            self.show_error("Cannot export the mix", words(error))
            return None

        def done(result) -> None:
            clipped = f" ({result.clipped} samples clipped: lower the master)" if result.clipped else ""
            self.status(f"Exported: {result.path}{clipped}", 15000)

        job = self.run_task(task, "bounce", on_done=done)
        self.docks["Jobs"].raise_()
        return job

    # --- mixer, transport ---------------------------------------------------------------------------------------------
    def _show_stems_mix(self, stems: list[str], mix: Mix) -> None:
        """The mixer's strips and the lane headers show these stems and this mix."""
        self.mixer.set_stems(stems, mix)
        self.timeline.canvas.mix = copy.deepcopy(mix) if stems else None
        self.timeline.canvas.update()

    def apply_mix(self, mix: Mix) -> None:
        mix = self.workspace.set_mix(mix)
        if self.midi is not None:
            self.midi.mix = copy.deepcopy(mix)
        self._show_stems_mix(list(self.stems), mix)
        self._show_null_views(self._live_null())  # the dock says what the mix does to each stem
        if self.player.source is not None:
            self.player.source.set_mix(copy.deepcopy(mix))

    # --- MIDI --------------------------------------------------------------------------------------------------------
    def connect_midi(self, port: str | None = None, api: str | None = None) -> str | None:
        """Listen to a MIDI input (default: the first one). Control changes arrive on rtmidi's thread and reach the
        mix through the bridge; during playback they are recorded as automation at the playhead."""
        from ..mixer.midi import MidiController, MidiMap, input_names, open_input

        names = input_names(api)
        if port is None:
            port = names[0] if names else None
        if port is None:
            return None
        try:
            midi_map = MidiMap.load()
        except StemDeskError as error:
            self.status(f"MIDI mappings ignored: {error}", 10000)
            midi_map = None
        clock = lambda: self.player.position_seconds() if self.player.state == "playing" else None  # noqa: E731
        self.midi = MidiController(
            copy.deepcopy(self.project.mix),
            lambda mix: self.bridge.post(self._midi_moved, copy.deepcopy(mix)),
            midi_map,
            clock=clock,
            autosave=True,
        )
        self.midi.recording = True
        try:
            self.midi_port = open_input(port, self.midi, api)
        except StemDeskError as error:
            self.show_error("Cannot use the MIDI controller", words(error))
            self.midi = None
            return None
        self.status(f"MIDI: listening to {port}.")
        return port

    def _midi_moved(self, mix: Mix) -> None:
        """A controller moved a control: apply it like a mixer edit (one undo step per control and gesture)."""
        before = copy.deepcopy(self.project.mix)
        self.undo.push(MixCommand(self.apply_mix, "MIDI control", "midi", before, mix))

    def _learn_toggled(self, on: bool) -> None:
        if on and self.midi is None and self.connect_midi() is None:
            self.mixer.learn.setChecked(False)
            self.status(
                "No MIDI input found: connect a controller (and start JACK or ALSA MIDI), then try again.", 10000
            )
            return
        if on:
            self.midi.mix = copy.deepcopy(self.project.mix)
            self.midi.learn()
            self.status("MIDI learn: move a knob or fader on your controller, then the control it should move.")

    def _control_touched(self, control: str) -> None:
        if self.midi is not None and self.mixer.learn.isChecked():
            binding = self.midi.touched(control)
            if binding is not None:
                self.mixer.learn.setChecked(False)
                self.status(f"MIDI channel {binding.channel + 1} CC {binding.cc} now moves {control}.")

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
        self.timeline.canvas.loop = tuple(span) if span else None
        self.timeline.canvas.update()
        if span and not self.loop_action.isChecked():
            self.loop_action.setChecked(True)
        self.toggle_loop()

    def toggle_loop(self) -> None:
        self.player.set_loop(self._active_loop())

    def _active_loop(self) -> tuple[float, float] | None:
        """The loop region when looping is on."""
        return self.workspace.loop if self.loop_action.isChecked() else None

    def _player_state(self, state: str) -> None:
        self.play_action.setText("Pause" if state == "playing" else "Play")
        if state != "playing" and self._live:
            self._live.clear()
            self._show_null()  # back to what the last check found

    def _tick(self) -> None:
        self._ticks += 1
        if self._ticks % WATCH_TICKS == 0:
            self._watch_files()
        self.mixer.show_levels(self.player.take_levels() if self.player.state == "playing" else None)
        if self.player.source is None:
            return
        seconds = self.player.position_seconds()
        if self.player.state == "playing":
            self.timeline.canvas.move_playhead(seconds)
            if self.stems:
                self.show_live_null(self.player.source.take_null())
        self.position_label.setText(clock(seconds))

    def show_live_null(self, block: LiveNull) -> None:
        """The live null of what was just rendered: the last second's in the status bar, and a few times a second in
        the lane headers and the Null dock."""
        self._live.append(block)
        live = sum(self._live, LiveNull())  # over the last second
        peak = live.peak_dbfs
        self.null_label.setText(f"Null (live): {'−∞' if peak is None else f'{peak:.1f}'} dBFS")
        if self._ticks % 10 == 0 or len(self._live) == 1:
            self._show_null_views(live)

    # --- projects ------------------------------------------------------------------------------------------------------
    def _clean_changed(self, clean: bool) -> None:
        self._set_dirty(not clean)

    def _set_dirty(self, dirty: bool) -> None:
        self.workspace.changed = dirty
        name = self.workspace.name
        self.setWindowTitle(f"{'• ' if dirty else ''}{name} — StemDesk")

    def save_project(self, ask_path: bool = False, path: Path | None = None) -> Path | None:
        if path is None and (ask_path or self.project.path is None):
            start = str(Path(self.project.source).with_suffix(projects.SUFFIX)) if self.project.source else ""
            chosen, _ = QFileDialog.getSaveFileName(self, "Save project", start, "StemDesk project (*.stemdesk)")
            if not chosen:
                return None
            path = Path(chosen)
        try:
            saved = self.workspace.save(path)
        except StemDeskError as error:
            self.show_error("Cannot save the project", words(error))
            return None
        self.undo.setClean()
        self._set_dirty(False)
        self._add_recent(saved)
        self.status(f"Saved {saved}")
        return saved

    def open_project_dialog(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(self, "Open project", "", "StemDesk project (*.stemdesk)")
        if chosen:
            self.open_project(Path(chosen))

    def open_project(self, path: Path) -> bool:
        if not self.confirm_discard(f"opening {Path(path).name}"):
            return False
        try:
            project = projects.load(path, self.registry)
        except StemDeskError as error:
            self.show_error("Cannot open the project", words(error))
            return False
        return self._use_project(project)

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

    def _use_project(self, project: projects.Project) -> bool:
        try:
            opened = self.workspace.open_project(project)
        except StemDeskError as error:
            self.show_error(
                "The song is missing" if isinstance(error, SongMissing) else "Cannot open the project", words(error)
            )
            return False
        if opened.stems_problem:
            self.show_error("The stems could not be used", opened.stems_problem)
        self._show_song()
        if project.model:
            self.model_box.setCurrentText(project.model)
            self.models_panel.select(project.model)
        self._show_stems_mix(list(self.stems), project.mix)
        self._show_stems_folder()
        self._restore_stem_lanes()
        self._reload_player()
        if self.stems:
            self._show_null()
            self.check_stems()
        self.timeline.canvas.loop = self.workspace.loop
        if project.view.get("spp"):
            self.timeline.canvas.spp = float(project.view["spp"])
            self.timeline.canvas.offset = int(project.view.get("offset", 0))
            self.timeline.canvas.fitted = False
            self.timeline.canvas.view_changed.emit()
        self.undo.clear()
        self._set_dirty(False)
        if project.path:
            self._add_recent(project.path)
        return True

    def autosave(self) -> Path | None:
        if not self.dirty:
            return None
        self.project.view.update({"spp": self.timeline.canvas.spp, "offset": self.timeline.canvas.offset})
        try:
            return self.workspace.autosave()
        except OSError as error:
            self.status(f"Autosave failed: {error}", 10000)
            return None

    def offer_recovery(self, accept: bool | None = None) -> bool:
        """After a crash: offer the newest autosave. ``accept`` answers without asking (tests, scripts)."""
        newest = self.workspace.recoverable()
        if newest is None:
            return False
        try:
            project = self.workspace.recovered(newest, self.registry)
        except StemDeskError as error:
            self.show_error("Cannot recover", words(error))
            return False
        if accept is None:
            if not self.ask:
                return False
            song = Path(project.source).name if project.source else "an untitled project"
            box = QMessageBox(
                QMessageBox.Icon.Question,
                "Recover unsaved work?",
                f"StemDesk found unsaved work on \u201c{song}\u201d from "
                f"{time.ctime(newest.stat().st_mtime)}. Recover it?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                self,
            )
            self.question = box
            log.info("asking whether to recover %s", newest.name)
            accept = box.exec() == QMessageBox.StandardButton.Yes
            self.question = None
            if self.closed:  # the app was closed (a SIGTERM) while asking: nobody answered, keep the autosave
                return False
        if not accept:
            newest.unlink(missing_ok=True)
            return False
        ok = self._use_project(project)
        self._set_dirty(True)
        return ok

    # --- recent files, settings, closing -------------------------------------------------------------------------------
    def _recent(self) -> list[str]:
        value = QSettings("StemDesk", "StemDesk").value("recent", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _add_recent(self, path: Path) -> None:
        recent = [str(path)] + [p for p in self._recent() if p != str(path)]
        QSettings("StemDesk", "StemDesk").setValue("recent", recent[:MAX_RECENT])
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for entry in self._recent():
            act = self.recent_menu.addAction(entry)
            act.triggered.connect(
                lambda _=False, p=entry: (
                    self.open_project(Path(p)) if p.endswith(projects.SUFFIX) else self.open_song(Path(p))
                )
            )
        self.recent_menu.setEnabled(bool(self._recent()))

    def _setting_changed(self, key: str, value) -> None:
        self.settings[key] = value
        try:
            settings_store.save(self.settings)
        except (OSError, ValueError) as error:
            self.status(f"Settings not saved: {error}", 10000)
        if key == "device":
            self.device_box.setCurrentText(value)
        elif key == "autosave_seconds":
            self.autosave_timer.start(int(value) * 1000)
        elif key == "audio_buffer_ms":
            self.player.latency = int(value) / 1000
            if self.player.state == "playing":  # the sink's buffer is set when it starts: start it again here
                seconds = self.player.position_seconds()
                self.player.stop()
                self.player.seek(seconds)
                self.player.play()

    def _audio_dropped_out(self, seconds: float) -> None:
        """The song dropped out while playing: the next longer audio buffer (Settings → Audio buffer) takes over from
        where it was; at the longest, say so."""
        now = round(seconds * 1000)
        longer = [c for c in settings_store.BY_KEY["audio_buffer_ms"].choices or () if c > now]
        if not longer:
            self.status(f"Playback dropped out even with a {now} ms audio buffer: close other busy programs.", 10000)
            return
        self.settings_panel.editors["audio_buffer_ms"].setCurrentText(str(longer[0]))  # restarts the sink
        self.status(
            f"Playback dropped out with a {now} ms audio buffer; it is {longer[0]} ms now (Settings → Audio buffer).",
            10000,
        )

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
        if self.midi_port is not None:
            self.midi_port.close()
        self.queue.shutdown(cancel=True)
        self.display.shutdown(cancel=True)
        self.workspace.close()


def _zeros(frames: int):
    return np.zeros((1, frames), np.float32)
