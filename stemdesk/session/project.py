"""`.stemdesk` project files: the source song (path + sha256), the model, the stems folder, the mix, the view.

Saved atomically; autosaved beside the project as ``<name>.stemdesk.autosave`` (or, for an untitled project, in the
user's state folder) so a crash loses at most one autosave interval. Project files are untrusted input: they are
parsed with a schema and a size limit, and nothing in them is ever used as a place to write.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import MixError, StemDeskError
from ..io.atomic import atomic_write_bytes, process_alive
from ..io.paths import state_dir
from ..io.registry import Registry
from ..mixer.mix import Mix

PROJECT_VERSION = 1
SUFFIX = ".stemdesk"
MAX_PROJECT_BYTES = 4 << 20


class ProjectError(StemDeskError):
    """A project file cannot be opened; the message says why and what to do."""


@dataclass
class Project:
    source: str = ""  # the song, absolute path
    source_sha256: str = ""
    model: str = ""
    stems_dir: str = ""  # where this project's stems are (empty until separated)
    mix: Mix = field(default_factory=Mix)
    view: dict = field(default_factory=dict)  # zoom, scroll, loop, selection, lanes with spectrogram
    path: Path | None = None  # where it was saved (not stored in the file)

    def to_dict(self) -> dict:
        return {
            "stemdesk_project": PROJECT_VERSION,
            "source": self.source,
            "source_sha256": self.source_sha256,
            "model": self.model,
            "stems_dir": self.stems_dir,
            "mix": self.mix.to_dict(),
            "view": self.view,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "the project", registry: Registry | None = None) -> Project:
        """A project checked field by field; its mix may use ``registry``'s effects (default: the built-ins)."""
        if not isinstance(data, dict) or "stemdesk_project" not in data:
            raise ProjectError(f"{where} is not a StemDesk project.")
        version = data["stemdesk_project"]
        if not isinstance(version, int) or version > PROJECT_VERSION:
            raise ProjectError(
                f"{where} was saved by a newer StemDesk (project format {version!r}); update StemDesk to open it."
            )
        for key in ("source", "source_sha256", "model", "stems_dir"):
            if not isinstance(data.get(key, ""), str) or len(data.get(key, "")) > 4096:
                raise ProjectError(f"{where} has a bad {key!r}; it may be damaged. Open an older copy or its autosave.")
        view = data.get("view", {})
        if not isinstance(view, dict):
            raise ProjectError(f"{where} has a bad view section.")
        try:
            mix = Mix.from_dict(data.get("mix", {}), registry)
        except MixError as error:
            raise ProjectError(f"{where} has an invalid mix: {error}") from None
        return cls(
            data.get("source", ""),
            data.get("source_sha256", ""),
            data.get("model", ""),
            data.get("stems_dir", ""),
            mix,
            view,
        )


def save(project: Project, path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    try:
        atomic_write_bytes(path, json.dumps(project.to_dict(), indent=2).encode("utf-8"))
    except OSError as error:
        raise ProjectError(
            f'Cannot save "{path}": {error.strerror or error}. Choose another folder or free some '
            "space; the previous save is untouched."
        ) from None
    project.path = path
    autosave_path(project).unlink(missing_ok=True)
    return path


def load(path: str | os.PathLike, registry: Registry | None = None) -> Project:
    path = Path(path)
    where = f'"{path.name}"'
    try:
        size = path.stat().st_size
        if size > MAX_PROJECT_BYTES:
            raise ProjectError(f"{where} is {size} bytes; a project is at most {MAX_PROJECT_BYTES} bytes.")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProjectError(f"{where} does not exist.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ProjectError(f"Cannot read {where}: {getattr(error, 'strerror', None) or error}.") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise ProjectError(
            f"{where} is damaged or truncated (not valid JSON). Open its autosave "
            f'("{path.name}.autosave") or an older copy.'
        ) from None
    project = Project.from_dict(data, where, registry)
    project.path = path
    return project


def autosave_folder() -> Path:
    return state_dir() / "autosave"


def autosave_path(project: Project) -> Path:
    if project.path is not None:
        return project.path.with_name(project.path.name + ".autosave")
    return autosave_folder() / f"untitled-{os.getpid()}{SUFFIX}.autosave"


def autosave(project: Project) -> Path:
    return atomic_write_bytes(autosave_path(project), json.dumps(project.to_dict()).encode("utf-8"))


def recoverable(project_path: Path | None = None) -> list[Path]:
    """Autosaves worth offering after a crash: the project's own if newer than it, and untitled ones left by
    processes that are gone."""
    found = []
    if project_path is not None:
        auto = project_path.with_name(project_path.name + ".autosave")
        if auto.is_file() and (not project_path.is_file() or auto.stat().st_mtime >= project_path.stat().st_mtime):
            found.append(auto)
    folder = autosave_folder()
    if folder.is_dir():
        for auto in sorted(folder.glob(f"untitled-*{SUFFIX}.autosave")):
            pid = auto.name.split("-", 1)[1].split(".", 1)[0]
            running = pid.isdigit() and (int(pid) == os.getpid() or process_alive(int(pid)))
            if not running and time.time() - auto.stat().st_mtime < 30 * 86400:
                found.append(auto)
    return found
