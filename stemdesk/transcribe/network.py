"""An ONNX graph run in torch: the few operators Basic Pitch's network is made of (its constant-Q transform as strided
1-D convolutions, a log scale, harmonic stacking by slicing and padding, and seven 2-D convolutions), read from the
file by `stemdesk.io.onnx_reader` and executed in order. Torch runs it on the user's GPU where there is one, and on
a CPU thread faster than onnxruntime does, because three kinds of convolution are computed another way there:

- a kernel wide along frequency (the contour layer's 3 × 39 over 264 bins, half of the network's arithmetic) is
  multiplied in the Fourier domain along that axis: the same sums, a twentieth of the work;
- long filters over a one-channel signal (the constant-Q kernels, the octaves' low-pass) are matrix products over
  the signal's spans, not strided convolutions with one input channel;
- a convolution to one channel (the three output layers) first weighs the input channels for every kernel tap in one
  matrix product, then adds the taps' planes shifted: no unfolded copy of the input.

All give the direct convolution's result to float rounding (checked against onnxruntime in the tests). What they
derive from a node's weights (kernel spectra, filter matrices) is made once per program."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import ModelError
from ..core.resample import BLOCK, apply_filter_matrix, filter_matrix
from ..io.onnx_reader import Node, OnnxGraph

Tensor = torch.Tensor
WIDE = 16  # a kernel at least this wide along the last axis (stride 1) is applied in the Fourier domain


def _ints(value: Tensor) -> list[int]:
    return [int(v) for v in value.reshape(-1).tolist()]


def _int_list(node: Node, name: str, default: list[int]) -> list[int]:
    """An attribute that is a list of integers (strides, pads, axes, perm)."""
    value = node.attributes.get(name, default)
    return [int(v) for v in value] if isinstance(value, list) else [int(value)]


def _int(node: Node, name: str, default: int) -> int:
    value = node.attributes.get(name, default)
    if not isinstance(value, int):
        raise ModelError(f"ONNX {node.op_type} attribute {name} is {value!r}, not an integer")
    return value


def _reshape(node: Node, x: Tensor, shape: Tensor) -> Tensor:
    dims = _ints(shape)
    if not _int(node, "allowzero", 0):
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def _slice(node: Node, x: Tensor, starts: Tensor, ends: Tensor, axes: Tensor | None = None, steps=None) -> Tensor:
    begin, end = _ints(starts), _ints(ends)
    axis_list = _ints(axes) if axes is not None else list(range(len(begin)))
    step_list = _ints(steps) if steps is not None else [1] * len(begin)
    index: list[Any] = [slice(None)] * x.dim()
    for b, e, a, s in zip(begin, end, axis_list, step_list):
        if s != 1:
            raise ModelError(f"ONNX Slice with step {s} is not supported")
        size = x.shape[a]
        index[a] = slice(max(0, min(size, b + size if b < 0 else b)), max(0, min(size, e + size if e < 0 else e)))
    return x[tuple(index)]


def _pad(node: Node, x: Tensor, pads: Tensor, value: Tensor | None = None, axes=None) -> Tensor:
    amounts = _ints(pads)
    rank = x.dim()
    begin, end = amounts[:rank], amounts[rank:]
    mode = node.attributes.get("mode", b"constant")
    if mode == b"reflect":
        for axis in range(rank):
            if begin[axis] or end[axis]:
                n = x.shape[axis]
                index = torch.arange(-begin[axis], n + end[axis], device=x.device).abs()
                index = torch.where(index >= n, 2 * (n - 1) - index, index)
                x = x.index_select(axis, index)
        return x
    if mode != b"constant":
        raise ModelError(f"ONNX Pad mode {mode!r} is not supported")
    fill = float(value.item()) if value is not None and value.numel() else 0.0
    flat: list[int] = []
    for axis in reversed(range(rank)):
        flat += [begin[axis], end[axis]]
    return F.pad(x, flat, value=fill)


def _unsqueeze(node: Node, x: Tensor, axes: Tensor | None = None) -> Tensor:
    wanted = _ints(axes) if axes is not None else _int_list(node, "axes", [])
    rank = x.dim() + len(wanted)
    for axis in sorted(a + rank if a < 0 else a for a in wanted):
        x = x.unsqueeze(axis)
    return x


def _reduce(kind: str) -> Callable[..., Tensor]:
    def run(node: Node, x: Tensor, axes: Tensor | None = None) -> Tensor:
        wanted = _ints(axes) if axes is not None else _int_list(node, "axes", [])
        keep = bool(_int(node, "keepdims", 1))
        if not wanted:
            if _int(node, "noop_with_empty_axes", 0):
                return x
            wanted = list(range(x.dim()))
        if kind == "sum":
            return x.sum(dim=wanted, keepdim=keep)
        return (x.amin if kind == "min" else x.amax)(dim=wanted, keepdim=keep)

    return run


_CAST = {1: torch.float32, 6: torch.int32, 7: torch.int64, 9: torch.bool, 11: torch.float64}


def _conv(node: Node, x: Tensor, weight: Tensor, bias: Tensor | None = None, *, cache: dict | None = None) -> Tensor:
    """ONNX Conv; ``cache`` keeps what is derived from the node's weights (kernel spectra, filter matrices)."""
    attributes = node.attributes
    if attributes.get("auto_pad", b"NOTSET") not in (b"NOTSET", b""):
        raise ModelError("ONNX Conv with auto_pad is not supported")
    if x.dim() != 4:
        raise ModelError(f"ONNX Conv on a {x.dim()}-dimensional input is not supported")
    strides = _int_list(node, "strides", [1, 1])
    dilations = _int_list(node, "dilations", [1, 1])
    pads = _int_list(node, "pads", [0, 0, 0, 0])
    group = _int(node, "group", 1)
    plain = group == 1 and dilations == [1, 1] and x.device.type == "cpu"  # a GPU's own convolutions are fast
    if plain and strides[0] == 1 and weight.shape[1:3] == (1, 1) and weight.shape[-1] >= WIDE:
        return conv_filter(x, weight, bias, pads, strides[1], cache)
    if plain and strides == [1, 1] and weight.shape[-1] >= WIDE:
        return conv_fourier(x, weight, bias, pads, cache)
    if plain and weight.shape[0] == 1 and weight.shape[1] > 1:
        return conv_one_channel(x, weight, bias, pads, strides)
    if pads[0] != pads[2] or pads[1] != pads[3]:
        x = F.pad(x, [pads[1], pads[3], pads[0], pads[2]])
        pads = [0, 0, 0, 0]
    return F.conv2d(x, weight, bias, strides, [pads[0], pads[1]], dilations, group)


