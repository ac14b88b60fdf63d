"""`.stemdesk` project files: the source song (path + sha256), the model, the stems folder, the mix, the view, and
the song's lyrics with their times once there are any (format 2; a project without lyrics is still written as format
1, which every StemDesk opens).

Saved atomically; autosaved beside the project as ``<name>.stemdesk.autosave`` (or, for an untitled project, in the
user's state folder) so a crash loses at most one autosave interval. Project files are untrusted input: they are
parsed with a schema and a size limit, and nothing in them is ever used as a place to write.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import MixError, StemDeskError
from ..io.atomic import atomic_write_bytes, process_alive
from ..io.paths import state_dir
from ..io.registry import Registry
from ..karaoke.model import Line, Lyrics, Syllable, Word
from ..mixer.mix import Mix

PROJECT_VERSION = 2  # 2: the lyrics (written only by a project that has them; 1 otherwise)
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
    lyrics: Lyrics | None = None  # the song's words, timed once aligned or tapped (None: none given)

    def to_dict(self) -> dict:
        data = {
            # a StemDesk that knows no lyrics refuses format 2 rather than drop them at its next save
            "stemdesk_project": PROJECT_VERSION if self.lyrics is not None else 1,
            "source": self.source,
            "source_sha256": self.source_sha256,
            "model": self.model,
            "stems_dir": self.stems_dir,
            "mix": self.mix.to_dict(),
            "view": self.view,
        }
        if self.lyrics is not None:
            data["lyrics"] = lyrics_to_dict(self.lyrics)
        return data

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
        lyrics = lyrics_from_dict(data["lyrics"], where) if data.get("lyrics") is not None else None
        return cls(
            data.get("source", ""),
            data.get("source_sha256", ""),
            data.get("model", ""),
            data.get("stems_dir", ""),
            mix,
            view,
            lyrics=lyrics,
        )


def lyrics_to_dict(lyrics: Lyrics) -> dict:
    """The lyrics as the project file keeps them: lines of words of syllables, each with its times (null: none)."""
    return {
        "language": lyrics.language,
        "title": lyrics.title,
        "artist": lyrics.artist,
        "lines": [
            {
                "verse": line.verse,
                "part": line.part,
                "confidence": line.confidence,
                "words": [
                    {
                        "text": word.text,
                        "start": word.start,
                        "end": word.end,
                        "syllables": [
                            {"text": s.text, "start": s.start, "end": s.end, "pitch": s.pitch} for s in word.syllables
                        ],
                    }
                    for word in line.words
                ],
            }
            for line in lyrics.lines
        ],
    }


def lyrics_from_dict(data: Any, where: str = "the project") -> Lyrics:
    """The lyrics of a project file, checked field by field (ProjectError names what is wrong)."""

    def bad(what: str) -> ProjectError:
        return ProjectError(f"{where} has bad lyrics ({what}); it may be damaged. Open an older copy or its autosave.")

    def text(value: Any, what: str, empty: bool = True) -> str:
        if not isinstance(value, str) or len(value) > 4096 or (not empty and not value.strip()):
            raise bad(what)
        return value

    def seconds(value: Any, what: str) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise bad(what)
        return float(value)

    def items(value: Any, what: str) -> list:
        if not isinstance(value, list):
            raise bad(what)
        return value

    if not isinstance(data, dict):
        raise bad("not a section")
    language = data.get("language")
    if language is not None:
        text(language, "its language")
    lines = []
    for n, line in enumerate(items(data.get("lines"), "no lines"), 1):
        if not isinstance(line, dict):
            raise bad(f"line {n}")
        words = []
        for word in items(line.get("words"), f"line {n}'s words"):
            if not isinstance(word, dict):
                raise bad(f"a word of line {n}")
            syllables = []
            for syllable in items(word.get("syllables", []), f"a word's syllables in line {n}"):
                if not isinstance(syllable, dict):
                    raise bad(f"a syllable of line {n}")
                pitch = syllable.get("pitch")
                if pitch is not None and (
                    isinstance(pitch, bool) or not isinstance(pitch, int) or not 0 <= pitch < 128
                ):
                    raise bad(f"a syllable's note in line {n}")
                syllables.append(
                    Syllable(
                        text(syllable.get("text"), f"a syllable of line {n}"),
                        seconds(syllable.get("start"), f"a syllable's start in line {n}"),
                        seconds(syllable.get("end"), f"a syllable's end in line {n}"),
                        pitch,
                    )
                )
            words.append(
                Word(
                    text(word.get("text"), f"a word of line {n}", empty=False),
                    seconds(word.get("start"), f"a word's start in line {n}"),
                    seconds(word.get("end"), f"a word's end in line {n}"),
                    syllables,
                )
            )
        verse, part, confidence = line.get("verse", 0), line.get("part", "lead"), line.get("confidence")
        if isinstance(verse, bool) or not isinstance(verse, int) or verse < 0:
            raise bad(f"line {n}'s verse")
        if part not in ("lead", "backing"):
            raise bad(f"line {n}'s part {part!r}")
        if confidence is not None and (
            isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 <= confidence <= 1
        ):
            raise bad(f"line {n}'s confidence")
        lines.append(Line(words, verse, part, None if confidence is None else float(confidence)))
    return Lyrics(lines, language, text(data.get("title", ""), "its title"), text(data.get("artist", ""), "its artist"))


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
