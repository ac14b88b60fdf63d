"""Playback of the live mix through QtMultimedia (QAudioSink, pull mode). With no audio device the player says so
and everything else keeps working.

`MixSource` is the audio: it reads the stems (or, before separation, the original) block by block from disk, runs
them through the mixer's Renderer, then (in another key or tempo) through `KeyTempo`, and hands float32 frames to the
sink. It also measures the live null (`LiveNull`): the residual between Σ stems at unity and the original over each
block it plays, and each stem's energy there; and the levels of each block, per strip and on the master, for the
mixer's meters.

Two clocks: the song's (`position`, seeks, the loop, all in song frames) and the device's (`played`, frames handed to
the sink). At another tempo they run at different rates; `song_frame_at` maps a played frame back to the song, which
is what the playhead shows.

While a separation of the open song runs, `LiveStems` holds the stems it has made so far, in memory: a `MixSource` on
them plays up to where the separation has got and waits there (silence, the playhead held) until more arrives, then
takes the written files in place of the buffer when the job is done, without stopping.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QCoreApplication, QIODevice, QObject, Qt, QThread, QTimer, Signal
from PySide6.QtMultimedia import QAudioFormat, QAudioSink, QMediaDevices

from ..core.errors import AudioError
from ..io.audio import AudioReader
from ..io.settings import BY_KEY, DEFAULTS
from ..mixer.keytempo import KeyTempo
from ..mixer.mix import Mix
from ..mixer.render import Renderer, levels, render_automated

log = logging.getLogger("stemdesk.playback")
FEED_MS = 5  # how often the audio thread tops up the sink's buffer
MIN_FEED = 64  # frames: less free room than this waits for the next top-up
DRY_MARGIN = 0.005  # seconds: a sink left this much less than its buffer's length without a write has run dry
SEEK_FADE = 256  # frames over which a seek while playing crosses over (5.8 ms at 44.1 kHz): a jump is a click
RENDER_FRAMES = 1024  # the mix is rendered at least this many frames at a time: PulseAudio asks for 256 at a time,
# and each render has a fixed cost (reading every stem, the mixer, the meters; docs/app.md, Transport)
BUFFER_CHOICES_MS = BY_KEY["audio_buffer_ms"].choices or ()  # the buffers a dropout can move playback on to
LATENCY_SECONDS = DEFAULTS["audio_buffer_ms"] / 1000  # the sink's buffer by default: fader moves are heard about this
# much later (benchmarks/ui.py); shorter buffers drop out on a busy machine without a sign on this side (docs/app.md)
METER_BLOCKS = 256  # levels of blocks not yet shown, at most (a UI that stops asking loses the oldest)
FADE = 512  # frames over which playback crosses into another key or tempo when one is first set while playing
SONG_MAP = 512  # (played frame, song frame, tempo) anchors kept for the playhead: several seconds of blocks
Levels = tuple[float, float]  # (peak, mean square)
MeterBlock = tuple[float, dict[str, Levels], Levels]  # (seconds, each stem's levels, the master's)


@dataclass
class LiveNull:
    """What the blocks rendered since the last look measured of the stems' files at unity (before the mixer, so a
    fader move changes nothing here): the residual Σ stems − original, once for all stems (its peak and energy), and
    each stem's energy. The residual is one signal: it cannot be split among the stems; `shares` is each stem's part
    of the music, not of the residual."""

    seconds: float = 0.0
    peak: float = 0.0
    residual_energy: float = 0.0
    stem_energy: dict[str, float] = field(default_factory=dict)

    @property
    def peak_dbfs(self) -> float | None:
        """The residual's peak in dBFS; None when it was exactly zero (−∞)."""
        return None if self.peak == 0 else 20 * math.log10(self.peak)

    def shares(self) -> dict[str, float]:
        """Each stem's share of the stems' energy (0 to 1; empty when nothing was heard)."""
        total = sum(self.stem_energy.values())
        return {name: energy / total for name, energy in self.stem_energy.items()} if total > 0 else {}

    def __add__(self, other: LiveNull) -> LiveNull:
        energy = dict(self.stem_energy)
        for name, value in other.stem_energy.items():
            energy[name] = energy.get(name, 0.0) + value
        return LiveNull(
            self.seconds + other.seconds,
            max(self.peak, other.peak),
            self.residual_energy + other.residual_energy,
            energy,
        )


