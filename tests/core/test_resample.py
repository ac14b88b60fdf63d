"""Resampling (`stemdesk.core.resample`): the filter matrix the CPU uses for small ratios gives the strided
convolution's samples (a sine's pitch and length, and blocks against the whole: tests/io/test_htdemucs.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from stemdesk.core.resample import _kernel, resample, resampled_length


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
