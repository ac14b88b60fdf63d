"""Waveform peak data for drawing: min/max per bucket of samples, kept as a pyramid so any zoom level draws from a
few thousand numbers, however long the song. Built block by block: a file as it is read, or stems as they arrive."""

from __future__ import annotations

import threading

import numpy as np

BUCKET = 64  # samples per finest bucket
FACTOR = 8  # each coarser level merges this many buckets


class Peaks:
    """Thread-safe: a worker may `append` while the UI thread draws from `envelope`."""

    def __init__(self, sample_rate: int, frames: int = 0):
        self._lock = threading.Lock()
        self.sample_rate = sample_rate
        self.expected = frames  # the length the lane will have (0: unknown)
        self._min: list[np.ndarray] = []
        self._max: list[np.ndarray] = []
        self._levels: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._tail_lo = np.zeros(0, np.float32)  # samples not yet filling a bucket (their min and max)
        self._tail_hi = np.zeros(0, np.float32)
        self.frames = 0

    def append(self, block: np.ndarray) -> None:
        """block (channels, n) or (n,): channels are merged (min of mins, max of maxes)."""
        block = np.asarray(block, dtype=np.float32)
        lo = block.min(axis=0) if block.ndim == 2 else block
        hi = block.max(axis=0) if block.ndim == 2 else block
        with self._lock:
            self._append(lo, hi)

    def _append(self, lo: np.ndarray, hi: np.ndarray) -> None:
        self.frames += lo.shape[-1]
        lo, hi = np.concatenate([self._tail_lo, lo]), np.concatenate([self._tail_hi, hi])
        whole = lo.shape[-1] // BUCKET * BUCKET
        if whole:
            self._min.append(lo[:whole].reshape(-1, BUCKET).min(axis=1))
            self._max.append(hi[:whole].reshape(-1, BUCKET).max(axis=1))
        self._tail_lo, self._tail_hi = lo[whole:], hi[whole:]
        self._levels = None

    def finish(self) -> None:
        with self._lock:
            self._finish()

    def _finish(self) -> None:
        if self._tail_lo.size:
            self._min.append(np.array([self._tail_lo.min()], np.float32))
            self._max.append(np.array([self._tail_hi.max()], np.float32))
            self._tail_lo = self._tail_hi = np.zeros(0, np.float32)
            self._levels = None

    def levels(self) -> list[tuple[np.ndarray, np.ndarray]]:
        with self._lock:
            return self._build_levels()

    def _build_levels(self) -> list[tuple[np.ndarray, np.ndarray]]:
        if self._levels is None:
            lo = np.concatenate(self._min) if self._min else np.zeros(0, np.float32)
            hi = np.concatenate(self._max) if self._max else np.zeros(0, np.float32)
            self._min, self._max = [lo], [hi]
            levels = [(lo, hi)]
            while levels[-1][0].size > FACTOR * 256:
                lo, hi = levels[-1]
                n = lo.size // FACTOR * FACTOR
                coarse = (lo[:n].reshape(-1, FACTOR).min(1), hi[:n].reshape(-1, FACTOR).max(1))
                if n < lo.size:
                    coarse = (np.append(coarse[0], lo[n:].min()), np.append(coarse[1], hi[n:].max()))
                levels.append(coarse)
            self._levels = levels
        return self._levels

    def envelope(self, start: int, end: int, pixels: int) -> tuple[np.ndarray, np.ndarray]:
        """(mins, maxs) per pixel for samples [start, end); pixels past the data so far are NaN."""
        pixels = max(1, pixels)
        edges = np.linspace(start, end, pixels + 1)
        per_pixel = (end - start) / pixels
        levels = self.levels()
        level, size = 0, BUCKET
        while level + 1 < len(levels) and size * FACTOR <= per_pixel:
            level, size = level + 1, size * FACTOR
        lo, hi = levels[level]
        first = np.floor(edges[:-1] / size).astype(np.int64)
        last = np.maximum(first + 1, np.ceil(edges[1:] / size).astype(np.int64))
        mins = np.full(pixels, np.nan, np.float32)
        maxs = np.full(pixels, np.nan, np.float32)
        valid = (first < lo.size) & (first >= 0)
        if valid.any() and lo.size:
            begins, ends = first[valid], np.minimum(last[valid], lo.size)
            cum_ok = ends > begins
            idx = np.where(valid)[0][cum_ok]
            begins, ends = begins[cum_ok], ends[cum_ok]
            mins[idx] = _reduce(lo, begins, ends, np.minimum)
            maxs[idx] = _reduce(hi, begins, ends, np.maximum)
        return mins, maxs


def _reduce(values: np.ndarray, first: np.ndarray, last: np.ndarray, op) -> np.ndarray:
    """op over values[first[i]:last[i]] for each i. first is non-decreasing; a pixel's range may end one bucket
    past the next pixel's start (both contain the bucket their edge falls in)."""
    out = op.reduceat(values, first)
    ends = np.append(first[1:], values.size)
    ends = np.where(ends > first, ends, first + 1)  # reduceat took values[first] alone for empty runs
    for i in np.where((last < ends) | (last > ends + 1))[0]:
        out[i] = op.reduce(values[first[i] : last[i]])
    extra = np.where(last == ends + 1)[0]
    out[extra] = op(out[extra], values[np.minimum(ends[extra], values.size - 1)])
    return out
