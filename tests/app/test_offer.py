"""Issue 53 in the app, through its real window: after a separation with the default model a bar above the timeline
offers HTDemucs (never a dialog: nothing waits on it); Install… opens the Models dock's install with its licence,
No thanks ends the offer for good; and HTDemucs asked for before it is installed says the app's way to install it."""

from __future__ import annotations

import pytest
import soundfile as sf
from helpers import song

pytest.importorskip("pytestqt")
from PySide6.QtCore import Qt  # noqa: E402

from stemdesk.app.window import MainWindow  # noqa: E402
from stemdesk.io import settings as settings_store  # noqa: E402
from stemdesk.io.model_store import DEFAULT_MODEL  # noqa: E402
from stemdesk.jobs.queue import DONE, FAILED, Job  # noqa: E402


def make_window(qtbot, tmp_path, model: str = DEFAULT_MODEL) -> MainWindow:
    values = dict(settings_store.DEFAULTS, output_folder=str(tmp_path / "stems"), threads=1, bit_depth="16")
    win = MainWindow(values, ask=False)
    qtbot.addWidget(win)
    win.resize(1280, 800)
    win.show()
    win.model_box.setCurrentText(model)
    return win


@pytest.fixture
def window(qtbot, tmp_path):
    win = make_window(qtbot, tmp_path)
    yield win
    win.shutdown()


def open_and_separate(qtbot, win: MainWindow, tmp_path, name: str = "song.wav") -> Job:
    path = tmp_path / name
    sf.write(str(path), song(2.0), 44100, subtype="PCM_16")
    assert win.open_song(path)
    with qtbot.waitSignal(win.separation_finished, timeout=120_000) as blocker:
        win.separate()
    return blocker.args[0]


def test_after_the_defaults_stems_a_bar_offers_htdemucs_and_no_thanks_ends_it_for_good(qtbot, window, tmp_path):
    bar = window.offer_bar
    assert bar.isHidden()  # nothing before a separation
    job = open_and_separate(qtbot, window, tmp_path)
    assert job.status == DONE, job.error
    assert bar.isVisible() and window.question is None and not window.dialogs  # a bar, not a dialog
    text = bar.text.text()
    assert "HTDemucs v4 separates better than the default, stemdesk-4stem" in text
    assert "vocals 9.3 against 5.7" in text and "98 MB" in text and "2 to 6 minutes" in text
    assert "personal and research use only" in text and "stemdesk models" not in text
    assert bar.install.text() == "Install HTDemucs v4\u2026" and bar.no_thanks.text() == "No thanks"
    assert "bit-exact" in window.null_label.text()  # the separation's own results are shown as ever

    qtbot.mouseClick(bar.no_thanks, Qt.MouseButton.LeftButton)
    assert bar.isHidden()
    assert settings_store.load_notices() == {"htdemucs": {"app": "declined"}}
    job = open_and_separate(qtbot, window, tmp_path, "again.wav")
    assert job.status == DONE and bar.isHidden()

    again = make_window(qtbot, tmp_path)  # a new session
    try:
        job = open_and_separate(qtbot, again, tmp_path, "third.wav")
        assert job.status == DONE and again.offer_bar.isHidden()
    finally:
        again.shutdown()


def test_install_on_the_bar_opens_the_licence_of_the_models_dock_install(qtbot, window, tmp_path):
    open_and_separate(qtbot, window, tmp_path)
    bar = window.offer_bar
    assert bar.isVisible()
    qtbot.mouseClick(bar.install, Qt.MouseButton.LeftButton)
    assert bar.isHidden()
    box = window.licence_box  # the Models dock's own install: nothing is fetched before the licence is accepted
    assert box.isVisible() and "personal and research use only" in box.text()
    assert any("Install" in b.text() for b in box.buttons()) and window.jobs_panel.table.rowCount() == 1
    box.button(box.StandardButton.Cancel).click()
    qtbot.wait(100)
    assert window.jobs_panel.table.rowCount() == 1  # still only the separation: no install job
    assert settings_store.load_notices() == {"htdemucs": {"app": "accepted"}}


def test_no_offer_after_another_model(qtbot, tmp_path):
    win = make_window(qtbot, tmp_path, "tiny-4stem")
    try:
        job = open_and_separate(qtbot, win, tmp_path)
        assert job.status == DONE and win.offer_bar.isHidden()
    finally:
        win.shutdown()


def test_htdemucs_before_it_is_installed_names_the_models_dock_not_a_command(qtbot, tmp_path):
    win = make_window(qtbot, tmp_path, "htdemucs")
    try:
        assert win.model_box.currentText() == "htdemucs"
        job = open_and_separate(qtbot, win, tmp_path)
        assert job.status == FAILED
        title, text = win.last_error
        assert "'htdemucs' is not installed. It is HTDemucs v4" in text
        assert "which you must accept: personal and research use only" in text
        assert text.endswith("Install it in the Models dock: Install\u2026 \u2192 HTDemucs v4.")
        assert "stemdesk models" not in text and "--" not in text
    finally:
        win.shutdown()


def test_a_model_that_is_not_there_names_the_models_dock_not_a_command(qtbot, tmp_path):
    win = make_window(qtbot, tmp_path, "tiny-4stem")
    try:
        win.model_box.addItem("no-such-model")  # a model removed since the list was made
        win.model_box.setCurrentText("no-such-model")
        job = open_and_separate(qtbot, win, tmp_path)
        assert job.status == FAILED
        title, text = win.last_error
        assert "No model named 'no-such-model' is installed" in text
        assert text.endswith("The Models dock lists the installed models.") and "stemdesk models" not in text
    finally:
        win.shutdown()