def _fft_size(n: int) -> int:
    """The smallest 2^a · 3^b · 5^c at least ``n`` (sizes the FFT is fast for)."""
    best = 1 << (n - 1).bit_length()
    five = 1
    while five < best:
        three = five
        while three < best:
            two = three
            while two < n:
                two *= 2
            best = min(best, two)
            three *= 3
        five *= 5
    return best


def _kernel_matrices(weight: Tensor, size: int) -> Tensor:
    """The kernel's spectrum, conjugated (a correlation), as one real matrix per kernel row and frequency bin that
    multiplies a row of the input's spectrum, channels' (real, imaginary) interleaved, into the output channels'
    (real, imaginary): (rows, bins, 2·C, 2·O)."""
    spectrum = torch.fft.rfft(weight, size).conj()  # (out, channels, rows, bins)
    out, channels, rows, bins = spectrum.shape
    real = spectrum.real.permute(2, 3, 1, 0)  # (rows, bins, channels, out)
    imaginary = spectrum.imag.permute(2, 3, 1, 0)
    matrix = weight.new_zeros(rows, bins, channels, 2, out, 2)
    # (x + iy)(a + ib) = (xa − yb) + i(xb + ya)
    matrix[:, :, :, 0, :, 0] = real
    matrix[:, :, :, 1, :, 0] = -imaginary
    matrix[:, :, :, 0, :, 1] = imaginary
    matrix[:, :, :, 1, :, 1] = real
    return matrix.reshape(rows, bins, 2 * channels, 2 * out)


