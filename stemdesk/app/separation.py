"""The separation flow of the window: separate the open song (whole, its first seconds as an audition, or the
selection) with the toolbar's model while its lanes fill and the player can play what is separated so far, a
batch's other songs into the output folder, and the lanes of the stems there are (their waveforms computed on the
display queue).

The separation's callbacks run on its worker thread: they copy each block into the player's buffer (`LiveStems`)
and otherwise only post to the UI thread through the bridge, where the lanes are made and filled, the player takes
the buffer on, and the workspace takes the stems on."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtWidgets import QMessageBox

from ..io.audio import iter_blocks, probe
from ..io.stems import earlier_stems
from ..jobs.peaks import Peaks
from ..jobs.queue import Job
from ..session import tasks
from .playback import LiveStems
from .timeline import Lane, spectrogram_image, to_qimage

if TYPE_CHECKING:
    from .window import MainWindow


def _zeros(frames: int):
    return np.zeros((1, frames), np.float32)


class SeparationFlow:
    def __init__(self, window: MainWindow):
        self.w = window

    def stems_folder(self, label: str = "") -> Path:
        return self.w.workspace.stems_folder(self.w.model_box.currentText(), label)

    def separate(self, audition: bool = False, selection: bool = False) -> Job | None:
        """Separate the open song (or its first seconds, or the selection) with the toolbar's model. The lanes
        fill while it runs, and from its first block on the player plays the stems separated so far (`PlayerFlow.play_live`).
        An audition never replaces full-song stems: it is written beside them, to listen to in its own folder."""
        w = self.w
        if w.info is None:
            w.show_error("Nothing to separate", "Open a song first (File → Open song, or drop a file here).")
            return None
        start, duration, label = 0.0, None, ""
        if audition:
            duration, label = float(w.settings["audition_seconds"]), "audition"
        elif selection and w.timeline.canvas.selection:
            start, end = w.timeline.canvas.selection
            duration, label = end - start, f"{start:.1f}-{end:.1f}s"
        options = w._separation_options(start, duration)
        if options is None:
            return None
        folder = self.stems_folder(label)
        if not audition and not self.confirm_replace(folder):  # an audition is a preview: the next one replaces it
            return None
        keep = audition and w.workspace.has_whole_song_stems  # full-song stems stay the project's
        source, info = w.workspace.song, w.info
        offset = int(round(start * info.sample_rate))
        total = info.frames - offset  # the frames the engine separates
        if options.duration is not None:
            total = min(int(round(options.duration * info.sample_rate)), total)
        lanes: dict[str, Lane] = {}
        live: LiveStems | None = None  # what is separated so far, for the player (made once the model is loaded)
        playing_live = False  # the player was handed it

        def started(names: list[str]) -> None:  # on the UI thread
            for name in names:
                peaks = Peaks(info.sample_rate, info.frames)
                if offset:
                    peaks.append(_zeros(offset))
                lanes[name] = Lane(name, peaks, busy=True)
            self.show_stem_lanes(dict(lanes))

        def filled(block) -> None:  # on the UI thread
            nonlocal playing_live
            for lane, stem in zip(lanes.values(), block):
                lane.peaks.append(stem)
            w.timeline.canvas.update()
            if live is not None and not playing_live and w.info is info:  # the first block: the player can play it
                playing_live = True
                w.playing.play_live(live, offset)

        def on_start(names) -> None:  # on the worker's thread
            nonlocal live
            if not keep:
                live = LiveStems(list(names), info.channels, total)
                w.bridge.post(started, list(names))

        def on_block(at: int, block) -> None:  # on the worker's thread: a copy, the worker goes on with its buffers
            if not keep:
                if live is not None:
                    live.write(at, block)
                w.bridge.post(filled, np.array(block, copy=True))

        def done(made: tasks.Separation) -> None:
            for lane in lanes.values():
                lane.peaks.finish()
                lane.busy = False
            if keep:
                w.status(
                    f"Audition ({made.result.frames / info.sample_rate:.0f} s) written to "
                    f"{made.result.outputs[0].parent}; the full-song stems stay in the project.",
                    15000,
                )
            else:
                self.separation_done(made, start, live)
            w.model_flow.offer_better_model(options.model)

        def ended(job: Job) -> None:
            if job.status != "done" and not keep:
                self.restore_stem_lanes()
            if live is not None:  # the player goes back to what there was (unless done), and the buffer is freed
                w.playing.end_live(live, job.status == "done")

        task = tasks.separate(
            w.engines,
            source,
            folder,
            options,
            threads=int(w.settings["threads"]),
            on_start=on_start,
            on_block=on_block,
            overwrite=True,  # asked above
        )
        title = f"{'Audition' if audition else 'Separate'} {source.name}" + (f" ({label})" if selection else "")
        task.title = title
        job = w.run_task(task, "separate", on_done=done, on_end=ended, finished=w.separation_finished)
        w.docks["Jobs"].raise_()
        return job

    def separate_file(self, path: Path) -> Job | None:
        """Separate a song that is not open (a batch's other songs) into the output folder; the open song's lanes
        and project are left alone."""
        w = self.w
        options = w._separation_options()
        if options is None:
            return None
        folder = w.workspace.song_folder(path, options.model)
        if not self.confirm_replace(folder):
            return None
        task = tasks.separate(
            w.engines, Path(path), folder, options, threads=int(w.settings["threads"]), overwrite=True
        )
        return w.run_task(
            task,
            "separate-file",
            on_done=lambda made: w.status(f"{task.title}: stems in {made.result.outputs[0].parent}", 15000),
        )

    def confirm_replace(self, folder: Path) -> bool:
        """Before a separation writes into ``folder``: when an earlier one left stems there, ask whether to replace
        them (True) or keep them and not separate (False). Without questions (tests, scripts) they are replaced
        and the status bar says so."""
        w = self.w
        found = earlier_stems(folder)
        if not found:
            return True
        if not w.ask:
            w.status(f"Replacing the earlier stems in {folder}", 15000)
            return True
        names = ", ".join(p.name for p in found[:4]) + (", \u2026" if len(found) > 4 else "")
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Replace stems?",
            f"\u201c{folder}\u201d already holds stems from an earlier separation ({names}). Replace them?",
            QMessageBox.StandardButton.Cancel,
            w,
        )
        replace = box.addButton("Replace", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        w.question = box  # for tests: the box being asked
        box.exec()
        w.question = None
        return box.clickedButton() is replace

    def show_stem_lanes(self, lanes: dict[str, Lane]) -> None:
        mix_lane = self.w.timeline.lane("mix")
        self.w.timeline.set_lanes([mix_lane, *lanes.values()] if mix_lane else list(lanes.values()))

    def separation_done(self, made: tasks.Separation, start: float, live: LiveStems | None = None) -> None:
        w = self.w
        result = made.result
        w.workspace.adopt(result, start)
        w._show_stems_folder()
        w._show_stems_mix(list(w.stems))
        if live is not None and w.playing.live is live:
            w.playing.end_live(live, done=True)  # the player goes on with the files, without stopping
        else:
            w.playing.reload()
        w.watch.new_stems(seen=True)  # the files just written
        w.null_view.show()
        w._set_dirty(True)
        seconds = result.frames / result.info.sample_rate
        w.status(
            f"Separated {seconds:.1f} s in {result.seconds:.1f} s ({seconds / result.seconds:.1f}x real time) "
            f"with {result.description or result.model} into {w.project.stems_dir}",
            15000,
        )

    def restore_stem_lanes(self) -> None:
        """After a cancelled or failed separation the lanes show the stems there were before (if any)."""
        w = self.w
        lanes = [w.timeline.lane("mix")]
        for name, path in w.stems.items():
            lane = Lane(name, Peaks(w.info.sample_rate, w.info.frames), busy=True)
            lanes.append(lane)
            w.display.submit(
                Job(
                    "peaks",
                    f"Waveform of {name}",
                    lambda job, p=path, lane=lane: self.fill_peaks_offset(job, p, lane),
                    device="display",
                )
            )
        w.timeline.set_lanes([lane for lane in lanes if lane is not None])

    def fill_peaks(self, job: Job, path: Path, lane: Lane) -> None:
        """On the display queue's thread: the lane's waveform, read from ``path`` (the canvas is told through the
        bridge)."""
        for block in iter_blocks(probe(path), block=1 << 17):
            job.cancel_token.raise_if_cancelled()
            lane.peaks.append(block)
            self.w.bridge.post(self.w.timeline.canvas.update)
        lane.peaks.finish()
        lane.busy = False
        if lane.name == "mix":
            lo, hi = lane.peaks.levels()[-1]
            peak = float(max(np.abs(lo).max(initial=0), np.abs(hi).max(initial=0)))
            self.w.bridge.post(self.set_display_gain, 1.0 / peak if peak > 1e-4 else 1.0)

    def fill_peaks_offset(self, job: Job, path: Path, lane: Lane) -> None:
        if self.w.stems_offset:
            lane.peaks.append(_zeros(self.w.stems_offset))
        self.fill_peaks(job, path, lane)

    def set_display_gain(self, gain: float) -> None:
        self.w.timeline.canvas.display_gain = min(gain, 20.0)
        self.w.timeline.canvas.update()

    def show_spectrogram(self, name: str, image) -> None:
        lane = self.w.timeline.lane(name)
        if lane is not None:
            lane.spectrogram = to_qimage(image)
            self.w.timeline.canvas.update()

    def compute_spectrogram(self, name: str) -> None:
        """A lane's spectrogram, computed on the display queue and shown on the UI thread."""
        w = self.w
        path = w.project.source if name == "mix" else w.stems.get(name)
        if path:
            w.display.submit(
                Job(
                    "spectrogram",
                    f"Spectrogram of {name}",
                    lambda job: w.bridge.post(self.show_spectrogram, name, spectrogram_image(str(path))),
                    device="display",
                )
            )
