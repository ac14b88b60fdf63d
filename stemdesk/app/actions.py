"""The window's actions, its menus and its toolbar (with the Model and Device boxes). `build_actions` returns them
(`Actions`); the window declares each as its attribute (``open_action``, ``play_action``...), so tests and the rest
of the window trigger them by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel, QMenu, QToolBar

from ..session.recent import MAX_RECENT, RecentFiles

if TYPE_CHECKING:
    from .window import MainWindow


@dataclass
class Actions:
    open_action: QAction
    open_project_action: QAction
    save_action: QAction
    save_as_action: QAction
    export_action: QAction
    bounce_action: QAction
    quit_action: QAction
    play_action: QAction
    stop_action: QAction
    loop_action: QAction
    separate_action: QAction
    audition_action: QAction
    separate_selection_action: QAction
    zoom_in_action: QAction
    zoom_out_action: QAction
    fit_action: QAction
    paste_lyrics_action: QAction
    open_lyrics_action: QAction
    align_lyrics_action: QAction
    tap_word_action: QAction
    tap_line_action: QAction
    remove_lyrics_action: QAction
    karaoke_view_action: QAction
    karaoke_full_screen_action: QAction
    export_karaoke_action: QAction

    def lyrics_actions(self) -> list[QAction]:
        """The Karaoke menu's entries for the lyrics, which the lyrics' lane offers too."""
        return [
            self.paste_lyrics_action,
            self.open_lyrics_action,
            self.align_lyrics_action,
            self.tap_word_action,
            self.tap_line_action,
            self.remove_lyrics_action,
        ]


def build_actions(w: MainWindow) -> Actions:
    """The actions, each on the window's slot (or its flows')."""

    def action(text, slot, shortcut=None, tip=None) -> QAction:
        act = QAction(text, w)
        act.triggered.connect(slot)
        if shortcut:
            act.setShortcut(QKeySequence(shortcut))
        if tip:
            act.setToolTip(tip)
        w.addAction(act)
        return act

    canvas = w.timeline.canvas
    loop = action("Loop", w.toggle_loop, "L", "Loop the region set with Shift+drag")
    loop.setCheckable(True)
    separate_selection = action("Separate selection", lambda: w.separate(selection=True))
    separate_selection.setEnabled(False)
    a = Actions(
        open_action=action("Open song…", w.open_dialog, "Ctrl+O"),
        open_project_action=action("Open project…", w.project_flow.open_project_dialog, "Ctrl+Shift+O"),
        save_action=action("Save project", w.save_project, "Ctrl+S"),
        save_as_action=action("Save project as…", lambda: w.save_project(ask_path=True), "Ctrl+Shift+S"),
        export_action=action("Export stems, instrumental and sessions…", w.export_dialog, "Ctrl+E"),
        bounce_action=action(
            "Export mix…",
            w.export_flow.bounce_dialog,
            "Ctrl+B",
            "Render your mix (levels, pans, effects, automation) to one file",
        ),
        quit_action=action("Quit", w.close, "Ctrl+Q"),
        play_action=action("Play", w.player_toggle, "Space", "Play / pause (Space)"),
        stop_action=action("Stop", w.stop, None, "Stop and return to the start"),
        loop_action=loop,
        separate_action=action("Separate", lambda: w.separate(), "Ctrl+R", "Separate the whole song"),
        audition_action=action(
            "Audition",
            lambda: w.separate(audition=True),
            None,
            "Separate the first seconds only, to judge the model quickly",
        ),
        separate_selection_action=separate_selection,
        zoom_in_action=action("Zoom in", lambda: canvas.zoom(0.5), "Ctrl+="),
        zoom_out_action=action("Zoom out", lambda: canvas.zoom(2.0), "Ctrl+-"),
        fit_action=action("Fit song", canvas.fit, "Ctrl+0"),
        paste_lyrics_action=action("Paste lyrics…", w.lyrics_flow.paste_dialog, None, "Plain text, LRC or ASS"),
        open_lyrics_action=action("Open lyrics…", w.lyrics_flow.open_dialog, None, "A text, LRC or ASS file"),
        align_lyrics_action=action(
            "Align lyrics", w.lyrics_flow.align, None, "Place every word on the lead vocal (the vocals' lead stem)"
        ),
        tap_word_action=action(
            "Tap: the next word starts now",
            lambda: w.lyrics_flow.tap(),
            "T",
            "While the song plays: the next word starts at the playhead, the word before ends there",
        ),
        tap_line_action=action(
            "Tap: the next line starts now",
            lambda: w.lyrics_flow.tap(whole_line=True),
            "Shift+T",
            "While the song plays: the next line starts at the playhead",
        ),
        remove_lyrics_action=action("Remove lyrics", w.lyrics_flow.remove),
        karaoke_view_action=action(
            "Karaoke screen",
            lambda: w.karaoke_flow.open_view(),
            "Ctrl+K",
            "The words wiping in time over the karaoke mix (the vocals muted)",
        ),
        karaoke_full_screen_action=action(
            "Karaoke screen, full screen", lambda: w.karaoke_flow.open_view(full_screen=True), "Ctrl+Shift+K"
        ),
        export_karaoke_action=action(
            "Export karaoke…",
            w.karaoke_flow.export_dialog,
            None,
            "The karaoke mix with LRC, ASS, an MP4 video, CD+G or an UltraStar song of the lyrics",
        ),
    )
    return a


def build_menus(w: MainWindow, a: Actions) -> RecentMenu:
    """The actions in the menus and the toolbar (with the window's Model and Device boxes); the File menu's recent
    files are returned."""
    undo, redo = w.undo.createUndoAction(w, "Undo"), w.undo.createRedoAction(w, "Redo")
    undo.setShortcut(QKeySequence.StandardKey.Undo)
    redo.setShortcut(QKeySequence.StandardKey.Redo)

    menu = w.menuBar()
    file_menu = menu.addMenu("&File")
    for act in (a.open_action, a.open_project_action):
        file_menu.addAction(act)
    recent_menu = RecentMenu(file_menu.addMenu("Open recent"), w.recent, w.project_flow.open_recent)
    for act in (a.save_action, a.save_as_action, a.export_action, a.bounce_action, a.export_karaoke_action):
        file_menu.addAction(act)
    file_menu.addSeparator()
    file_menu.addAction(a.quit_action)
    edit_menu = menu.addMenu("&Edit")
    edit_menu.addAction(undo)
    edit_menu.addAction(redo)
    view_menu = menu.addMenu("&View")
    for act in (a.zoom_in_action, a.zoom_out_action, a.fit_action):
        view_menu.addAction(act)
    for dock in w.docks.values():
        view_menu.addAction(dock.toggleViewAction())
    transport = menu.addMenu("&Transport")
    for act in (a.play_action, a.stop_action, a.loop_action):
        transport.addAction(act)
    jobs_menu = menu.addMenu("&Separate")
    for act in (a.separate_action, a.audition_action, a.separate_selection_action):
        jobs_menu.addAction(act)
    karaoke_menu = menu.addMenu("&Karaoke")
    for act in a.lyrics_actions():
        karaoke_menu.addAction(act)
    karaoke_menu.addSeparator()
    for act in (a.karaoke_view_action, a.karaoke_full_screen_action, a.export_karaoke_action):
        karaoke_menu.addAction(act)

    bar = QToolBar("Main", w)
    bar.setObjectName("main-toolbar")
    bar.setMovable(False)
    w.addToolBar(bar)
    for act in (a.open_action, a.play_action, a.stop_action, a.loop_action):
        bar.addAction(act)
    bar.addSeparator()
    bar.addWidget(QLabel(" Model "))
    bar.addWidget(w.model_box)
    bar.addWidget(QLabel(" Device "))
    bar.addWidget(w.device_box)
    for act in (a.separate_action, a.audition_action, a.separate_selection_action):
        bar.addAction(act)
    return recent_menu


class RecentMenu:
    """File → Open recent: shows `RecentFiles` and follows its ``changed``; choosing an entry calls ``open(entry)``."""

    def __init__(self, menu: QMenu, recent: RecentFiles, open_entry):
        self.menu, self.recent, self.open_entry = menu, recent, open_entry
        if not recent.entries:  # the list QSettings kept before it moved into the settings file
            legacy = QSettings("StemDesk", "StemDesk").value("recent", [])
            entries = (
                [legacy] if isinstance(legacy, str) else [str(e) for e in legacy] if isinstance(legacy, list) else []
            )
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
