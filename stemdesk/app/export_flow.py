"""The window's exports: stems, the instrumental, the mix and DAW sessions (the Export dialog), and the bounce of
the mix to one file."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget

from ..core.errors import StemDeskError
from ..io.registry import Registry
from ..jobs.queue import Job
from ..session import tasks
from ..session.workspace import Workspace
from .errors import words
from .export_dialog import ExportDialog
from .front import Front


class ExportFlow:
    """Exports the workspace's stems and mix with the ``registry``'s session kinds; the Export dialog starts from the
    ``settings``' last choices; dialogs open over ``parent``."""

    def __init__(self, front: Front, parent: QWidget, workspace: Workspace, settings: dict, registry: Registry | None):
        self.front, self.parent, self.workspace = front, parent, workspace
        self.settings, self.registry = settings, registry
        self.box: ExportDialog | None = None  # the Export dialog, once opened

    def export_dialog(self) -> None:
        from ..export.session import exporters_of

        folder = self.workspace.stems_dir
        if folder is None:
            self.front.show_error("Nothing to export", "Separate the song first.")
            return
        kinds = list(exporters_of(self.registry))
        self.box = ExportDialog(str(folder.parent), kinds, self.settings.get("export_choices") or None, self.parent)
        self.box.accepted.connect(self.export_chosen)
        self.box.show()

    def export_chosen(self, folder: Path, choices: dict) -> None:
        self.settings["export_choices"] = choices  # the next export starts from these (not saved to disk)
        self.export(
            folder,
            sessions=[k for k, on in choices.items() if on and k not in ("stems", "instrumental", "mix")],
            instrumental=choices.get("instrumental", False),
            stems=choices.get("stems", False),
            mix=choices.get("mix", False),
        )

    def export(
        self, folder: Path, sessions=(), instrumental: bool = True, stems: bool = False, mix: bool = False
    ) -> Job | None:
        """Write what was chosen into ``folder``, named after the song: "NAME stems/", "NAME instrumental.EXT",
        "NAME mix.wav" and a session file per format."""
        work = self.workspace
        song, stems_dir = work.song, work.stems_dir
        if song is None or stems_dir is None:
            self.front.show_error("Nothing to export", "Separate the song first.")
            return None
        # stems without vocals are the instrumental (split vocals are the vocals' children: "vocals" is their group)
        instrumental = instrumental and ("vocals" in work.stems or "vocals" in work.groups)
        try:
            task = tasks.export(
                stems_dir,
                folder / song.stem,
                tasks.ExportChoice(stems, instrumental, mix, tuple(sessions), loop=work.loop),
                work.mix,
                song,
                self.registry,
            )
        except StemDeskError as error:
            self.front.show_error("Nothing exported", words(error))
            return None
        status = self.front.status
        return self.front.run_task(
            task,
            "export",
            on_done=lambda made: status(
                " ".join(["Exported: " + ", ".join(str(p) for p in made.paths) + ".", *made.notes]), 30000
            ),
        )

    def bounce_dialog(self) -> None:
        folder, song = self.workspace.stems_dir, self.workspace.song
        if folder is None or song is None:
            self.front.show_error("Nothing to bounce", "Separate the song first; the mix is made of its stems.")
            return
        start = str(folder / f"{song.stem} mix.wav")
        chosen, _ = QFileDialog.getSaveFileName(
            self.parent, "Export mix", start, "WAV (*.wav);;FLAC (*.flac);;MP3 (*.mp3);;AIFF (*.aiff);;OGG (*.ogg)"
        )
        if chosen:
            self.bounce(Path(chosen))

    def bounce(self, path: Path) -> Job | None:
        """Render the project's mix of its stems to ``path`` (format from its extension, 24-bit for PCM), with a
        certificate beside it; a unity mix is checked to null against the song."""
        work = self.workspace
        if work.stems_dir is None:
            self.front.show_error("Nothing to bounce", "Separate the song first; the mix is made of its stems.")
            return None
        try:
            task = tasks.bounce(work.stems_dir, work.mix, path, mixture=work.song)
        except StemDeskError as error:
            self.front.show_error("Cannot export the mix", words(error))
            return None

        def done(result) -> None:
            clipped = f" ({result.clipped} samples clipped: lower the master)" if result.clipped else ""
            self.front.status(f"Exported: {result.path}{clipped}", 15000)

        job = self.front.run_task(task, "bounce", on_done=done)
        self.front.raise_dock("Jobs")
        return job
