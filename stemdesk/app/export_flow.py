"""The window's exports: stems, the instrumental, the mix and DAW sessions (the Export dialog), and the bounce of
the mix to one file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFileDialog

from ..core.errors import StemDeskError
from ..jobs.queue import Job
from ..session import tasks
from .errors import words
from .export_dialog import ExportDialog

if TYPE_CHECKING:
    from .window import MainWindow


class ExportFlow:
    def __init__(self, window: MainWindow):
        self.w = window
        self.box: ExportDialog | None = None  # the Export dialog, once opened

    def export_dialog(self) -> None:
        from ..export.session import exporters_of

        w = self.w
        if not w.stems:
            w.show_error("Nothing to export", "Separate the song first.")
            return
        kinds = list(exporters_of(w.registry))
        self.box = ExportDialog(
            str(Path(w.project.stems_dir).parent), kinds, w.settings.get("export_choices") or None, w
        )
        self.box.accepted.connect(self.export_chosen)
        self.box.show()

    def export_chosen(self, folder: Path, choices: dict) -> None:
        self.w.settings["export_choices"] = choices  # the next export starts from these (not saved to disk)
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
        w = self.w
        song = w.workspace.song
        assert song is not None and w.workspace.stems_dir is not None  # stems are there (the dialog checked)
        instrumental = instrumental and "vocals" in w.stems  # stems without vocals are the instrumental
        try:
            task = tasks.export(
                w.workspace.stems_dir,
                folder / song.stem,
                tasks.ExportChoice(stems, instrumental, mix, tuple(sessions)),
                w.project.mix,
                song,
                w.registry,
            )
        except StemDeskError as error:
            w.show_error("Nothing exported", words(error))
            return None
        return w.run_task(
            task,
            "export",
            on_done=lambda made: w.status(
                " ".join(["Exported: " + ", ".join(str(p) for p in made.paths) + ".", *made.notes]), 30000
            ),
        )

    def bounce_dialog(self) -> None:
        w = self.w
        if not w.stems:
            w.show_error("Nothing to bounce", "Separate the song first; the mix is made of its stems.")
            return
        start = str(Path(w.project.stems_dir) / f"{Path(w.project.source).stem} mix.wav")
        chosen, _ = QFileDialog.getSaveFileName(
            w, "Export mix", start, "WAV (*.wav);;FLAC (*.flac);;MP3 (*.mp3);;AIFF (*.aiff);;OGG (*.ogg)"
        )
        if chosen:
            self.bounce(Path(chosen))

    def bounce(self, path: Path) -> Job | None:
        """Render the project's mix of its stems to ``path`` (format from its extension, 24-bit for PCM), with a
        certificate beside it; a unity mix is checked to null against the song."""
        w = self.w
        if w.workspace.stems_dir is None:
            w.show_error("Nothing to bounce", "Separate the song first; the mix is made of its stems.")
            return None
        try:
            task = tasks.bounce(w.workspace.stems_dir, w.project.mix, path, mixture=w.workspace.song)
        except StemDeskError as error:
            w.show_error("Cannot export the mix", words(error))
            return None

        def done(result) -> None:
            clipped = f" ({result.clipped} samples clipped: lower the master)" if result.clipped else ""
            w.status(f"Exported: {result.path}{clipped}", 15000)

        job = w.run_task(task, "bounce", on_done=done)
        w.docks["Jobs"].raise_()
        return job
