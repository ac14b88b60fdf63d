"""Key and tempo: the mix played in another key and at another speed, streamed block by block.

Two stages, each carrying its state from one block to the next, so the output does not depend on how the input was
cut into blocks (live playback pulls 1024 frames at a time, a bounce 65536):

1. a band-limited varispeed (windowed-sinc interpolation) reads the input 2^(semitones/12) times as fast, which moves
   the key and, for now, the speed with it;
2. a phase vocoder with identity phase locking (Laroche and Dolson) stretches that by 2^(semitones/12) / tempo, which
   gives the length the tempo asks for and keeps the key. Every channel follows one phase track (the channels' sum),
   so the stereo image holds.

At 0 semitones and 100 % tempo both stages pass the audio through unchanged (to float rounding). Output sample ``k``
(counted since `reset`) plays input sample `input_at(k)`: the map a playhead follows. pedalboard's Rubber Band
offers this only for whole buffers (`time_stretch`); its streaming `PitchShift` returns silence when it is fed block
by block (pedalboard 0.9.26, its issue 415).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from .mix import SEMITONES_RANGE, TEMPO_RANGE  # what the buffers here are sized for

ZEROS = 16  # zero crossings of the interpolation kernel on each side of its centre
PHASES = 512  # fractional positions the kernel is tabulated at (linearly interpolated between)
ROLLOFF = 0.95  # the kernel's cut-off, as a fraction of the lower Nyquist frequency
OVERLAP = 8  # analysis frames overlapping each output sample


def frame_size(sample_rate: int) -> int:
    """The phase vocoder's frame: the power of two nearest 93 ms (4096 at 44.1 and 48 kHz)."""
    return 1 << max(8, round(math.log2(sample_rate * 0.093)))


def _kernel(cutoff: float) -> tuple[np.ndarray, int]:
    """The interpolation kernel tabulated at PHASES + 1 fractions of a sample: (PHASES + 1, 2 · half) rows that each
    sum to one, for the taps at offsets -half + 1 .. half from the sample before the read position; and half."""
    half = math.ceil(ZEROS / cutoff)
    offsets = np.arange(-half + 1, half + 1, dtype=np.float64)
    distance = offsets[None, :] - (np.arange(PHASES + 1) / PHASES)[:, None]
    window = np.where(np.abs(distance) < half, np.cos(np.pi * distance / (2 * half)) ** 2, 0.0)
    table = np.sinc(cutoff * distance) * window
    return table / table.sum(axis=1, keepdims=True), half


