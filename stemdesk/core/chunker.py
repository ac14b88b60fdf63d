"""One chunker for long audio: overlapping segments, weighted, normalised by the summed weights, streamed.

Input arrives in blocks of any size (from a decoder) and finished output leaves in blocks (to a writer), so peak
memory depends on the segment length, not on the song. The chunker keeps everything on the host; the function
it calls moves each segment to the compute device and back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor

from .cancel import CancelToken
from .errors import OutOfMemory

# fn: segment (channels, n) → stems (sources, channels, n), both on the host.
SegmentFn = Callable[[Tensor], Tensor]
Progress = Callable[[dict], None]


_OOM_ERRORS: tuple[type[BaseException], ...] = (torch.OutOfMemoryError,)


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA raises OutOfMemoryError; MPS raises a RuntimeError that says so."""
    return isinstance(error, _OOM_ERRORS) or (isinstance(error, RuntimeError) and "out of memory" in str(error).lower())


def segment_weights(length: int, overlap: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """A trapezoid: linear ramps of ``overlap`` samples at both ends, flat in the middle, never zero.

    Adjacent ramps add up to one, but the chunker divides by the summed weights anyway, so any positive window
    reconstructs exactly.
    """
    ramp = min(overlap, length // 2)
    weights = torch.ones(length, dtype=dtype)
    if ramp > 0:
        up = torch.arange(1, ramp + 1, dtype=dtype) / (ramp + 1)
        weights[:ramp] = up
        weights[length - ramp :] = up.flip(0)
    return weights


class Chunker:
    """Runs ``fn`` over overlapping segments of ``segment`` samples with ``overlap`` samples shared.

    Accumulates Σ wᵢ·fn(xᵢ) and Σ wᵢ in the input's dtype and emits (acc / Σ w) as soon as no later segment can
    touch it. On a device out-of-memory error the segment is halved and the failing segment is redone in halves;
    finished output is kept and later segments use the smaller size.
    """

    def __init__(
        self,
        fn: SegmentFn,
        segment: int,
        overlap: int,
        min_segment: int = 4096,
        window: Callable[..., Tensor] = segment_weights,
    ):
        """``window(n, overlap, dtype)``: the weights of a segment of n samples (`segment_weights` by default)."""
        if segment <= 0:
            raise ValueError("segment must be positive")
        if not 0 <= overlap < segment:
            raise ValueError("overlap must be at least 0 and less than the segment")
        self.fn = fn
        self.window = window
        self.segment = segment
        self.overlap = overlap
        self.min_segment = min_segment
        self.device_segment = segment  # shrinks after an out-of-memory error

    @property
    def stride(self) -> int:
        return self.segment - self.overlap

    def run(self, audio: Tensor, progress: Progress | None = None, cancel: CancelToken | None = None) -> Tensor:
        """Whole-array convenience: audio (channels, length) → stems (sources, channels, length)."""
        blocks = list(self.stream([audio], total=audio.shape[-1], progress=progress, cancel=cancel))
        return torch.cat(blocks, dim=-1)

    def stream(
        self,
        blocks: Iterable[Tensor],
        total: int | None = None,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
    ) -> Iterator[Tensor]:
        """blocks of (channels, n) → blocks of stems (sources, channels, m), in order, covering every input sample."""
        seg, stride = self.segment, self.stride
        pending: list[Tensor] = []  # input not yet dropped, starting at global position `start`
        pending_len = 0
        start = 0  # global position of the next segment, and of acc's first sample
        # Σ w·fn(x) (sources, channels, seg) and Σ w (seg,) for positions start .. start+seg; only their first
        # `covered - start` samples hold anything (what earlier segments left), the rest is whatever was there
        acc: Tensor | None = None
        wacc: Tensor | None = None
        covered = 0  # global position up to which some segment has been processed
        emitted = 0

        def take(n: int) -> Tensor:
            data = torch.cat(pending, dim=-1) if len(pending) > 1 else pending[0]
            pending[:] = [data]
            return data[..., :n]

        def process(x: Tensor) -> None:
            nonlocal acc, wacc, covered
            if cancel is not None:
                cancel.raise_if_cancelled()
            y = self._run(x).to(x.dtype)
            n = x.shape[-1]
            w = self.window(n, self.overlap, x.dtype)
            if acc is None or wacc is None:
                acc = torch.empty(y.shape[0], y.shape[1], seg, dtype=x.dtype)
                wacc = torch.empty(seg, dtype=x.dtype)
            shared = min(max(covered - start, 0), n)  # what an earlier segment reached: added to; the rest: set
            acc[..., :shared] += y[..., :shared] * w[:shared]
            torch.mul(y[..., shared:], w[shared:], out=acc[..., shared:n])
            wacc[:shared] += w[:shared]
            wacc[shared:n] = w[shared:]
            covered = start + n

        def emit(n: int) -> Tensor:
            nonlocal emitted
            assert acc is not None and wacc is not None, "emit before any segment was processed"
            out = acc[..., :n] / wacc[:n]
            # what a later segment will add to moves to the front (the overlap, not the whole segment)
            keep = max(covered - emitted - n, 0)
            if keep:
                acc[..., :keep] = acc[..., n : n + keep].clone() if keep > n else acc[..., n : n + keep]
                wacc[:keep] = wacc[n : n + keep].clone() if keep > n else wacc[n : n + keep]
            emitted += n
            if progress is not None:
                progress({"stage": "separate", "done": emitted, "total": total})
            return out

        def drop(n: int) -> None:
            nonlocal pending_len
            data = take(pending_len)
            pending[:] = [data[..., n:]]
            pending_len -= n

        for block in blocks:
            if block.shape[-1] == 0:
                continue
            pending.append(block)
            pending_len += block.shape[-1]
            while pending_len >= seg:
                process(take(seg))
                yield emit(stride)
                drop(stride)
                start += stride
        # End of input: `pending` holds positions start .. start+pending_len.
        end = start + pending_len
        if pending_len > 0 and covered < end:
            process(take(pending_len))
        if end > emitted:
            yield emit(end - emitted)

    def _run(self, x: Tensor) -> Tensor:
        """fn on one segment, splitting it in halves (recursively) if the device runs out of memory."""
        n = x.shape[-1]
        if n <= self.device_segment:
            try:
                return self.fn(x)
            except Exception as error:  # noqa: BLE001 - only out-of-memory errors are handled
                if not is_out_of_memory(error):
                    raise
                if n // 2 < self.min_segment:
                    raise OutOfMemory(
                        f"The device ran out of memory even on {n} samples: separate on the CPU or "
                        "close other programs using the GPU.",
                        setting="device",
                        value="cpu",
                    ) from error
                self.device_segment = n // 2
                _empty_device_caches()
        inner = Chunker(self.fn, self.device_segment, min(self.overlap, self.device_segment // 4), self.min_segment)
        inner.device_segment = self.device_segment
        result = inner.run(x)
        self.device_segment = inner.device_segment
        return result


def _empty_device_caches() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and torch.backends.mps.is_available():
        mps.empty_cache()