def _last_at(anchors: deque, at: float, default: tuple) -> tuple:
    """The last of ``anchors`` (tuples in rising order of their first item, a frame) that starts at or before ``at``;
    ``default`` when none does."""
    for anchor in reversed(anchors):
        if anchor[0] <= at:
            return anchor
    return default


def _rising(start: int, n: int, length: int) -> np.ndarray:
    """Samples ``start`` to ``start + n`` of a raised cosine that rises from 0 to 1 over ``length`` samples."""
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(start, start + n) + 0.5) / length)).astype(np.float32)


def _fade_in(audio: np.ndarray, left: int) -> tuple[np.ndarray, int]:
    """``audio`` with the last ``left`` frames of a SEEK_FADE raised-cosine fade-in applied to its start (out of
    silence: no jump into the sound), and the frames of it still left for the next block."""
    n = min(left, audio.shape[-1])
    audio = audio.copy()
    audio[:, :n] *= _rising(SEEK_FADE - left, n, SEEK_FADE)
    return audio, left - n


def _crossfade(leaving: np.ndarray, entering: np.ndarray) -> np.ndarray:
    """``entering`` with its start crossed over from ``leaving`` (a raised cosine over ``leaving``'s length, or what
    there is of ``entering``); the two have the same channels."""
    n = min(leaving.shape[-1], entering.shape[-1])
    if n == 0:
        return entering
    ramp = _rising(0, n, n)
    out = entering.copy()
    out[:, :n] = leaving[:, :n] * (1 - ramp) + entering[:, :n] * ramp
    return out


class LiveStems:
    """The stems of a separation still running, in memory as its blocks arrive, for the player to play while the
    rest is separated. One writer (the separation's worker thread, `write`) and one reader (the audio thread, `read`)
    need no lock: a block is copied in before `filled` moves past it, and nothing at or after `filled` is read.

    The buffer is allocated whole, zeroed (the pages are only taken as the blocks fill them), at float32: the four
    stereo stems of a 4-minute song are about 340 MB. `release` frees it when the job ends."""

    def __init__(self, names: list[str], channels: int, frames: int):
        self.names, self.channels, self.frames = list(names), channels, frames
        self._audio: np.ndarray | None = np.zeros((len(self.names), channels, frames), np.float32)
        self.filled = 0  # frames separated so far, from the stems' start

    def write(self, at: int, block: np.ndarray) -> None:
        """On the worker thread: the block of stems (sources, channels, n) starting at frame ``at``."""
        audio = self._audio
        if audio is None:
            return
        n = max(0, min(block.shape[-1], self.frames - at))
        audio[:, :, at : at + n] = block[..., :n]
        self.filled = max(self.filled, at + n)  # after the data: the reader never sees a block half copied

    def read(self, start: int, frames: int) -> np.ndarray:
        """(sources, channels, n) float64 from ``start``: at most ``frames``, never past `filled`."""
        audio, end = self._audio, min(start + frames, self.filled)
        if audio is None or end <= start:
            return np.zeros((len(self.names), self.channels, 0))
        return audio[:, :, start:end].astype(np.float64)

    def release(self) -> None:
        """Free the buffer (the job ended); reads after this return nothing."""
        self._audio = None