class KeyTempo:
    """Streams audio (channels, n) in, and the same audio ``semitones`` higher and ``tempo`` times as fast out.

    `push` input, `pull` what is ready, `end` when the input is over. `set` may be called from any thread; the new
    key and tempo are taken at the next push: the tempo from the next frame, the key gliding there over two frames
    (0.19 s at 44.1 kHz; a jump would put two pitches in the frames that straddle it, and they beat).
    """

    def __init__(self, sample_rate: int, channels: int, semitones: float = 0.0, tempo: float = 1.0):
        self.rate, self.channels = sample_rate, channels
        self.size = frame_size(sample_rate)
        self.hop = self.size // OVERLAP
        self.window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(self.size) / self.size)  # periodic Hann
        # what the windowed frames add up to, squared window over OVERLAP hops (constant for a periodic Hann)
        self.norm = float(np.sum(self.window**2) / self.hop)
        self.omega = 2 * np.pi * np.arange(self.size // 2 + 1) / self.size
        self._bins = np.arange(self.size // 2 + 1)
        self._wanted = (0.0, 1.0)
        self.set(semitones, tempo)
        # the stream's state, all set by `reset`
        self.pushed = self.pulled = 0  # input frames pushed and output frames pulled since the reset
        self.ended = False
        self._end_out: int | None = None  # the output's length, once the input has ended
        self._pitch = self._target = self._tempo = 1.0  # the varispeed's ratio at its next read, where it goes
        self._glide: tuple[int, float, int, float] | None = None  # (from index, ratio, to index, ratio)
        self._table, self._slope, self._half, self._cutoff = np.zeros((0, 0)), np.zeros((0, 0)), 0, 0.0
        self._in = self._u = self._acc = np.zeros((channels, 0))
        self._in_start = self._u_start = self._u_end = self._s = self._acc_start = 0
        self._x = self._a = 0.0  # the input position the varispeed reads next; the next frame's analysis centre
        self._u_map: deque[tuple[int, float, float]] = deque()  # (varispeed index, input position, pitch) anchors
        self._frames: deque[tuple[int, float, float]] = deque()  # (output centre, varispeed centre, 1 / stretch)
        self._last: tuple[int, np.ndarray, np.ndarray] | None = None  # (start, phase, synthesised phase)
        self._out = np.zeros((channels, 0), np.float32)  # finished output not pulled yet
        self.reset()

    # --- settings ----------------------------------------------------------------------------------------------------
    def set(self, semitones: float, tempo: float) -> None:
        """Semitones in SEMITONES_RANGE and tempo in TEMPO_RANGE (the ranges `Mix` checks); ValueError outside."""
        if not (SEMITONES_RANGE[0] <= semitones <= SEMITONES_RANGE[1] and TEMPO_RANGE[0] <= tempo <= TEMPO_RANGE[1]):
            raise ValueError(f"KeyTempo takes {SEMITONES_RANGE} semitones and a tempo in {TEMPO_RANGE}")
        self._wanted = (float(semitones), float(tempo))  # one assignment: safe from another thread

    @property
    def settings(self) -> tuple[float, float]:
        """(semitones, tempo) as last set."""
        return self._wanted

    @property
    def neutral(self) -> bool:
        return self._wanted == (0.0, 1.0)

    def _take_settings(self) -> None:
        semitones, tempo = self._wanted
        pitch = 2.0 ** (semitones / 12)
        if pitch != self._target:
            if self._u_end == 0:  # nothing read yet: start there
                self._pitch = pitch
            else:
                self._glide = (self._u_end, self._pitch, self._u_end + 2 * self.size, pitch)
            self._target = pitch
            self._set_cutoff(max(self._pitch, pitch))
            if self._u_end == 0:
                self._u_map.append((0, self._x, pitch))
        self._tempo = tempo

    def _set_cutoff(self, pitch: float) -> None:
        """The interpolation kernel for reading ``pitch`` times as fast: below the lower Nyquist frequency."""
        cutoff = min(1.0, 1.0 / pitch) * ROLLOFF
        if cutoff != self._cutoff:
            self._table, self._half = _kernel(cutoff)
            self._slope = np.diff(self._table, axis=0)  # towards the next tabulated fraction
            self._cutoff = cutoff

    @property
    def _stretch(self) -> float:
        """How much the vocoder lengthens what the varispeed reads, at its next frame: pitch / tempo."""
        return self._pitch_at(self._a) / self._tempo

    def _pitch_at(self, u: float) -> float:
        """The ratio the varispeed read at (or reads at) at its index ``u``: the slope of the map `input_at` uses."""
        for anchor in reversed(self._u_map):
            if anchor[0] <= u:
                return anchor[2]
        return self._u_map[0][2]

    # --- streaming ---------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget all audio (after a seek): the next input sample is input 0, the next output sample output 0."""
        self.pushed = self.pulled = 0
        self.ended = False
        self._end_out = None
        self._pitch = self._target = 0.0  # taken from the settings below
        self._glide = None
        self._in = np.zeros((self.channels, self.size))  # silence before the input, for the kernel's first taps
        self._in_start = -self.size  # input index of self._in[:, 0]
        self._x = self._a = 0.0
        # varispeed output the vocoder has not passed yet, after the silence the first frames see (their analysis
        # starts two frames before varispeed index 0 at the shortest stretch, a quarter)
        self._u = np.zeros((self.channels, 3 * self.size))
        self._u_start = -self._u.shape[1]  # varispeed index of self._u[:, 0]
        self._u_end = 0
        self._u_map = deque()
        self._take_settings()
        # the first frame whose window reaches output 0; frames advance by `hop` outputs and hop / stretch inputs
        self._s = -self.size // 2 + self.hop
        self._a = self._s / self._stretch
        self._frames = deque()
        self._last = None
        self._acc = np.zeros((self.channels, self.size))
        self._acc_start = self._s - self.size // 2  # output index of self._acc[:, 0]
        self._out = np.zeros((self.channels, 0), np.float32)

    def push(self, audio: np.ndarray) -> None:
        """More input, (channels, n)."""
        if self.ended:
            raise ValueError("push after end")
        self._in = np.concatenate([self._in, np.asarray(audio, np.float64)], axis=-1)
        self.pushed += audio.shape[-1]
        self._run()

    def end(self) -> None:
        """The input is over: the output runs to where the input ended (then `available` is all there is)."""
        if self.ended:
            return
        self._take_settings()
        self.ended = True
        u = self._u_of(self.pushed)
        s, a, inverse = self._frames[-1] if self._frames else (self._s, self._a, 1 / self._stretch)
        self._end_out = max(self.pulled, math.ceil(s + (u - a) / inverse))
        self._run()

    @property
    def available(self) -> int:
        """Output frames ready to pull."""
        ready = self._out.shape[-1]
        if self._end_out is not None:
            ready = min(ready, self._end_out - self.pulled)
        return ready

    @property
    def finished(self) -> bool:
        """Ended, and everything pulled."""
        return self._end_out is not None and self.pulled >= self._end_out

    def pull(self, frames: int) -> np.ndarray:
        """Up to ``frames`` output frames, (channels, n) float32."""
        n = min(frames, self.available)
        out, self._out = self._out[:, :n], self._out[:, n:]
        self.pulled += n
        return out

    def wanted(self, frames: int) -> int:
        """About how many more input frames give ``frames`` output frames ready to pull (0 when they are)."""
        if self.available >= frames or self.ended:
            return 0
        target = self.pulled + frames + self.size // 2  # the frame centre whose window finishes that output
        u = self._a + (target - self._s) / self._stretch + self.size // 2
        x = self._x + max(0.0, u - self._u_end) * self._pitch + self._half + 1
        return max(1, math.ceil(x - self.pushed))

    def input_at(self, out: float) -> float:
        """The input position (input frames since the reset, fractional) that output ``out`` plays."""
        s, a, inverse = self._frames[0] if self._frames else (self._s, self._a, 1 / self._stretch)
        for frame in reversed(self._frames):
            if frame[0] <= out:
                s, a, inverse = frame
                break
        u = a + (out - s) * inverse
        u0, x0, pitch = self._u_map[0]
        for anchor in reversed(self._u_map):
            if anchor[0] <= u:
                u0, x0, pitch = anchor
                break
        return x0 + (u - u0) * pitch

    def _u_of(self, x: float) -> float:
        """The varispeed index that reads input position ``x`` (inverse of the map `input_at` uses)."""
        u0, x0, pitch = self._u_map[-1]
        return u0 + (x - x0) / pitch

    # --- the two stages ----------------------------------------------------------------------------------------------
    def _run(self) -> None:
        self._take_settings()
        while True:
            self._varispeed()
            if not self._frame():
                if self._end_out is None or self.available >= self._end_out - self.pulled:
                    return
                # past the end of the input: the rest of the last frames hear silence
                self._in = np.concatenate([self._in, np.zeros((self.channels, self.size))], axis=-1)

    def _varispeed(self) -> None:
        """Read the input at the pitch ratio into the vocoder's buffer, as far as the input reaches."""
        available = self._in_start + self._in.shape[-1]  # input index after the last one buffered
        if self._glide is None and self._pitch == 1.0 and self._x == int(self._x):
            begin = int(self._x)
            out = self._in[:, begin - self._in_start : available - self._in_start]
            count, travelled = out.shape[-1], float(out.shape[-1])
        else:
            half = self._half
            count = max(0, math.floor((available - 1 - half - self._x) / max(self._pitch, self._target)) + 1)
            count = min(count, self.size if self._glide is None else self.hop)  # a glide's map: a hop at a time
            if count == 0:
                return
            if self._glide is None:
                steps = np.full(count, self._pitch)
            else:
                start, before, end, after = self._glide
                along = np.clip((self._u_end + np.arange(count) - start) / (end - start), 0.0, 1.0)
                steps = before + (after - before) * along
                count = min(count, int(np.searchsorted(np.cumsum(steps), available - 1 - half - self._x, "right")))
                steps = steps[:count]
                if count == 0:
                    return
            position = self._x + np.concatenate([[0.0], np.cumsum(steps[:-1])])
            base = np.floor(position)
            phase = (position - base) * PHASES
            index = np.minimum(phase.astype(np.int64), PHASES - 1)
            kernel = self._table[index] + self._slope[index] * (phase - index)[:, None]  # (count, taps)
            # each output's taps are one row of the input's sliding windows: a gather of contiguous rows
            rows = np.lib.stride_tricks.sliding_window_view(self._in, 2 * half, axis=-1)
            out = np.einsum("cnt,nt->cn", rows[:, base.astype(np.int64) - half + 1 - self._in_start], kernel)
            travelled = float(np.sum(steps))
        if count == 0:
            return
        if self._glide is not None or not self._u_map or self._u_map[-1][2] != self._pitch:
            self._u_map.append((self._u_end, self._x, travelled / count))
        self._x += travelled
        self._u = np.concatenate([self._u, out], axis=-1)
        self._u_end += count
        if self._glide is not None:
            start, before, end, after = self._glide
            self._pitch = before + (after - before) * min(1.0, (self._u_end - start) / (end - start))
            if self._u_end >= end:
                self._glide = None
                self._set_cutoff(self._target)
        # the taps the next read still needs, with room for a wider kernel (a glide to a higher key needs one)
        keep = math.floor(self._x) - self.size - self._in_start
        if keep > 0:
            self._in = self._in[:, keep:]
            self._in_start += keep

    def _frame(self) -> bool:
        """One phase-vocoder frame, when the varispeed output covers it: False when it does not (yet)."""
        size, hop = self.size, self.hop
        if self._end_out is not None and self._acc_start >= self._end_out:
            return False
        start = round(self._a) - size // 2
        if start + size > self._u_end:
            return False
        offset = start - self._u_start
        spectra = np.fft.rfft(self._u[:, offset : offset + size] * self.window, axis=-1)  # (channels, bins)
        reference = spectra.sum(axis=0)
        phase = np.angle(reference)
        if self._last is None:
            synth = phase
        else:
            last_start, last_phase, last_synth = self._last
            advance = start - last_start
            deviation = phase - last_phase - self.omega * advance
            deviation -= 2 * np.pi * np.round(deviation / (2 * np.pi))
            step = (self.omega + deviation / max(advance, 1)) * hop  # each bin's phase advance over one output hop
            magnitude = np.abs(reference)
            peaks = np.flatnonzero((magnitude[1:-1] > magnitude[:-2]) & (magnitude[1:-1] >= magnitude[2:])) + 1
            if peaks.size == 0:
                synth = phase
            else:
                # identity phase locking: a peak's phase runs on at its own frequency, the bins around it keep
                # their phase relative to it (each bin belongs to its nearest peak)
                owner = np.searchsorted((peaks[:-1] + peaks[1:]) // 2 + 1, self._bins, side="right")
                peak_synth = last_synth[peaks] + step[peaks]
                synth = peak_synth[owner] + phase - phase[peaks][owner]
            synth = synth - 2 * np.pi * np.round(synth / (2 * np.pi))
        self._last = (start, phase, synth)
        frames = np.fft.irfft(spectra * np.exp(1j * (synth - phase)), size, axis=-1) * self.window
        at = self._s - size // 2 - self._acc_start
        self._acc[:, at : at + size] += frames
        self._frames.append((self._s, self._a, 1 / self._stretch))
        while len(self._frames) > 4 * OVERLAP:
            self._frames.popleft()
        while len(self._u_map) > 1 and self._u_map[1][0] <= self._frames[0][1] - size:
            self._u_map.popleft()
        # outputs before the next frame's window are final
        done = self._s + hop - size // 2 - self._acc_start
        finished, self._acc = (
            self._acc[:, :done],
            np.concatenate([self._acc[:, done:], np.zeros((self.channels, done))], -1),
        )
        skip = max(0, -self._acc_start)
        if skip < done:
            self._out = np.concatenate([self._out, (finished[:, skip:] / self.norm).astype(np.float32)], axis=-1)
        self._acc_start += done
        self._take_settings()
        self._s += hop
        self._a += hop / self._stretch
        drop = round(self._a) - size // 2 - self._u_start - 1
        if drop > 0:
            self._u = self._u[:, drop:]
            self._u_start += drop
        return True