def _derived(cache: dict | None, key: tuple, make: Callable[[], Tensor]) -> Tensor:
    """``make()``, kept in ``cache`` under ``key`` where there is a cache."""
    if cache is None:
        return make()
    if key not in cache:
        cache[key] = make()
    return cache[key]


def conv_fourier(x: Tensor, weight: Tensor, bias: Tensor | None, pads: list[int], cache: dict | None = None) -> Tensor:
    """A stride-1 2-D convolution (ONNX's: a cross-correlation) whose kernel is wide along the last axis: the input's
    spectrum along that axis (bins first, so each bin's rows are one matrix), a matrix product per bin and kernel row
    over the input channels, and the inverse transform."""
    x = F.pad(x, [pads[1], pads[3], pads[0], pads[2]])
    batch, channels, height, width = x.shape
    out_channels, _, rows, taps = weight.shape
    out_height, out_width = height - rows + 1, width - taps + 1
    size = _fft_size(width)
    planes = x.permute(3, 0, 2, 1).contiguous()  # (width, batch, height, channels)
    spectrum = torch.view_as_real(torch.fft.rfft(planes, size, dim=0))  # (bins, batch, height, channels, 2)
    bins = spectrum.shape[0]
    spectrum = spectrum.reshape(bins, batch, height, 2 * channels)
    matrices = _derived(cache, ("fourier", size), lambda: _kernel_matrices(weight, size))
    results = []
    for b in range(batch):
        result = torch.bmm(spectrum[:, b, :out_height], matrices[0])  # (bins, out_height, 2 · out)
        for r in range(1, rows):
            result.baddbmm_(spectrum[:, b, r : r + out_height], matrices[r])
        results.append(result)
    product = torch.view_as_complex(torch.stack(results, 1).reshape(bins, batch, out_height, out_channels, 2))
    out = torch.fft.irfft(product, size, dim=0)[:out_width].permute(1, 3, 2, 0)  # (batch, out, out_height, width)
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out


def conv_filter(
    x: Tensor, weight: Tensor, bias: Tensor | None, pads: list[int], stride: int, cache: dict | None = None
) -> Tensor:
    """A one-channel signal through long filters (1 × N kernels, one channel in), as a filter matrix
    (`stemdesk.core.resample.apply_filter_matrix`): where the stride is an eighth of the filter or more (the
    constant-Q kernels, one frame apart), one step of the filters a row; with a shorter stride and one filter (the
    octaves' low-pass before halving the rate), BLOCK steps a row (the spans overlap less)."""
    x = F.pad(x, [pads[1], pads[3], pads[0], pads[2]])
    batch, _, height, width = x.shape
    filters, taps = weight.shape[0], weight.shape[-1]
    block = 1 if filters > 1 or stride * 8 >= taps else BLOCK
    matrix = _derived(
        cache, ("filter", stride, block), lambda: filter_matrix(weight.reshape(filters, taps), stride, block)
    )
    out = apply_filter_matrix(x.reshape(batch * height, width), matrix, stride, filters)  # (rows, steps, filters)
    out = out.reshape(batch, height, -1, filters).permute(0, 3, 1, 2)
    return out if bias is None else out + bias.reshape(1, -1, 1, 1)


