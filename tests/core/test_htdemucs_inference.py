"""HTDemucs's inference path computes what its modules compute.

Separating (no gradients) runs each DConv layer as one batched product with the norm folded into it
(`_dconv_layer_inference`), a cache-sized block of rows or frames at a time, its first convolution as one product
for all taps (`_hidden`), the frequency decoders' transposed convolutions on channels-last input and the inverse
STFT from a spectrogram written once into its padding (`_padded_spectrogram`); training runs the modules as written.
Both must give the same numbers, on the frequency and the time branch, for inputs far from zero mean, for blocks
that do not divide the rows or frames, and for the whole network.
"""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import small_htdemucs

from stemdesk.core.estimators import htdemucs
from stemdesk.core.estimators.htdemucs import ChannelGroupNorm, DConv, HTDemucs, _hidden, _over_frequencies
from stemdesk.core.precision import apply_precision


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
    spectral, waveform = torch.randn(2, 16, 64, 300), torch.randn(2, 16, 40000) - 2
    # 300 frames: blocks of rows that do not divide the 64; 40000 samples: blocks of frames, the last shorter
    assert 64 % (htdemucs._block_positions(spectral) // 300) and 40000 % htdemucs._block_positions(waveform)
    with torch.no_grad():  # first, so no freed block of the references holds their values by chance
        fast = [_over_frequencies(dconv, spectral), dconv(waveform)]
    with torch.enable_grad():
        references = [_over_frequencies(dconv, spectral).detach(), dconv(waveform).detach()]
    for reference, result in zip(references, fast):
        assert relative_error(reference, result) < 2e-6


def test_the_taps_product_is_the_convolution_and_a_reduced_precision_one_keeps_its_module():
    torch.manual_seed(5)
    layer = randomised(DConv(48), seed=5).layers[1]  # dilation 2
    x = torch.randn(3, 48, 200) + 1
    conv1, norm1, gelu = list(layer.children())[:3]
    with torch.inference_mode():
        assert relative_error(gelu(norm1(conv1(x))), _hidden(layer, x)) < 1e-6
    # in bfloat16 (an inner layer under the precision policy) the module runs, rounding as the policy says
    model = apply_precision(small_htdemucs(), "bf16")
    layer = model.encoder[-1].dconv.layers[0]
    conv1, norm1, gelu = list(layer.children())[:3]
    assert conv1.weight.dtype == torch.bfloat16
    x = torch.randn(4, conv1.in_channels, 30)
    with torch.inference_mode():
        assert torch.equal(_hidden(layer, x), gelu(norm1(conv1(x))))


@pytest.mark.parametrize("channels_last", [False, True])
def test_the_spectrogram_written_into_its_padding_inverts_as_the_padded_one(channels_last):
    model = small_htdemucs()
    torch.manual_seed(6)
    x = torch.randn(2, 4, 4, 256, 17)  # (batch, sources, real and imaginary of 2 channels, freqs, frames)
    if channels_last:  # as the last frequency decoder leaves it on the CPU: copied a block of bins at a time
        x = x.view(2, 16, 256, 17).contiguous(memory_format=torch.channels_last).view(2, 4, 4, 256, 17)
        assert x.stride(2) == 1
    complex_spec = torch.view_as_complex(x.view(2, 4, 2, 2, 256, 17).permute(0, 1, 2, 4, 5, 3).contiguous())
    assert torch.equal(model._istft(model._padded_spectrogram(x), 2048), model.ispec(complex_spec, 2048))
    # still normalised, de-normalised as it is written: each song of the batch by its own scale and shift
    scale, shift = torch.tensor([0.5, 3.0]).view(2, 1, 1, 1), torch.tensor([-0.25, 2.0]).view(2, 1, 1, 1)
    written = model._padded_spectrogram(x, scale, shift)
    assert torch.equal(written, model._padded_spectrogram(x * scale[:, None] + shift[:, None]))


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


@pytest.mark.parametrize("frames", [1, 3, 5])
def test_a_dconv_shorter_than_its_dilation_computes_as_its_modules(frames):
    dconv = randomised(DConv(16, depth=3), seed=7)  # its last layer's taps reach 4 frames either side
    torch.manual_seed(8)
    x = torch.randn(2, 16, frames) + 1
    with torch.inference_mode():
        fast = dconv(x)
    with torch.enable_grad():
        reference = dconv(x).detach()
    assert relative_error(reference, fast) < 2e-6


def test_the_feed_forward_in_bfloat16_gives_what_its_modules_give():
    """Inference runs GELU on the first layer's bfloat16 output instead of the modules' float32 round trip: the same
    numbers, bit for bit, in float32."""
    model = apply_precision(small_htdemucs(), "bf16")
    layer = model.crosstransformer.layers[0]
    assert layer.linear1.weight.dtype == torch.bfloat16  # the path under test
    torch.manual_seed(7)
    x = torch.randn(1, 50, layer.linear1.in_features) * 3
    with torch.enable_grad():  # the modules, with their precision hooks
        reference = layer._feed_forward(x).detach()
    with torch.inference_mode():
        fast = layer._feed_forward(x)
    assert fast.dtype == torch.float32 and torch.equal(fast, reference)


@pytest.mark.parametrize("cross", [False, True])
def test_attention_in_bfloat16_on_the_cpu_gives_what_the_fused_kernel_gives(cross):
    """Separating in bfloat16 on the CPU computes attention a block of queries at a time with the scores rounded to
    bfloat16; the fused kernel (the path with gradients) keeps them float32. Both stay as close to float32 as
    bfloat16 allows, for a batch of two and query counts that are not a multiple of the block."""
    model = apply_precision(small_htdemucs(), "bf16")
    layer = model.crosstransformer.layers[1 if cross else 0]
    attention = layer.cross_attn if cross else layer.self_attn
    assert attention.in_proj_weight.dtype == torch.bfloat16  # the path under test
    torch.manual_seed(9)
    dim = attention.in_proj_weight.shape[1]
    query = torch.randn(2, 600, dim) * 2  # two blocks of 256 queries and a part of one
    key = torch.randn(2, 77, dim) * 2 if cross else query
    exact = copy.deepcopy(attention).float()
    exact._forward_pre_hooks.clear()
    exact._forward_hooks.clear()
    with torch.enable_grad():
        fused = attention(query, key).detach()
        reference = exact(query, key).detach()
    with torch.inference_mode():
        blocked = attention(query, key)
    assert blocked.dtype == torch.float32
    assert relative_error(reference, fused) < 0.02
    assert relative_error(reference, blocked) < 0.02
    assert relative_error(fused, blocked) < 0.02


def test_the_transformer_output_norm_normalises_as_group_norm_does():
    norm = ChannelGroupNorm(24)
    torch.manual_seed(10)
    norm.weight.data.normal_()
    norm.bias.data.normal_()
    x = torch.randn(3, 50, 24) * 4 + 2  # (batch, tokens, channels)
    reference = torch.nn.GroupNorm(1, 24)
    reference.load_state_dict(norm.state_dict())
    with torch.no_grad():
        out = norm(x)
        assert out.is_contiguous()  # the residual stream keeps its layout
        assert relative_error(reference(x.transpose(1, 2)).transpose(1, 2), out) < 1e-6
