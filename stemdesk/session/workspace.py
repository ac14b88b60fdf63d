"""The open song, its stems, the project and the one mix: what a front end works on, without Qt.

The app's window shows a `Workspace` and sends it edits; the command line builds one to act on a project. It never
blocks on a question or touches a widget: opening, adopting stems and saving either succeed or raise a
`StemDeskError` that says what happened, and each front end decides how to ask and what to show.
"""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import StemDeskError
from ..export.nullcheck import NullResult
from ..io import settings as settings_store
from ..io.audio import AudioInfo, probe
from ..io.registry import Registry
from ..io.stems import CERTIFICATE, Stems, find_stems
from ..jobs.separate import SeparateResult
from ..mixer.mix import Mix, strips
from . import project as projects
from .events import Announcement
from .tasks import Recheck


class SongMissing(StemDeskError):
    """A project's song is not where the project says."""

    def __init__(self, song: str):
        super().__init__(
            f'This project\'s song "{song}" is not there any more. Put it back, or open the song and separate it again.'
        )
        self.song = song


@dataclass
class Opened:
    """What opening a project found: the stems could not be used when ``stems_problem`` says why."""

    info: AudioInfo
    stems_problem: str | None = None


class Workspace:
    """One song and what has been made of it. ``changed`` is True after an edit that is not saved yet.

    It is the one owner of the mix: the views (mixer strips, lane headers, player, MIDI) read it here or keep the
    value it announced, and keep no copy of their own to edit. `set_mix` is the one way to change it: it announces
    ``mix_changed(mix)`` with the workspace's own mix, which is never changed afterwards (the next edit replaces it),
    so a listener may hold it, even on the audio thread, and never see it drift or change under it. It announces
    ``loop_changed(span)`` after the loop region changed.

    What many views show is announced too, so that each view listens once instead of a caller telling each in turn:
    ``song_opened(info)`` when a song or a project was opened, always followed by ``stems_changed(why)``: the stems
    are others, or none (``why`` is "opened", or "adopted" after a separation), or their files were measured anew
    ("checked": another program wrote them); ``dirty(changed)`` whenever ``changed`` is set (saving, opening, an edit,
    the undo stack back where it was saved), so a title can say whether there is unsaved work under which name.

    Only the thread that made it (the front end's) changes it: a worker hands its result to that thread, which
    applies it; an edit from another thread raises RuntimeError."""

    def __init__(self, settings: dict | None = None):
        self.settings = settings if settings is not None else settings_store.load()
        self.project = projects.Project(model=self.settings.get("model", ""))
        self.info: AudioInfo | None = None
        # what plays: stem name -> file, in the model's order, a split stem's children ("vocals/lead") in its place
        self.stems: dict[str, Path] = {}
        self.groups: dict[str, Path] = {}  # each split stem -> its own file (its children's sum)
        self.stems_offset = 0  # where the stems start in the song, in samples (excerpts)
        self.stems_frames = 0  # how long they are
        self.null: NullResult | None = None  # what the last null check of these stems found
        self.check: Recheck | None = None  # the last check of the stems' files against their certificate
        self.owner = threading.get_ident()  # the only thread that changes the workspace
        self.mix_changed = Announcement()
        self.loop_changed = Announcement()
        self.song_opened = Announcement()
        self.stems_changed = Announcement()
        self.dirty = Announcement()
        self._changed = False

    @property
    def changed(self) -> bool:
        """Whether there is unsaved work; setting it announces ``dirty``."""
        return self._changed

    @changed.setter
    def changed(self, changed: bool) -> None:
        self._changed = bool(changed)
        self.dirty.emit(self._changed)

    # --- what is open ------------------------------------------------------------------------------------------------
    @property
    def song(self) -> Path | None:
        return Path(self.project.source) if self.project.source else None

    @property
    def mix(self) -> Mix:
        """The one mix: read it, never change it in place (`set_mix` replaces it)."""
        return self.project.mix

    def _owner_only(self, what: str) -> None:
        if threading.get_ident() != self.owner:
            raise RuntimeError(f"{what} from a worker thread: hand the result to the front end's thread to apply")

    @property
    def name(self) -> str:
        """How the user calls this work: the project's file, else the song's, else "untitled"."""
        if self.project.path is not None:
            return self.project.path.name
        return self.song.name if self.song else "untitled"

    def output_base(self) -> Path:
        return Path(self.settings.get("output_folder") or settings_store.default_output_folder())

    def stems_folder(self, model: str, label: str = "") -> Path:
        """Where a separation of the open song with ``model`` goes: OUTPUT/SONG/MODEL[ LABEL]."""
        return self.song_folder(self.song or Path("untitled"), model, label)

    def song_folder(self, song: Path, model: str, label: str = "") -> Path:
        """Where ``song`` (open or not: a batch's other songs) is separated with ``model``: OUTPUT/SONG/MODEL[ LABEL].
        An ensemble's weight mark, ``*``, cannot be in a Windows file name: A*2+B is written "A x2+B"."""
        folder = model.replace("*", " x") + (f" {label}" if label else "")
        return self.output_base() / Path(song).stem / folder

    # --- opening ---------------------------------------------------------------------------------------------------
    def open_song(self, path: str | Path, model: str = "") -> AudioInfo:
        """A new project on the song at ``path``: no stems, a unity mix. Raises AudioError."""
        self._owner_only("open_song")
        path = Path(path).resolve()
        info = probe(path)
        self.project = projects.Project(source=str(path), model=model or self.project.model)
        self._song(info)
        self._announce_opened(changed=False)
        return info

    def _song(self, info: AudioInfo) -> None:
        self.info = info
        self.stems, self.stems_offset, self.stems_frames, self.null, self.check = {}, 0, 0, None, None
        self.groups = {}

    def _announce_opened(self, changed: bool) -> None:
        self.song_opened.emit(self.info)
        self.stems_changed.emit("opened")
        self.changed = changed

    def open_project(self, project: projects.Project, recovered: bool = False) -> Opened:
        """Use ``project`` (loaded, or ``recovered`` from an autosave: unsaved work then): its song, and its stems
        when they are still usable. Raises SongMissing or AudioError when the song cannot be opened (the workspace
        is then unchanged)."""
        self._owner_only("open_project")
        if not project.source or not Path(project.source).exists():
            raise SongMissing(project.source or "(none)")
        info = probe(Path(project.source))
        self.project = project
        self._song(info)
        problem = None
        if project.stems_dir and Path(project.stems_dir).is_dir():
            try:
                stems = find_stems(project.stems_dir)
                offset = project.view.get("stems_offset", 0)
                offset = offset if isinstance(offset, int) and offset >= 0 else 0
                if stems.info.frames + offset > info.frames:
                    raise StemDeskError("the stems are longer than the song")
                self._take(stems)
                self.stems_offset, self.stems_frames = offset, stems.info.frames
                self.null = _certified_null(Path(project.stems_dir))
            except (StemDeskError, OSError, ValueError) as error:
                problem = f"{error}. Separate the song again."
        self._announce_opened(changed=recovered)
        return Opened(info, problem)

    def adopt(self, result: SeparateResult, start_seconds: float = 0.0) -> bool:
        """The stems of a separation of the open song (whole or an excerpt starting at ``start_seconds``) become
        the workspace's stems; the mix keeps its levels and effects. False, and nothing changes, when ``result`` is
        of another song than the open one (another was opened while it ran)."""
        self._owner_only("adopt")
        if self.song is None or Path(result.input).resolve() != self.song.resolve():
            return False
        self.stems, self.groups = {path.stem: path for path in result.outputs}, {}
        try:  # and the children of the stems a split model split as part of it
            self._take(find_stems(result.outputs[0].parent))
        except (StemDeskError, OSError, ValueError):
            pass
        self.stems_offset = int(round(start_seconds * result.info.sample_rate))
        self.stems_frames = result.frames
        self.null, self.check = result.null, None
        self.project.view["stems_offset"] = self.stems_offset
        self.project.stems_dir = str(result.outputs[0].parent)
        self.project.model = result.model
        self.stems_changed.emit("adopted")
        self.changed = True
        return True

    def _take(self, stems: Stems) -> None:
        """``stems`` become what plays: each split stem as its children, named "vocals/lead" (`Stems.as_leaves`),
        and its own file kept as their group's."""
        self.stems = dict(stems.leaves())
        self.groups = {name: path for name, path in zip(stems.names, stems.paths) if name in stems.children}

    def take_split(self, stems_dir: Path) -> bool:
        """The stems folder's stems read again after a stem in it was split (or its children removed): its
        children play in its place. False, and nothing changes, when the folder is no longer the workspace's."""
        self._owner_only("take_split")
        if self.stems_dir is None or Path(stems_dir) != self.stems_dir:
            return False
        self._take(find_stems(stems_dir))
        self.null = _certified_null(Path(stems_dir))
        self.stems_changed.emit("split")
        self.changed = True
        return True

    def lanes(self) -> list[tuple[str, Path]]:
        """Every stem the timeline draws, in order, with its file: a split stem, then its children."""
        return [(name, self.groups.get(name) or self.stems[name]) for name in strips(list(self.stems))]

    def files_signature(self) -> tuple:
        """What changes when the song's or a stem's file is written or replaced: each one's size, time and inode.
        Comparing two tells a front end to check the stems again (`tasks.recheck`)."""

        def stat(path: Path) -> tuple:
            try:
                info = path.stat()
            except OSError:
                return (str(path),)
            return (str(path), info.st_size, info.st_mtime_ns, info.st_ino)

        return tuple(
            stat(p) for p in [*([self.song] if self.song else []), *self.groups.values(), *self.stems.values()]
        )

    def apply_check(self, check: Recheck, stems_dir: Path) -> bool:
        """The result of checking ``stems_dir`` becomes what is known of the stems, if they are still the
        workspace's (False: it came too late, the stems are others now). A check that measured the files anew
        announces ``stems_changed("checked")``: they are not the ones playing and drawn."""
        self._owner_only("apply_check")
        if self.stems_dir is None or Path(stems_dir) != self.stems_dir:
            return False
        self.check, self.null = check, check.null
        if check.measured:
            self.stems_changed.emit("checked")
        return True

    @property
    def has_whole_song_stems(self) -> bool:
        """Stems of the whole song (not of an excerpt)."""
        return (
            bool(self.stems)
            and self.info is not None
            and self.stems_offset == 0
            and self.stems_frames >= self.info.frames
        )

    @property
    def stems_dir(self) -> Path | None:
        return Path(self.project.stems_dir) if self.project.stems_dir and self.stems else None

    # --- edits ---------------------------------------------------------------------------------------------------
    def set_mix(self, mix: Mix) -> Mix:
        """The one way to change the mix (a strip, a lane header, a knob, undo, redo): it becomes a copy of ``mix``
        (callers keep theirs), every listener is told, and the workspace's own is returned. The mix it replaces is
        left as it was, for whoever still holds it."""
        self._owner_only("set_mix")
        self.project.mix = copy.deepcopy(mix)
        self.changed = True
        self.mix_changed.emit(self.project.mix)
        return self.project.mix

    def set_loop(self, span) -> None:
        self._owner_only("set_loop")
        self.project.view["loop"] = list(span) if span else None
        self.loop_changed.emit(self.loop)

    def set_fingerprint(self, project: projects.Project, sha256: str) -> None:
        """The song's sha256, computed in the background for ``project`` (the open one, or the one that was)."""
        self._owner_only("set_fingerprint")
        project.source_sha256 = sha256

    @property
    def loop(self) -> tuple[float, float] | None:
        loop = self.project.view.get("loop")
        return tuple(loop) if loop else None

    # --- saving ----------------------------------------------------------------------------------------------------
    def save(self, path: Path | None = None) -> Path:
        target = path or self.project.path
        if target is None:
            raise ValueError("an untitled project is saved with a path")
        saved = projects.save(self.project, target)
        self.changed = False
        return saved

    def autosave(self) -> Path | None:
        """Write the autosave when there is unsaved work (raises OSError)."""
        if not self.project.source or not self.changed:
            return None
        return projects.autosave(self.project)

    def discard(self) -> None:
        """Forget the unsaved work: its autosave goes, so the next start does not offer it back."""
        projects.autosave_path(self.project).unlink(missing_ok=True)
        self.changed = False

    def recoverable(self) -> Path | None:
        """The newest autosave worth offering after a crash, if any."""
        found = projects.recoverable(self.project.path)
        return max(found, key=lambda p: p.stat().st_mtime) if found else None

    @staticmethod
    def recovered(autosave: Path, registry: Registry | None = None) -> projects.Project:
        """The project in ``autosave``, to be saved where it came from (an untitled one stays untitled); its mix
        may use ``registry``'s effects (default: the built-ins)."""
        project = projects.load(autosave, registry)
        project.path = (
            None
            if autosave.parent == projects.autosave_folder()
            else autosave.with_name(autosave.name.removesuffix(".autosave"))
        )
        return project

    def close(self) -> None:
        """Leave nothing behind for a saved or untouched untitled project."""
        if not self.changed and self.project.path is None:
            projects.autosave_path(self.project).unlink(missing_ok=True)


def _certified_null(folder: Path) -> NullResult | None:
    """The null check recorded in a stems folder's certificate, if it has a readable one: of the whole tree (the
    leaves against the song) when a stem in it was split."""
    try:
        cert = json.loads((folder / CERTIFICATE).read_text(encoding="utf-8"))
        null = cert.get("tree_null") or cert.get("null")
        return NullResult.from_dict(null) if isinstance(null, dict) else None
    except (OSError, ValueError, AttributeError):
        return None
