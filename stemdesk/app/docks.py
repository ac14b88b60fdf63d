"""The window's views: the offer bar above the timeline in the centre, and the docks (mixer, jobs, null check,
models, trainer, settings), each panel wired to what it asks the window for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QLabel, QPushButton, QVBoxLayout, QWidget

from ..session import hints
from .commands import LoopCommand, MixCommand
from .jobs_panel import JobsPanel
from .mixer_panel import MixerPanel
from .models_panel import ModelsPanel
from .null_panel import NullPanel
from .offer_bar import OfferBar
from .settings_panel import SettingsPanel
from .timeline import Timeline
from .trainer_panel import TrainerPanel

if TYPE_CHECKING:
    from .window import MainWindow


def build_views(w: MainWindow) -> None:
    w.timeline = Timeline(w)
    # above the timeline, hidden until there is something to offer (a better model after the default's stems)
    w.offer_bar = OfferBar()
    w.offer_bar.install_requested.connect(w.model_flow.offer_install)
    w.offer_bar.declined.connect(lambda model: hints.record("app", "declined"))
    centre = QWidget()
    column = QVBoxLayout(centre)
    column.setContentsMargins(0, 0, 0, 0)
    column.setSpacing(0)
    column.addWidget(w.offer_bar)
    column.addWidget(w.timeline, 1)
    w.setCentralWidget(centre)
    c = w.timeline.canvas
    c.seek.connect(w.seek)
    c.loop_changed.connect(
        lambda span: w.undo.push(LoopCommand(w.set_loop, w.project.view.get("loop"), list(span) if span else None))
    )
    c.selection_changed.connect(lambda span: w.separate_selection_action.setEnabled(bool(span)))
    c.spectrogram_requested.connect(w.separation.compute_spectrogram)
    c.control_touched.connect(lambda control: w.midi_view.control_touched(control))
    c.null_region_clicked.connect(w.null_view.goto_region)

    w.mixer = MixerPanel(registry=w.registry)
    w.mixer.changed.connect(
        lambda text, control, before, after: w.undo.push(MixCommand(w.apply_mix, text, control, before, after))
    )
    w.mixer.control_touched.connect(lambda control: w.midi_view.control_touched(control))
    c.control_edited.connect(w.mixer.edit)  # lane headers edit the mix the way the strips do (undo, MIDI)
    w.jobs_panel = JobsPanel()
    w.jobs_panel.cancel_requested.connect(lambda job: job.cancel())
    w.models_panel = ModelsPanel(registry=w.registry)
    w.models_panel.install_requested.connect(w.model_flow.install_model)
    w.models_panel.import_requested.connect(lambda: w.model_flow.import_checkpoint())
    w.models_panel.remove_requested.connect(w.model_flow.remove_model)
    w.models_panel.use_requested.connect(lambda model_id: w.model_box.setCurrentText(model_id))
    w.trainer = TrainerPanel()
    w.trainer.check_requested.connect(w.model_flow.check_data)
    w.trainer.train_requested.connect(w.model_flow.start_training)
    w.trainer.cancel_requested.connect(w.model_flow.cancel_training)
    w.settings_panel = SettingsPanel(w.settings)
    w.settings_panel.changed.connect(w.preferences.changed)
    w.null_panel = NullPanel()
    w.null_panel.seek_requested.connect(w.seek)
    w.null_panel.loop_requested.connect(w.null_view.loop_region)
    w.docks = {}
    for title, widget in (
        ("Mixer", w.mixer),
        ("Jobs", w.jobs_panel),
        ("Null", w.null_panel),
        ("Models", w.models_panel),
        ("Trainer", w.trainer),
        ("Settings", w.settings_panel),
    ):
        dock = QDockWidget(title, w)
        dock.setObjectName(title)
        dock.setWidget(widget)
        w.docks[title] = dock
    # placed once each: a dock added to an area and then moved into a tab group left a stray tab bar painted
    # over the mixer
    w.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, w.docks["Mixer"])
    w.splitDockWidget(w.docks["Mixer"], w.docks["Jobs"], Qt.Orientation.Horizontal)
    w.tabifyDockWidget(w.docks["Jobs"], w.docks["Null"])
    w.docks["Jobs"].raise_()
    w.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, w.docks["Models"])
    w.tabifyDockWidget(w.docks["Models"], w.docks["Trainer"])
    w.tabifyDockWidget(w.docks["Trainer"], w.docks["Settings"])
    w.docks["Models"].raise_()
    w.resizeDocks([w.docks["Mixer"]], [330], Qt.Orientation.Vertical)
    # the mixer's four strips and the master fit without scrolling at 1280 px
    w.resizeDocks([w.docks["Mixer"], w.docks["Jobs"]], [730, 410], Qt.Orientation.Horizontal)


def build_status_bar(w: MainWindow) -> None:
    """The null meter, the playhead's clock and the stems folder, always visible in the status bar."""
    w.null_label = QLabel("Null: no stems yet")
    w.null_label.setObjectName("null-meter")
    w.null_label.setMinimumWidth(260)
    w.position_label = QLabel("0:00.0")
    # where the stems are: always visible, one click opens the folder in the file manager
    w.folder_button = QPushButton("Stems: none yet")
    w.folder_button.setFlat(True)
    w.folder_button.setEnabled(False)
    w.folder_button.clicked.connect(w.open_stems_folder)
    w.statusBar().addPermanentWidget(w.folder_button)
    w.statusBar().addPermanentWidget(w.position_label)
    w.statusBar().addPermanentWidget(w.null_label)
