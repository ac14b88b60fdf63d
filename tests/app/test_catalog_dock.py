"""The model catalog in the app's Models dock, through the real window (offscreen): the Catalog tab lists each model
with its stems, download size, licence and speed and whether it is installed; Install… shows the publisher's licence
first and installs nothing unless it is accepted; accepted, the model is downloaded from a real HTTP server on
127.0.0.1 (tests/file_server.py) as a job whose progress (its fraction and the download's MB and time left) the dock
shows, then it is in the Model box and separates a song. Cancel stops the download and keeps what was fetched, which
the next install resumes with a Range request; an unreachable server or a wrong checksum says what happened, the
address to fetch and the `stemdesk models install ID --file FILE` that installs the file fetched elsewhere."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest
import soundfile as sf
from catalog_models import entry, mel_roformer, write_catalog
from file_server import Server, _one_thread_no_proxy, dead_url  # noqa: F401 (an autouse fixture)
from helpers import song

pytest.importorskip("pytestqt")
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from stemdesk.app.window import MainWindow  # noqa: E402
from stemdesk.io import catalog  # noqa: E402
from stemdesk.io import settings as settings_store
from stemdesk.io.model_store import list_models, user_models_dir  # noqa: E402
from stemdesk.jobs.queue import CANCELLED, DONE, FAILED  # noqa: E402

MODEL_ID = "tiny-vocals"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[bytes, str, str]:
    """A Mel-RoFormer of vocals and other with random weights, saved as MSST saves it: (its bytes, its file name,
    its YAML's text)."""
    ckpt, text = mel_roformer(tmp_path_factory.mktemp("ckpt"), "tiny_vocals_mel_band_roformer", ["vocals", "other"])
    return ckpt.read_bytes(), ckpt.name, text


@pytest.fixture
def served(tmp_path, monkeypatch, checkpoint):
    """The checkpoint on a file server, and a test catalog (STEMDESK_CATALOG) whose one model is it: ``sha256``
    and ``url`` of the fixture can be changed with `publish` before the window reads the catalog."""
    data, name, text = checkpoint
    server = Server()
    server.files[f"/{name}"] = data
    made = SimpleNamespace(server=server, data=data, name=name, path=f"/{name}")

    def publish(url: str | None = None, sha256: str | None = None) -> None:
        item = entry(MODEL_ID, "mel_band_roformer", tmp_path / name, ["vocals", "other"], text)
        item["files"][0].update(url=url or server.url(made.path), size_bytes=len(data), sha256=sha256)
        write_catalog(tmp_path / "catalog.json", [item], monkeypatch)

    made.publish = publish
    publish()
    yield made
    server.close()


@pytest.fixture
def window(qtbot, tmp_path, served):
    values = dict(
        settings_store.DEFAULTS, output_folder=str(tmp_path / "stems"), threads=1, model="tiny-4stem", bit_depth="16"
    )
    win = MainWindow(values, ask=False)
    qtbot.addWidget(win)
    win.resize(1280, 800)
    win.show()
    win.model_box.setCurrentText("tiny-4stem")
    yield win
    win.shutdown()


def licence_box(window: MainWindow, model_id: str = MODEL_ID) -> QMessageBox:
    """Install… on ``model_id`` in the Catalog tab, as a user clicks it: the licence box it opens."""
    panel = window.models_panel
    panel.select_entry(model_id)
    assert panel.catalog_install.isEnabled()
    panel.catalog_install.click()
    box = window.licence_box
    assert box is not None and box.isVisible()
    return box


def accept(box: QMessageBox) -> None:
    [button] = [b for b in box.buttons() if "Accept" in b.text()]
    button.click()


def part_files() -> list:
    folder = catalog.downloads_dir()
    return sorted(folder.rglob("*.part")) if folder.exists() else []


def installed() -> set[str]:
    return {card.id for card in list_models()}


def nothing_installed() -> None:
    assert MODEL_ID not in installed()
    models = user_models_dir()
    assert not models.exists() or not list(models.iterdir())  # not even a half-written folder


def models_in_the_box(window: MainWindow) -> list[str]:
    return [window.model_box.itemText(i) for i in range(window.model_box.count())]


def test_the_catalog_tab_lists_each_model_with_stems_size_licence_speed_and_state(qtbot, tmp_path, monkeypatch):
    monkeypatch.delenv(catalog.CATALOG_ENV, raising=False)  # the shipped catalog
    values = dict(settings_store.DEFAULTS, output_folder=str(tmp_path / "stems"), threads=1, bit_depth="16")
    win = MainWindow(values, ask=False)
    qtbot.addWidget(win)
    try:
        panel = win.models_panel
        entries = catalog.load_catalog()
        rows = panel.catalog_rows()
        assert list(rows) == list(entries) and panel.tabs.tabText(1) == f"Catalog ({len(entries)})"
        assert rows["mel-roformer-vocals-kj"][:5] == [
            "mel-roformer-vocals-kj",
            "not installed",
            "913 MB",
            "vocals other",
            "not stated (the Hugging Face page says 'License: unknown')",
        ]
        assert rows["mel-roformer-vocals-kj"][5] == entries["mel-roformer-vocals-kj"].speed_text()
        assert rows["mel-roformer-vocals-kj"][5].startswith("a 3-minute song in ")  # benchmarks/catalog_speed.py
        # HTDemucs at the bfloat16 "auto" runs on the CPU it was measured on (benchmarks/catalog_speed.py)
        assert rows["htdemucs-ft"][5] == entries["htdemucs-ft"].speed_text() and "in bfloat16" in rows["htdemucs-ft"][5]
        assert "bfloat16" not in rows["mdx23c-drumsep"][5]
        assert (
            rows["mel-roformer-karaoke"][3] == "vocals \u2192 lead, backing"
        )  # a model of a stem: what it splits into
        assert rows["mel-roformer-dereverb-anvuew"][4] == "GPL-3.0 (the Hugging Face model page's licence tag)"
        assert rows["htdemucs-ft"][1] == "not installed"  # the bag of four runs (#80)
        assert "stemdesk-4stem" in [panel.list.item(i).text().split()[0] for i in range(panel.list.count())]

        panel.select_entry("mel-roformer-karaoke")  # the card says everything, with where it was read
        page = panel.card.toPlainText()
        assert "Mel-RoFormer karaoke" in page and "vocals/lead (its other), vocals/backing (its karaoke)" in page
        assert (
            "913 MB from https://huggingface.co/jarredou/" in page and "not stated (as its publisher states it" in page
        )
        assert panel.catalog_install.isEnabled()
        panel.select_entry("htdemucs-ft")
        assert "bag of four models" in panel.card.toPlainText() and panel.catalog_install.isEnabled()
        assert "4 files: https://dl.fbaipublicfiles.com/demucs/" in panel.card.toPlainText()

        # a catalog model asked for before it is installed names the dock's way to install it, not a command
        sf.write(str(tmp_path / "song.wav"), song(1.0), 44100, subtype="PCM_16")
        assert win.open_song(tmp_path / "song.wav")
        win.model_box.setCurrentText("mel-roformer-vocals-kj")
        with qtbot.waitSignal(win.separation_finished, timeout=60_000) as blocker:
            win.separate()
        assert blocker.args[0].status == FAILED
        _, text = win.last_error
        assert "'mel-roformer-vocals-kj' is not installed. It is in the model catalog" in text
        assert text.endswith(
            "Install it in the Models dock: Catalog \u2192 mel-roformer-vocals-kj \u2192 Install\u2026."
        )
        assert "stemdesk models" not in text
    finally:
        win.shutdown()


def test_install_shows_the_publishers_licence_and_declining_installs_nothing(window, served):
    box = licence_box(window)
    text = box.text()
    assert "Licence of its weights, as its publisher states it: CC0 (the tests') (http://127.0.0.1/licence)" in text
    assert f"from {served.server.url(served.path)}" in text and "Training data: none: random weights" in text
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert window.model_flow.download is None and window.jobs_panel.table.rowCount() == 0
    assert served.server.requests == [] and part_files() == []
    nothing_installed()
    assert window.models_panel.catalog_rows()[MODEL_ID][1] == "not installed"


def test_accepted_the_model_downloads_with_its_progress_in_the_dock_and_then_separates(qtbot, window, served, tmp_path):
    blocks = len(served.data) / 1024
    served.server.delay = 2.0 / blocks  # about 2 s: the download reports its progress a few times (every 0.5 s)
    panel = window.models_panel
    seen = []
    panel.progress.valueChanged.connect(
        lambda value: seen.append((value, panel.progress_text.text(), panel.download_box.isVisible()))
    )
    accept(licence_box(window))
    job = window.model_flow.download
    assert job is not None and panel.cancel_download.isVisible() and not panel.catalog_install.isEnabled()
    qtbot.waitUntil(lambda: window.model_flow.download is None, timeout=120_000)
    assert job.status == DONE, job.error
    downloading = [(value, text) for value, text, visible in seen if visible and " MB of " in text]
    assert downloading, seen
    value, text = downloading[0]
    assert 0 < value < 1000 and text.startswith(f"{served.name}: ") and "MB/s" in text and " left" in text
    assert seen[-1][0] == 1000 and panel.progress_text.text() == f"Installed {MODEL_ID}."

    assert MODEL_ID in installed() and part_files() == []
    assert panel.catalog_rows()[MODEL_ID][1] == "installed" and not panel.catalog_install.isEnabled()
    assert MODEL_ID in models_in_the_box(window)  # the toolbar's Model box offers it
    card = next(card for card in list_models() if card.id == MODEL_ID)
    assert card.raw["source"]["files"][0]["sha256"] == hashlib.sha256(served.data).hexdigest()

    sf.write(str(tmp_path / "song.wav"), song(1.0), 44100, subtype="PCM_16")
    assert window.open_song(tmp_path / "song.wav")
    window.model_box.setCurrentText(MODEL_ID)
    with qtbot.waitSignal(window.separation_finished, timeout=120_000) as blocker:
        window.separate()
    separated = blocker.args[0]
    assert separated.status == DONE, separated.error
    assert sorted(p.name for p in separated.result.result.outputs) == ["other.wav", "vocals.wav"]


def test_cancel_stops_the_download_installs_nothing_and_the_next_install_resumes(qtbot, window, served):
    served.server.delay = 60.0 / (len(served.data) / 1024)  # a minute for the whole file
    panel = window.models_panel
    accept(licence_box(window))
    job = window.model_flow.download
    qtbot.waitUntil(lambda: " MB of " in panel.progress_text.text(), timeout=30_000)  # mid-download
    panel.cancel_download.click()
    qtbot.waitUntil(lambda: window.model_flow.download is None, timeout=10_000)
    assert job.status == CANCELLED and window.last_error is None  # a cancel is no error
    assert panel.progress_text.text().startswith("Cancelled: the part of tiny-vocals downloaded is kept")
    nothing_installed()
    assert MODEL_ID not in models_in_the_box(window) and panel.catalog_rows()[MODEL_ID][1] == "not installed"
    [part] = part_files()
    kept = part.stat().st_size
    assert 0 < kept < len(served.data)

    served.server.delay = 0.0
    accept(licence_box(window))
    job = window.model_flow.download
    qtbot.waitUntil(lambda: window.model_flow.download is None, timeout=120_000)
    assert job.status == DONE, job.error
    first, again = served.server.ranges(served.path)
    assert first is None and again is not None and again.startswith("bytes=") and again != "bytes=0-"
    assert int(again.removeprefix("bytes=").rstrip("-")) >= kept  # from where the cancelled one stopped
    assert MODEL_ID in installed() and MODEL_ID in models_in_the_box(window) and part_files() == []


@pytest.mark.parametrize("failure", ["unreachable", "checksum"])
def test_a_failed_download_says_what_happened_the_address_and_the_file_command(qtbot, tmp_path, served, failure):
    url = dead_url(served.path) if failure == "unreachable" else served.server.url(served.path)
    served.publish(url=url, sha256="0" * 64 if failure == "checksum" else None)
    values = dict(settings_store.DEFAULTS, output_folder=str(tmp_path / "stems"), threads=1, bit_depth="16")
    win = MainWindow(values, ask=False)
    qtbot.addWidget(win)
    try:
        accept(licence_box(win))
        job = win.model_flow.download
        qtbot.waitUntil(lambda: win.last_error is not None, timeout=60_000)
        assert job.status == FAILED and not job.unexpected
        title, text = win.last_error
        assert title == f"Install Tiny {MODEL_ID} failed"
        if failure == "unreachable":
            assert text.startswith("Could not reach 127.0.0.1") and "no connection" in text
        else:
            assert "damaged or another file" in text and "deleted" in text
        assert text.endswith(
            f"Or fetch {url} on a machine with a connection and run: stemdesk models install {MODEL_ID} --file "
            f"{served.name}"
        )
        assert any(isinstance(d, QMessageBox) and d.isVisible() and d.text() == text for d in win.dialogs)
        assert win.models_panel.progress_text.text() == (
            f"{MODEL_ID} was not installed (the message says why); with its file fetched elsewhere: From files\u2026"
        )
        nothing_installed()
        assert part_files() == []
    finally:
        win.shutdown()


def test_from_files_installs_a_file_fetched_elsewhere_checked_against_the_catalog(qtbot, tmp_path, served, monkeypatch):
    """A studio computer without a connection: the catalog's address is dead, the file was fetched on another
    machine. From files… shows the licence, then takes the files chosen; a wrong file is refused by the catalog's
    checksum and nothing is installed, the right one installs and separates."""
    served.publish(url=dead_url(served.path), sha256=hashlib.sha256(served.data).hexdigest())
    values = dict(settings_store.DEFAULTS, output_folder=str(tmp_path / "stems"), threads=1, bit_depth="16")
    win = MainWindow(values, ask=False)
    qtbot.addWidget(win)
    chosen: list = []
    monkeypatch.setattr("stemdesk.app.models_flow.catalog_files_dialog", lambda parent, entry: list(chosen))
    panel = win.models_panel
    try:
        fetched = tmp_path / "Downloads" / served.name
        fetched.parent.mkdir()
        fetched.write_bytes(served.data[:-1] + b"x")  # damaged on the way
        chosen[:] = [fetched]

        def from_files() -> QMessageBox:
            panel.select_entry(MODEL_ID)
            assert panel.catalog_from_files.isEnabled()
            panel.catalog_from_files.click()
            box = win.licence_box
            assert box is not None and box.isVisible() and "CC0 (the tests')" in box.text()
            return box

        accept(from_files())
        job = win.model_flow.download
        qtbot.waitUntil(lambda: win.model_flow.download is None, timeout=60_000)
        assert job.status == FAILED and not job.unexpected
        title, text = win.last_error
        assert "damaged or another file" in text and served.name in text
        assert panel.progress_text.text() == f"{MODEL_ID} was not installed from those files (the message says why)."
        nothing_installed()

        win.last_error = None
        fetched.write_bytes(served.data)
        accept(from_files())
        job = win.model_flow.download
        qtbot.waitUntil(lambda: win.model_flow.download is None, timeout=60_000)
        assert job.status == DONE, job.error
        assert panel.progress_text.text() == f"Installed {MODEL_ID} from the files chosen."
        assert panel.catalog_rows()[MODEL_ID][1] == "installed" and not panel.catalog_from_files.isEnabled()
        card = next(card for card in list_models() if card.id == MODEL_ID)
        assert card.raw["source"]["files"][0]["installed_from"] == str(fetched) and fetched.exists()
        assert MODEL_ID in models_in_the_box(win)
    finally:
        win.shutdown()
