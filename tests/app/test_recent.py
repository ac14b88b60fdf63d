"""File → Open recent: what was opened or saved comes first, is kept in the settings file (not Qt's own store), and
opens again from the menu, a project as a project and a song as a song."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from stemdesk.app.window import MainWindow  # noqa: E402
from stemdesk.io import settings as settings_store  # noqa: E402


@pytest.fixture
def make_window(qtbot, tmp_path):
    made = []

    def make(settings=None):
        win = MainWindow(settings, ask=False)
        qtbot.addWidget(win)
        made.append(win)
        return win

    yield make
    for win in made:
        win.shutdown()


def entries(win) -> list[str]:
    return [act.text() for act in win.recent_menu.menu.actions()]


def choose(win, entry) -> None:
    next(act for act in win.recent_menu.menu.actions() if act.text() == str(entry)).trigger()


def test_opened_songs_and_saved_projects_are_recent_in_the_settings_and_open_from_the_menu(
    make_window, song_file, tmp_path
):
    values = dict(settings_store.DEFAULTS, output_folder=str(tmp_path / "stems"), threads=1)
    window = make_window(values)
    assert entries(window) == [] and not window.recent_menu.menu.isEnabled()
    first, second = song_file("first.wav", seconds=1.0), song_file("second.wav", seconds=1.0)
    assert window.open_song(first) and window.open_song(second)
    saved = window.save_project(path=tmp_path / "mine")
    assert entries(window) == [str(saved), str(second), str(first)] and window.recent_menu.menu.isEnabled()
    assert settings_store.load()["recent_files"] == [str(saved), str(second), str(first)]

    again = make_window()  # the next start reads them from the settings file
    assert entries(again) == [str(saved), str(second), str(first)]
    choose(again, first)  # a song opens as a song
    assert again.workspace.song == first.resolve() and again.project.path is None
    assert entries(again) == [str(first), str(saved), str(second)]
    choose(again, saved)  # a project opens as a project
    assert again.project.path == saved and again.workspace.song == second.resolve()
    assert entries(again)[0] == str(saved)  # opening it made it the newest again
