"""The timeline's lanes: the song's waveform when it opens, the stems' when they change (read on the display
queue), a running separation's as it fills them, and a lane's spectrogram on request."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..io.audio import AudioInfo, iter_blocks, probe
from ..jobs.peaks import Peaks
from ..jobs.queue import Job, JobQueue
from ..session.workspace import Workspace
from ..transcribe.smf import read_notes
from .timeline import Lane, Timeline, spectrogram_image, to_qimage

MAX_DISPLAY_GAIN = 20.0  # a quiet song is drawn louder, up to this much


def zeros(frames: int) -> np.ndarray:
    return np.zeros((1, frames), np.float32)


class LanesView:
    """Listens to the workspace: ``song_opened`` draws the song's lane, ``stems_changed`` the stems' (a
    separation's stems were drawn while it ran). ``post`` hands a call to the UI thread (the bridge)."""

    def __init__(self, timeline: Timeline, workspace: Workspace, display: JobQueue, post: Callable[..., None]):
        self.timeline, self.workspace, self.display, self.post = timeline, workspace, display, post
        workspace.song_opened.connect(self.show_song)
        workspace.stems_changed.connect(lambda why: None if why == "adopted" else self.show_stems())

    def show_song(self, info: AudioInfo) -> None:
        path = self.workspace.song
        assert path is not None
        self.timeline.set_song(info.sample_rate, info.frames)
        mix_lane = Lane("mix", Peaks(info.sample_rate, info.frames), busy=True)
        self.timeline.set_lanes([mix_lane])
        self._read(f"Waveform of {path.name}", path, mix_lane)

    def show_stems(self) -> None:
        """The song's lane and one for each of the workspace's stems, read from their files (after opening, a
        cancelled or failed separation, a split, or files written by another program); a split stem's lane has its
        children's under it."""
        info, offset = self.workspace.info, self.workspace.stems_offset
        assert info is not None
        lanes = [lane for lane in [self.timeline.lane("mix")] if lane is not None]
        for name, path in self.workspace.lanes():  # a split stem's lane, then its children's
            lane = _stem_lane(name, info, offset)
            lanes.append(lane)
            self._read(f"Waveform of {name}", path, lane)
        self.timeline.set_lanes(lanes)

    def show_separating(self, names: list[str], offset: int) -> dict[str, Lane]:
        """Empty lanes for a separation's stems (it starts ``offset`` frames into the song), below the song's; the
        separation fills them (`Lane.peaks`) and says when they are done."""
        info = self.workspace.info
        assert info is not None
        lanes = {name: _stem_lane(name, info, offset) for name in names}
        mix_lane = self.timeline.lane("mix")
        self.timeline.set_lanes([mix_lane, *lanes.values()] if mix_lane else list(lanes.values()))
        return lanes

    def update(self) -> None:
        self.timeline.canvas.update()

    def _read(self, title: str, path: Path, lane: Lane) -> None:
        self.display.submit(Job("peaks", title, lambda job: self._fill(job, path, lane), device="display"))

    def _fill(self, job: Job, path: Path, lane: Lane) -> None:
        """On the display queue's thread: the lane's waveform, read from ``path`` (the canvas is told through the
        bridge)."""
        for block in iter_blocks(probe(path), block=1 << 17):
            job.cancel_token.raise_if_cancelled()
            lane.peaks.append(block)
            self.post(self.update)
        lane.peaks.finish()
        midi = path.with_suffix(".mid")
        if lane.name != "mix" and midi.is_file():  # `stemdesk midi` wrote the stem's notes beside it
            try:
                lane.notes = read_notes(midi)
            except (OSError, ValueError, EOFError):
                lane.notes = None  # not a MIDI file StemDesk can read: no notes offered
        lane.busy = False
        if lane.name == "mix":
            lo, hi = lane.peaks.levels()[-1]
            peak = float(max(np.abs(lo).max(initial=0), np.abs(hi).max(initial=0)))
            self.post(self._set_display_gain, 1.0 / peak if peak > 1e-4 else 1.0)

    def _set_display_gain(self, gain: float) -> None:
        self.timeline.canvas.display_gain = min(gain, MAX_DISPLAY_GAIN)
        self.update()

    def compute_spectrogram(self, name: str) -> None:
        """A lane's spectrogram, computed on the display queue and shown on the UI thread."""
        path = self.workspace.song if name == "mix" else dict(self.workspace.lanes()).get(name)
        if path:
            self.display.submit(
                Job(
                    "spectrogram",
                    f"Spectrogram of {name}",
                    lambda job: self.post(self._show_spectrogram, name, spectrogram_image(str(path))),
                    device="display",
                )
            )

    def _show_spectrogram(self, name: str, image) -> None:
        lane = self.timeline.lane(name)
        if lane is not None:
            lane.spectrogram = to_qimage(image)
            self.update()


def _stem_lane(name: str, info: AudioInfo, offset: int) -> Lane:
    """An empty lane for a stem of the song ``info`` that starts ``offset`` frames into it (silence up to there)."""
    lane = Lane(name, Peaks(info.sample_rate, info.frames), busy=True)
    if offset:
        lane.peaks.append(zeros(offset))
    return lane
