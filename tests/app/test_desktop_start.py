"""The real app started as a user starts it, on a real X server (Xvfb), not offscreen like the other app tests: it
opens its window there, and where it cannot (no display, no X server, a library Qt's xcb plugin needs not installed)
it says so in one line of its own and exits 1, where Qt alone aborts (SIGABRT, 134) with only its own lines.

The missing library is removed for real, for the app's process only: a private mount namespace (unshare) lays an
overlay over the system's library folder and deletes libxcb-cursor there, as on a desktop that lacks libxcb-cursor0."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO
from helpers import alive, screenshot_path

from stemdesk.app import display

ABORTED = ("qt.qpa", "Aborted", "core dumped", "could not connect to display", "no Qt platform plugin", "Traceback")
XCB_PLUGIN = display._plugin("xcb")
needs_xvfb = pytest.mark.skipif(
    shutil.which("Xvfb") is None or shutil.which("xdotool") is None,
    reason="needs Xvfb and xdotool (scripts/setup.sh --test installs them)",
)
needs_xcb_plugin = pytest.mark.skipif(XCB_PLUGIN is None, reason="PySide6's xcb platform plugin is not installed")


def user_environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A user's environment of its own: home, XDG folders and temporary folder in tmp_path, no display and no Qt
    platform chosen (the app's other tests run offscreen)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DISPLAY", "WAYLAND_DISPLAY", "WAYLAND_SOCKET", "QT_QPA_PLATFORM", "XDG_SESSION_TYPE")
    }
    home = tmp_path / "home"
    runtime = tmp_path / "runtime"
    for folder in (home, runtime, tmp_path / "tmp"):
        folder.mkdir(exist_ok=True)
    runtime.chmod(0o700)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        XDG_RUNTIME_DIR=str(runtime),
        TMPDIR=str(tmp_path / "tmp"),
    )
    env.update(extra)
    return env


def session_members(session: int) -> list[int]:
    """The processes of a session (the app is started as the leader of its own): what it left running."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == session and alive(int(stat.parent.name)):
            members.append(int(stat.parent.name))
    return members


def start(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )


def finish(child: subprocess.Popen, timeout: float = 60) -> tuple[int, str, str]:
    """Wait for the app to end (killing it, and failing, when it does not); its exit code, stdout and stderr.
    Nothing of its session may be left running."""
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        out, err = child.communicate()
        pytest.fail(f"the app was still running after {timeout} s: {err[-2000:]}")
    assert session_members(child.pid) == [], "the app left processes running"
    return child.returncode, out, err


GUI = [sys.executable, "-m", "stemdesk", "gui"]


@pytest.fixture
def xvfb(tmp_path) -> Iterator[str]:
    """A real X server of its own (Xvfb picks a free display number), gone after the test: its DISPLAY."""
    if shutil.which("Xvfb") is None:
        pytest.skip("needs Xvfb (scripts/setup.sh --test installs it)")
    read, write = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    os.close(write)
    try:
        number = b""
        deadline = time.monotonic() + 30
        while not number.endswith(b"\n") and time.monotonic() < deadline:
            if not select.select([read], [], [], 0.5)[0]:
                continue
            chunk = os.read(read, 16)  # Xvfb writes the number once it accepts connections
            if not chunk:
                break
            number += chunk
        if not number.strip().isdigit():
            pytest.fail(f"Xvfb did not start (exit {server.poll()})")
        yield f":{number.strip().decode()}"
    finally:
        os.close(read)
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if number.strip().isdigit():
            assert not Path(f"/tmp/.X{number.strip().decode()}-lock").exists(), "Xvfb left its lock file"


def xdotool(display_name: str, *args: str) -> str:
    done = subprocess.run(
        ["xdotool", *args], capture_output=True, text=True, timeout=30, env={**os.environ, "DISPLAY": display_name}
    )
    return done.stdout


