"""Band-limited resampling between any two integer rates (windowed sinc, one polyphase convolution), for networks
that only work at their training rate (waveform estimators); mask estimators need none (see `Separator`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_KERNELS: dict[tuple[int, int, torch.device, torch.dtype], tuple[Tensor, int]] = {}


def _kernel(
    old: int, new: int, device: torch.device, dtype: torch.dtype, zeros: int = 24, rolloff: float = 0.945
) -> tuple[Tensor, int]:
    """``new`` filters (one per output phase) of a Hann-windowed sinc cut at ``rolloff`` × the lower Nyquist."""
    key = (old, new, device, dtype)
    if key not in _KERNELS:
        cutoff = min(old, new) * rolloff
        width = math.ceil(zeros * old / cutoff)
        taps = torch.arange(-width, width + old, dtype=torch.float64)
        phases = torch.arange(new, dtype=torch.float64)[:, None]
        t = ((-phases / new + taps / old) * cutoff).clamp(-zeros, zeros) * math.pi
        kernel = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t) * torch.cos(t / zeros / 2) ** 2
        kernel = kernel / kernel.sum(dim=-1, keepdim=True)
        _KERNELS[key] = (kernel[:, None].to(device, dtype), width)
    return _KERNELS[key]


_BLOCKS: dict[tuple[int, int, torch.device, torch.dtype], Tensor] = {}
BLOCK = 128  # output samples per phase in one row of the block matrix


def _block_matrix(old: int, new: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """The ``new`` filters as one matrix that maps a span of old·(BLOCK − 1) + taps input samples to BLOCK output
    samples of every phase: (span, new · BLOCK), output phase p of step r in column r · new + p."""
    key = (old, new, device, dtype)
    if key not in _BLOCKS:
        kernel, _ = _kernel(old, new, device, dtype)
        taps = kernel.shape[-1]
        matrix = torch.zeros(old * (BLOCK - 1) + taps, BLOCK * new, dtype=dtype, device=device)
        for r in range(BLOCK):
            matrix[old * r : old * r + taps, r * new : (r + 1) * new] = kernel[:, 0].T
        _BLOCKS[key] = matrix
    return _BLOCKS[key]


def _filter(flat: Tensor, old: int, new: int) -> Tensor:
    """``flat`` (rows, 1, length) through the ``new`` phase filters at stride ``old``: (rows, steps · new), phases
    interleaved. On the CPU, for small ratios (2:1, 1:2, 3:2, …), as one matrix product over spans of the signal
    (several times faster than a strided convolution with one input channel); elsewhere the convolution."""
    kernel, _ = _kernel(old, new, flat.device, flat.dtype)
    taps = kernel.shape[-1]
    steps = (flat.shape[-1] - taps) // old + 1
    if flat.device.type != "cpu" or old * new > 16:
        return F.conv1d(flat, kernel, stride=old).transpose(1, 2).reshape(len(flat), -1)
    blocks = -(-steps // BLOCK)
    span = old * (BLOCK - 1) + taps
    flat = F.pad(flat, (0, max(0, old * BLOCK * (blocks - 1) + span - flat.shape[-1])))
    spans = flat[:, 0].unfold(-1, span, old * BLOCK)  # (rows, blocks, span)
    out = torch.matmul(spans, _block_matrix(old, new, flat.device, flat.dtype))  # (rows, blocks, BLOCK · new)
    return out.reshape(len(flat), -1)[:, : steps * new]


def resampled_length(length: int, old: int, new: int) -> int:
    return -(-length * new // old)


def resample(x: Tensor, old: int, new: int) -> Tensor:
    """x (..., length) at ``old`` Hz → (..., ceil(length · new / old)) at ``new`` Hz."""
    g = math.gcd(old, new)
    old, new = old // g, new // g
    if old == new:
        return x
    _, width = _kernel(old, new, x.device, x.dtype)
    shape, length = x.shape[:-1], x.shape[-1]
    flat = F.pad(x.reshape(-1, 1, length), (width, width + old), mode="replicate")
    out = _filter(flat, old, new)
    return out[:, : resampled_length(length, old, new)].reshape(*shape, -1)


def resample_in_blocks(x: Tensor, old: int, new: int, block: int = 1 << 20) -> Tensor:
    """`resample` of a long ``x`` (..., length) a block of about ``block`` input samples at a time, each with as
    much of its neighbours as the filter reaches: the same samples, in the memory of one block (the convolution
    over a whole 5-minute signal at once holds several times the signal)."""
    g = math.gcd(old, new)
    old, new = old // g, new // g
    length = x.shape[-1]
    if old == new or length <= 2 * block:
        return resample(x, old, new)
    _, width = _kernel(old, new, x.device, x.dtype)
    step = max(old, block // old * old)  # blocks start where an output sample does: at multiples of ``old``
    context = -(-(width + old) // old) * old
    total = resampled_length(length, old, new)
    out = []
    for start in range(0, length, step):
        lo, hi = max(0, start - context), min(length, start + step + context)
        part = resample(x[..., lo:hi], old, new)
        first = (start - lo) * new // old
        count = min(step * new // old, total - start * new // old)
        out.append(part[..., first : first + count])
    return torch.cat(out, dim=-1)
