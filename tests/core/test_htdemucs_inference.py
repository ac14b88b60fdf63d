"""HTDemucs's inference path computes what its modules compute.

Separating (no gradients) runs each DConv layer as one batched product with the norm folded into it
(`_dconv_layer_inference`); training runs the modules as written. Both must give the same numbers, on the
frequency and the time branch, for inputs far from zero mean, and for the whole network.
"""

from __future__ import annotations

import pytest
import torch
from helpers import small_htdemucs

from stemdesk.core.estimators.htdemucs import DConv, HTDemucs, _over_frequencies


def relative_error(reference: torch.Tensor, other: torch.Tensor) -> float:
    return float((reference - other).abs().max() / reference.abs().max())


def randomised(dconv: DConv, seed: int) -> DConv:
    """Norm gains and offsets, biases and layer scales away from their starting values, so each takes part."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in dconv.named_parameters():
            if not name.endswith("weight") or parameter.dim() == 1:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.7 + 0.3)
    return dconv.eval()


@pytest.mark.parametrize("channels", [8, 48, 96])
@pytest.mark.parametrize("offset", [0.0, 40.0])
def test_a_dconv_computes_the_same_with_and_without_gradients(channels, offset):
    dconv = randomised(DConv(channels), seed=channels)
    torch.manual_seed(1)
    x = torch.randn(5, channels, 300) * 3 + offset  # a batch of rows, as the frequency branch makes them
    with torch.enable_grad():
        reference = dconv(x).detach()
    with torch.inference_mode():
        fast = dconv(x)
    assert relative_error(reference, fast) < 2e-6


def test_a_dconv_over_frequencies_and_over_a_long_waveform_matches():
    dconv = randomised(DConv(16), seed=3)
    torch.manual_seed(2)
    spectral, waveform = torch.randn(2, 16, 64, 50), torch.randn(1, 16, 40000) - 2
    with torch.enable_grad():
        references = [_over_frequencies(dconv, spectral).detach(), dconv(waveform).detach()]
    with torch.no_grad():
        fast = [_over_frequencies(dconv, spectral), dconv(waveform)]
    for reference, result in zip(references, fast):
        assert relative_error(reference, result) < 2e-6


def test_the_whole_network_separates_as_it_trains():
    model: HTDemucs = small_htdemucs()
    torch.manual_seed(4)
    audio = torch.randn(2, 2, model.segment) * 0.3
    with torch.enable_grad():
        reference = model(audio).detach()
    with torch.inference_mode():
        fast = model(audio)
    assert relative_error(reference, fast) < 1e-5
    # and gradients still flow through the modules when training
    model.train()
    model(audio).pow(2).mean().backward()
    assert all(p.grad is not None for p in model.decoder[-1].dconv.parameters())
