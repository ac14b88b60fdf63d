"""The recently opened songs and projects, without Qt: newest first, at most `MAX_RECENT`, kept in the settings
(``recent_files`` in `stemdesk.io.settings`) and saved with them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..io import settings as settings_store
from . import project as projects
from .events import Announcement

log = logging.getLogger("stemdesk.session")
MAX_RECENT = settings_store.MAX_RECENT
KEY = "recent_files"


class RecentFiles:
    """Announces ``changed(entries)`` after an entry was added."""

    def __init__(self, settings: dict[str, Any], save: Callable[[dict[str, Any]], Any] = settings_store.save):
        self.settings = settings
        self._save = save
        self.changed = Announcement()

    @property
    def entries(self) -> list[str]:
        value = self.settings.get(KEY) or []
        return [value] if isinstance(value, str) else [str(entry) for entry in value]

    def add(self, path: str | Path) -> list[str]:
        """``path`` was opened or saved: it comes first (once), the oldest beyond the limit go; saved at once."""
        entries = ([str(path)] + [p for p in self.entries if p != str(path)])[:MAX_RECENT]
        self.settings[KEY] = entries
        try:
            self._save(self.settings)
        except (OSError, ValueError) as error:  # kept for this session all the same
            log.warning("recent files not saved: %s", error)
        self.changed.emit(entries)
        return entries

    @staticmethod
    def is_project(entry: str) -> bool:
        """Opening ``entry`` opens a project (else a song)."""
        return entry.endswith(projects.SUFFIX)