class MixSource:
    """Thread-safe source of mixed audio at a position, with loop support. No Qt: tested on its own."""

    def __init__(
        self, original: Path, stems: dict[str, Path] | None, mix: Mix, offset: int = 0, live: LiveStems | None = None
    ):
        """stems cover the original from sample ``offset`` (an excerpt); outside them the original plays. With
        ``live`` (and no ``stems``) they are those of a separation still running: what is not separated yet is
        waited for (`waiting`), silent, the playhead held."""
        self._lock = threading.Lock()
        self.original = AudioReader(original)
        self.rate, self.channels, self.frames = self.original.sample_rate, self.original.channels, self.original.frames
        self.live = None if stems else live
        self.names = list(stems or {}) or (list(self.live.names) if self.live is not None else [])
        self.stems: list[AudioReader] = []
        try:
            for path in (stems or {}).values():
                self.stems.append(AudioReader(path))
        except BaseException:
            for reader in [self.original, *self.stems]:
                reader.close()
            raise
        self.renderer = Renderer(mix, self.names, self.rate, self.channels) if self.names else None
        # the mix as handed (in the app, the workspace's own, which is never changed in place: an edit hands a new
        # one to `set_mix`), with its automation, applied block by block at the song time being rendered
        self.mix = mix
        self.offset = offset
        self.stem_frames = self.stems[0].frames if self.stems else (self.live.frames if self.live is not None else 0)
        self.position = 0  # the next song frame to render
        self.waiting = False  # the last block rendered reached what is separated so far: silence, the playhead held
        self.loop: tuple[int, int] | None = None
        self._meter_lock = threading.Lock()  # not the render's: the UI never waits for a block to render
        self._null = LiveNull()  # since the UI last took it (under the meter lock)
        self._meters: deque[tuple[float, MeterBlock]] = deque(maxlen=METER_BLOCKS)  # (rendered at, levels)
        # key and tempo: off (the render goes straight out) until set; then on until the next seek, even back at
        # the song's own, so a change while playing never jumps
        self.key_tempo = KeyTempo(self.rate, self.channels, mix.semitones, mix.tempo)
        self._stretching = mix.changes_key_or_tempo
        self._runs: deque[tuple[int, int]] = deque(maxlen=SONG_MAP)  # (KeyTempo input frame, song frame) from there
        self._fade: np.ndarray | None = None  # the render the key or tempo change crosses from
        self.played = 0  # frames handed out since the source opened
        self._rendered = 0  # frames rendered since the source opened: `played` and those in `_ahead`
        self._ahead = np.zeros((self.channels, 0), np.float32)  # rendered, not handed out yet
        self._leaving: np.ndarray | None = None  # what a seek while playing crosses over from
        self._ramp_in = 0  # input frames still to fade in after a seek while playing (at another key or tempo)
        self._map_lock = threading.Lock()
        self._song_map: deque[tuple[int, float, float]] = deque([(0, 0.0, 1.0)], maxlen=SONG_MAP)

    def set_mix(self, mix: Mix) -> None:
        """Play ``mix`` from the next block: kept as it is, to read (the caller does not change it afterwards)."""
        if self.renderer is not None:
            self.renderer.set_mix(mix.at(self.position / self.rate))  # its own lock; it ramps gains
        self.mix = mix
        self.key_tempo.set(mix.semitones, mix.tempo)  # taken by the audio thread at its next block

    def seek(self, frame: int, crossfade: bool = False) -> None:
        """Play from song frame ``frame`` on. With ``crossfade`` (a seek while playing), the sound that would have
        played next crosses over into the new place in SEEK_FADE frames instead of jumping there (a click)."""
        with self._lock:
            leaving = None
            if crossfade:
                leaving = self._ahead[:, :SEEK_FADE]
                if leaving.shape[-1] < SEEK_FADE:
                    more = SEEK_FADE - leaving.shape[-1]
                    leaving = np.concatenate([leaving, self._render_block(more, more)], axis=-1)
            self.position = int(np.clip(frame, 0, self.frames))
            if self.renderer is not None:
                self.renderer.reset()
            self.key_tempo.reset()
            self._stretching = not self.key_tempo.neutral
            self._runs.clear()
            self._fade = None
            self._ahead, self._rendered = self._ahead[:, :0], self.played
            with self._map_lock:
                while len(self._song_map) > 1 and self._song_map[-1][0] > self.played:  # frames never handed out
                    self._song_map.pop()
                self._song_map.append((self.played, float(self.position), 1.0))
            self._leaving = leaving
            self._ramp_in = SEEK_FADE if crossfade and self._stretching else 0  # the stretch starts from silence
        with self._meter_lock:
            self._meters.clear()
            self._null = LiveNull()  # a block rendered only to cross from is not heard whole

    def song_frame_at(self, played: float) -> float:
        """The song frame heard at device frame ``played`` (of those handed out, the recent ones)."""
        with self._map_lock:
            at, frame, tempo = _last_at(self._song_map, played, self._song_map[0])
        return frame + max(0.0, played - at) * tempo

    def read(self, frames: int) -> np.ndarray:
        """The next ``frames`` of the mix (channels, n) float32, wrapping at the loop's end; fewer only at the
        song's end (none when finished). The mix is rendered RENDER_FRAMES or more at a time, what is left over kept
        for the next read (a seek drops it)."""
        with self._lock:
            if self._ahead.shape[-1] < frames:
                wanted = frames - self._ahead.shape[-1]
                block = self._render_block(max(wanted, RENDER_FRAMES), wanted)
                if self._leaving is not None:  # the first block after a seek while playing: crossed into
                    block, self._leaving = _crossfade(self._leaving, block), None
                self._ahead = np.concatenate([self._ahead, block], axis=-1) if self._ahead.shape[-1] else block
            audio, self._ahead = self._ahead[:, :frames], self._ahead[:, frames:]
            self.played += audio.shape[-1]
        return audio

    def _render_block(self, frames: int, wanted: int) -> np.ndarray:
        """The next ``frames`` of the mix, for device frames from `_rendered` on: fewer only at the song's end, or
        where it waits for the separation (then silence up to the ``wanted`` frames the device asked for, never
        silence ahead that would delay the song once more of it is separated)."""
        if not self._stretching and not self.key_tempo.neutral:
            # a key or tempo set while playing: the stretch starts here, crossing over from the plain render
            self.key_tempo.reset()
            self._stretching, self._fade = True, np.zeros((self.channels, 0), np.float32)
        if self._stretching:
            audio = self._read_stretched(frames, wanted)
        else:
            parts, need = [], frames
            while need > 0 and (part := self._next(need)) is not None:
                with self._map_lock:
                    self._song_map.append(
                        (self._rendered + frames - need, float(part[0]), 1.0 if part[1] is not None else 0.0)
                    )
                if part[1] is None:  # waiting for the separation: silence, the song frame held
                    parts.append(np.zeros((self.channels, max(0, wanted - frames + need)), np.float32))
                    break
                parts.append(part[1])
                need -= part[1].shape[-1]
            audio = np.concatenate(parts, axis=-1) if parts else np.zeros((self.channels, 0), np.float32)
        self._rendered += audio.shape[-1]
        return audio

    def _next(self, frames: int) -> tuple[int, np.ndarray | None] | None:
        """(where it starts, the next at most ``frames`` of the song's render), wrapping at the loop's end and never
        crossing the edge of an excerpt's stems nor what a running separation has made so far; None at the song's
        end, (where it waits, None) where the separation has not got to yet."""
        if self.loop and self.position >= self.loop[1]:
            self.position = self.loop[0]
        end = self.loop[1] if self.loop and self.position < self.loop[1] else self.frames
        if self.renderer is not None:  # a block never crosses the edge of an excerpt's stems
            edge = self.offset if self.position < self.offset else self.offset + self.stem_frames
            if edge > self.position:
                end = min(end, edge)
            live = self.live
            if live is not None and self.offset <= self.position < self.offset + self.stem_frames:
                frontier = self.offset + live.filled
                if frontier <= self.position:
                    self.waiting = True
                    return self.position, None
                end = min(end, frontier)
        self.waiting = False
        n = min(frames, end - self.position)
        if n <= 0:
            return None
        start = self.position
        audio, meters = self._render(n)
        # at another tempo the stretch runs ahead of what is heard and a block lasts 1 / tempo as long
        tempo = self.key_tempo.settings[1] if self._stretching else 1.0
        ahead = (self.key_tempo.pushed - self.key_tempo.input_at(self.key_tempo.pulled)) if self._stretching else 0
        queued = (self._rendered - self.played) / self.rate  # rendered before this block, not handed out yet
        with self._meter_lock:
            self._meters.append(
                (
                    time.monotonic() + queued + ahead / (self.rate * tempo),
                    (n / (self.rate * tempo), meters, levels(audio)),
                )
            )
        self.position += n
        return start, audio

    def _read_stretched(self, frames: int, wanted: int) -> np.ndarray:
        """The next ``frames`` through KeyTempo: as much of the song is rendered into it as it needs."""
        stretch = self.key_tempo
        while stretch.available < frames and not stretch.ended:
            part = self._next(min(max(stretch.wanted(frames), 256), 8192))
            if part is None:
                stretch.end()
                break
            start, audio = part
            if audio is None:  # waiting for the separation: what the stretch has, then silence
                break
            last = self._runs[-1] if self._runs else None
            if last is None or last[1] + stretch.pushed - last[0] != start:  # not where the last run went on to
                self._runs.append((stretch.pushed, start))
            if self._fade is not None and self._fade.shape[-1] < FADE:
                self._fade = np.concatenate([self._fade, audio[:, : FADE - self._fade.shape[-1]]], axis=-1)
            if self._ramp_in > 0:  # the stretch hears silence before its first input: no jump into the song
                audio, self._ramp_in = _fade_in(audio, self._ramp_in)
            stretch.push(audio)
        song = self._song_frame(stretch.input_at(stretch.pulled))
        with self._map_lock:
            self._song_map.append((self._rendered, song, stretch.settings[1]))
        out = stretch.pull(frames)
        if self._fade is not None and out.shape[-1]:
            n = min(self._fade.shape[-1], out.shape[-1])
            ramp = (np.arange(n) + 0.5) / n
            out = out.copy()
            out[:, :n] = self._fade[:, :n] * (1 - ramp) + out[:, :n] * ramp
            self._fade = None
        if self.waiting and out.shape[-1] < wanted:
            with self._map_lock:
                self._song_map.append((self._rendered + out.shape[-1], float(self.position), 0.0))
            out = np.concatenate([out, np.zeros((self.channels, wanted - out.shape[-1]), np.float32)], axis=-1)
        return out

    def _song_frame(self, pushed: float) -> float:
        """The song frame that KeyTempo input frame ``pushed`` came from."""
        at, frame = _last_at(self._runs, pushed, self._runs[0] if self._runs else (0, self.position))
        return frame + pushed - at

    def _render(self, n: int) -> tuple[np.ndarray, dict[str, Levels]]:
        """The mix of the next ``n`` frames, and each stem's levels in it (none outside the stems)."""
        self.original.seek(self.position)
        original = self.original.read(n, "float64")
        inside = self.renderer is not None and self.offset <= self.position < self.offset + self.stem_frames
        if not inside:
            return original.astype(np.float32), {}
        if self.live is not None:
            stems = self.live.read(self.position - self.offset, n)
            if stems.shape[-1] < n:  # released under it: the job ended (never while the player is on it)
                stems = np.concatenate([stems, np.zeros((*stems.shape[:2], n - stems.shape[-1]))], axis=-1)
        else:
            blocks = []
            for handle in self.stems:
                handle.seek(self.position - self.offset)
                blocks.append(handle.read(n, "float64"))
            stems = np.stack(blocks)
        # the null is the files': a running separation's blocks are not the stems it writes (their residual is not
        # exact yet), so they are not measured
        if self.live is None and stems.shape[-1] == n and original.shape[-1] == n:
            residual = (stems.sum(0) - original).ravel()
            flat = stems.reshape(len(self.names), -1)
            block = LiveNull(
                n / self.rate,
                float(np.abs(residual).max(initial=0)),
                float(residual @ residual),
                {name: float(row @ row) for name, row in zip(self.names, flat)},
            )
            with self._meter_lock:
                self._null = self._null + block
        meters: dict[str, Levels] = {}
        assert self.renderer is not None  # made with the mix
        return render_automated(self.renderer, self.mix, stems, self.position, self.rate, meters), meters

    def take_levels(self, before: float = math.inf) -> list[MeterBlock]:
        """The levels of the blocks rendered before ``before`` (a time.monotonic()) and not taken yet, oldest first."""
        taken = []
        with self._meter_lock:
            while self._meters and self._meters[0][0] < before:
                taken.append(self._meters.popleft()[1])
        return taken

    def take_null(self) -> LiveNull:
        """The live null of the blocks rendered since the last call."""
        with self._meter_lock:
            taken, self._null = self._null, LiveNull()
        return taken

    def take_files(self, stems: dict[str, Path], offset: int) -> bool:
        """Play the files a running separation wrote in place of its buffer, from the next block on, at the same
        position: playback goes on without a gap. False (nothing changed) when they are not the buffer's stems."""
        if self.live is None or set(stems) != set(self.names) or offset != self.offset:
            return False
        readers: list[AudioReader] = []
        try:
            for name in self.names:
                readers.append(AudioReader(stems[name]))
        except (AudioError, OSError):
            for reader in readers:
                reader.close()
            return False
        if any(reader.frames != self.stem_frames for reader in readers):
            for reader in readers:
                reader.close()
            return False
        with self._lock:
            self.stems, self.live, self.waiting = readers, None, False
        return True

    def close(self) -> None:
        with self._lock:
            for handle in [self.original, *self.stems]:
                handle.close()
            self.live = None


