"""Resampling (`stemdesk.core.resample`): the block-matrix product the CPU uses for small ratios gives the strided
convolution's samples, and a resampled tone keeps its pitch and level."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from stemdesk.core.resample import _kernel, resample, resample_in_blocks, resampled_length


@pytest.mark.parametrize(("old", "new"), [(44100, 22050), (22050, 44100), (32000, 48000), (48000, 44100)])
def test_the_block_product_is_the_strided_convolution(old, new):
    x = torch.randn(3, 50_001, generator=torch.Generator().manual_seed(0))
    g = math.gcd(old, new)
    kernel, width = _kernel(old // g, new // g, x.device, x.dtype)
    flat = F.pad(x.reshape(-1, 1, x.shape[-1]), (width, width + old // g), mode="replicate")
    expected = F.conv1d(flat, kernel, stride=old // g).transpose(1, 2).reshape(3, -1)
    expected = expected[:, : resampled_length(x.shape[-1], old, new)]
    got = resample(x, old, new)
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) < 1e-5


def test_a_tone_resampled_keeps_its_pitch_and_level():
    t = torch.arange(44100 * 3) / 44100
    tone = 0.5 * torch.sin(2 * math.pi * 440 * t)
    down = resample_in_blocks(tone[None], 44100, 22050, block=20_000)[0]
    assert down.shape[-1] == 66150
    spectrum = torch.fft.rfft(down[1000:-1000] * torch.hann_window(64150))
    assert abs(int(spectrum.abs().argmax()) * 22050 / 64150 - 440) < 1
    assert abs(float(down[1000:-1000].abs().max()) - 0.5) < 0.01
