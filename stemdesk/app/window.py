"""The main window: timeline in the centre, transport and job controls on the toolbar, docks for the mixer, jobs,
models, trainer and settings, the null meter always visible in the status bar.

Work runs in `stemdesk.jobs` queues (one per device); their events come back to this thread through `Bridge`.
Nothing outside this thread touches a widget.
"""

from __future__ import annotations

import copy
import logging
import queue
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (QComboBox, QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox,
                               QPushButton, QToolBar)

from .. import __version__
from ..core.device import resolve_device
from ..core.errors import StemDeskError
from ..io import settings as settings_store
from ..io.audio import AudioInfo, probe
from ..io.model_store import DEFAULT_MODEL, list_models, remove_model, sha256_file
from ..jobs import project as projects
from ..jobs.peaks import Peaks
from ..jobs.queue import Job, JobQueue
from ..mixer.mix import Mix
from .mixer_panel import MixerPanel
from .panels import ExportDialog, JobsPanel, ModelsPanel, SettingsPanel, TrainerPanel, open_files_dialog
from .playback import MixSource, Player
from .timeline import Lane, Timeline, spectrogram_image, to_qimage

log = logging.getLogger("stemdesk.app")
MAX_RECENT = 10


class Bridge(QObject):
    """Runs callables on the main thread, posted from any thread: workers put them in a thread-safe queue and a
    timer on the main thread drains it every 15 ms.

    Workers make no Qt call at all: emitting a Qt signal from a plain Python thread while torch runs there crashed
    PySide6 6.12 here ("deallocating None"), so, as Friture does with its audio callback, the UI polls instead."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._pending: queue.SimpleQueue = queue.SimpleQueue()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.drain)
        self.timer.start(15)

    def post(self, fn: Callable, *args) -> None:
        self._pending.put((fn, args))

    def drain(self) -> None:
        while True:
            try:
                fn, args = self._pending.get_nowait()
            except queue.Empty:
                return
            fn(*args)


class MixCommand(QUndoCommand):
    """A mixer edit. Consecutive moves of the same control merge into one undo step."""

    def __init__(self, window: "MainWindow", text: str, control: str, before: Mix, after: Mix):
        super().__init__(text)
        self.window, self.control, self.before, self.after = window, control, before, after

    def id(self) -> int:
        return hash(self.control) & 0x7FFFFFFF

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, MixCommand) or other.control != self.control or self.control in ("preset",):
            return False
        self.after = other.after
        return True

    def redo(self) -> None:
        self.window.apply_mix(self.after)

    def undo(self) -> None:
        self.window.apply_mix(self.before)


class LoopCommand(QUndoCommand):
    def __init__(self, window: "MainWindow", before, after):
        super().__init__("Set loop region" if after else "Clear loop region")
        self.window, self.before, self.after = window, before, after

    def redo(self) -> None:
        self.window.set_loop(self.after)

    def undo(self) -> None:
        self.window.set_loop(self.before)


class MainWindow(QMainWindow):
    song_loaded = Signal(str)
    separation_finished = Signal(object)     # the Job
    job_finished = Signal(object)

    def __init__(self, settings: dict | None = None, ask: bool = True):
        super().__init__()
        from PySide6.QtWidgets import QApplication

        from .theme import apply_dark_theme

        apply_dark_theme(QApplication.instance())
        self.ask = ask                       # False in tests and scripts: never block on a question
        self.settings = settings or settings_store.load()
        self.setWindowTitle("StemDesk")
        self.setAcceptDrops(True)
        self.bridge = Bridge(self)
        self.queue = JobQueue(lambda job, what, payload: self.bridge.post(self._job_event, job, what, payload))
        self.display = JobQueue(lambda job, what, payload: self.bridge.post(self._display_event, job, what))
        self.engines: dict[tuple[str, str], Any] = {}
        self.project = projects.Project(model=self.settings["model"])
        self.info: AudioInfo | None = None
        self.stems: dict[str, Path] = {}
        self.stems_offset = 0
        self.dirty = False
        self.last_error: tuple[str, str] | None = None     # (title, text) of the last error shown
        self.dialogs: list[QMessageBox] = []
        self.question: QMessageBox | None = None     # the modal question being asked, if any
        self.undo = QUndoStack(self)
        self.undo.cleanChanged.connect(self._clean_changed)
        self.player = Player(self)
        self.player.problem.connect(lambda text: self.status(text, 10000))
        self.player.state_changed.connect(self._player_state)
        self.training_job: Job | None = None
        self.closed = False

        self.timeline = Timeline(self)
        self.setCentralWidget(self.timeline)
        c = self.timeline.canvas
        c.seek.connect(self.seek)
        c.loop_changed.connect(lambda span: self.undo.push(LoopCommand(self, self.project.view.get("loop"),
                                                                      list(span) if span else None)))
        c.selection_changed.connect(lambda span: self.separate_selection_action.setEnabled(bool(span)))
        c.spectrogram_requested.connect(self.compute_spectrogram)

        self.mixer = MixerPanel()
        self.mixer.changed.connect(lambda text, control, before, after:
                                   self.undo.push(MixCommand(self, text, control, before, after)))
        self.mixer.control_touched.connect(self._control_touched)
        self.jobs_panel = JobsPanel()
        self.jobs_panel.cancel_requested.connect(lambda job: job.cancel())
        self.models_panel = ModelsPanel()
        self.models_panel.install_requested.connect(self.install_model)
        self.models_panel.remove_requested.connect(self.remove_model)
        self.models_panel.use_requested.connect(lambda model_id: self.model_box.setCurrentText(model_id))
        self.trainer = TrainerPanel()
        self.trainer.check_requested.connect(self.check_data)
        self.trainer.train_requested.connect(self.start_training)
        self.trainer.cancel_requested.connect(lambda: self.training_job and self.training_job.cancel())
        self.settings_panel = SettingsPanel(self.settings)
        self.settings_panel.changed.connect(self._setting_changed)
        self.docks = {}
        for title, widget, area in (("Mixer", self.mixer, Qt.DockWidgetArea.BottomDockWidgetArea),
                                    ("Jobs", self.jobs_panel, Qt.DockWidgetArea.BottomDockWidgetArea),
                                    ("Models", self.models_panel, Qt.DockWidgetArea.RightDockWidgetArea),
                                    ("Trainer", self.trainer, Qt.DockWidgetArea.RightDockWidgetArea),
                                    ("Settings", self.settings_panel, Qt.DockWidgetArea.RightDockWidgetArea)):
            dock = QDockWidget(title, self)
            dock.setObjectName(title)
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            self.docks[title] = dock
        self.tabifyDockWidget(self.docks["Models"], self.docks["Trainer"])
        self.tabifyDockWidget(self.docks["Trainer"], self.docks["Settings"])
        self.docks["Models"].raise_()
        self.splitDockWidget(self.docks["Mixer"], self.docks["Jobs"], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["Mixer"]], [330], Qt.Orientation.Vertical)
        self.resizeDocks([self.docks["Mixer"], self.docks["Jobs"]], [620, 520], Qt.Orientation.Horizontal)

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
        self.tick = QTimer(self)
        self.tick.timeout.connect(self._tick)
        self.tick.start(40)
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
        self.bounce_action = action("Export mix…", self.bounce_dialog, "Ctrl+B",
                                    "Render your mix (levels, pans, effects, automation) to one file")
        self.quit_action = action("Quit", self.close, "Ctrl+Q")
        self.play_action = action("Play", self.player_toggle, "Space", "Play / pause (Space)")
        self.stop_action = action("Stop", self.stop, None, "Stop and return to the start")
        self.loop_action = action("Loop", self.toggle_loop, "L", "Loop the region set with Shift+drag")
        self.loop_action.setCheckable(True)
        self.separate_action = action("Separate", lambda: self.separate(), "Ctrl+R", "Separate the whole song")
        self.audition_action = action("Audition", lambda: self.separate(audition=True), None,
                                      "Separate the first seconds only, to judge the model quickly")
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
        self.refresh_models()
        self.model_box.currentTextChanged.connect(self.models_panel.select)
        self.models_panel.select(self.model_box.currentText())
        bar.addWidget(self.model_box)
        bar.addWidget(QLabel(" Device "))
        self.device_box = QComboBox()
        self.device_box.addItems(["auto", "cpu", "cuda", "mps"])
        self.device_box.setCurrentText(self.settings["device"])
        bar.addWidget(self.device_box)
        for act in (self.separate_action, self.audition_action, self.separate_selection_action):
            bar.addAction(act)

    def refresh_models(self) -> None:
        current = self.model_box.currentText() or self.settings.get("model", DEFAULT_MODEL)
        self.model_box.blockSignals(True)
        self.model_box.clear()
        self.model_box.addItems([card.id for card in list_models()])
        self.model_box.setCurrentText(current)
        self.model_box.blockSignals(False)

    def status(self, text: str, ms: int = 0) -> None:
        self.statusBar().showMessage(text, ms)
        log.info(text)

    # --- errors --------------------------------------------------------------------------------------------------
    def show_error(self, title: str, text: str, unexpected: bool = False) -> None:
        """A known error shows its message (it says what to do); an unexpected one adds the log file's path."""
        if unexpected:
            from .main import log_file

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

    def _separation_choice(self):
        """(model, device, output format) from the toolbar and the settings, or None after saying what is wrong."""
        from ..export.stems import OutputFormat

        try:
            device = str(resolve_device(self.device_box.currentText()))
            fmt = OutputFormat.parse(self.settings["format"], self.settings["bit_depth"]
                                     if self.settings["format"] in ("wav", "flac", "aiff") else None)
        except (ValueError, StemDeskError) as error:
            self.show_error("Cannot separate", str(error))
            return None
        return self.model_box.currentText(), device, fmt

    def separate_file(self, path: Path) -> Job | None:
        """Separate a song that is not open (a batch's other songs) into the output folder; the open song's lanes
        and project are left alone."""
        from ..jobs.separate import SeparateOptions

        chosen = self._separation_choice()
        if chosen is None:
            return None
        model, device, fmt = chosen
        options = SeparateOptions(model=model, format=fmt, device=device,
                                  segment_seconds=float(self.settings["segment_seconds"]))
        base = Path(self.settings.get("output_folder") or settings_store.default_output_folder())
        folder = base / Path(path).stem / model
        threads = int(self.settings["threads"])

        def work(job: Job):
            engine = self._worker_engine(job, model, device, threads)
            return engine.separate_file(path, folder, options, progress=job.report, cancel=job.cancel_token)

        job = Job("separate-file", f"Separate {Path(path).name}", work, device=device)
        job.extra = {"model": model, "folder": folder}
        self.queue.submit(job)
        self.jobs_panel.update_job(job, model)
        return job

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
        box = QMessageBox(QMessageBox.Icon.Question, "Save changes?",
                          f"The project of \u201c{name}\u201d has unsaved changes. Save them before {doing}?",
                          QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                          | QMessageBox.StandardButton.Cancel, self)
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        self.question = box                   # for tests: the box being asked
        answer = box.exec()
        self.question = None
        if answer == QMessageBox.StandardButton.Save:
            return self.save_project() is not None
        if answer == QMessageBox.StandardButton.Discard:
            projects.autosave_path(self.project).unlink(missing_ok=True)
            self.undo.setClean()
            self._set_dirty(False)
            return True
        return False

    def open_song(self, path: str | Path, keep_project: bool = False) -> bool:
        path = Path(path).resolve()
        if not keep_project and not self.confirm_discard(f"opening {path.name}"):
            return False
        try:
            info = probe(path)
        except StemDeskError as error:
            self.show_error("Cannot open this song", str(error))
            return False
        self.player.close()
        self.info = info
        self.stems, self.stems_offset = {}, 0
        if not keep_project:
            self.project = projects.Project(source=str(path), model=self.model_box.currentText())
            self.undo.clear()
            self.mixer.set_stems([], Mix())
        self.project.source = str(path)
        self.timeline.set_song(info.sample_rate, info.frames)
        mix_lane = Lane("mix", Peaks(info.sample_rate, info.frames), busy=True)
        self.timeline.set_lanes([mix_lane])
        self.display.submit(Job("peaks", f"Waveform of {path.name}", lambda job: self._fill_peaks(job, path, mix_lane),
                                device="display"))
        if not self.project.source_sha256:
            self.display.submit(Job("hash", f"Fingerprint of {path.name}", lambda job: sha256_file(path),
                                    device="display"))
        self.player.load(MixSource(path, None, self.project.mix))
        self.setWindowTitle(f"{path.name} — StemDesk")
        self._add_recent(path)
        self.null_label.setText("Null: no stems yet")
        self._show_stems_folder()
        self.status(f"Opened {path.name}: {info.seconds:.1f} s, {info.sample_rate} Hz, {info.channels} ch.")
        self.song_loaded.emit(str(path))
        return True

    def _fill_peaks(self, job: Job, path: Path, lane: Lane) -> None:
        import soundfile as sf

        with sf.SoundFile(str(path)) as handle:
            while True:
                job.cancel_token.raise_if_cancelled()
                block = handle.read(1 << 17, dtype="float32", always_2d=True)
                if not len(block):
                    break
                lane.peaks.append(block.T)
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
        if what == "done" and job.kind == "hash":
            self.project.source_sha256 = job.result
        elif what == "done" and job.kind == "spectrogram":
            name, image = job.result
            lane = self.timeline.lane(name)
            if lane is not None:
                lane.spectrogram = to_qimage(image)
                self.timeline.canvas.update()
        elif what == "failed":
            self.show_error(job.title, job.error or "failed", job.unexpected)
        self.timeline.canvas.update()

    def compute_spectrogram(self, name: str) -> None:
        path = self.project.source if name == "mix" else self.stems.get(name)
        if path:
            self.display.submit(Job("spectrogram", f"Spectrogram of {name}",
                                    lambda job: (name, spectrogram_image(str(path))), device="display"))

    # --- separation --------------------------------------------------------------------------------------------------
    def _worker_engine(self, job: Job, model: str, device: str, threads: int):
        """On a job's worker thread: its CPU threads set, the model loaded (or reused)."""
        from ..jobs.separate import set_threads

        if device == "cpu":
            set_threads(threads)
        job.report({"message": "loading model"})
        return self._engine(model, device)

    def _engine(self, model: str, device: str):
        from ..jobs.separate import SeparationEngine

        key = (model, device)
        if key not in self.engines:
            self.engines[key] = SeparationEngine(model, device)
        return self.engines[key]

    def stems_folder(self, label: str = "") -> Path:
        base = Path(self.settings.get("output_folder") or settings_store.default_output_folder())
        song = Path(self.project.source).stem
        return base / song / (self.model_box.currentText() + (f" {label}" if label else ""))

    def separate(self, audition: bool = False, selection: bool = False) -> Job | None:
        from ..jobs.separate import SeparateOptions

        if self.info is None:
            self.show_error("Nothing to separate", "Open a song first (File → Open song, or drop a file here).")
            return None
        chosen = self._separation_choice()
        if chosen is None:
            return None
        model, device, fmt = chosen
        start, duration, label = 0.0, None, ""
        if audition:
            duration, label = float(self.settings["audition_seconds"]), "audition"
        elif selection and self.timeline.canvas.selection:
            start, end = self.timeline.canvas.selection
            duration, label = end - start, f"{start:.1f}-{end:.1f}s"
        options = SeparateOptions(model=model, format=fmt, device=device, start=start, duration=duration,
                                  segment_seconds=float(self.settings["segment_seconds"]))
        folder = self.stems_folder(label)
        source, rate = Path(self.project.source), self.info.sample_rate
        offset = int(round(start * rate))
        lanes: dict[str, Lane] = {}
        threads = int(self.settings["threads"])

        def work(job: Job):
            engine = self._worker_engine(job, model, device, threads)
            names = list(engine.sources)
            total = self.info.frames - offset if duration is None else min(int(duration * rate),
                                                                            self.info.frames - offset)
            for name in names:
                peaks = Peaks(rate, self.info.frames)
                if offset:
                    peaks.append(_zeros(offset))
                lanes[name] = Lane(name, peaks, busy=True)
            self.bridge.post(self._show_stem_lanes, dict(lanes))
            job.report({"message": "separating", "done": 0, "total": total})

            def on_block(at: int, block) -> None:
                for name, stem in zip(names, block):
                    lanes[name].peaks.append(stem)
                self.bridge.post(self.timeline.canvas.update)

            return engine.separate_file(source, folder, options, progress=job.report, cancel=job.cancel_token,
                                        on_block=on_block)

        title = f"{'Audition' if audition else 'Separate'} {source.name}" + (f" ({label})" if selection else "")
        job = Job("separate", title, work, device=device)
        job.extra = {"model": model, "folder": folder, "offset": offset, "lanes": lanes}
        self.queue.submit(job)
        self.jobs_panel.update_job(job, model)
        self.docks["Jobs"].raise_()
        return job

    def _show_stem_lanes(self, lanes: dict[str, Lane]) -> None:
        mix_lane = self.timeline.lane("mix")
        self.timeline.set_lanes([mix_lane, *lanes.values()] if mix_lane else list(lanes.values()))

    def _separation_done(self, job: Job) -> None:
        result = job.result
        for lane in job.extra["lanes"].values():
            lane.peaks.finish()
            lane.busy = False
        self.stems = {path.stem: path for path in result.outputs}
        self.stems_offset = job.extra["offset"]
        self.project.view["stems_offset"] = self.stems_offset
        self.project.stems_dir = str(result.outputs[0].parent)
        self._show_stems_folder()
        self.project.model = job.extra["model"]
        self.mixer.set_stems(list(self.stems), self.project.mix)
        self._reload_player()
        self._show_null(result.certificate)
        self._set_dirty(True)
        seconds = result.frames / result.info.sample_rate
        self.status(f"Separated {seconds:.1f} s in {result.seconds:.1f} s ({seconds / result.seconds:.1f}x real time) "
                    f"into {self.project.stems_dir}", 15000)

    def _reload_player(self) -> None:
        position = self.player.position_seconds()
        source = MixSource(Path(self.project.source), self.stems or None, self.project.mix, self.stems_offset)
        self.player.load(source)
        self.player.seek(position)
        self.player.set_loop(tuple(self.project.view["loop"]) if self.loop_action.isChecked()
                             and self.project.view.get("loop") else None)

    def _show_null(self, certificate_path: Path | None) -> None:
        import json

        self.timeline.canvas.null_regions = []
        if certificate_path is None or not Path(certificate_path).is_file():
            self.null_label.setText("Null: not checked")
            return
        null = json.loads(Path(certificate_path).read_text(encoding="utf-8")).get("null", {})
        offset = self.stems_offset / self.info.sample_rate if self.info else 0.0
        self.timeline.canvas.null_regions = [
            {"start_seconds": r["start_seconds"] + offset, "end_seconds": r["end_seconds"] + offset}
            for r in null.get("worst_regions", []) if isinstance(r, dict) and "start_seconds" in r]
        self.timeline.canvas.update()
        peak = null.get("peak_dbfs")
        verdict = "bit-exact" if null.get("bit_exact") else ("passed" if null.get("passed") else "FAILED")
        self.null_label.setText(f"Null: {'−∞' if peak is None else f'{peak:.1f}'} dBFS ({verdict})")
        self.null_label.setStyleSheet("color: #5cb85c;" if null.get("passed") else "color: #e0625e;")

    # --- jobs --------------------------------------------------------------------------------------------------------
    def _job_event(self, job: Job, what: str, payload: Any) -> None:
        model = getattr(job, "extra", {}).get("model", "") if hasattr(job, "extra") else ""
        self.jobs_panel.update_job(job, model)
        if job.kind == "train" and what == "progress" and isinstance(payload, dict) and "valid_usdr" in payload:
            self.trainer.add_validation(payload)
        if what not in ("done", "failed", "cancelled"):
            return
        if job.kind == "separate":
            if what == "done":
                self._separation_done(job)
            else:
                self._restore_stem_lanes()
        elif job.kind in ("install", "remove"):
            self.models_panel.refresh()
            self.refresh_models()
        elif job.kind == "check":
            if what == "done":
                self.trainer.show_text(job.result)
        elif job.kind == "train":
            self.trainer.running(False)
            self.models_panel.refresh()
            self.refresh_models()
            if what == "done":
                self.trainer.report.setSearchPaths([job.result["folder"]])      # the card's curves.png
                self.trainer.show_text(job.result["markdown"], markdown=True)
        elif job.kind == "separate-file" and what == "done":
            self.status(f"{job.title}: stems in {job.result.outputs[0].parent}", 15000)
        elif job.kind in ("export", "bounce") and what == "done":
            self.status(f"Exported: {job.result}", 15000)
        if what == "failed":
            self.show_error(f"{job.title} failed", job.error or "", job.unexpected)
        self.job_finished.emit(job)
        if job.kind == "separate":
            self.separation_finished.emit(job)

    def _restore_stem_lanes(self) -> None:
        """After a cancelled or failed separation the lanes show the stems there were before (if any)."""
        lanes = [self.timeline.lane("mix")]
        for name, path in self.stems.items():
            lane = Lane(name, Peaks(self.info.sample_rate, self.info.frames), busy=True)
            lanes.append(lane)
            self.display.submit(Job("peaks", f"Waveform of {name}", lambda job, p=path, l=lane:
                                    self._fill_peaks_offset(job, p, l), device="display"))
        self.timeline.set_lanes([lane for lane in lanes if lane is not None])

    def _fill_peaks_offset(self, job: Job, path: Path, lane: Lane) -> None:
        if self.stems_offset:
            lane.peaks.append(_zeros(self.stems_offset))
        self._fill_peaks(job, path, lane)

    def install_model(self, name: str) -> None:
        """Install a registry model; one whose licence is not free (HTDemucs) is installed only after the user
        has read its licence and pressed Install."""
        from ..io.installable import INSTALLABLE

        item = INSTALLABLE[name]

        def start() -> None:
            def work(job: Job):
                return item.install(lambda what, fraction: job.report({"message": what, "done": fraction,
                                                                       "total": 1.0}))

            self.queue.submit(Job("install", f"Install {item.title}", work, device="network"))
            self.docks["Jobs"].raise_()

        if item.licence_note is None:
            start()
            return
        box = QMessageBox(QMessageBox.Icon.Question, f"Install {item.title}?",
                          f"{item.summary}.\n\n{item.licence_note}\n\nStemDesk downloads {item.download}.",
                          QMessageBox.StandardButton.Cancel, self)
        install = box.addButton("Install for personal or research use", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setModal(False)
        box.buttonClicked.connect(lambda button: start() if button is install else None)
        box.open()
        self.dialogs = [d for d in self.dialogs if d.isVisible()] + [box]
        self.licence_box = box

    def remove_model(self, model_id: str) -> None:
        try:
            folder = remove_model(model_id)
        except StemDeskError as error:
            self.show_error("Cannot remove the model", str(error))
            return
        self.status(f"Removed {model_id} ({folder}).")
        self.models_panel.refresh()
        self.refresh_models()

    def check_data(self, folder: str) -> None:
        from stemdesk.training.dataset import check_dataset, describe, discover

        def work(job: Job) -> str:
            songs = discover(Path(folder))
            if not songs:
                raise StemDeskError(f'No songs found in "{folder}". Put one folder per song with its stems inside.')
            return describe(check_dataset(songs))

        self.queue.submit(Job("check", f"Check data {Path(folder).name}", work, device="cpu"))

    def start_training(self, request: dict) -> None:
        from stemdesk.training.finetune import FineTuneRequest, fine_tune, render_score_card

        if not request["data"] or not request["name"]:
            self.show_error("Cannot train", "Choose a data folder and a name for the new model.")
            return

        def work(job: Job) -> str:
            threads = int(self.settings["threads"])
            card = fine_tune(FineTuneRequest(Path(request["data"]), request["base"], request["name"],
                                             minutes=request["minutes"], threads=threads),
                             progress=lambda event: job.report(_training_progress(event, request["minutes"])),
                             cancel=job.cancel_token)
            return {"markdown": render_score_card(card), "folder": card.get("run_folder", "")}

        self.training_job = self.queue.submit(Job("train", f"Train {request['name']}", work, device="cpu"))
        self.trainer.running(True)

    # --- export ------------------------------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        from ..export.session import EXPORTERS

        if not self.stems:
            self.show_error("Nothing to export", "Separate the song first.")
            return
        self.export_box = ExportDialog(str(Path(self.project.stems_dir).parent), list(EXPORTERS),
                                       self.settings.get("export_choices") or None, self)
        self.export_box.accepted.connect(self._export_chosen)
        self.export_box.show()

    def _export_chosen(self, folder: Path, choices: dict) -> None:
        self.settings["export_choices"] = choices          # the next export starts from these (not saved to disk)
        self.export(folder, sessions=[k for k, on in choices.items() if on and k not in ("stems", "instrumental",
                                                                                           "mix")],
                    instrumental=choices.get("instrumental", False), stems=choices.get("stems", False),
                    mix=choices.get("mix", False))

    def export(self, folder: Path, sessions=(), instrumental: bool = True, stems: bool = False,
               mix: bool = False) -> Job:
        """Write what was chosen into ``folder``, named after the song: "NAME stems/", "NAME instrumental.EXT",
        "NAME mix.wav" and a session file per format."""
        import shutil

        from ..export.certificate import CERTIFICATE
        from ..export.remix import find_stems, instrumental as write_instrumental, render_remix
        from ..export.session import write_session
        from ..export.stems import OutputFormat
        from ..io.atomic import create_temp_dir

        stems_dir, the_mix, source = Path(self.project.stems_dir), copy.deepcopy(self.project.mix), self.project.source
        name = Path(source).stem

        def work(job: Job) -> str:
            found = find_stems(stems_dir)
            folder.mkdir(parents=True, exist_ok=True)
            written = []
            if stems:
                target = folder / f"{name} stems"
                staging = create_temp_dir(target)               # a copy appears whole or not at all
                try:
                    for path in [*found.paths, stems_dir / CERTIFICATE]:
                        if path.is_file():
                            shutil.copy2(path, staging / path.name)
                    if target.exists():
                        shutil.rmtree(target)
                    staging.rename(target)
                except BaseException:
                    shutil.rmtree(staging, ignore_errors=True)
                    raise
                written.append(target)
            if instrumental and "vocals" in found.names:
                written.append(write_instrumental(found, folder / f"{name} instrumental", source,
                                                  cancel=job.cancel_token).path)
            if mix:
                written.append(render_remix(found, the_mix, folder / f"{name} mix.wav", OutputFormat.parse("wav", "24"),
                                            source, kind="mix", cancel=job.cancel_token).path)
            for kind in sessions:
                written.append(write_session(kind, found, the_mix, folder / name))
            return ", ".join(str(p) for p in written)

        return self.queue.submit(Job("export", f"Export {name}", work, device="io"))

    def bounce_dialog(self) -> None:
        if not self.stems:
            self.show_error("Nothing to bounce", "Separate the song first; the mix is made of its stems.")
            return
        start = str(Path(self.project.stems_dir) / f"{Path(self.project.source).stem} mix.wav")
        chosen, _ = QFileDialog.getSaveFileName(self, "Export mix", start,
                                                "WAV (*.wav);;FLAC (*.flac);;MP3 (*.mp3);;AIFF (*.aiff);;OGG (*.ogg)")
        if chosen:
            self.bounce(Path(chosen))

    def bounce(self, path: Path) -> Job | None:
        """Render the project's mix of its stems to ``path`` (format from its extension, 24-bit for PCM), with a
        certificate beside it; a unity mix is checked to null against the song."""
        from ..export.remix import find_stems, render_remix
        from ..export.stems import WRITE_FORMATS, OutputFormat

        kind = path.suffix.lower().lstrip(".") or "wav"
        if kind not in WRITE_FORMATS:
            self.show_error("Cannot export the mix", f"StemDesk writes {', '.join(WRITE_FORMATS)}, not {kind!r}.")
            return None
        stems_dir, mix, source = Path(self.project.stems_dir), copy.deepcopy(self.project.mix), self.project.source
        fmt = OutputFormat.parse(kind, None if "lossy" in WRITE_FORMATS[kind][1] else "24")

        def work(job: Job) -> str:
            stems = find_stems(stems_dir)
            result = render_remix(stems, mix, path, fmt, source, kind="mix", progress=job.report,
                                  cancel=job.cancel_token)
            clipped = f" ({result.clipped} samples clipped: lower the master)" if result.clipped else ""
            return f"{result.path}{clipped}"

        job = self.queue.submit(Job("bounce", f"Export mix {path.name}", work, device="io"))
        self.docks["Jobs"].raise_()
        return job

    # --- mixer, transport ---------------------------------------------------------------------------------------------
    def apply_mix(self, mix: Mix) -> None:
        self.project.mix = copy.deepcopy(mix)
        if self.midi is not None:
            self.midi.mix = copy.deepcopy(mix)
        self.mixer.show_mix(self.project.mix)
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
        self.midi = MidiController(copy.deepcopy(self.project.mix), lambda mix: self.bridge.post(
            self._midi_moved, copy.deepcopy(mix)), midi_map, clock=clock, autosave=True)
        self.midi.recording = True
        try:
            self.midi_port = open_input(port, self.midi, api)
        except StemDeskError as error:
            self.show_error("Cannot use the MIDI controller", str(error))
            self.midi = None
            return None
        self.status(f"MIDI: listening to {port}.")
        return port

    def _midi_moved(self, mix: Mix) -> None:
        """A controller moved a control: apply it like a mixer edit (one undo step per control and gesture)."""
        before = copy.deepcopy(self.project.mix)
        self.undo.push(MixCommand(self, "MIDI control", "midi", before, mix))

    def _learn_toggled(self, on: bool) -> None:
        if on and self.midi is None and self.connect_midi() is None:
            self.mixer.learn.setChecked(False)
            self.status("No MIDI input found: connect a controller (and start JACK or ALSA MIDI), then try again.",
                        10000)
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
        self.seek(self.project.view["loop"][0] if self.loop_action.isChecked() and self.project.view.get("loop")
                  else 0.0)

    def seek(self, seconds: float) -> None:
        self.player.seek(seconds)
        self.timeline.canvas.playhead = seconds
        self.timeline.canvas.update()

    def set_loop(self, span) -> None:
        self.project.view["loop"] = list(span) if span else None
        self.timeline.canvas.loop = tuple(span) if span else None
        self.timeline.canvas.update()
        if span and not self.loop_action.isChecked():
            self.loop_action.setChecked(True)
        self.toggle_loop()

    def toggle_loop(self) -> None:
        loop = self.project.view.get("loop")
        self.player.set_loop(tuple(loop) if loop and self.loop_action.isChecked() else None)

    def _player_state(self, state: str) -> None:
        self.play_action.setText("Pause" if state == "playing" else "Play")

    def _tick(self) -> None:
        if self.player.source is None:
            return
        self.player.poll()
        seconds = self.player.position_seconds()
        if self.player.state == "playing":
            self.timeline.canvas.playhead = seconds
            self.timeline.canvas.update()
            if self.stems:
                null = self.player.source.take_null_dbfs()
                self.null_label.setText(f"Null (live): {'−∞' if null is None else f'{null:.1f}'} dBFS")
        self.position_label.setText(f"{int(seconds // 60)}:{seconds % 60:04.1f}")

    # --- projects ------------------------------------------------------------------------------------------------------
    def _clean_changed(self, clean: bool) -> None:
        self._set_dirty(not clean)

    def _set_dirty(self, dirty: bool) -> None:
        self.dirty = dirty
        name = self.project.path.name if self.project.path else (Path(self.project.source).name or "untitled")
        self.setWindowTitle(f"{'• ' if dirty else ''}{name} — StemDesk")

    def save_project(self, ask_path: bool = False, path: Path | None = None) -> Path | None:
        if path is None and (ask_path or self.project.path is None):
            start = str(Path(self.project.source).with_suffix(projects.SUFFIX)) if self.project.source else ""
            chosen, _ = QFileDialog.getSaveFileName(self, "Save project", start, "StemDesk project (*.stemdesk)")
            if not chosen:
                return None
            path = Path(chosen)
        try:
            saved = projects.save(self.project, path or self.project.path)
        except StemDeskError as error:
            self.show_error("Cannot save the project", str(error))
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
            project = projects.load(path)
        except StemDeskError as error:
            self.show_error("Cannot open the project", str(error))
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
        self.project = project
        if not project.source or not self.open_song(project.source, keep_project=True):
            if project.source and not Path(project.source).exists():
                self.show_error("The song is missing", f'This project\'s song "{project.source}" is not there any '
                                "more. Put it back, or open the song and separate it again.")
            return False
        if project.model:
            self.model_box.setCurrentText(project.model)
            self.models_panel.select(project.model)
        if project.stems_dir and Path(project.stems_dir).is_dir():
            from ..export.remix import find_stems

            try:
                stems = find_stems(project.stems_dir)
                self.stems = dict(zip(stems.names, stems.paths))
                offset = project.view.get("stems_offset", 0)
                self.stems_offset = offset if isinstance(offset, int) and offset >= 0 else 0
                if stems.info.frames + self.stems_offset > self.info.frames:
                    raise StemDeskError("the stems are longer than the song")
            except (StemDeskError, OSError, ValueError) as error:
                self.show_error("The stems could not be used", f"{error}. Separate the song again.")
                self.stems = {}
        self.mixer.set_stems(list(self.stems), project.mix)
        self._show_stems_folder()
        self._restore_stem_lanes()
        self._reload_player()
        if self.stems:
            from ..export.certificate import CERTIFICATE

            self._show_null(Path(project.stems_dir) / CERTIFICATE)
        loop = project.view.get("loop")
        self.timeline.canvas.loop = tuple(loop) if loop else None
        if project.view.get("spp"):
            self.timeline.canvas.spp = float(project.view["spp"])
            self.timeline.canvas.offset = int(project.view.get("offset", 0))
            self.timeline.canvas.view_changed.emit()
        self.undo.clear()
        self._set_dirty(False)
        if project.path:
            self._add_recent(project.path)
        return True

    def autosave(self) -> Path | None:
        if not self.project.source or not self.dirty:
            return None
        self.project.view.update({"spp": self.timeline.canvas.spp, "offset": self.timeline.canvas.offset})
        try:
            return projects.autosave(self.project)
        except OSError as error:
            self.status(f"Autosave failed: {error}", 10000)
            return None

    def offer_recovery(self, accept: bool | None = None) -> bool:
        """After a crash: offer the newest autosave. ``accept`` answers without asking (tests, scripts)."""
        found = projects.recoverable(self.project.path)
        if not found:
            return False
        newest = max(found, key=lambda p: p.stat().st_mtime)
        try:
            project = projects.load(newest)
        except StemDeskError as error:
            self.show_error("Cannot recover", str(error))
            return False
        if accept is None:
            if not self.ask:
                return False
            song = Path(project.source).name if project.source else "an untitled project"
            box = QMessageBox(QMessageBox.Icon.Question, "Recover unsaved work?",
                              f"StemDesk found unsaved work on \u201c{song}\u201d from "
                              f"{time.ctime(newest.stat().st_mtime)}. Recover it?",
                              QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
            self.question = box
            accept = box.exec() == QMessageBox.StandardButton.Yes
            self.question = None
        if not accept:
            newest.unlink(missing_ok=True)
            return False
        project.path = None if newest.parent == projects.autosave_folder() else \
            newest.with_name(newest.name.removesuffix(".autosave"))
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
            act.triggered.connect(lambda _=False, p=entry: self.open_project(Path(p)) if p.endswith(projects.SUFFIX)
                                  else self.open_song(Path(p)))
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
        if not self.dirty and self.project.path is None:
            projects.autosave_path(self.project).unlink(missing_ok=True)


def _zeros(frames: int):
    import numpy as np

    return np.zeros((1, frames), np.float32)


def _training_progress(event: dict, minutes: float) -> dict:
    """The trainer's events as job progress (time budget as the total), keeping the validation scores."""
    eta = event.get("eta_seconds")
    report = {**event, "message": f"step {event.get('step', 0)}"}
    if eta is not None:
        report.update({"done": max(0.0, minutes * 60 - eta), "total": minutes * 60})
    if "valid" in event:
        report["valid_usdr"] = event["valid"]
    return report
