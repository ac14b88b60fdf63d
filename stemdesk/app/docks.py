"""The window's views, built and placed, not wired (the window connects them to what they ask for): the offer bar
above the timeline in the centre, the docks (mixer, jobs, null check, models, trainer, settings), the toolbar's Model
and Device boxes, and the status bar's null meter, clock and stems folder."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QDockWidget, QLabel, QMainWindow, QPushButton, QVBoxLayout, QWidget

from ..core.device import DEVICES
from ..io.model_store import DEFAULT_MODEL, is_research, list_models
from ..io.registry import Registry
from .jobs_panel import JobsPanel
from .mixer_panel import MixerPanel
from .models_panel import ModelsPanel
from .null_panel import NullPanel
from .null_view import NO_STEMS
from .offer_bar import OfferBar
from .settings_panel import SettingsPanel
from .timeline import Timeline
from .trainer_panel import TrainerPanel


@dataclass
class Views:
    timeline: Timeline
    offer_bar: OfferBar  # above the timeline, hidden until there is something to offer
    mixer: MixerPanel
    jobs_panel: JobsPanel
    models_panel: ModelsPanel
    trainer: TrainerPanel
    settings_panel: SettingsPanel
    null_panel: NullPanel
    docks: dict[str, QDockWidget]  # by title
    model_box: QComboBox
    device_box: QComboBox
    null_label: QLabel  # the null meter, always visible in the status bar
    position_label: QLabel
    folder_button: QPushButton  # where the stems are: one click opens the folder in the file manager


def build_views(window: QMainWindow, registry: Registry | None, settings: dict) -> Views:
    timeline, offer_bar = Timeline(window), OfferBar()
    centre = QWidget()
    column = QVBoxLayout(centre)
    column.setContentsMargins(0, 0, 0, 0)
    column.setSpacing(0)
    column.addWidget(offer_bar)
    column.addWidget(timeline, 1)
    window.setCentralWidget(centre)

    mixer, jobs_panel, null_panel = MixerPanel(registry=registry), JobsPanel(), NullPanel()
    models_panel, trainer, settings_panel = ModelsPanel(registry=registry), TrainerPanel(), SettingsPanel(settings)
    docks = {}
    for title, widget in (
        ("Mixer", mixer),
        ("Jobs", jobs_panel),
        ("Null", null_panel),
        ("Models", models_panel),
        ("Trainer", trainer),
        ("Settings", settings_panel),
    ):
        dock = QDockWidget(title, window)
        dock.setObjectName(title)
        dock.setWidget(widget)
        docks[title] = dock
    _place(window, docks)

    model_box = QComboBox()
    model_box.setMinimumContentsLength(16)
    # editable, so that an ensemble can be typed: A+B averages two models, A*2+B weighs A twice
    model_box.setEditable(True)
    model_box.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
    model_box.setToolTip("A model, or an ensemble of installed models: A+B averages them, A*2+B weighs A twice")
    fill_model_box(model_box, registry, settings.get("model", DEFAULT_MODEL))
    models_panel.show_model(model_box.currentText())
    device_box = QComboBox()
    device_box.addItems(list(DEVICES))
    device_box.setCurrentText(settings["device"])

    null_label = QLabel(NO_STEMS)
    null_label.setObjectName("null-meter")
    null_label.setMinimumWidth(260)
    position_label = QLabel("0:00.0")
    folder_button = QPushButton("Stems: none yet")
    folder_button.setFlat(True)
    folder_button.setEnabled(False)
    for permanent in (folder_button, position_label, null_label):
        window.statusBar().addPermanentWidget(permanent)
    return Views(
        timeline,
        offer_bar,
        mixer,
        jobs_panel,
        models_panel,
        trainer,
        settings_panel,
        null_panel,
        docks,
        model_box,
        device_box,
        null_label,
        position_label,
        folder_button,
    )


def _place(window: QMainWindow, docks: dict[str, QDockWidget]) -> None:
    # placed once each: a dock added to an area and then moved into a tab group left a stray tab bar painted
    # over the mixer
    window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, docks["Mixer"])
    window.splitDockWidget(docks["Mixer"], docks["Jobs"], Qt.Orientation.Horizontal)
    window.tabifyDockWidget(docks["Jobs"], docks["Null"])
    docks["Jobs"].raise_()
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, docks["Models"])
    window.tabifyDockWidget(docks["Models"], docks["Trainer"])
    window.tabifyDockWidget(docks["Trainer"], docks["Settings"])
    docks["Models"].raise_()
    window.resizeDocks([docks["Mixer"]], [330], Qt.Orientation.Vertical)
    # the mixer's four strips and the master fit without scrolling at 1280 px
    window.resizeDocks([docks["Mixer"], docks["Jobs"]], [730, 410], Qt.Orientation.Horizontal)


def fill_model_box(box: QComboBox, registry: Registry | None, fallback: str) -> None:
    """The Model box lists the installed models (again), keeping the current choice (else ``fallback``)."""
    current = box.currentText() or fallback
    box.blockSignals(True)
    box.clear()
    # the models for work first; the research models (the papers' methods, trained from scratch) after a line
    # split models split one stem, not a song (stemdesk separate --split): they are not a model for the box
    cards = [card for card in list_models(registry=registry) if card.split_parent in (None, "mix")]
    box.addItems([card.id for card in cards if not is_research(card)])
    research = [card.id for card in cards if is_research(card)]
    if research:
        box.insertSeparator(box.count())
        box.addItems(research)
    box.setCurrentText(current)
    box.blockSignals(False)
