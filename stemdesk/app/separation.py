"""The separation flow of the window: separate the open song (whole, its first seconds as an audition, or the
selection) with the toolbar's model while its lanes fill and the player can play what is separated so far, and a
batch's other songs into the output folder.

A `_Run` is one separation of the open song. Its ``on_start`` and ``on_block`` run on the worker's thread: they copy
each block into the player's buffer (`LiveStems`) and otherwise only post to the UI thread through the bridge, where
the lanes are made and filled, the player takes the buffer on, and the workspace takes the stems on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import SignalInstance
from PySide6.QtWidgets import QComboBox, QMenu, QMessageBox, QWidget

from ..core.device import resolve_device
from ..core.errors import StemDeskError
from ..io.audio import AudioInfo
from ..io.model_store import list_models
from ..io.stems import earlier_stems
from ..jobs.queue import Job
from ..jobs.separate import SeparateOptions, separate_options
from ..jobs.split import ANY_PARENT
from ..mixer.mix import parent_of
from ..session import tasks
from ..session.workspace import Workspace
from .errors import words
from .front import Front
from .lanes import LanesView
from .playback import LiveStems
from .player_flow import PlayerFlow
from .timeline import Canvas, Lane


class SeparationFlow:
    """Separations with the toolbar's ``model_box`` and ``device_box`` choices and the ``settings``, on ``engines``;
    a separation of the open song fills the ``lanes`` and the player (``playing``) as it runs, its blocks posted to
    this thread by ``post``; ``finished`` is emitted with its job; ``offer_better_model(model)`` follows a finished
    one; ``canvas`` has the selection; questions open over ``parent``."""

    def __init__(
        self,
        front: Front,
        parent: QWidget,
        workspace: Workspace,
        settings: dict,
        engines: tasks.Engines,
        post: Callable[..., None],
        lanes: LanesView,
        playing: PlayerFlow,
        model_box: QComboBox,
        device_box: QComboBox,
        canvas: Canvas,
        offer_better_model: Callable[[str], None],
        finished: SignalInstance,
    ):
        self.front, self.parent, self.workspace, self.settings, self.engines = (
            front,
            parent,
            workspace,
            settings,
            engines,
        )
        self.post, self.lanes, self.playing = post, lanes, playing
        self.model_box, self.device_box, self.canvas = model_box, device_box, canvas
        self.offer_better_model, self.finished = offer_better_model, finished

    def stems_folder(self, label: str = "") -> Path:
        return self.workspace.stems_folder(self.model_box.currentText(), label)

    def options(self, start: float = 0.0, duration: float | None = None) -> SeparateOptions | None:
        """The toolbar's and the settings' choices as separation options (the one `separate_options` every front
        end uses), or None after saying what is wrong."""
        from ..io.formats import LOSSLESS_FORMATS

        settings = self.settings
        lossless = settings["format"] in LOSSLESS_FORMATS
        try:
            return separate_options(
                model=self.model_box.currentText(),
                format=settings["format"],
                bit_depth=settings["bit_depth"] if lossless else None,
                device=str(resolve_device(self.device_box.currentText())),
                start=start,
                duration=duration,
                segment=float(settings["segment_seconds"]),
            )
        except (ValueError, StemDeskError) as error:
            self.front.show_error("Cannot separate", words(error))
            return None

    def separate(self, audition: bool = False, selection: bool = False) -> Job | None:
        """Separate the open song (or its first seconds, or the selection) with the toolbar's model. The lanes
        fill while it runs, and from its first block on the player plays the stems separated so far (`PlayerFlow.play_live`).
        An audition never replaces full-song stems: it is written beside them, to listen to in its own folder."""
        front, work = self.front, self.workspace
        info, source = work.info, work.song
        if info is None or source is None:
            front.show_error("Nothing to separate", "Open a song first (File → Open song, or drop a file here).")
            return None
        start, duration, label = 0.0, None, ""
        if audition:
            duration, label = float(self.settings["audition_seconds"]), "audition"
        elif selection and self.canvas.selection:
            start, end = self.canvas.selection
            duration, label = end - start, f"{start:.1f}-{end:.1f}s"
        options = self.options(start, duration)
        if options is None:
            return None
        folder = self.stems_folder(label)
        if not audition and not self.confirm_replace(folder):  # an audition is a preview: the next one replaces it
            return None
        run = _Run(self, info, options, start, keep=audition and work.has_whole_song_stems)
        task = tasks.separate(
            self.engines,
            source,
            folder,
            options,
            threads=int(self.settings["threads"]),
            on_start=run.on_start,
            on_block=run.on_block,
            overwrite=True,  # asked above
        )
        task.title = f"{'Audition' if audition else 'Separate'} {source.name}" + (f" ({label})" if selection else "")
        job = front.run_task(task, "separate", on_done=run.done, on_end=run.ended, finished=self.finished)
        front.raise_dock("Jobs")
        return job

    def separate_file(self, path: Path) -> Job | None:
        """Separate a song that is not open (a batch's other songs) into the output folder; the open song's lanes
        and project are left alone."""
        front = self.front
        options = self.options()
        if options is None:
            return None
        folder = self.workspace.song_folder(path, options.model)
        if not self.confirm_replace(folder):
            return None
        task = tasks.separate(
            self.engines, Path(path), folder, options, threads=int(self.settings["threads"]), overwrite=True
        )
        return front.run_task(
            task,
            "separate-file",
            on_done=lambda made: front.status(f"{task.title}: stems in {made.result.outputs[0].parent}", 15000),
        )

    def offer_splits(self, menu: QMenu, lane: str) -> None:
        """A stem lane's menu offers the installed split models that split that stem ("Split vocals with ▸
        stemdesk-vocals-leadback"), or says how to get one."""
        work = self.workspace
        if lane not in work.stems and lane not in work.groups or parent_of(lane) is not None:
            return
        cards = [c for c in list_models() if c.split_parent in (lane, ANY_PARENT) and c.split_parent is not None]
        if not cards:
            action = menu.addAction(f"No split model splits {lane} (stemdesk models; stemdesk train --split)")
            action.setEnabled(False)
            return
        again = " again" if lane in work.groups else ""
        submenu = menu.addMenu(f"Split {lane}{again} with")
        submenu.setToolTipsVisible(True)
        for card in cards:
            # a model that splits unheard songs worse than an equal split says so where it is chosen
            label = f"{card.id} ({card.caution_short})" if card.caution_short else card.id
            action = submenu.addAction(label)
            action.setToolTip(card.caution or card.summary)
            action.triggered.connect(lambda checked=False, m=card.id: self.split(lane, m))

    def offer_midi(self, menu: QMenu, lane: str) -> None:
        """Every stem lane's menu offers to write the stems' MIDI (`stemdesk midi`), whose notes the lanes can then
        show over their waveforms."""
        if lane == "mix" or self.workspace.stems_dir is None:
            return
        menu.addAction("Write MIDI of the stems (notes over the lanes)").triggered.connect(self.write_midi)

    def write_midi(self) -> Job | None:
        """`stemdesk midi` on the open song's stems, as a job; when it is done each lane offers its notes."""
        front, work = self.front, self.workspace
        folder = work.stems_dir
        if folder is None:
            front.show_error("No stems", "Separate the song first; then write the MIDI of its stems.")
            return None
        try:
            from ..transcribe.model import basic_pitch_model

            basic_pitch_model()
        except StemDeskError as error:
            front.show_error("Cannot write MIDI", words(error))
            return None

        def done(made) -> None:
            self.lanes.show_stems()  # read again: each stem's lane now has its notes
            key = f", {made.timing.key}" if made.timing.key else ""
            front.status(f"MIDI written: {made.song} ({made.timing.tempo:g} BPM{key})", 15000)

        job = front.run_task(tasks.midi(folder, threads=int(self.settings["threads"])), "midi", on_done=done)
        front.raise_dock("Jobs")
        return job

    def split(self, stem: str, model: str) -> Job | None:
        """Split the open song's stem ``stem`` with the split model ``model``: its children's lanes unfold under
        its lane, each with its mixer strip, and the stems folder's certificate covers the whole tree."""
        front, work = self.front, self.workspace
        folder, song = work.stems_dir, work.song
        if folder is None or song is None:
            front.show_error("Nothing to split", "Separate the song first; then split one of its stems.")
            return None
        try:
            options = separate_options(model=model, device=str(resolve_device(self.device_box.currentText())))
        except (ValueError, StemDeskError) as error:
            front.show_error("Cannot split", words(error))
            return None
        task = tasks.split_stem(self.engines, folder, stem, song, options, threads=int(self.settings["threads"]))

        def done(made) -> None:
            if work.take_split(folder):
                self.canvas.fold(stem, False)
                front.status(f"{stem} split by {model} into {', '.join(p.stem for p in made.result.outputs)}", 15000)

        job = front.run_task(task, "separate", on_done=done)
        front.raise_dock("Jobs")
        return job

    def confirm_replace(self, folder: Path) -> bool:
        """Before a separation writes into ``folder``: when an earlier one left stems there, ask whether to replace
        them (True) or keep them and not separate (False). Without questions (tests, scripts) they are replaced
        and the status bar says so."""
        front = self.front
        found = earlier_stems(folder)
        if not found:
            return True
        if not front.ask:
            front.status(f"Replacing the earlier stems in {folder}", 15000)
            return True
        names = ", ".join(p.name for p in found[:4]) + (", \u2026" if len(found) > 4 else "")
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Replace stems?",
            f"\u201c{folder}\u201d already holds stems from an earlier separation ({names}). Replace them?",
            QMessageBox.StandardButton.Cancel,
            self.parent,
        )
        replace = box.addButton("Replace", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        front.put(box)
        return box.clickedButton() is replace


class _Run:
    """One separation of the open song (``info``), from ``start`` seconds. ``keep``: an audition beside full-song
    stems, which stay the project's (no lanes, no live playback, nothing adopted)."""

    def __init__(self, flow: SeparationFlow, info: AudioInfo, options: SeparateOptions, start: float, keep: bool):
        self.flow, self.info, self.options, self.start, self.keep = flow, info, options, start, keep
        self.offset = int(round(start * info.sample_rate))
        self.total = info.frames - self.offset  # the frames the engine separates
        if options.duration is not None:
            self.total = min(int(round(options.duration * info.sample_rate)), self.total)
        self.lanes: dict[str, Lane] = {}
        self.live: LiveStems | None = None  # what is separated so far, for the player (made once the model is loaded)
        self.playing_live = False  # the player was handed it

    # --- on the worker's thread ----------------------------------------------------------------------------------
    def on_start(self, names) -> None:
        if not self.keep:
            self.live = LiveStems(list(names), self.info.channels, self.total)
            self.flow.post(self.started, list(names))

    def on_block(self, at: int, block) -> None:
        """A copy: the worker goes on with its buffers."""
        if not self.keep:
            if self.live is not None:
                self.live.write(at, block)
            self.flow.post(self.filled, np.array(block, copy=True))

    # --- on the UI thread ------------------------------------------------------------------------------------------
    def started(self, names: list[str]) -> None:
        if self.flow.workspace.info is self.info:  # else another song was opened meanwhile: its lanes stay
            self.lanes = self.flow.lanes.show_separating(names, self.offset)

    def filled(self, block) -> None:
        flow = self.flow
        for lane, stem in zip(self.lanes.values(), block):
            lane.peaks.append(stem)
        flow.lanes.update()
        if self.live is not None and not self.playing_live and flow.workspace.info is self.info:  # the first block
            self.playing_live = True
            flow.playing.play_live(self.live, self.offset)

    def done(self, made: tasks.Separation) -> None:
        flow, result = self.flow, made.result
        for lane in self.lanes.values():
            lane.peaks.finish()
            lane.busy = False
        if self.keep:
            flow.front.status(
                f"Audition ({result.frames / self.info.sample_rate:.0f} s) written to "
                f"{result.outputs[0].parent}; the full-song stems stay in the project.",
                15000,
            )
        elif not flow.workspace.adopt(result, self.start):  # every view shows new stems (`stems_changed`)
            flow.front.status(
                f"Separated {result.input.name} into {result.outputs[0].parent}; another song is open now, so its "
                "stems were left there.",
                15000,
            )
        else:
            if self.live is not None:
                flow.playing.end_live(self.live, done=True)  # the player goes on with the files, without stopping
            seconds = result.frames / result.info.sample_rate
            flow.front.status(
                f"Separated {seconds:.1f} s in {result.seconds:.1f} s ({seconds / result.seconds:.1f}x real time) "
                f"with {result.description or result.model} into {flow.workspace.stems_dir}",
                15000,
            )
        flow.offer_better_model(self.options.model)

    def ended(self, job: Job) -> None:
        if job.status != "done" and not self.keep:
            self.flow.lanes.show_stems()  # the stems there were before (if any)
        if self.live is not None:  # the player goes back to what there was (unless done), and the buffer is freed
            self.flow.playing.end_live(self.live, job.status == "done")