def read_ready(child: subprocess.Popen, seconds: float) -> str:
    """The app's first line on stdout ("StemDesk <version> ready"), or "" when none came in time."""
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(child.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(seconds)
    return line[0] if line else ""


@pytest.mark.slow
@needs_xvfb
@needs_xcb_plugin
@pytest.mark.parametrize(
    "session",
    [
        {},
        # a Wayland session whose compositor does not answer, with its X display working: the window opens on X11
        # (a Wayland that does not work is no reason to refuse)
        {"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-stemdesk-gone"},
    ],
    ids=["x11", "wayland-gone"],
)
def test_the_app_opens_its_window_on_a_real_x_server_and_closes_with_ctrl_q(xvfb, tmp_path, session):
    from PIL import ImageGrab, ImageStat, features

    if not features.check_feature("xcb"):
        pytest.skip("this Pillow cannot grab an X screen (built without XCB)")
    child = start(GUI, user_environment(tmp_path, DISPLAY=xvfb, **session), tmp_path)
    try:
        ready = read_ready(child, 90)
        assert "ready" in ready, f"no 'ready' within 90 s (exit {child.poll()})"
        windows: list[str] = []
        deadline = time.monotonic() + 20
        while not windows and time.monotonic() < deadline:
            windows = xdotool(xvfb, "search", "--onlyvisible", "--name", "^StemDesk").split()
            time.sleep(0.2)
        assert windows, "no visible StemDesk window on the X server"
        sizes = {}
        for window in windows:
            geometry = xdotool(xvfb, "getwindowgeometry", window)
            found = re.search(r"Geometry: (\d+)x(\d+)", geometry)
            if found:
                sizes[window] = (int(found[1]), int(found[2]))
        main = max(sizes, key=lambda window: sizes[window][0] * sizes[window][1])
        width, height = sizes[main]
        assert width >= 800 and height >= 500, sizes
        time.sleep(1.0)  # the first paint
        shot = ImageGrab.grab(xdisplay=xvfb)  # the X server's screen, as a person would see it
        path = screenshot_path(f"desktop-start-{'wayland-gone' if session else 'x11'}.png")
        shot.save(path)
        window_area = shot.crop((0, 0, min(width, shot.width), min(height, shot.height))).convert("RGB")
        colours = window_area.getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 20, f"the window looks blank ({path})"
        assert max(ImageStat.Stat(window_area).stddev) > 10, f"the window looks blank ({path})"
        # closed as a person closes it: Ctrl+Q, typed into the window
        xdotool(xvfb, "windowfocus", "--sync", main, "key", "--clearmodifiers", "ctrl+q")
        code, _, err = finish(child)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    assert code == 0, err[-2000:]
    assert not any(word in err for word in ("Traceback", "Aborted")), err[-2000:]


@pytest.mark.slow
def test_without_a_display_the_app_says_so_in_one_line_and_exits_1(tmp_path):
    code, out, err = finish(start(GUI, user_environment(tmp_path), tmp_path))
    assert code == 1, err
    assert err.splitlines() == [f"stemdesk: {display.NO_DISPLAY}"]
    assert "DISPLAY" in err and "WAYLAND_DISPLAY" in err and "stemdesk --help" in err
    assert out == ""


@pytest.mark.slow
@needs_xcb_plugin
def test_a_display_with_no_x_server_is_said_in_one_line_and_exit_1(tmp_path):
    number = next(
        n
        for n in range(150, 400)
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists()
    )
    code, out, err = finish(start(GUI, user_environment(tmp_path, DISPLAY=f":{number}"), tmp_path))
    assert code == 1, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("stemdesk: "), err
    assert f"no X server answers on DISPLAY=:{number}" in lines[0]
    assert not any(word in err for word in ABORTED), err


def library_folder(soname: str) -> Path | None:
    """The system folder the loader takes ``soname`` from (the real one, not the /lib link of a merged /usr)."""
    assert XCB_PLUGIN is not None
    listed = subprocess.run(["ldd", str(XCB_PLUGIN)], capture_output=True, text=True, timeout=30).stdout
    found = re.search(rf"^\s*{re.escape(soname)} => (\S+)", listed, flags=re.MULTILINE)
    return Path(found[1]).resolve().parent if found and found[1] != "not" else None


def without_library(folder: Path, pattern: str, scratch: Path) -> list[str]:
    """A command prefix that runs a command with ``folder/pattern`` deleted, for that command only: a private mount
    namespace, an overlay (its upper layer on a tmpfs of the namespace's own) over the folder, the files removed in
    it. The system's folder is never changed; the namespace and its mounts end with the command."""
    script = (
        'mount -t tmpfs tmpfs "$1" && mkdir "$1/upper" "$1/work" && '
        'mount -t overlay overlay -o "lowerdir=$2,upperdir=$1/upper,workdir=$1/work" "$2" && '
        'rm -f "$2"/$3 && shift 3 && exec "$@"'
    )
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
        str(scratch),
        str(folder),
        pattern,
    ]


