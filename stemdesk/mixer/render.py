"""Render a Mix block by block. The same Renderer serves live playback and offline export.

Effect state (reverb tails, compressor envelopes) is carried from one block to the next, so rendering a song in
blocks of any size gives the same audio as rendering it at once. Strips at unity are added untouched, in float64, so a
mix with every gain at 0 dB and every effect bypassed is exactly the sum of the stems (the null-sum case).
"""

from __future__ import annotations

import inspect
import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pedalboard

from ..core.errors import MixError
from .effects import Effect
from .mix import Channel, Mix, parent_of

_THREADS = min(4, os.cpu_count() or 1)
_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """One small pool shared by every renderer (a fixed number of threads, never one per render)."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(_THREADS, thread_name_prefix="stemdesk-mixer")
    return _executor


AUTOMATION_BLOCK = 1 << 11  # automation is applied per block of song time (46 ms at 44.1 kHz), ramped within it
RAMP = 256  # samples a gain change is ramped over (5.8 ms at 44.1 kHz)


def db_to_gain(db: float) -> float:
    return 10.0 ** (db / 20.0)


def pan_gains(pan: float, channels: int) -> np.ndarray:
    """Balance law, unity at centre: turning right fades the left channel out (and vice versa). (channels, 1)."""
    gains = np.ones((channels, 1))
    if channels == 2 and pan != 0.0:
        side = 0 if pan > 0 else 1
        gains[side, 0] = math.cos(abs(pan) * math.pi / 2)
    return gains


def levels(audio: np.ndarray) -> tuple[float, float]:
    """(peak, mean square) of a block over all its channels: what a level meter needs, cheap enough for the audio
    thread."""
    if not audio.size:
        return 0.0, 0.0
    return float(np.abs(audio).max()), float(np.mean(np.square(audio, dtype=np.float64)))


def _settable(plugin) -> list[str]:
    return [name for name, prop in inspect.getmembers(type(plugin)) if isinstance(prop, property) and prop.fset]


class _Chain:
    """The active (not bypassed) effects of one strip as a pedalboard, with state kept between blocks."""

    def __init__(self, effects: Sequence[Effect]):
        self.signature = [(e.kind, e.path, e.bypass) for e in effects]
        self.effects = [e for e in effects if not e.bypass]
        self.board = pedalboard.Pedalboard([e.plugin() for e in self.effects]) if self.effects else None

    def update(self, effects: Sequence[Effect]) -> bool:
        """Take new parameter values in place (keeps the tails). False when the chain's shape changed."""
        if [(e.kind, e.path, e.bypass) for e in effects] != self.signature:
            return False
        active = [e for e in effects if not e.bypass]
        for index, effect in enumerate(active):
            if effect.params == self.effects[index].params:
                continue
            assert self.board is not None  # a chain with active effects has a board
            fresh, current = effect.plugin(), self.board[index]
            for name in _settable(fresh) if effect.kind != "vst3" else list(effect.params):
                setattr(current, name, getattr(fresh, name) if effect.kind != "vst3" else effect.params[name])
            self.effects[index] = effect
        return True

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """audio (channels, n) float32 -> (channels, n). A plugin that holds samples back is padded in front."""
        if self.board is None:
            return audio
        out = self.board.process(audio, sample_rate, buffer_size=max(1, min(audio.shape[-1], 8192)), reset=False)
        if out.shape[-1] < audio.shape[-1]:
            out = np.concatenate([np.zeros((out.shape[0], audio.shape[-1] - out.shape[-1]), np.float32), out], -1)
        return out

    def reset(self) -> None:
        if self.board is not None:
            self.board.reset()


