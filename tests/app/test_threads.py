"""No worker thread changes the workspace: a separation's lanes, the song's fingerprint and a check of the stems
are computed on the job threads and applied on the UI thread (through the bridge)."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("pytestqt")

from stemdesk.app.window import MainWindow  # noqa: E402
from stemdesk.io import settings as settings_store  # noqa: E402
from stemdesk.session import project as projects  # noqa: E402
from stemdesk.session.workspace import Workspace  # noqa: E402


def test_the_workspace_and_its_project_change_on_the_ui_thread_only(qtbot, song_file, tmp_path, monkeypatch):
    writes: list[tuple[str, str, str]] = []

    def recording(cls):
        def setattr_(self, name, value):
            writes.append((cls.__name__, name, threading.current_thread().name))
            object.__setattr__(self, name, value)

        monkeypatch.setattr(cls, "__setattr__", setattr_)

    recording(Workspace)
    recording(projects.Project)
    values = dict(settings_store.DEFAULTS, output_folder=str(tmp_path / "stems"), threads=1, model="tiny-4stem")
    window = MainWindow(values, ask=False)
    qtbot.addWidget(window)
    try:
        window.model_box.setCurrentText("tiny-4stem")
        assert window.open_song(song_file(seconds=3.0))
        with qtbot.waitSignal(window.separation_finished, timeout=120_000):
            window.separate()
        assert all(window.timeline.lane(name) is not None for name in window.stems) and window.stems
        qtbot.waitUntil(lambda: bool(window.project.source_sha256), timeout=30_000)  # hashed on the display thread
        with qtbot.waitSignal(window.job_finished, timeout=60_000):
            window.check_stems()
        assert window.workspace.check is not None
    finally:
        window.shutdown()
    assert ("Project", "source_sha256", threading.main_thread().name) in writes
    assert {thread for _, _, thread in writes} == {threading.main_thread().name}, [
        w for w in writes if w[2] != threading.main_thread().name
    ]
