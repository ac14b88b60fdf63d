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
BLOCK = 128  # steps of every filter in one row of a filter matrix


def filter_matrix(filters: Tensor, stride: int, block: int = BLOCK) -> Tensor:
    """Filters (count, taps) applied ``stride`` samples apart, as one matrix that maps a span of stride·(block − 1)
    + taps samples to ``block`` steps of every filter: (span, block · count), step r of filter p in column
    r · count + p."""
    count, taps = filters.shape
    matrix = filters.new_zeros(stride * (block - 1) + taps, block * count)
    for r in range(block):
        matrix[stride * r : stride * r + taps, r * count : (r + 1) * count] = filters.T
    return matrix


def apply_filter_matrix(signal: Tensor, matrix: Tensor, stride: int, count: int) -> Tensor:
    """``signal`` (rows, length) through the ``count`` filters of a `filter_matrix`, as one matrix product over
    spans of the signal (several times faster on a CPU than a strided convolution with one input channel):
    (rows, steps, count), steps = (length − taps) // stride + 1."""
    block = matrix.shape[1] // count
    span = matrix.shape[0]
    steps = (signal.shape[-1] - (span - stride * (block - 1))) // stride + 1
    blocks = -(-steps // block)
    signal = F.pad(signal, (0, max(0, stride * block * (blocks - 1) + span - signal.shape[-1])))
    spans = signal.unfold(-1, span, stride * block)  # (rows, blocks, span)
    out = torch.matmul(spans, matrix)  # (rows, blocks, block · count)
    return out.reshape(len(signal), blocks * block, count)[:, :steps]


def _filter(flat: Tensor, old: int, new: int) -> Tensor:
    """``flat`` (rows, 1, length) through the ``new`` phase filters at stride ``old``: (rows, steps · new), phases
    interleaved. On the CPU, for small ratios (2:1, 1:2, 3:2, …), as a filter matrix (`apply_filter_matrix`);
    elsewhere the convolution."""
    kernel, _ = _kernel(old, new, flat.device, flat.dtype)
    if flat.device.type != "cpu" or old * new > 16:
        return F.conv1d(flat, kernel, stride=old).transpose(1, 2).reshape(len(flat), -1)
    key = (old, new, flat.device, flat.dtype)
    if key not in _BLOCKS:
        _BLOCKS[key] = filter_matrix(kernel[:, 0], old)
    return apply_filter_matrix(flat[:, 0], _BLOCKS[key], old, new).reshape(len(flat), -1)


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
