"""Karaoke in the app: the karaoke screen in a window of its own (full screen on demand) over the karaoke mix, and
Export → Karaoke… (the karaoke files, written as a job).

Opening the screen puts the mix on the mixer's karaoke preset (the vocals muted; one undoable step, effects kept)
and follows the player: what it plays is what the mixer says, the key included, which the screen's Key box changes
as the mixer's does.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.cancel import CancelToken
from ..core.errors import MixError
from ..io.formats import OutputFormat
from ..jobs.queue import Job
from ..karaoke import screen
from ..karaoke.model import Lyrics
from ..mixer.mix import Mix, with_preset
from ..session import karaoke, tasks
from ..session.workspace import Workspace
from .front import Front
from .karaoke_view import KaraokeWindow
from .lyrics_flow import LyricsFlow

MixEdit = Callable[[str, str, Mix, Mix], None]  # (what was done, the control, the mix before, after): undoable


class KaraokeFlow:
    """``key`` is the mixer's Key box (the screen's follows it and moves it); ``edit_mix`` makes an undoable mix
    edit; ``position()`` is the player's position in seconds."""

    def __init__(
        self,
        front: Front,
        parent: QWidget,
        workspace: Workspace,
        lyrics: LyricsFlow,
        key: QSpinBox,
        edit_mix: MixEdit,
        position: Callable[[], float],
    ):
        self.front, self.parent, self.workspace, self.lyrics = front, parent, workspace, lyrics
        self.key, self.edit_mix, self.position = key, edit_mix, position
        self.window: KaraokeWindow | None = None
        lyrics.changed.connect(self._lyrics_changed)
        workspace.mix_changed.connect(self._mix_changed)  # an edit, its undo, a knob: the screen's key follows

    def open_view(self, full_screen: bool = False) -> KaraokeWindow:
        """The karaoke screen, over the karaoke mix."""
        if self.window is None:
            self.window = KaraokeWindow(self.position, self.parent)
            self.window.key_changed.connect(self.key.setValue)  # the mixer's key: an undoable edit, heard live
        self.window.view.show_lyrics(self.workspace.project.lyrics)
        self.window.show_key(round(self.workspace.mix.semitones))
        self.karaoke_mix()
        if full_screen:
            self.window.showFullScreen()
            self.window.controls.setVisible(False)
        else:
            self.window.show()
        self.window.raise_()
        self.window.view.show_time(self.position())
        return self.window

    def karaoke_levels(self) -> Mix | None:
        """The workspace's mix on the karaoke preset's levels (the vocals muted; effects and key kept); None, said
        on the status line, when the stems cannot make one."""
        work = self.workspace
        stems = [name for name, _ in work.lanes()]
        if not stems:
            self.front.status(
                "No stems yet: the karaoke screen plays the song as it is. Separate it for karaoke.", 10000
            )
            return None
        try:
            return with_preset(work.mix, "karaoke", stems)
        except MixError as error:
            self.front.status(f"The karaoke mix cannot be made from these stems: {error}", 10000)
            return None

    def karaoke_mix(self) -> None:
        """The mix on the karaoke preset's levels, unless it is there already (one undoable step)."""
        after = self.karaoke_levels()
        if after is not None and after.to_dict() != self.workspace.mix.to_dict():
            self.edit_mix("Apply preset karaoke", "preset", copy.deepcopy(self.workspace.mix), after)

    # --- Export → Karaoke… --------------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        """Choose the formats, the video's size and the folder; then `export`."""
        work = self.workspace
        if not self._can_export():
            return
        assert work.stems_dir is not None
        box = QDialog(self.parent)
        box.setWindowTitle("Export karaoke")
        column = QVBoxLayout(box)
        column.addWidget(QLabel("Write the karaoke mix (the vocals muted, your key) and:"))
        checks = {}
        for kind, label in KARAOKE_FORMATS.items():
            checks[kind] = QCheckBox(label)
            checks[kind].setChecked(kind in ("lrc", "ass"))
            column.addWidget(checks[kind])
        size = QComboBox()
        size.addItems(["1080", "720"])
        row = QHBoxLayout()
        row.addWidget(QLabel("Video and subtitles at"))
        row.addWidget(size)
        row.addWidget(QLabel("lines"))
        row.addStretch(1)
        column.addLayout(row)
        folder = QLineEdit(str(work.stems_dir))
        browse = QPushButton("Choose…")
        browse.clicked.connect(
            lambda: folder.setText(
                QFileDialog.getExistingDirectory(box, "Export karaoke to", folder.text()) or folder.text()
            )
        )
        row = QHBoxLayout()
        row.addWidget(folder, 1)
        row.addWidget(browse)
        column.addLayout(row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(box.accept)
        buttons.rejected.connect(box.reject)
        column.addWidget(buttons)
        if self.front.ask and box.exec() == QDialog.DialogCode.Accepted:
            chosen = [kind for kind, check in checks.items() if check.isChecked()]
            self.export(Path(folder.text()), chosen, int(size.currentText()))

    def _can_export(self) -> bool:
        work = self.workspace
        lyrics = work.project.lyrics
        if lyrics is None or not lyrics.words:
            self.front.show_error("No lyrics", "Paste or open the song's lyrics first (Karaoke → Paste lyrics…).")
            return False
        if work.stems_dir is None:
            self.front.show_error("No stems", "Separate the song first: the karaoke mix is made from its stems.")
            return False
        if not lyrics.timed:
            untimed = sum(1 for word in lyrics.words if not word.timed)
            self.front.show_error(
                "The lyrics are not timed",
                f"{untimed} of the {len(lyrics.words)} words have no time yet. Align the lyrics (Karaoke → Align "
                "lyrics) or tap them in time while the song plays, then export again.",
            )
            return False
        return True

    def export(self, folder: Path, formats: Iterable[str] = ("lrc", "ass"), resolution: int = 1080) -> Job | None:
        """The karaoke mix and the karaoke files in ``formats`` (`KARAOKE_FORMATS`), written into ``folder`` as a
        job."""
        if not self._can_export():
            return None
        work = self.workspace
        mix, lyrics = self.karaoke_levels(), work.project.lyrics
        assert work.stems_dir is not None and work.song is not None and lyrics is not None
        if mix is None:
            return None
        lead = self.lyrics.lead()
        task = export_task(
            copy.deepcopy(lyrics),
            work.stems_dir,
            work.song,
            mix,
            folder,
            formats,
            resolution,
            lead=lead[1] if lead else None,
            aligned_on=lead[0] if lead else "",
        )
        return self.front.run_task(task, "export-karaoke", on_done=self._exported)

    def _exported(self, files: dict[str, Path]) -> None:
        names = ", ".join(path.name for kind, path in files.items() if kind != "mix")
        self.front.status(f"Karaoke written beside {files['mix'].name}: {names}.", 15000)

    def _lyrics_changed(self, lyrics: Lyrics | None) -> None:
        if self.window is not None:
            self.window.view.show_lyrics(lyrics)

    def _mix_changed(self, mix: Mix) -> None:
        if self.window is not None:
            self.window.show_key(round(mix.semitones))


KARAOKE_FORMATS = {
    "lrc": "LRC (enhanced: each word's time)",
    "ass": "ASS subtitles (the words filling in time)",
    "mp4": "MP4 video (the karaoke screen over the mix)",
    "cdg": "CD+G with its MP3",
    "ultrastar": "UltraStar song (TXT)",
}


def export_task(
    lyrics: Lyrics,
    stems_dir: Path,
    song: Path,
    mix: Mix,
    folder: Path,
    formats: Iterable[str],
    resolution: int = 1080,
    lead: Path | None = None,
    aligned_on: str = "",
) -> tasks.Task[dict[str, Path]]:
    """The karaoke files of ``lyrics`` over ``mix`` (the karaoke mix, rendered first into ``folder`` beside them,
    with its certificate), named after the song, as `stemdesk karaoke` writes them (`karaoke.write_karaoke`); when
    ``folder`` is the stems folder its certificate lists them with the mix."""
    formats = set(formats)
    unknown = formats - set(KARAOKE_FORMATS)
    if unknown:
        raise ValueError(f"unknown karaoke formats {sorted(unknown)}")
    mix_path = Path(folder) / f"{song.stem} karaoke.wav"

    def work(progress: tasks.Progress, cancel: CancelToken) -> dict[str, Path]:
        screen.check_timed(lyrics)  # every word placed, before anything is rendered
        Path(folder).mkdir(parents=True, exist_ok=True)
        progress({"message": "rendering the karaoke mix"})
        tasks.bounce(stems_dir, mix, mix_path, OutputFormat.parse("wav", "24"), kind="karaoke").run(progress, cancel)
        files = karaoke.write_karaoke(
            lyrics, Path(folder), song, mix_path, formats, resolution, lyrics.language, lead, progress, cancel
        )
        if Path(folder).resolve() == Path(stems_dir).resolve():
            karaoke.certify_karaoke(Path(folder), mix, mix_path, files, aligned_on, karaoke.unsure_lines(lyrics))
        return {"mix": mix_path, **files}

    return tasks.Task(f"Karaoke files of {song.name}", work, "io")
