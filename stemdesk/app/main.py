"""Start the desktop app: `stemdesk gui [FILES]`, or `stemdesk` with no arguments."""

from __future__ import annotations

import logging
import logging.handlers
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from ..io.paths import log_file
from ..io.registry import Registry

log = logging.getLogger("stemdesk.app")


def setup_logging() -> Path:
    """Log to a rotating file in the platform's log folder (5 files of 1 MB)."""
    path = log_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger("stemdesk")
    if not any(isinstance(h, logging.handlers.RotatingFileHandler) for h in root.handlers):
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=1 << 20, backupCount=5, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    return path


def first_run() -> dict | None:
    """On the first start (no settings file yet): probe the hardware and write the defaults it implies."""
    from ..io import settings as settings_store
    from ..jobs.hardware import defaults_for, probe_hardware

    if settings_store.settings_path().exists():
        return None
    hardware = probe_hardware()
    values = {**settings_store.DEFAULTS, **defaults_for(hardware)}
    try:
        settings_store.save(values)
    except OSError as error:
        log.warning("first run: could not write the settings (%s)", error)
    log.info("first run: %s -> device %s, %d threads", hardware, values["device"], values["threads"])
    return hardware


def run(files: Sequence[Path] = (), argv: Sequence[str] | None = None, registry: Registry | None = None) -> int:
    """Start the app. ``registry``: what the plugins add, from the front end that already loaded them (the command
    line); without one the plugins are loaded here, once."""
    setup_logging()
    platform = None
    if not _qt_started():  # before Qt: its platform plugins abort the process, with only Qt's own lines
        from .display import preflight

        verdict = preflight()
        if verdict.problem is not None:
            log.error("%s", verdict.problem)
            print(f"stemdesk: {verdict.problem}", file=sys.stderr, flush=True)
            return 1
        platform = verdict.platform
    if registry is None:
        from ..plugins import load_plugins

        registry, report = load_plugins()
        for plugin in report:
            if plugin.error:
                log.warning("%s", plugin.error)
    from PySide6.QtCore import QSocketNotifier
    from PySide6.QtWidgets import QApplication

    from ..core.version import __version__
    from ..session import project as projects
    from .window import MainWindow

    first_run()
    arguments = list(argv or sys.argv[:1])
    if platform is not None:  # the one that works here (see display.preflight)
        arguments += ["-platform", platform]
    app = QApplication.instance() or QApplication(arguments)
    assert isinstance(app, QApplication)
    app.setApplicationName("StemDesk")
    app.setOrganizationName("StemDesk")
    app.setApplicationVersion(__version__)

    def unexpected(kind, value, traceback) -> None:  # a bug in a slot: log it, tell the user, keep running
        log.error("unexpected error", exc_info=(kind, value, traceback))
        if window is not None:
            window.show_error("Unexpected error", f"{kind.__name__}: {value}", unexpected=True)

    window = None
    sys.excepthook = unexpected
    # SIGTERM (logout, kill) and Ctrl-C close the app (jobs cancelled, threads joined). Python runs a signal handler
    # only when the main thread next runs Python code, at any point of it (inside PySide6's lazy set-up of its types,
    # which a Qt call from the handler then breaks), and an idle event loop may run none. So the handler only takes
    # note; the signal's wake-up byte makes the event loop call `wake`, which closes the app, also when the signal
    # came before the loop started.
    requested: list[int] = []
    wake_read, wake_write = socket.socketpair()
    for end in (wake_read, wake_write):
        end.setblocking(False)
    signal.set_wakeup_fd(wake_write.fileno())

    def close_now() -> None:  # no "save changes?" prompt: the autosave keeps unsaved work
        if window is not None:
            if window.question is not None:  # a modal question runs its own loop, which quit() does not end
                window.question.reject()
            if window.dirty:
                window.autosave()
            window.shutdown()
        app.quit()

    def wake(*_) -> None:
        _drain(wake_read)
        if requested:
            close_now()

    notifier = QSocketNotifier(wake_read.fileno(), QSocketNotifier.Type.Read, app)
    notifier.activated.connect(wake)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: requested.append(signum))
    window = MainWindow(registry=registry)
    window.resize(1280, 800)
    window.show()
    for path in files:
        path = Path(path)
        if path.suffix == projects.SUFFIX:
            window.open_project(path)
        else:
            window.open_song(path)
        break
    else:
        window.offer_recovery()
    if window.closed:  # closed (a SIGTERM) while a question at start-up was open: do not start the loop again
        signal.set_wakeup_fd(-1)
        return 0
    log.info("StemDesk %s ready (Qt platform %s)", __version__, app.platformName())
    print(f"StemDesk {__version__} ready", flush=True)
    code = app.exec()
    signal.set_wakeup_fd(-1)
    log.info("StemDesk closed")
    return code


def _qt_started() -> bool:
    """A QApplication exists already (a test, an embedding program): its platform is chosen and working."""
    core = sys.modules.get("PySide6.QtCore")
    return core is not None and core.QCoreApplication.instance() is not None


def _drain(sock) -> None:
    try:
        while sock.recv(64):
            pass
    except OSError:
        pass