@pytest.mark.slow
@needs_xvfb
@needs_xcb_plugin
def test_without_libxcb_cursor_the_app_names_the_package_to_install_and_exits_1(xvfb, tmp_path):
    folder = library_folder("libxcb-cursor.so.0")
    if folder is None:
        pytest.skip("libxcb-cursor.so.0 is not installed here, so it cannot be removed")
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    scratch = tmp_path / "overlay"
    scratch.mkdir()
    probe = subprocess.run(
        [
            *without_library(folder, "libxcb-cursor.so.0*", scratch),
            "sh",
            "-c",
            'test ! -e "$0"',
            str(folder / "libxcb-cursor.so.0"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        pytest.skip(f"a private mount namespace with an overlay is not permitted here: {probe.stderr.strip()}")
    assert (folder / "libxcb-cursor.so.0").exists()  # the system's copy is untouched
    env = user_environment(tmp_path, DISPLAY=xvfb)
    code, out, err = finish(start([*without_library(folder, "libxcb-cursor.so.0*", scratch), *GUI], env, tmp_path))
    assert code == 1, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("stemdesk: "), err
    assert "libxcb-cursor.so.0" in lines[0] and "sudo apt-get install libxcb-cursor0" in lines[0], lines[0]
    assert "scripts/setup.sh" in lines[0]
    assert not any(word in err for word in ABORTED), err
    assert out == ""
    assert (folder / "libxcb-cursor.so.0").exists() and list(scratch.iterdir()) == []


def needed(library: Path) -> list[str]:
    """The libraries ``library`` names as needed (DT_NEEDED), not those they need in turn."""
    said = subprocess.run(["readelf", "-d", str(library)], capture_output=True, text=True, timeout=30).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", said)


@needs_xcb_plugin
def test_setup_installs_every_system_library_the_xcb_and_wayland_plugins_load():
    """A PySide6 upgrade whose plugins need one more system library fails here, not on a user's desktop."""
    if shutil.which("readelf") is None:
        pytest.skip("needs readelf (binutils; scripts/setup.sh --test installs g++, which brings it)")
    assert XCB_PLUGIN is not None
    qt = XCB_PLUGIN.parents[2]
    libraries = [
        qt / "plugins" / "platforms" / "libqxcb.so",
        qt / "plugins" / "platforms" / "libqwayland.so",
        qt / "lib" / "libQt6XcbQpa.so.6",
        qt / "lib" / "libQt6WaylandClient.so.6",
        *sorted((qt / "plugins" / "xcbglintegrations").glob("*.so")),
        *sorted((qt / "plugins" / "wayland-shell-integration").glob("libxdg-shell.so")),
        *sorted((qt / "plugins" / "wayland-graphics-integration-client").glob("libqt-plugin-wayland-egl.so")),
    ]
    bundled = {path.name for path in (qt / "lib").iterdir()}
    # the C and C++ runtimes come with every system; GLib with Qt's core (scripts/setup.sh says why it is not named)
    everywhere = {
        "libc.so.6",
        "libm.so.6",
        "libstdc++.so.6",
        "libgcc_s.so.1",
        "libglib-2.0.so.0",
        "libgthread-2.0.so.0",
    }
    system = {name for library in libraries if library.exists() for name in needed(library)} - bundled - everywhere
    assert "libxcb-cursor.so.0" in system
    unknown = sorted(system - display.PACKAGES.keys())
    assert unknown == [], f"stemdesk/app/display.py does not know the package of {unknown}"
    setup = (REPO / "scripts" / "setup.sh").read_text()
    application = setup[: setup.index("if ((test_tools)); then")]
    listed = set(re.findall(r"[\w.+-]+", " ".join(re.findall(r"APT_PACKAGES\+?=\(([^)]*)\)", application))))
    missing = sorted({display.PACKAGES[name] for name in system} - listed)
    assert missing == [], f"scripts/setup.sh (the application's list) does not install {missing}"