def conv_one_channel(x: Tensor, weight: Tensor, bias: Tensor | None, pads: list[int], strides: list[int]) -> Tensor:
    """A 2-D convolution to one output channel: every kernel tap's weighing of the input channels in one matrix
    product, then the taps' planes added, each shifted by its tap."""
    x = F.pad(x, [pads[1], pads[3], pads[0], pads[2]])
    batch, channels, height, width = x.shape
    _, _, rows, taps = weight.shape
    out_height = (height - rows) // strides[0] + 1
    out_width = (width - taps) // strides[1] + 1
    planes = torch.matmul(weight[0].permute(1, 2, 0).reshape(rows * taps, channels), x.reshape(batch, channels, -1))
    planes = planes.reshape(batch, rows, taps, height, width)
    out = None
    for r in range(rows):
        for t in range(taps):
            plane = planes[
                :,
                r,
                t,
                r : r + (out_height - 1) * strides[0] + 1 : strides[0],
                t : t + (out_width - 1) * strides[1] + 1 : strides[1],
            ]
            out = plane.clone() if out is None else out.add_(plane)
    assert out is not None
    if bias is not None:
        out = out + bias.reshape(1, 1, 1)
    return out.unsqueeze(1)


def _binary(function: Callable[[Tensor, Tensor], Tensor]) -> Callable[..., Tensor]:
    return lambda node, a, b: function(a, b)


def _unary(function: Callable[[Tensor], Tensor]) -> Callable[..., Tensor]:
    return lambda node, a: function(a)


OPERATORS: dict[str, Callable[..., Tensor]] = {
    "Reshape": _reshape,
    "Slice": _slice,
    "Pad": _pad,
    "Unsqueeze": _unsqueeze,
    "Conv": _conv,
    "Transpose": lambda node, x: x.permute(*_int_list(node, "perm", list(range(x.dim()))[::-1])),
    "Concat": lambda node, *xs: torch.cat(xs, dim=_int(node, "axis", 0)),
    "Cast": lambda node, x: x.to(_CAST[_int(node, "to", 1)]),
    "Shape": lambda node, x: torch.tensor(x.shape, dtype=torch.int64),
    "ReduceSum": _reduce("sum"),
    "ReduceMin": _reduce("min"),
    "ReduceMax": _reduce("max"),
    "Where": lambda node, condition, a, b: torch.where(condition, a, b),
    "Mul": _binary(torch.mul),
    "Add": _binary(torch.add),
    "Sub": _binary(torch.sub),
    "Div": _binary(torch.div),
    "Equal": _binary(torch.eq),
    "Neg": _unary(torch.neg),
    "Sqrt": _unary(torch.sqrt),
    "Log": _unary(torch.log),
    "Relu": _unary(torch.relu),
    "Sigmoid": _unary(torch.sigmoid),
}


class OnnxProgram:
    """A graph's nodes, in order, as torch operations on ``device``; call with the inputs by name."""

    def __init__(self, graph: OnnxGraph, device: torch.device | str = "cpu"):
        unknown = sorted({node.op_type for node in graph.nodes} - OPERATORS.keys())
        if unknown:
            raise ModelError(f"The ONNX graph uses operators StemDesk cannot run: {', '.join(unknown)}")
        self.device = torch.device(device)
        self.constants = {name: self._tensor(array) for name, array in graph.initializers.items()}
        self.nodes = graph.nodes
        self.inputs = graph.inputs
        self.outputs = graph.outputs
        self._derived: dict[str, dict] = {}  # per Conv node: what its weights give (kernel spectra, filter matrices)

    def _tensor(self, array: np.ndarray) -> Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        # integers (shapes, axes) stay on the CPU, where they are read
        return tensor.to(self.device) if tensor.is_floating_point() else tensor

    @torch.inference_mode()
    def __call__(self, **inputs: Tensor) -> dict[str, Tensor]:
        values = dict(self.constants)
        values.update({name: tensor.to(self.device) for name, tensor in inputs.items()})
        for node in self.nodes:
            arguments: list[Any] = [values[name] if name else None for name in node.inputs]
            if node.op_type == "Conv":
                result = _conv(node, *arguments, cache=self._derived.setdefault(node.outputs[0], {}))
            else:
                result = OPERATORS[node.op_type](node, *arguments)
            values[node.outputs[0]] = result
        return {name: values[name] for name in self.outputs}