class Renderer:
    """Mixes blocks of stems (sources, channels, n) into (channels, n) float32.

    A split stem's children (stems named "vocals/lead", "vocals/backing") are summed into their group, whose strip
    (the mix's "vocals" channel) then acts on the sum like any stem's: effects, fader, pan, mute, solo and sends.

    `set_mix` may be called from another thread (the UI, a MIDI callback) while a playback thread renders: the new
    gains ramp over the next block so a moving fader does not click, and effect parameters change in place.
    """

    def __init__(self, mix: Mix, stems: Sequence[str], sample_rate: int, channels: int):
        if channels < 1:
            raise MixError("A mix needs at least one audio channel.")
        self.stems = list(stems)
        # The routing, the same for every block: each split stem's group with its children's indices in ``stems``,
        # and what the total takes, in order: each stem that is no child, and each group where its first child is.
        self.groups: dict[str, list[int]] = {}
        self.tops: list[str] = []
        for index, stem in enumerate(self.stems):
            group = parent_of(stem)
            if group is None:
                self.tops.append(stem)
                continue
            if group not in self.groups:
                self.groups[group] = []
                self.tops.append(group)
            self.groups[group].append(index)
        self.strips = [*self.stems, *self.groups, "__master__"]  # every strip with a gain, the master's last
        self.sample_rate = sample_rate
        self.channels = channels
        self._lock = threading.Lock()
        self._chains: dict[str, _Chain] = {}
        self._gains: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}  # (from, to, samples into the ramp)
        self.mix = Mix()
        self.set_mix(mix)

    def _target(self, name: str) -> np.ndarray:
        """The (channels, 1) gain a strip should have now: fader, pan, mute and solo together."""
        if name == "__master__":
            return np.full((self.channels, 1), db_to_gain(self.mix.master_gain_db))
        channel = self.mix.channels.get(name, Channel())
        if not self.mix.audible(name):  # a child under a muted group plays into it, which is silent
            return np.zeros((self.channels, 1))
        return db_to_gain(channel.gain_db) * pan_gains(channel.pan, self.channels)

    def set_mix(self, mix: Mix) -> None:
        mix.validate(self.stems)
        with self._lock:
            self.mix = mix
            chains = {f"stem:{s}": mix.channels.get(s, Channel()).effects for s in [*self.stems, *self.groups]}
            chains.update({f"bus:{b}": effects for b, effects in mix.buses.items()})
            chains["master"] = mix.master
            for key, effects in chains.items():
                if key not in self._chains or not self._chains[key].update(effects):
                    self._chains[key] = _Chain(effects)
            for key in set(self._chains) - set(chains):
                del self._chains[key]
            self.unity = mix.is_unity(self.stems)

    def reset(self) -> None:
        """Forget effect state and gain ramps (after a seek)."""
        with self._lock:
            for chain in self._chains.values():
                chain.reset()
            self._gains.clear()

    def _settled(self, name: str) -> bool:
        """Whether strip ``name``'s gain is where the mix puts it, no ramp left to run (an unmuted or unsoloed stem
        fades in over RAMP samples: summed at once, it jumped in, a click)."""
        ramp = self._gains.get(name)
        return ramp is None or (ramp[2] >= RAMP and np.array_equal(ramp[1], self._target(name)))

    def _gain(self, name: str, n: int) -> np.ndarray:
        """The gain for this block: constant, or a linear ramp from where the gain was to the new one over RAMP
        samples (short enough that a fader move is heard at once, long enough not to click). The ramp runs on across
        blocks, so the same moves sound the same whatever sizes the blocks are cut into (playback and a bounce)."""
        target = self._target(name)
        ramp = self._gains.get(name)
        if ramp is None:
            self._gains[name] = (target, target, RAMP)
            return target
        start, end, done = ramp
        if not np.array_equal(end, target):
            start, end, done = start + (end - start) * min(done / RAMP, 1.0), target, 0
        self._gains[name] = (start, end, done + n)
        if done >= RAMP:
            return end
        return start + (end - start) * np.minimum((done + np.arange(1, n + 1)) / RAMP, 1.0)

    def _strips(self, items: list, n: int, buses: dict, meters: dict | None) -> None:
        """Each (strip, audio, sum) through the strip's effects, fader, pan, mute and solo, added into its sum (the
        mix's total, or a split stem's group) and sent to the buses; with ``meters``, each strip's level there."""
        work = []  # strips whose effects run or whose gain is not 1, processed in parallel below
        for stem, audio, into in items:
            channel = self.mix.channels.get(stem, Channel())
            settled = self._settled(stem)
            gain = self._gain(stem, n)
            if not channel.effects and channel.is_unity() and self.mix.audible(stem) and settled:
                into += audio
                if meters is not None:
                    meters[stem] = levels(audio)
            elif self.mix.audible(stem) or not np.all(gain == 0):
                work.append((stem, audio, gain, into))

        def strip(item: tuple) -> np.ndarray:
            stem, audio, gain, _ = item
            wet = self._chains[f"stem:{stem}"](np.ascontiguousarray(audio, dtype=np.float32), self.sample_rate)
            return wet * gain

        # pedalboard releases the GIL while processing, so strips run on several cores; they are summed in stem
        # order afterwards, so the result does not depend on which finished first
        done = list(_pool().map(strip, work)) if len(work) > 1 and _THREADS > 1 else [strip(w) for w in work]
        for (stem, _, _, into), audio in zip(work, done):
            into += audio
            if meters is not None:
                meters[stem] = levels(audio)
            for bus, send_db in self.mix.channels.get(stem, Channel()).sends.items():
                buses[bus] += (audio * db_to_gain(send_db)).astype(np.float32)

    def process(self, blocks: np.ndarray, meters: dict[str, tuple[float, float]] | None = None) -> np.ndarray:
        """blocks: (sources, channels, n) in the order of ``stems``. Returns the mix (channels, n) float32. With
        ``meters``, also fills it with each stem's `levels` as it enters the sum (after its effects, fader, pan, mute
        and solo): the mixer's meters, measured on this render instead of a second one."""
        if blocks.ndim != 3 or blocks.shape[0] != len(self.stems) or blocks.shape[1] != self.channels:
            raise MixError(f"Expected stems shaped ({len(self.stems)}, {self.channels}, n), got {blocks.shape}.")
        with self._lock:
            n = blocks.shape[-1]
            if self.unity and all(self._settled(name) for name in self.strips):
                for name in self.strips:
                    target = self._target(name)
                    self._gains[name] = (target, target, RAMP)  # so the next change ramps from unity
                if meters is not None:
                    meters.update((stem, levels(audio)) for stem, audio in zip(self.stems, blocks))
                    for group, members in self.groups.items():
                        meters[group] = levels(blocks[members].sum(axis=0))
                return blocks.sum(axis=0, dtype=np.float64).astype(np.float32)
            total = np.zeros((self.channels, n))
            # what each split stem's children add up to, mixed into the total through the group's strip below
            sums = {group: np.zeros((self.channels, n)) for group in self.groups}
            buses = {b: np.zeros((self.channels, n), np.float32) for b in self.mix.buses}
            if meters is not None:
                meters.update(dict.fromkeys(self.strips[:-1], (0.0, 0.0)))  # a strip left out below is silent
            # a split stem's children are mixed into their group's sum first; then the groups and the other stems
            children = [
                (self.stems[i], blocks[i], sums[group]) for group, members in self.groups.items() for i in members
            ]
            self._strips(children, n, buses, meters)
            audio_of = {**dict(zip(self.stems, blocks)), **sums}
            self._strips([(name, audio_of[name], total) for name in self.tops], n, buses, meters)
            for bus, signal in buses.items():
                total += self._chains[f"bus:{bus}"](signal, self.sample_rate)
            out = total.astype(np.float32)
            out = self._chains["master"](out, self.sample_rate)
            master = self._gain("__master__", n)
            return out if np.all(master == 1.0) else (out * master).astype(np.float32)


