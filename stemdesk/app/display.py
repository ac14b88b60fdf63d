"""Can the desktop app open its window here? Asked before Qt starts, without Qt.

Qt's X11 (xcb) and Wayland platform plugins abort the process (SIGABRT, exit 134) with only Qt's own lines when there
is no display, when the X server does not answer, or when a system library they need is not installed (Qt >= 6.5's
xcb plugin needs libxcb-cursor0, which many desktops lack). This finds those cases first and says, in one line, what
is missing and what to do; where Wayland works and X11 does not (or the other way round), Qt is pointed at the one
that works.

What it does costs about 10 ms: it loads the platform plugin the way Qt will (the libraries it brings stay loaded, so
Qt's own start is that much shorter) and connects to the display server once. Only when a library is missing does it
run `ldd`, to name every missing one at once.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("stemdesk.app")

ELSEWHERE = "Start it from a desktop session, or use the command line: stemdesk --help"
NO_DISPLAY = f"no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY is set). {ELSEWHERE}"

# The Debian/Ubuntu package of each system library the xcb and wayland plugins load (PySide6 bundles the rest);
# scripts/setup.sh installs all of them.
PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libwayland-client.so.0": "libwayland-client0",
    "libwayland-cursor.so.0": "libwayland-cursor0",
    "libwayland-egl.so.1": "libwayland-egl1",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
}

# Qt's platform plugin for each platform name this module checks; any other (offscreen, minimal, vnc, eglfs, ...)
# is left to Qt.
PLUGINS = {"xcb": "libqxcb.so", "wayland": "libqwayland.so"}
LABELS = {"xcb": "X11", "wayland": "Wayland"}


@dataclass
class Verdict:
    """platform: the platform to ask Qt for (None: Qt's own choice); problem: why no window can open (None: it can)."""

    platform: str | None = None
    problem: str | None = None


@dataclass
class _Failure:
    reason: str
    packages: list[str] = field(default_factory=list)


def preflight(environ: Mapping[str, str] | None = None) -> Verdict:
    """Decide, before Qt starts, whether a window can open and on which platform."""
    env = os.environ if environ is None else environ
    requested = env.get("QT_QPA_PLATFORM", "").strip()
    if requested:  # the user's choice: checked, never changed
        names = [entry.split(":", 1)[0].strip() for entry in requested.split(";") if entry.strip()]
        kinds = [kind for kind in map(_kind, names) if kind is not None]
        if not names or len(kinds) < len(names):
            return Verdict()  # offscreen, minimal, ...: Qt's own to start (and they need no display)
        failures = []
        for kind in kinds:
            failure = _check(kind, env)
            if failure is None:
                return Verdict()
            failures.append(failure)
        return Verdict(problem=_sentence(failures, prefix=f"QT_QPA_PLATFORM={requested}: "))
    display, wayland = env.get("DISPLAY", ""), env.get("WAYLAND_DISPLAY", "")
    if not display and not wayland:
        return Verdict(problem=NO_DISPLAY)
    checked = {kind: _check(kind, env) for kind, there in (("wayland", wayland), ("xcb", display)) if there}
    usable = [kind for kind, failure in checked.items() if failure is None]
    if not usable:
        return Verdict(problem=_sentence([failure for failure in checked.values() if failure is not None]))
    for kind, failure in checked.items():
        if failure is not None:
            log.warning("%s cannot be used (%s): the window opens on %s", LABELS[kind], failure.reason, usable[0])
    # One works: named, so Qt does not try the other first, or alone (XDG_SESSION_TYPE=x11 has it try X11 only).
    return Verdict(platform=usable[0] if len(usable) == 1 else None)


def _kind(name: str) -> str | None:
    if name == "xcb":
        return "xcb"
    if name.startswith("wayland"):  # wayland, wayland-egl, wayland-brcm: all libqwayland.so
        return "wayland"
    return None


def _check(kind: str, env: Mapping[str, str]) -> _Failure | None:
    if kind == "xcb" and not env.get("DISPLAY"):
        return _Failure("DISPLAY is not set")
    failure = _libraries(kind)
    if failure is not None:
        return failure
    if kind == "xcb":
        return _x_server(env["DISPLAY"])
    return _compositor(env)


def _plugin(kind: str) -> Path | None:
    """PySide6's own copy of the platform plugin (also inside the bundled app), without importing PySide6."""
    try:
        spec = importlib.util.find_spec("PySide6")
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(root) / "Qt" / "plugins" / "platforms" / PLUGINS[kind]
        if path.is_file():
            return path
    return None


def _libraries(kind: str) -> _Failure | None:
    """Load the plugin as Qt will; when a library it needs cannot be loaded, say which (all of them)."""
    plugin = _plugin(kind)
    if plugin is None:
        return None  # not PySide6's layout: Qt's to find out
    try:
        ctypes.CDLL(str(plugin))
        return None
    except OSError as error:
        said = str(error)
    # "libxcb-cursor.so.0: cannot open shared object file: No such file or directory", or a damaged copy:
    # "/lib/x86_64-linux-gnu/libxcb-cursor.so.0: file too short"
    failed, _, reason = said.partition(": ")
    if not failed or Path(failed).name == plugin.name or "undefined symbol" in reason:
        # Not a missing library. Qt loads plugins lazily (this loads them as ctypes does, resolving every symbol
        # now), so an unresolved symbol may never matter to it: Qt is left to try.
        log.warning("Qt's %s plugin does not load here (%s); Qt is left to try", kind, said)
        return None
    missing = _not_found(plugin) or [Path(failed).name]
    packages = sorted({PACKAGES[name] for name in missing if name in PACKAGES})
    if "cannot open shared object file" in reason or len(missing) > 1:
        state = "which is not installed" if len(missing) == 1 else "which are not installed"
    else:  # there, but damaged: "file too short", "invalid ELF header"
        state = f"which does not load ({reason.strip()})"
    return _Failure(f"Qt's {LABELS[kind]} plugin ({kind}) needs {', '.join(missing)}, {state}", packages)


def _not_found(plugin: Path) -> list[str]:
    """Every library the plugin needs that the loader cannot find (ldd lists them all; dlopen stops at the first)."""
    try:
        listed = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return list(dict.fromkeys(re.findall(r"^\s*(\S+) => not found", listed, flags=re.MULTILINE)))


def _x_server(display: str) -> _Failure | None:
    """Connect to the X server as Qt will (libxcb, with the same authorisation); Qt aborts when this fails."""
    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:
        return None  # named by _libraries already, where PySide6's plugin is there to ask
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    connection = xcb.xcb_connect(display.encode(), None)
    error = xcb.xcb_connection_has_error(connection)
    xcb.xcb_disconnect(connection)
    if error == 0:
        return None
    if error == 5:  # XCB_CONN_CLOSED_PARSE_ERR
        return _Failure(f"DISPLAY={display} is not a display name (like :0)")
    if error == 6:  # XCB_CONN_CLOSED_INVALID_SCREEN
        return _Failure(f"the X server of DISPLAY={display} has no such screen")
    return _Failure(f"no X server answers on DISPLAY={display} (none is running there, or it refused this user)")


def _compositor(env: Mapping[str, str]) -> _Failure | None:
    """Connect to the Wayland compositor as Qt will."""
    if env.get("WAYLAND_SOCKET"):
        return None  # a connection handed over by the compositor: usable once, and that is Qt's
    name = env.get("WAYLAND_DISPLAY") or "wayland-0"
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if not os.path.isabs(name):  # libwayland would print an error of its own here
        if not runtime or not os.path.isdir(runtime):
            return _Failure(f"WAYLAND_DISPLAY={name} names a socket in XDG_RUNTIME_DIR, which is not set")
        if not os.path.exists(os.path.join(runtime, name)):
            return _Failure(f"no Wayland compositor answers on WAYLAND_DISPLAY={name}")
    try:
        wayland = ctypes.CDLL("libwayland-client.so.0")
    except OSError:
        return None
    wayland.wl_display_connect.restype = ctypes.c_void_p
    wayland.wl_display_connect.argtypes = [ctypes.c_char_p]
    wayland.wl_display_disconnect.argtypes = [ctypes.c_void_p]
    connection = wayland.wl_display_connect(name.encode())
    if not connection:
        return _Failure(f"no Wayland compositor answers on WAYLAND_DISPLAY={name}")
    wayland.wl_display_disconnect(connection)
    return None


def _sentence(failures: list[_Failure], prefix: str = "") -> str:
    """One line: what is missing, then what to run."""
    reasons = "; ".join(failure.reason for failure in failures)
    packages = sorted({package for failure in failures for package in failure.packages})
    if packages:
        advice = (
            f"Install {'it' if len(packages) == 1 else 'them'}: sudo apt-get install {' '.join(packages)} "
            "(scripts/setup.sh installs every library the app needs)"
        )
    elif any(" needs " in failure.reason for failure in failures):
        advice = "Install the missing libraries (scripts/setup.sh installs every library the app needs)"
    else:
        advice = ELSEWHERE
    return f"the window cannot open: {prefix}{reasons}. {advice}"
