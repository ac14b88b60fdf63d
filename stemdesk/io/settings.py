"""User settings as a declared schema: every setting has a type, a default, allowed values and a help text; the
app's settings panel is generated from it, and a damaged settings file falls back to defaults, field by field."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.defaults import DEFAULT_SEGMENT_SECONDS
from ..core.device import DEVICES
from .atomic import atomic_write_bytes
from .formats import BIT_DEPTHS, DEFAULT_DEPTH, OUTPUT_FORMATS
from .model_store import DEFAULT_MODEL
from .paths import config_dir, music_dir
from .process import default_threads

log = logging.getLogger("stemdesk.settings")
MAX_SETTINGS_BYTES = 1 << 16
MAX_RECENT = 10  # recent_files: the songs and projects opened last


@dataclass(frozen=True)
class Setting:
    key: str
    label: str
    default: Any
    choices: tuple | None = None  # allowed values (a combo box)
    low: float | None = None  # numbers: range (a spin box)
    high: float | None = None
    kind: str = "value"  # "value", "folder", "list" (kept by the app, not shown in its settings panel)
    help: str = ""

    def check(self, value: Any) -> Any:
        if self.kind == "list":  # paths, newest first
            if not isinstance(value, (list, tuple)) or len(value) > MAX_RECENT:
                raise ValueError(f"{self.label} must be a list of at most {MAX_RECENT} paths")
            if not all(isinstance(v, str) and v and "\0" not in v and len(v) <= 4096 for v in value):
                raise ValueError(f"{self.label} must be a list of file paths")
            return list(value)
        if self.kind == "folder":  # empty: the default folder
            if not isinstance(value, str) or "\0" in value or len(value) > 4096:
                raise ValueError(f"{self.label} must be a folder path (or empty for the default)")
            return value
        if self.choices is not None:
            if value not in self.choices:
                raise ValueError(f"{self.label} must be one of {', '.join(map(str, self.choices))}")
            return value
        if isinstance(self.default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{self.label} must be true or false")
            return value
        if isinstance(self.default, (int, float)):
            low, high = self.bounds
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value <= high):
                raise ValueError(f"{self.label} must be a number from {low:g} to {high:g}")
            return type(self.default)(value)
        return value

    @property
    def bounds(self) -> tuple[float, float]:
        """(low, high) of a number setting; every one must declare both."""
        if self.low is None or self.high is None:
            raise TypeError(f"setting {self.key!r} is a number but does not declare its range (low, high)")
        return self.low, self.high


SCHEMA: tuple[Setting, ...] = (
    Setting("model", "Model", DEFAULT_MODEL, help="the model new separations use"),
    Setting("device", "Device", "auto", DEVICES, help="auto: CUDA, then MPS, then the CPU"),
    Setting(
        "threads",
        "CPU threads",
        default_threads(),
        low=1,
        high=256,
        help="torch threads for separation on the CPU (leave one core for the interface)",
    ),
    Setting("format", "Output format", "wav", OUTPUT_FORMATS),
    Setting("bit_depth", "Bit depth", DEFAULT_DEPTH, BIT_DEPTHS, help="ignored for MP3 and OGG"),
    Setting(
        "segment_seconds",
        "Segment length (s)",
        DEFAULT_SEGMENT_SECONDS,
        low=5.0,
        high=600.0,
        help="smaller uses less memory",
    ),
    Setting(
        "output_folder",
        "Stems folder",
        "",
        kind="folder",
        help="where separated stems go (empty: beside the project, or in your Music folder)",
    ),
    Setting("audition_seconds", "Audition length (s)", 20.0, low=5.0, high=120.0),
    Setting("autosave_seconds", "Autosave every (s)", 60, low=10, high=3600),
    Setting(
        "audio_buffer_ms",
        "Audio buffer (ms)",
        80,
        (20, 40, 80, 160),
        help="shorter: fader moves are heard sooner; longer: no dropouts on a busy computer (a dropout raises it "
        "one step by itself). 40 ms suits a quiet computer; 20 ms can click on PulseAudio, which may take 1024 "
        "frames (23 ms) at a time",
    ),
    Setting("recent_files", "Recent files", (), kind="list", help="File → Open recent, newest first"),
)
DEFAULTS = {s.key: s.default for s in SCHEMA}
BY_KEY = {s.key: s for s in SCHEMA}


def settings_path() -> Path:
    return config_dir() / "settings.json"


def default_output_folder() -> Path:
    return music_dir()


def load(path: Path | None = None) -> dict[str, Any]:
    """Settings from disk, each value checked; bad or missing values take their defaults (and are logged)."""
    path = path or settings_path()
    values = dict(DEFAULTS)
    if not path.is_file():
        return values
    try:
        if path.stat().st_size > MAX_SETTINGS_BYTES:
            raise ValueError("the file is too large")
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not an object")
    except (OSError, ValueError, UnicodeDecodeError) as error:
        log.warning("settings file %s is unreadable (%s); using defaults", path, error)
        return values
    for key, value in data.items():
        if key in BY_KEY:
            try:
                values[key] = BY_KEY[key].check(value)
            except ValueError as error:
                log.warning("setting %s ignored: %s", key, error)
    return values


def save(values: dict[str, Any], path: Path | None = None) -> Path:
    clean = {key: BY_KEY[key].check(value) for key, value in values.items() if key in BY_KEY}
    return atomic_write_bytes(path or settings_path(), json.dumps(clean, indent=2).encode("utf-8"))


# What StemDesk has told or offered the user once (see stemdesk.session.hints), in a file of its own: the app's first
# start probes the hardware only while settings.json is missing, which a command-line run must not create.
def notices_path() -> Path:
    return config_dir() / "notices.json"


def load_notices(path: Path | None = None) -> dict[str, dict[str, str]]:
    """{notice: {front end: what happened}}, e.g. {"htdemucs": {"cli": "shown", "app": "declined"}}; an unreadable
    file counts as empty (the worst case: a notice is shown once more)."""
    path = path or notices_path()
    if not path.is_file():
        return {}
    try:
        if path.stat().st_size > MAX_SETTINGS_BYTES:
            raise ValueError("the file is too large")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as error:
        log.warning("notices file %s is unreadable (%s); starting afresh", path, error)
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(name): {str(k): str(v) for k, v in record.items() if isinstance(v, str)}
        for name, record in data.items()
        if isinstance(record, dict)
    }


def record_notice(name: str, front_end: str, what: str, path: Path | None = None) -> Path:
    """Note that notice ``name`` was ``what`` ("shown", "declined", "accepted") in ``front_end``, atomically."""
    path = path or notices_path()
    notices = load_notices(path)
    notices.setdefault(name, {})[front_end] = what
    return atomic_write_bytes(path, (json.dumps(notices, indent=2) + "\n").encode("utf-8"))
