"""The `stemdesk` command line. Other tools script it, so its arguments, outputs and exit codes are a contract.

Exit codes: 0 success, 1 a known error (one line on stderr saying what to do), 2 bad usage, 3 null check failed,
130 cancelled (Ctrl-C). ``--debug`` shows tracebacks.

One module per command group, each readable alone: `separate` (separate, demo), `mixdown` (nullcheck, remix,
export), `batch`, `models`, `train` (check-data, train, --recipes) and `misc` (gui, midi, plugins). The flags
several commands take are defined once in `options`; exit codes, error wording, the progress bar and argument
types are in `common`; `parser.build_parser` puts the commands together. Each command's parser names the function
that runs it (``args.handler``); `main` turns what they raise into messages and exit codes.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from ..core.errors import Cancelled, StemDeskError
from ..io.process import interrupt
from .common import (
    DEFAULT_OUTDIR,
    EXIT_BROKEN_PIPE,
    EXIT_CANCELLED,
    EXIT_ERROR,
    EXIT_NULL,
    EXIT_USAGE,
    FLAGS,
    ProgressBar,
    words,
)
from .options import MODEL_HELP
from .parser import build_parser

__all__ = [
    "DEFAULT_OUTDIR",
    "EXIT_BROKEN_PIPE",
    "EXIT_CANCELLED",
    "EXIT_ERROR",
    "EXIT_NULL",
    "EXIT_USAGE",
    "FLAGS",
    "MODEL_HELP",
    "ProgressBar",
    "build_parser",
    "main",
    "quiet_broken_pipe",
    "reader_gone",
    "words",
]


def reader_gone(stream: TextIO) -> bool:
    """True when ``stream`` is the write end of a pipe or socket whose reader has gone (its poll reports an error
    or hang-up): a broken pipe of our own output, not one of a tool we run (ffmpeg, a worker) or of a file."""
    poll = getattr(select, "poll", None)  # not on Windows: there a broken pipe stays an error message
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    if poll is None:
        return False
    poller = poll()
    poller.register(fd, 0)  # error and hang-up are reported whatever is asked for
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def quiet_broken_pipe(out: TextIO) -> int:
    """The reader of our output went away (`stemdesk models | head -1`): nothing to say, as for any Unix tool. The
    output's file descriptor now leads to the null device, so the interpreter's last flush does not fail again
    ("Exception ignored ... BrokenPipeError", exit 120)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, out.fileno())
    finally:
        os.close(devnull)
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    from ..plugins import load_plugins

    registry, plugins = load_plugins()  # first: plugins add choices the parser offers (e.g. --session kinds)
    for plugin in plugins:
        if plugin.error:
            print(f"stemdesk: {plugin.error}", file=err)
    parser = build_parser(registry)
    args = parser.parse_args(argv)
    args.plugins = plugins
    if args.command is None:
        args.command, args.files = "gui", []
    # Until here a SIGTERM simply ends the process: nothing is written yet. The command line then turns it into
    # KeyboardInterrupt, so writers remove their temporary files. The app installs its own handler (it only takes
    # note): an exception raised by a handler while PySide6 runs Python code inside a Qt call can be swallowed
    # there, and a loaded CI run showed the app then running on after the signal.
    if args.command != "gui" and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)
    if args.command == "gui":
        from .misc import start_app

        return start_app(args, err)
    try:
        code = args.handler(args, out, err)
        out.flush()  # here, not at exit: a reader gone away (`stemdesk models | head -1`) is handled below
        return code
    except Cancelled:
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        print("Interrupted; no partial stems were left.", file=err)
        return EXIT_CANCELLED
    except StemDeskError as error:
        if args.debug:
            raise
        print(f"stemdesk: {words(error)}", file=err)
        return EXIT_ERROR
    except MemoryError:
        if args.debug:
            raise
        print("stemdesk: out of memory. Use a smaller --segment (for example 10) or close other programs.", file=err)
        return EXIT_ERROR
    except OSError as error:
        if isinstance(error, BrokenPipeError) and reader_gone(out):
            return quiet_broken_pipe(out)
        if args.debug:
            raise
        if error.filename:
            print(f'stemdesk: {error.strerror or error}: "{error.filename}". Check the path and free space.', file=err)
        else:
            print(f"stemdesk: {error.strerror or error}.", file=err)
        return EXIT_ERROR
