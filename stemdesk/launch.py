"""The `stemdesk` command's entry point: give glibc's allocator settings that suit big tensors, then run the CLI.

A separation allocates tens of megabytes per tensor and frees them a moment later. glibc hands such blocks back to
the kernel at once (on purpose: see jobs/memory.py), so every segment faults its pages in again, 4 KB at a time.
Measured on a 3-minute song, one thread: 10.4 s of the run's 21 s went to the kernel. Two of glibc's tunables
cut that: ``hugetlb=1`` backs those blocks with transparent huge pages (one fault per 2 MB) and ``top_pad`` keeps
256 MB of slack on the heap for the smaller ones. The same song then took 13.4 s, with a lower peak (889 MB).

glibc reads tunables only when a process starts, so the command re-executes itself once with them set, before
importing anything heavy. Nothing changes where they do not apply (not Linux, not glibc) or where the user has
set GLIBC_TUNABLES already.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping

TUNABLES = "glibc.malloc.hugetlb=1:glibc.malloc.top_pad=268435456"


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError, AttributeError):  # no such name (musl, macOS) or no confstr (Windows)
        return False


def tuned_environment(environ: Mapping[str, str], platform: str = sys.platform,
                      glibc: bool | None = None) -> dict[str, str] | None:
    """The environment to re-execute with, or None when the process should run as it is."""
    if not platform.startswith("linux") or "GLIBC_TUNABLES" in environ:
        return None
    if not (_glibc() if glibc is None else glibc):
        return None
    return {**environ, "GLIBC_TUNABLES": TUNABLES}


def command_line() -> list[str]:
    """This process's command line, to run it again: the interpreter with its own options (``-m stemdesk``,
    ``-X ...``), or a frozen app's executable with its arguments."""
    if getattr(sys, "frozen", False):
        return [sys.executable, *sys.argv[1:]]
    return list(sys.orig_argv)


def reexec_tuned() -> None:
    """Replace this process with itself under the allocator tunables; returns only when that does not apply."""
    environ = tuned_environment(os.environ)
    if environ is None or not sys.executable:
        return
    try:
        os.execve(sys.executable, command_line(), environ)
    except OSError:
        return  # run untuned rather than not at all


def main() -> int:
    reexec_tuned()
    from .cli import main as cli_main

    return cli_main()
