"""Crash recovery, without Qt: which autosave to offer after a crash (the newest worth it), what to ask, and what
an answer does (yes: its project is used, unsaved; no: the autosave goes, so it is not offered again)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..io.registry import Registry
from . import project as projects
from .workspace import Workspace


@dataclass
class RecoveryOffer:
    autosave: Path
    project: projects.Project

    @property
    def song(self) -> str:
        return Path(self.project.source).name if self.project.source else "an untitled project"

    @property
    def question(self) -> str:
        when = time.ctime(self.autosave.stat().st_mtime)
        return f"StemDesk found unsaved work on \u201c{self.song}\u201d from {when}. Recover it?"


def offer(workspace: Workspace, registry: Registry | None = None) -> RecoveryOffer | None:
    """The autosave to offer, with its project; None when there is none. Raises StemDeskError when the newest
    cannot be read."""
    newest = workspace.recoverable()
    if newest is None:
        return None
    return RecoveryOffer(newest, workspace.recovered(newest, registry))


def declined(offer: RecoveryOffer) -> None:
    """No: the autosave is removed (it is not offered again)."""
    offer.autosave.unlink(missing_ok=True)
