"""The window's actions, its menus and its toolbar (with the Model and Device boxes). The actions are the window's
attributes (``open_action``, ``play_action``...), so tests and the rest of the window trigger them by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QLabel, QMenu, QToolBar

from ..core.device import DEVICES
from ..io.model_store import DEFAULT_MODEL, is_research, list_models
from ..session.recent import MAX_RECENT, RecentFiles

if TYPE_CHECKING:
    from .window import MainWindow


def build_actions(w: MainWindow) -> None:
    def action(text, slot, shortcut=None, tip=None) -> QAction:
        act = QAction(text, w)
        act.triggered.connect(slot)
        if shortcut:
            act.setShortcut(QKeySequence(shortcut))
        if tip:
            act.setToolTip(tip)
        w.addAction(act)
        return act

    w.open_action = action("Open song…", w.open_dialog, "Ctrl+O")
    w.open_project_action = action("Open project…", w.project_flow.open_project_dialog, "Ctrl+Shift+O")
    w.save_action = action("Save project", w.save_project, "Ctrl+S")
    w.save_as_action = action("Save project as…", lambda: w.save_project(ask_path=True), "Ctrl+Shift+S")
    w.export_action = action("Export stems, instrumental and sessions…", w.export_dialog, "Ctrl+E")
    w.bounce_action = action(
        "Export mix…",
        w.export_flow.bounce_dialog,
        "Ctrl+B",
        "Render your mix (levels, pans, effects, automation) to one file",
    )
    w.quit_action = action("Quit", w.close, "Ctrl+Q")
    w.play_action = action("Play", w.player_toggle, "Space", "Play / pause (Space)")
    w.stop_action = action("Stop", w.stop, None, "Stop and return to the start")
    w.loop_action = action("Loop", w.toggle_loop, "L", "Loop the region set with Shift+drag")
    w.loop_action.setCheckable(True)
    w.separate_action = action("Separate", lambda: w.separate(), "Ctrl+R", "Separate the whole song")
    w.audition_action = action(
        "Audition",
        lambda: w.separate(audition=True),
        None,
        "Separate the first seconds only, to judge the model quickly",
    )
    w.separate_selection_action = action("Separate selection", lambda: w.separate(selection=True))
    w.separate_selection_action.setEnabled(False)
    w.zoom_in_action = action("Zoom in", lambda: w.timeline.canvas.zoom(0.5), "Ctrl+=")
    w.zoom_out_action = action("Zoom out", lambda: w.timeline.canvas.zoom(2.0), "Ctrl+-")
    w.fit_action = action("Fit song", w.timeline.canvas.fit, "Ctrl+0")
    undo, redo = w.undo.createUndoAction(w, "Undo"), w.undo.createRedoAction(w, "Redo")
    undo.setShortcut(QKeySequence.StandardKey.Undo)
    redo.setShortcut(QKeySequence.StandardKey.Redo)

    menu = w.menuBar()
    file_menu = menu.addMenu("&File")
    for act in (w.open_action, w.open_project_action):
        file_menu.addAction(act)
    w.recent_menu = RecentMenu(file_menu.addMenu("Open recent"), w.recent, w.project_flow.open_recent)
    for act in (w.save_action, w.save_as_action, w.export_action, w.bounce_action):
        file_menu.addAction(act)
    file_menu.addSeparator()
    file_menu.addAction(w.quit_action)
    edit_menu = menu.addMenu("&Edit")
    edit_menu.addAction(undo)
    edit_menu.addAction(redo)
    view_menu = menu.addMenu("&View")
    for act in (w.zoom_in_action, w.zoom_out_action, w.fit_action):
        view_menu.addAction(act)
    for dock in w.docks.values():
        view_menu.addAction(dock.toggleViewAction())
    transport = menu.addMenu("&Transport")
    for act in (w.play_action, w.stop_action, w.loop_action):
        transport.addAction(act)
    jobs_menu = menu.addMenu("&Separate")
    for act in (w.separate_action, w.audition_action, w.separate_selection_action):
        jobs_menu.addAction(act)

    bar = QToolBar("Main", w)
    bar.setObjectName("main-toolbar")
    bar.setMovable(False)
    w.addToolBar(bar)
    for act in (w.open_action, w.play_action, w.stop_action, w.loop_action):
        bar.addAction(act)
    bar.addSeparator()
    bar.addWidget(QLabel(" Model "))
    w.model_box = QComboBox()
    w.model_box.setMinimumContentsLength(16)
    # editable, so that an ensemble can be typed: A+B averages two models, A*2+B weighs A twice
    w.model_box.setEditable(True)
    w.model_box.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
    w.model_box.setToolTip("A model, or an ensemble of installed models: A+B averages them, A*2+B weighs A twice")
    w.refresh_models()
    w.model_box.currentTextChanged.connect(w.models_panel.show_model)
    w.models_panel.show_model(w.model_box.currentText())
    bar.addWidget(w.model_box)
    bar.addWidget(QLabel(" Device "))
    w.device_box = QComboBox()
    w.device_box.addItems(list(DEVICES))
    w.device_box.setCurrentText(w.settings["device"])
    bar.addWidget(w.device_box)
    for act in (w.separate_action, w.audition_action, w.separate_selection_action):
        bar.addAction(act)


def refresh_models(w: MainWindow) -> None:
    """The Model box lists the installed models again, keeping the current choice."""
    current = w.model_box.currentText() or w.settings.get("model", DEFAULT_MODEL)
    w.model_box.blockSignals(True)
    w.model_box.clear()
    # the models for work first; the research models (the papers' methods, trained from scratch) after a line
    cards = list_models(registry=w.registry)
    w.model_box.addItems([card.id for card in cards if not is_research(card)])
    research = [card.id for card in cards if is_research(card)]
    if research:
        w.model_box.insertSeparator(w.model_box.count())
        w.model_box.addItems(research)
    w.model_box.setCurrentText(current)
    w.model_box.blockSignals(False)


class RecentMenu:
    """File → Open recent: shows `RecentFiles` and follows its ``changed``; choosing an entry calls ``open(entry)``."""

    def __init__(self, menu: QMenu, recent: RecentFiles, open_entry):
        self.menu, self.recent, self.open_entry = menu, recent, open_entry
        if not recent.entries:  # the list QSettings kept before it moved into the settings file
            legacy = QSettings("StemDesk", "StemDesk").value("recent", [])
            entries = [legacy] if isinstance(legacy, str) else [str(entry) for entry in legacy or []]
            if entries:
                recent.settings["recent_files"] = entries[:MAX_RECENT]
        recent.changed.connect(lambda entries: self.fill())
        self.fill()

    def fill(self) -> None:
        self.menu.clear()
        for entry in self.recent.entries:
            act = self.menu.addAction(entry)
            act.triggered.connect(lambda _=False, p=entry: self.open_entry(p))
        self.menu.setEnabled(bool(self.recent.entries))