class _Output(QObject):
    """The sink, living on the player's audio thread, fed there: every FEED_MS the output writes what the sink's
    buffer has room for (Qt's push mode). The buffer stays full, so a fader move is heard about one buffer later,
    and the mix renders while the UI paints or lays out.

    When the device runs dry anyway (this thread could not run for longer than the buffer lasts), the output opens
    a sink with the next longer buffer in ``longer`` and goes on into it from the very next frame, fading in over
    SEEK_FADE frames out of the silence the device played: no seek, no restart of the key and tempo stretch, no
    sound played twice, no jump. The dry sink is stopped once what it may still hold has played.

    (Pull mode, where the sink reads a QIODevice, read one period of 1024 frames, 23.2 ms, every 25 ms tick on
    PulseAudio: the buffer drained and 30 to 160 ms a second of playback was silence, and a move waited for the next
    tick. On the UI thread, a 300 ms layout starved the device: the song dropped out.)"""

    ended = Signal(str)  # the device ran out of song ("") or failed (why): the player stops
    # the sink ran dry while playing: (the buffer now, in seconds; when the new sink got its first frames, as
    # time.monotonic(); the device frame it starts with). The same buffer when there was no longer one to take.
    dropped = Signal(float, float, int)

    def __init__(self, source: MixSource, fmt: QAudioFormat, buffer_bytes: int, longer: tuple[int, ...] = ()):
        super().__init__()
        self.source, self.fmt, self.buffer_bytes = source, fmt, buffer_bytes
        self.longer = [size for size in longer if size > buffer_bytes]  # buffers to grow into, shortest first
        self.sink: QAudioSink | None = None
        self.device: QIODevice | None = None  # what the sink gave to write into
        self.timer: QTimer | None = None
        self.finished = False  # the song's last frames have been written
        self.fed = False  # something was written since start or resume
        self.fed_at = 0.0  # when the last feed ended, the sink's buffer topped up (time.monotonic())
        self.buffer_seconds = buffer_bytes / (4 * source.channels * source.rate)
        self.dropouts = 0  # times the device ran dry while playing
        self.said_longest = False  # a dropout with the longest buffer was reported
        self.retired: list[QAudioSink] = []  # dry sinks left to play out what they may still hold
        self.fade_in_left = 0  # frames of the song still to fade in after a dropout

    def _open(self) -> None:
        self.sink = QAudioSink(QMediaDevices.defaultAudioOutput(), self.fmt, self)
        self.sink.setBufferSize(self.buffer_bytes)
        self.device = self.sink.start()

    def command(self, name: str) -> None:
        """Runs on the audio thread (a queued call from the player): start, suspend or resume."""
        if name == "start":
            self._open()
            self.timer = QTimer(self)
            self.timer.setTimerType(Qt.TimerType.PreciseTimer)
            self.timer.timeout.connect(self._feed)
            self.timer.start(FEED_MS)
            self._feed()
        elif self.sink is not None and self.timer is not None:
            if name == "suspend":
                self.timer.stop()  # nothing is rendered ahead while paused
                self.sink.suspend()
            else:
                self.sink.resume()
                self.fed = False
                self.timer.start(FEED_MS)

    def _grow(self) -> None:
        """The device ran dry: go on in a sink with the next longer buffer, from the next frame (see the class)."""
        old = self.sink
        assert old is not None
        self.buffer_bytes = self.longer.pop(0)
        self.buffer_seconds = self.buffer_bytes / (4 * self.source.channels * self.source.rate)
        self._open()
        self.retired.append(old)
        QTimer.singleShot(round(2000 * self.buffer_seconds), self, self._retire)

    def _retire(self) -> None:
        if self.retired:
            self.retired.pop(0).stop()

    def _feed(self) -> None:
        """Fill the sink's free room with the next frames of the mix; notice a finished or failed sink."""
        assert self.sink is not None and self.device is not None and self.timer is not None
        # by name: QAudio.Error and QtAudio.Error (its newer spelling) do not compare equal in PySide6
        if self.sink.error().name not in ("NoError", "UnderrunError"):
            self.timer.stop()
            self.ended.emit(f"Audio output stopped ({self.sink.error().name}); press play to try again.")
            return
        free = self.sink.bytesFree()
        if self.finished:  # the song's end was written: stop once the device has played it
            if free >= self.sink.bufferSize():
                self.timer.stop()
                self.ended.emit("")
            return
        if self._ran_dry() or (self.fed and free >= self.sink.bufferSize()):
            self._dropped_out(self.source.played)
            free = self.sink.bytesFree()
        frames = free // (4 * self.source.channels)
        if frames >= MIN_FEED:
            try:
                audio = self.source.read(frames)
            except AudioError as error:
                log.warning("playback stopped: %s", error)
                self.timer.stop()
                self.ended.emit(f"Playback stopped: {error}")
                return
            if audio.shape[-1]:
                if self._ran_dry():  # during the render: this thread was held up in it, or it was that slow
                    self._dropped_out(self.source.played - audio.shape[-1])
                if self.fade_in_left > 0:  # after the dropout's silence, no jump into the song (a click)
                    audio, self.fade_in_left = _fade_in(audio, self.fade_in_left)
                # bytes, never a QByteArray: PySide6 (6.11) passed a QByteArray on as zero bytes (issue 23)
                self.device.write(np.ascontiguousarray(audio.T, dtype=np.float32).tobytes())
                self.fed = True
            self.finished = audio.shape[-1] < frames  # fewer only at the song's end
        self.fed_at = time.monotonic()

    def _ran_dry(self) -> bool:
        """Whether the device ran dry since the last feed: this thread left it longer than what the sink plays out
        of a full buffer, from the end of that feed (the buffer topped up) to now. It could not run (Python's lock
        held elsewhere, a busy machine) or its render was too slow. Checked before the render and again before the
        write, so a hold that began during a render counts too.

        PulseAudio plays silence a few milliseconds before a whole buffer has played without a write (measured in
        lab/notes/experiment-log.md, #63): DRY_MARGIN short of the buffer counts. (The sink's free room is no
        witness: it read 0 just after the UI thread held the GIL for 150 ms, and the sink's state never turns to
        underrun on PulseAudio. Timed from the start of the last feed, a new sink's first render at a new key,
        before the device had anything to play, counted as a dropout: the first write is never late.)"""
        return self.fed and time.monotonic() - self.fed_at > self.buffer_seconds - DRY_MARGIN

    def _dropped_out(self, frame: int) -> None:
        """The device ran dry before ``frame`` was written: go on from it in a sink with the next longer buffer (see
        the class), or at the longest say so once a playback."""
        self.dropouts += 1
        self.fed = False  # what follows is the first write of a fresh buffer: never late
        self.fade_in_left = SEEK_FADE  # and it rises from the silence the device played
        if self.longer:
            self._grow()
        elif self.said_longest:  # at the longest buffer: said once a playback
            return
        else:
            self.said_longest = True
        self.dropped.emit(self.buffer_seconds, time.monotonic(), frame)

    def halt(self) -> None:
        """Runs on the audio thread while the player waits: stop the sink and hand this object back to the UI thread
        so it can be deleted there once the audio thread has ended."""
        if self.timer is not None:
            self.timer.stop()
        for sink in [*self.retired, self.sink]:
            if sink is not None:
                sink.stop()
        app = QCoreApplication.instance()
        assert app is not None  # the player lives in the app
        self.moveToThread(app.thread())