def render_automated(
    renderer: Renderer,
    mix: Mix,
    blocks: np.ndarray,
    first: int,
    rate: int,
    meters: dict[str, tuple[float, float]] | None = None,
) -> np.ndarray:
    """The mix of ``blocks`` (sources, channels, n), which start ``first`` samples into the song, with ``mix``'s
    automation applied every AUTOMATION_BLOCK samples of song time (each move ramped within its block). Playback
    and a bounce both render through here, so they hear the same move at the same moment whatever size of blocks
    their reader hands them. Without automation it is ``renderer.process``."""
    if not mix.automation:
        return renderer.process(blocks, meters)
    parts, n, at = [], blocks.shape[-1], 0
    while at < n:
        frame = first + at
        end = min(n, at + AUTOMATION_BLOCK - frame % AUTOMATION_BLOCK)
        renderer.set_mix(mix.at((frame - frame % AUTOMATION_BLOCK) / rate))  # the grid's moment, not the read's
        part: dict[str, tuple[float, float]] = {}
        parts.append(renderer.process(blocks[..., at:end], part))
        if meters is not None:  # the levels of the whole block: the largest peak, the mean square over all of it
            for name, (peak, square) in part.items():
                old_peak, old_square = meters.get(name, (0.0, 0.0))
                meters[name] = (max(old_peak, peak), old_square + square * (end - at) / n)
        at = end
    return np.concatenate(parts, axis=-1)
