"""Basic Pitch's ONNX network run in torch (`stemdesk.transcribe.network`): the same activations as onnxruntime on
the same file, and its two other ways of convolving the same sums as torch's own convolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_transcribe import MELODY, RATE, drum_pattern, tones

from stemdesk.core.resample import resample
from stemdesk.io.onnx_reader import read_onnx
from stemdesk.transcribe.network import conv_filter, conv_fourier, conv_one_channel
from stemdesk.transcribe.pitched import WINDOW, BasicPitch


def windows() -> list[np.ndarray]:
    """Three inputs the network sees: a melody, a drum pattern and quiet noise, each 2 s mono at 22 050 Hz."""
    melody = tones(MELODY)[0]
    drums = drum_pattern()[0][0]
    noise = np.random.default_rng(3).standard_normal(WINDOW * 2) * 1e-3
    out = []
    for audio in (melody, drums, noise):
        mono = resample(torch.from_numpy(np.ascontiguousarray(audio, np.float32))[None], RATE, 22050)[0].numpy()
        out.append(np.pad(mono, (0, max(0, WINDOW - mono.size)))[:WINDOW].astype(np.float32))
    return out


def test_the_network_in_torch_gives_what_onnxruntime_gives(basic_pitch):
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(basic_pitch), options, providers=["CPUExecutionProvider"])
    model = BasicPitch(basic_pitch)
    assert read_onnx(basic_pitch.read_bytes()).outputs == [o.name for o in session.get_outputs()]
    for index, window in enumerate(windows()):
        expected = dict(
            zip([o.name for o in session.get_outputs()], session.run(None, {model.input: window[None, :, None]}))
        )
        got = model.program(**{model.input: torch.from_numpy(window[None, :, None])})
        for name, value in expected.items():  # contour (172 × 264), note and onset (172 × 88), each in 0..1
            assert got[name].shape == value.shape
            # float rounding (the quiet noise's log scale spreads it most), far below what moves a note: the
            # decoding's thresholds are 0.3 and 0.5
            assert float(np.abs(got[name].numpy() - value).max()) < 1e-3, name
        if index == 0:  # the melody's notes were there
            assert float(expected["StatefulPartitionedCall:1"].max()) > 0.5


@pytest.mark.parametrize(
    ("batch", "channels", "out", "rows", "taps", "pads"),
    [(1, 8, 8, 3, 39, [1, 19, 1, 19]), (2, 3, 5, 1, 16, [0, 7, 0, 8]), (1, 1, 1, 1, 256, [0, 0, 0, 0])],
)
def test_a_wide_kernel_in_the_fourier_domain_is_the_convolution(batch, channels, out, rows, taps, pads):
    rng = torch.Generator().manual_seed(1)
    x = torch.randn(batch, channels, 30, 300, generator=rng)
    weight = torch.randn(out, channels, rows, taps, generator=rng)
    bias = torch.randn(out, generator=rng)
    expected = F.conv2d(F.pad(x, [pads[1], pads[3], pads[0], pads[2]]), weight, bias)
    got = conv_fourier(x, weight, bias, pads)
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) < 1e-4 * float(expected.abs().max())


@pytest.mark.parametrize(("rows", "taps", "strides"), [(7, 3, [1, 1]), (5, 5, [1, 1]), (3, 3, [1, 2])])
def test_a_convolution_to_one_channel_by_weighed_planes_is_the_convolution(rows, taps, strides):
    rng = torch.Generator().manual_seed(2)
    x = torch.randn(2, 32, 40, 88, generator=rng)
    weight = torch.randn(1, 32, rows, taps, generator=rng)
    bias = torch.randn(1, generator=rng)
    pads = [rows // 2, taps // 2, rows // 2, taps // 2]
    expected = F.conv2d(x, weight, bias, strides, [rows // 2, taps // 2])
    got = conv_one_channel(x, weight, bias, pads, strides)
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) < 1e-5 * float(expected.abs().max())


@pytest.mark.parametrize(
    ("length", "stride", "filters"), [(44098, 2, 1), (1000, 1, 1), (300, 3, 1), (22178, 128, 36), (427, 1, 36)]
)
def test_long_filters_by_matrix_products_are_the_convolution(length, stride, filters):
    rng = torch.Generator().manual_seed(3)
    x = torch.randn(1, 1, 1, length, generator=rng)
    weight = torch.randn(filters, 1, 1, 256, generator=rng)
    expected = F.conv2d(x, weight, None, (1, stride))
    got = conv_filter(x, weight, None, [0, 0, 0, 0], stride)
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) < 1e-5 * float(expected.abs().max())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_network_on_a_gpu_gives_what_it_gives_on_the_cpu(basic_pitch):
    cpu, gpu = BasicPitch(basic_pitch, "cpu"), BasicPitch(basic_pitch, "cuda")
    for window in windows():
        x = torch.from_numpy(window[None, :, None])
        a, b = cpu.program(**{cpu.input: x}), gpu.program(**{gpu.input: x})
        for name in cpu.outputs.values():
            assert float((a[name] - b[name].cpu()).abs().max()) < 1e-3, name