class Player(QObject):
    """Transport: play, pause, stop, seek, loop. ``available`` is False when there is no audio output device. The
    sink runs on an audio thread of its own from play to stop (see `_Output`)."""

    state_changed = Signal(str)  # "playing", "paused", "stopped"
    problem = Signal(str)
    # the song dropped out while playing: (the buffer that ran dry, the buffer playback went on with), in seconds
    dropped_out = Signal(float, float)
    _command = Signal(str)  # to the audio thread, queued
    _halt = Signal()  # to the audio thread, waited for

    def __init__(self, parent=None):
        super().__init__(parent)
        self.source: MixSource | None = None
        self.output: _Output | None = None
        self.thread_: QThread | None = None
        self.state = "stopped"
        self._clock: tuple[float, float] | None = None  # (monotonic time, device frame) when playback (re)started
        self._paused_at = 0.0  # the device frame heard when paused
        self.latency = LATENCY_SECONDS  # the sink's buffer, from the next play on
        app = QCoreApplication.instance()
        if app is not None:  # no audio thread outlives the application
            app.aboutToQuit.connect(self.stop)

    @property
    def available(self) -> bool:
        return bool(QMediaDevices.audioOutputs())

    def load(self, source: MixSource) -> None:
        self.stop()
        if self.source is not None:
            self.source.close()
        self.source = source

    def position_seconds(self) -> float:
        """What is being heard, in song seconds: the device frame being heard (`_heard`) mapped back to the song,
        through the loop's wraps and the tempo."""
        if self.source is None:
            return 0.0
        return self.source.song_frame_at(self._heard()) / self.source.rate

    def _heard(self) -> float:
        """The device frame being heard. While playing: where playback (re)started plus the wall-clock time since
        (less the sink's latency), never ahead of what was handed out. (The sink's own counters are not reliable
        across Qt's audio back ends: processedUSecs stays 0 on PulseAudio here.)"""
        assert self.source is not None
        if self.state == "paused":
            return self._paused_at
        if self.state != "playing" or self._clock is None:
            return self.source.played
        started_at, start_frame = self._clock
        heard = start_frame + max(0.0, time.monotonic() - started_at - self.latency) * self.source.rate
        return min(heard, self.source.played)

    def take_levels(self) -> list[MeterBlock]:
        """The levels of what is being heard: blocks rendered the sink's latency ago, like the playhead."""
        return [] if self.source is None else self.source.take_levels(time.monotonic() - self.latency)

    def play(self) -> bool:
        if self.source is None:
            return False
        if not self.available:
            self.problem.emit(
                "No audio output device: playback is off. Everything else works; connect a device "
                "or start PulseAudio/PipeWire to listen."
            )
            return False
        if self.state == "paused" and self.output is not None:
            self._command.emit("resume")
            self._clock = (time.monotonic(), self._paused_at)
        else:
            self.stop()
            fmt = QAudioFormat()
            fmt.setSampleRate(self.source.rate)
            fmt.setChannelCount(self.source.channels)
            fmt.setSampleFormat(QAudioFormat.SampleFormat.Float)
            if not QMediaDevices.defaultAudioOutput().isFormatSupported(fmt):
                self.problem.emit(
                    f"The audio device cannot play {self.source.rate} Hz × {self.source.channels} "
                    "channels; playback is off for this song."
                )
                return False
            buffer_bytes = int(self.latency * self.source.rate) * 4 * self.source.channels
            longer = tuple(int(ms / 1000 * self.source.rate) * 4 * self.source.channels for ms in BUFFER_CHOICES_MS)
            self.output, self.thread_ = _Output(self.source, fmt, buffer_bytes, longer), QThread()
            self.thread_.setObjectName("stemdesk-audio")
            self.output.moveToThread(self.thread_)
            self._command.connect(self.output.command)  # queued: the output lives on the audio thread
            self._halt.connect(self.output.halt, Qt.ConnectionType.BlockingQueuedConnection)
            self.output.ended.connect(self._ended)  # queued back to this (the UI) thread
            self.output.dropped.connect(self._dropped)
            self.thread_.start()
            self._command.emit("start")
            # Python's full garbage collection scans every object of the process (torch's too): 100-125 ms here,
            # holding the GIL, so the audio thread could not top up the sink and the song dropped out. While playing,
            # what existed before play is frozen out of it; stop hands it back to the collector.
            gc.freeze()
            self._clock = (time.monotonic(), self.source.played)
        self._set("playing")
        return True

    def _ended(self, message: str) -> None:
        if self.sender() is not self.output:  # an earlier playback's, already stopped
            return
        if message:
            self.problem.emit(message)
        self.stop()

    def _dropped(self, seconds: float, at: float, frame: int) -> None:
        """The device ran dry; the output went on with a ``seconds`` buffer, its first frame ``frame`` written at
        ``at``: the playhead's clock starts again there (the dropout's silence did not move the song on)."""
        if self.sender() is not self.output:  # an earlier playback's
            return
        before, self.latency = self.latency, seconds
        if self.state == "playing":
            self._clock = (at, frame)
        self.dropped_out.emit(before, seconds)

    def pause(self) -> None:
        if self.output is not None and self.state == "playing":
            self._paused_at = self._heard()
            self._command.emit("suspend")
            self._set("paused")

    def toggle(self) -> None:
        self.pause() if self.state == "playing" else self.play()

    def stop(self) -> None:
        """Stop the sink and end the audio thread; on return nothing reads the source any more."""
        output, thread = self.output, self.thread_
        self.output = self.thread_ = None
        if output is not None and thread is not None:
            self._halt.emit()  # returns once the audio thread has stopped the sink
            for signal in (self._command, self._halt):
                signal.disconnect()
            thread.quit()
            thread.wait()
            output.deleteLater()
            gc.unfreeze()
        if self.state != "stopped":
            self._set("stopped")

    def seek(self, seconds: float) -> None:
        if self.source is not None:
            self.source.seek(int(seconds * self.source.rate), crossfade=self.state == "playing")
            self._clock = (time.monotonic(), self.source.played)
            self._paused_at = self.source.played

    def set_loop(self, span: tuple[float, float] | None) -> None:
        if self.source is not None:
            self.source.loop = (
                None if span is None else (int(span[0] * self.source.rate), int(span[1] * self.source.rate))
            )

    def _set(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)

    def close(self) -> None:
        self.stop()
        if self.source is not None:
            self.source.close()
            self.source = None
