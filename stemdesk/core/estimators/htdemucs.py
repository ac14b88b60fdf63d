"""Hybrid Transformer Demucs (Rouard, Massa and Défossez, 2023) behind StemDesk's waveform-estimator interface.

A waveform branch and a spectrogram branch (complex STFT as channels, 4096/1024) of convolutional encoders meet in
a cross-domain transformer; their decoders' outputs are added. The model predicts each stem's waveform, not a mask,
so its stems need not sum to the mixture: `Separator` spreads the small residual over them (the core's null rule).

The layers keep the parameter names of the reference implementation (the ``demucs`` package, MIT), so its state
dicts load as they are. This is a port for inference and fine-tuning of the released configuration (four stems,
depth 4, 48 channels, 512-channel bottleneck, five transformer layers): sparse attention, Wiener filtering and the
other training options of the reference are not carried over.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import WaveformEstimator


class LayerScale(nn.Module):
    """A learnt per-channel scale of a residual branch (Touvron et al. 2021)."""

    def __init__(self, channels: int, init: float = 0.0, channel_last: bool = False):
        super().__init__()
        self.channel_last = channel_last
        self.scale = nn.Parameter(torch.full((channels,), float(init)))

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * x if self.channel_last else self.scale[:, None] * x


class DConv(nn.Module):
    """The residual branch of each encoder layer: dilated 1-d convolutions on a compressed channel space."""

    def __init__(self, channels: int, compress: float = 8, depth: int = 2, init: float = 1e-3):
        super().__init__()
        hidden = int(channels / compress)
        self.layers = nn.ModuleList()
        for d in range(depth):
            dilation = 2**d
            self.layers.append(
                nn.Sequential(
                    nn.Conv1d(channels, hidden, 3, dilation=dilation, padding=dilation),
                    nn.GroupNorm(1, hidden),
                    nn.GELU(),
                    nn.Conv1d(hidden, 2 * channels, 1),
                    nn.GroupNorm(1, 2 * channels),
                    nn.GLU(1),
                    LayerScale(channels, init),
                )
            )

    def forward(self, x: Tensor) -> Tensor:
        if not torch.is_grad_enabled():  # separating: the same sums, with far less memory traffic
            return _dconv_inference(self, x)
        for layer in self.layers:
            x = x + layer(x)
        return x


# How many (row × frame) positions a block of the CPU inference path covers per thread: its widest tensor (2 ·
# channels of them) then stays in the cores' caches, so the sigmoid, the GLU and the residual sum read it from
# there instead of from memory (the block sizes tried and their speed-ups: docs/htdemucs.md).
_BLOCK_POSITIONS = 4096


def _block_positions(x: Tensor) -> int:
    """Positions per block for ``x``: on a GPU one block (its caches are not the point, its launches are)."""
    return _BLOCK_POSITIONS * torch.get_num_threads() if x.device.type == "cpu" else x.numel()


def _dconv_inference(dconv: DConv, x: Tensor) -> Tensor:
    """``dconv(x)`` for ``x`` (rows, channels, frames) without gradients: every layer through
    `_dconv_layer_inference`."""
    for layer in dconv.layers:
        x = _dconv_layer_inference(layer, x)
    return x


def _hidden(layer: nn.Module, x: Tensor) -> Tensor:
    """The narrow tensor of a DConv layer, ``gelu(norm1(conv1(x)))``. A float32 ``conv1`` (few output channels,
    for which oneDNN's kernels are slow) is computed as one matrix product for all its taps, then the taps' shifted
    rows are added; a reduced-precision one (`stemdesk.core.precision`) runs as the module, hooks and all."""
    conv1, norm1, gelu = list(layer.children())[:3]
    assert isinstance(conv1, nn.Conv1d) and conv1.bias is not None
    if conv1.weight.dtype != torch.float32 or x.dtype != torch.float32 or conv1.stride != (1,):
        return gelu(norm1(conv1(x)))
    weight = conv1.weight  # (H, C, taps)
    hidden, _, taps = weight.shape
    dilation, padding, frames = conv1.dilation[0], int(conv1.padding[0]), x.shape[-1]
    each = torch.matmul(weight.permute(2, 0, 1).reshape(taps * hidden, -1), x)  # (N, taps · H, T)
    h = conv1.bias[None, :, None].expand(x.shape[0], hidden, frames).clone()
    for tap in range(taps):
        shift = tap * dilation - padding  # out[t] += each tap's product at t + shift (zero outside)
        if abs(shift) >= frames:  # this tap reads only the zero padding
            continue
        part = each[:, tap * hidden : (tap + 1) * hidden]
        if shift >= 0:
            h[:, :, : frames - shift] += part[:, :, shift:]
        else:
            h[:, :, -shift:] += part[:, :, : frames + shift]
    return gelu(norm1(h))


def _dconv_layer_inference(layer: nn.Module, x: Tensor) -> Tensor:
    """``x + layer(x)`` for one DConv layer, without its widest tensors' extra passes.

    The layer widens its small hidden tensor ``h`` (``channels / 8`` channels) with a 1×1 convolution to
    ``2 · channels``, normalises that over all its channels and times (GroupNorm with one group), halves it with GLU
    and scales it. Computed as written, the wide tensor is written once by the convolution (whose oneDNN kernel is
    slow for so few input channels), read and written again by the norm, the GLU and the scale. Here the norm's
    mean and variance come from ``h`` alone (its mean and its centred Gram matrix, exactly, in a stable form), the
    norm's and the layer scale's factors and offsets are folded into a per-item copy of the convolution's weights
    (the offsets as a column that multiplies a row of ones), and one batched matrix product writes the normalised
    wide tensor, a cache-sized block at a time on the CPU (`_BLOCK_POSITIONS`), which the sigmoid and the residual
    sum finish while it is in cache. The result equals the module's to float32 rounding
    (tests/core/test_htdemucs_inference.py)."""
    conv2, norm2, _glu, scale = list(layer.children())[3:]
    assert isinstance(conv2, nn.Conv1d) and isinstance(norm2, nn.GroupNorm) and isinstance(scale, LayerScale)
    assert conv2.bias is not None and norm2.weight is not None and norm2.bias is not None
    h = _hidden(layer, x).float()  # (N, H, T)
    batch, _hidden_channels, frames = h.shape
    weight = conv2.weight[:, :, 0].float()  # (2C, H)
    bias = conv2.bias.float()  # (2C,)
    wide = weight.shape[0]
    channels = wide // 2
    mean_h = h.mean(dim=-1)  # (N, H)
    centred = h - mean_h[:, :, None]
    gram = torch.bmm(centred, centred.transpose(1, 2))  # (N, H, H)
    channel_mean = mean_h @ weight.t() + bias  # (N, 2C): each wide channel's mean over time
    mean = channel_mean.mean(dim=1)  # (N,)
    spread = torch.einsum("nij,ij->n", gram, weight.t() @ weight)  # Σ over channels and times of (z - its mean)²
    spread = spread + frames * (channel_mean - mean[:, None]).pow(2).sum(dim=1)
    inv_std = (spread / (wide * frames) + norm2.eps).rsqrt()  # (N,)
    gain = norm2.weight.float()[None, :] * inv_std[:, None]  # (N, 2C)
    offset = norm2.bias.float()[None, :] + gain * (bias[None, :] - mean[:, None])
    layer_scale = torch.cat([scale.scale.float(), scale.scale.new_ones(channels, dtype=torch.float32)])
    folded = torch.cat([(gain * layer_scale)[:, :, None] * weight[None], (offset * layer_scale)[:, :, None]], dim=2)
    h = torch.cat([h, h.new_ones(batch, 1, frames)], dim=1)  # (N, H + 1, T): the last row carries the offsets
    out = torch.empty_like(x, dtype=torch.promote_types(x.dtype, torch.float32))
    positions = _block_positions(x)
    rows = max(1, positions // frames)
    span = frames if rows > 1 else positions
    for first in range(0, batch, rows):
        for start in range(0, frames, span):
            part = (slice(first, first + rows), slice(None), slice(start, start + span))
            y = torch.bmm(folded[part[0]], h[part])  # (rows, 2C, span), normalised and scaled
            torch.addcmul(x[part], y[:, :channels], y[:, channels:].sigmoid_(), out=out[part])
    return out


def _glu_of_pointwise(conv: nn.Conv1d | nn.Conv2d, x: Tensor) -> Tensor:
    """``glu(conv(x), dim=1)`` for a float32 1×1 convolution, without gradients: one matrix product per
    cache-sized block of positions, halved by GLU while in cache, so the doubled tensor is never written out.
    (oneDNN's 1×1 convolution on two threads was slower than one thread's.)"""
    assert conv.bias is not None
    batch, channels = x.shape[:2]
    weight, bias = conv.weight.reshape(conv.out_channels, channels), conv.bias[:, None]
    half = conv.out_channels // 2
    flat = x.reshape(batch, channels, -1)
    out = x.new_empty(batch, half, flat.shape[-1])
    span = _block_positions(x)
    for item in range(batch):
        for start in range(0, flat.shape[-1], span):
            y = torch.addmm(bias, weight, flat[item, :, start : start + span])  # (2 · half, span)
            torch.mul(y[:half], y[half:].sigmoid_(), out=out[item, :, start : start + span])
    return out.view(batch, half, *x.shape[2:])


def _over_frequencies(module: nn.Module, y: Tensor) -> Tensor:
    """Run a 1-d module over time for every frequency row of (batch, channels, freqs, frames). Without gradients,
    a DConv runs a cache-sized block of rows at a time through both its layers, and no copy of the whole tensor
    is made to put the rows first."""
    batch, channels, freqs, frames = y.shape
    if isinstance(module, DConv) and not torch.is_grad_enabled():
        out = torch.empty_like(y)
        rows = max(1, _block_positions(y) // frames)
        for item in range(batch):
            for first in range(0, freqs, rows):
                block = y[item, :, first : first + rows].transpose(0, 1)  # (rows, channels, frames)
                out[item, :, first : first + rows] = _dconv_inference(module, block.contiguous()).transpose(0, 1)
        return out
    y = y.permute(0, 2, 1, 3).reshape(-1, channels, frames)
    return module(y).view(batch, freqs, channels, frames).permute(0, 2, 1, 3)


class EncoderLayer(nn.Module):
    """Strided convolution, GELU, the DConv branch, a 1×1 "rewrite" convolution with GLU. ``freq``: the layer
    convolves along frequency (2-d kernels of height ``kernel``), else along time."""

    def __init__(self, chin: int, chout: int, freq: bool, kernel: int = 8, stride: int = 4, dconv: dict | None = None):
        super().__init__()
        self.freq, self.stride = freq, stride
        pad = kernel // 4
        self.conv: nn.Conv1d | nn.Conv2d
        self.rewrite: nn.Conv1d | nn.Conv2d
        if freq:
            self.conv = nn.Conv2d(chin, chout, (kernel, 1), (stride, 1), (pad, 0))
            self.rewrite = nn.Conv2d(chout, 2 * chout, 1)
        else:
            self.conv = nn.Conv1d(chin, chout, kernel, stride, pad)
            self.rewrite = nn.Conv1d(chout, 2 * chout, 1)
        self.dconv = DConv(chout, **(dconv or {}))

    def forward(self, x: Tensor, inject: Tensor | None = None) -> Tensor:
        if not self.freq and x.shape[-1] % self.stride:
            x = F.pad(x, (0, self.stride - x.shape[-1] % self.stride))
        y = self.conv(x)
        if inject is not None:
            y = y + (inject[:, :, None] if inject.dim() == 3 and y.dim() == 4 else inject)
        y = F.gelu(y)
        y = _over_frequencies(self.dconv, y) if self.freq else self.dconv(y)
        if not torch.is_grad_enabled() and self.rewrite.weight.dtype == torch.float32:
            return _glu_of_pointwise(self.rewrite, y)
        return F.glu(self.rewrite(y), dim=1)


class DecoderLayer(nn.Module):
    """The skip connection added, a 3-wide "rewrite" convolution with GLU, the DConv branch (when ``dconv``), then
    a transposed convolution."""

    def __init__(
        self,
        chin: int,
        chout: int,
        freq: bool,
        last: bool,
        kernel: int = 8,
        stride: int = 4,
        context: int = 1,
        dconv: dict | None = None,
    ):
        super().__init__()
        self.freq, self.last, self.pad = freq, last, kernel // 4
        self.conv_tr: nn.ConvTranspose1d | nn.ConvTranspose2d
        self.rewrite: nn.Conv1d | nn.Conv2d
        if freq:
            self.conv_tr = nn.ConvTranspose2d(chin, chout, (kernel, 1), (stride, 1))
            self.rewrite = nn.Conv2d(chin, 2 * chin, 1 + 2 * context, 1, context)
        else:
            self.conv_tr = nn.ConvTranspose1d(chin, chout, kernel, stride)
            self.rewrite = nn.Conv1d(chin, 2 * chin, 1 + 2 * context, 1, context)
        self.dconv = DConv(chin, **dconv) if dconv is not None else None

    def forward(self, x: Tensor, skip: Tensor, length: int) -> Tensor:
        y = F.glu(self.rewrite(x + skip), dim=1)
        if self.dconv is not None:
            y = _over_frequencies(self.dconv, y) if self.freq else self.dconv(y)
        if self.freq and not torch.is_grad_enabled() and y.device.type == "cpu":
            # oneDNN's transposed convolution is 2-3x faster on channels-last input (the copy included): 1.07x a
            # bfloat16 segment on one thread (docs/htdemucs.md). Training keeps the layout it had.
            y = y.contiguous(memory_format=torch.channels_last)
        z = self.conv_tr(y)
        z = z[..., self.pad : -self.pad, :] if self.freq else z[..., self.pad : self.pad + length]
        return z if self.last else F.gelu(z)


class ScaledEmbedding(nn.Module):
    """The frequency embedding: an embedding table read times ``scale`` (a learning-rate boost in training)."""

    def __init__(self, num: int, dim: int, scale: float = 10.0):
        super().__init__()
        self.embedding = nn.Embedding(num, dim)
        self.scale = scale

    def forward(self, index: Tensor) -> Tensor:
        return self.embedding(index) * self.scale


class ChannelGroupNorm(nn.GroupNorm):
    """GroupNorm over (batch, tokens, channels): one group normalises all tokens and channels together."""

    def __init__(self, channels: int):
        super().__init__(1, channels)

    def forward(self, x: Tensor) -> Tensor:
        # One mean and variance per item, then each channel's scale and shift, applied in the tokens' own layout
        # (transposing to the module's layout and back left the residual stream strided, and every sum with it slow).
        normalised = F.group_norm(x.reshape(x.shape[0], 1, -1), 1, eps=self.eps).view_as(x)
        return torch.addcmul(self.bias, normalised, self.weight)


class Attention(nn.Module):
    """Multi-head attention with ``torch.nn.MultiheadAttention``'s parameters (in_proj_*, out_proj), computed with
    the fused scaled-dot-product kernel."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, query: Tensor, key: Tensor) -> Tensor:
        batch, n_q, dim = query.shape
        w, b = self.in_proj_weight, self.in_proj_bias
        if w.dtype == torch.bfloat16 and w.device.type == "cpu" and not torch.is_grad_enabled():
            return self.out_proj(_attention_in_blocks(self.heads, query, key, w, b))
        if query is key:
            q, k, v = F.linear(query, w, b).chunk(3, dim=-1)
        else:
            q = F.linear(query, w[:dim], b[:dim])
            k, v = F.linear(key, w[dim:], b[dim:]).chunk(2, dim=-1)

        def heads(t: Tensor) -> Tensor:
            return t.unflatten(-1, (self.heads, dim // self.heads)).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v))
        return self.out_proj(out.transpose(1, 2).reshape(batch, n_q, dim))


def _attention_in_blocks(
    heads: int, query: Tensor, key: Tensor, weight: Tensor, bias: Tensor, block: int = 256
) -> Tensor:
    """`Attention` before its output projection, in bfloat16 on the CPU without a gradient: query (batch, n_q,
    dim) attends to key (batch, n_k, dim) with the stacked in-projection ``weight`` (3·dim, dim) and ``bias`` →
    (batch, n_q, dim).

    PyTorch's fused CPU kernel runs bfloat16 no faster than float32 (`docs/htdemucs.md`); plain bfloat16 matrix
    products run at twice float32's speed when both operands are contiguous. So the keys are projected straight
    into the layout the scores need (heads, dim, n_k), and one head at a time (its keys and values stay in the
    core's cache), a block of queries gets its scores as one product, a softmax (float32 inside, bfloat16 out) and
    one product with the values. The scores are rounded to bfloat16 before the softmax, where the fused kernel
    keeps them float32; the stems stay as far from float32's as before (measured on real segments,
    `docs/htdemucs.md`)."""
    batch, n_q, dim = query.shape
    n_k, d = key.shape[1], dim // heads
    scale = d**-0.5  # 1/8 for HTDemucs: a power of two, so folding it into the weights rounds nothing
    q = F.linear(query, weight[:dim] * scale, bias[:dim] * scale)
    q = q.view(batch, n_q, heads, d).transpose(1, 2).reshape(batch * heads, n_q, d)
    keys = torch.empty(batch, dim, n_k, dtype=query.dtype, device=query.device)
    for item in range(batch):
        torch.addmm(bias[dim : 2 * dim, None], weight[dim : 2 * dim], key[item].t(), out=keys[item])
    keys = keys.view(batch * heads, d, n_k)
    values = F.linear(key, weight[2 * dim :], bias[2 * dim :])
    values = values.view(batch, n_k, heads, d).transpose(1, 2).contiguous().view(batch * heads, n_k, d)
    out = torch.empty(batch * heads, n_q, d, dtype=query.dtype, device=query.device)
    for q_h, keys_h, values_h, out_h in zip(q, keys, values, out, strict=True):
        for start in range(0, n_q, block):
            scores = torch.mm(q_h[start : start + block], keys_h)
            torch.mm(torch.softmax(scores, dim=-1), values_h, out=out_h[start : start + block])
    return out.view(batch, heads, n_q, d).transpose(1, 2).reshape(batch, n_q, dim)


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer with layer scale and a GroupNorm at the end; ``cross`` attends to another
    sequence (the other branch) instead of itself."""

    def __init__(self, dim: int, heads: int, hidden: int, cross: bool):
        super().__init__()
        self.cross = cross
        attention = Attention(dim, heads)
        if cross:
            self.cross_attn = attention
            self.norm3 = nn.LayerNorm(dim)
        else:
            self.self_attn = attention
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm_out = ChannelGroupNorm(dim)
        self.gamma_1 = LayerScale(dim, 1e-4, channel_last=True)
        self.gamma_2 = LayerScale(dim, 1e-4, channel_last=True)

    def forward(self, x: Tensor, other: Tensor | None = None) -> Tensor:
        if self.cross:
            x = x + self.gamma_1(self.cross_attn(self.norm1(x), self.norm2(other)))
            x = x + self.gamma_2(self._feed_forward(self.norm3(x)))
        else:
            y = self.norm1(x)
            x = x + self.gamma_1(self.self_attn(y, y))
            x = x + self.gamma_2(self._feed_forward(self.norm2(x)))
        return self.norm_out(x)

    def _feed_forward(self, x: Tensor) -> Tensor:
        first, second = self.linear1, self.linear2
        plain = type(first) is nn.Linear and type(second) is nn.Linear  # not wrapped (adapters: LoRALinear)
        if plain and first.weight.dtype == second.weight.dtype == torch.bfloat16 and not torch.is_grad_enabled():
            # Both in bfloat16 (`stemdesk.core.precision`): GELU on the first layer's bfloat16 output gives what
            # the modules' hooks give (float32 out, GELU, rounded back to bfloat16 for the second), bit for bit,
            # without two float32 copies of the widest tensor of the transformer.
            hidden = F.gelu(F.linear(x.to(torch.bfloat16), first.weight, first.bias))
            return F.linear(hidden, second.weight, second.bias).float()
        return second(F.gelu(first(x)))


def sin_embedding(length: int, dim: int, max_period: float = 10000.0) -> Tensor:
    """1-d sinusoidal positions (length, dim): cosines then sines."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    half = dim // 2
    phase = pos / (max_period ** (torch.arange(half, dtype=torch.float32) / (half - 1)))
    return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1)


def sin_embedding_2d(dim: int, height: int, width: int, max_period: float = 10000.0) -> Tensor:
    """2-d sinusoidal positions (dim, height, width): half the channels encode the width, half the height."""
    pe = torch.zeros(dim, height, width)
    half = dim // 2
    div = torch.exp(torch.arange(0.0, half, 2) * -(math.log(max_period) / half))
    pos_w = torch.arange(0.0, width)[:, None]
    pos_h = torch.arange(0.0, height)[:, None]
    pe[0:half:2] = torch.sin(pos_w * div).t()[:, None, :].expand(-1, height, -1)
    pe[1:half:2] = torch.cos(pos_w * div).t()[:, None, :].expand(-1, height, -1)
    pe[half::2] = torch.sin(pos_h * div).t()[:, :, None].expand(-1, -1, width)
    pe[half + 1 :: 2] = torch.cos(pos_h * div).t()[:, :, None].expand(-1, -1, width)
    return pe


class CrossTransformer(nn.Module):
    """Alternating self-attention and cross-attention layers over the two branches' bottleneck tokens."""

    def __init__(self, dim: int, layers: int = 5, heads: int = 8, hidden_scale: float = 4.0):
        super().__init__()
        hidden = int(dim * hidden_scale)
        self.norm_in = nn.LayerNorm(dim)
        self.norm_in_t = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(TransformerLayer(dim, heads, hidden, i % 2 == 1) for i in range(layers))
        self.layers_t = nn.ModuleList(TransformerLayer(dim, heads, hidden, i % 2 == 1) for i in range(layers))

    def forward(self, x: Tensor, xt: Tensor) -> tuple[Tensor, Tensor]:
        batch, channels, freqs, frames = x.shape
        pos = sin_embedding_2d(channels, freqs, frames).to(x)  # (C, Fr, T)
        x = self.norm_in(x.permute(0, 3, 2, 1).reshape(batch, frames * freqs, channels))
        x = x + pos.permute(2, 1, 0).reshape(1, frames * freqs, channels)
        xt = xt.transpose(1, 2)
        xt = self.norm_in_t(xt) + sin_embedding(xt.shape[1], channels).to(xt)[None]
        for spectral, temporal in zip(self.layers, self.layers_t):
            if spectral.cross:
                x, xt = spectral(x, xt), temporal(xt, x)
            else:
                x, xt = spectral(x), temporal(xt)
        x = x.reshape(batch, frames, freqs, channels).permute(0, 3, 2, 1)
        return x, xt.transpose(1, 2)


class HTDemucs(WaveformEstimator):
    """The released HTDemucs configuration. ``forward``: audio (batch, 2, length ≤ segment) at 44.1 kHz →
    stems (batch, sources, 2, length). ``network`` is the part between the STFT and the iSTFT (what the ONNX
    export of the weights holds), for tests against other implementations."""

    kind: ClassVar[str] = "htdemucs"
    # Its stems with `reduced_precision_modules` in bfloat16 were measured on the validation songs (docs/htdemucs.md).
    reduced_precision_measured: ClassVar[bool] = True
    window: Tensor  # a buffer

    def __init__(
        self,
        sources: Sequence[str] = ("drums", "bass", "other", "vocals"),
        sample_rate: int = 44100,
        channels: int = 2,
        segment: int = 343980,
        width: int = 48,
        depth: int = 4,
        nfft: int = 4096,
        bottom_channels: int = 512,
        transformer_layers: int = 5,
        heads: int = 8,
        freq_emb: float = 0.2,
        decoder_dconv: bool = True,
    ):
        super().__init__(sources, sample_rate, channels, segment)
        self.config_extra = {
            "width": width,
            "depth": depth,
            "nfft": nfft,
            "bottom_channels": bottom_channels,
            "transformer_layers": transformer_layers,
            "heads": heads,
            "freq_emb": freq_emb,
            "decoder_dconv": decoder_dconv,
        }
        self.nfft, self.hop = nfft, nfft // 4
        self.depth = depth
        dconv = {"compress": 8, "depth": 2, "init": 1e-3}
        dec_dconv = dconv if decoder_dconv else None
        self.encoder, self.tencoder = nn.ModuleList(), nn.ModuleList()
        self.decoder, self.tdecoder = nn.ModuleList(), nn.ModuleList()
        chin, chin_z = channels, 2 * channels
        chout = width
        freqs = nfft // 2
        for index in range(depth):
            self.encoder.append(EncoderLayer(chin_z, chout, True, dconv=dconv))
            self.tencoder.append(EncoderLayer(chin, chout, False, dconv=dconv))
            if index == 0:
                chin = channels * len(self.sources)
                chin_z = 2 * chin
            self.decoder.insert(0, DecoderLayer(chout, chin_z, True, last=index == 0, dconv=dec_dconv))
            self.tdecoder.insert(0, DecoderLayer(chout, chin, False, last=index == 0, dconv=dec_dconv))
            chin = chin_z = chout
            chout *= 2
            freqs //= 4
            if index == 0:
                self.freq_emb = ScaledEmbedding(freqs, chin_z)
                self.freq_emb_scale = freq_emb
        bottleneck = width * 2 ** (depth - 1)
        self.channel_upsampler = nn.Conv1d(bottleneck, bottom_channels, 1)
        self.channel_downsampler = nn.Conv1d(bottom_channels, bottleneck, 1)
        self.channel_upsampler_t = nn.Conv1d(bottleneck, bottom_channels, 1)
        self.channel_downsampler_t = nn.Conv1d(bottom_channels, bottleneck, 1)
        self.crosstransformer = CrossTransformer(bottom_channels, transformer_layers, heads)
        self.register_buffer("window", torch.hann_window(nfft), persistent=False)

    def config(self) -> dict[str, Any]:
        return {**super().config(), **self.config_extra}

    def reduced_precision_modules(self) -> list[nn.Module]:
        """What may compute in bfloat16 (`stemdesk.core.precision`): the transformer's attention and feed-forward
        layers, the 1×1 convolutions into and out of it, the convolutions of the two innermost encoder and decoder
        layers of each branch and the next frequency decoder's rewrite convolution: most of the arithmetic. Their
        sums, norms and activations stay float32, and so do the outer layers, nearest the audio. Measured on the
        validation songs: docs/htdemucs.md."""
        parts: list[nn.Module] = [
            self.channel_upsampler,
            self.channel_downsampler,
            self.channel_upsampler_t,
            self.channel_downsampler_t,
        ]
        for layer in [*self.crosstransformer.layers, *self.crosstransformer.layers_t]:
            parts += [layer.cross_attn if layer.cross else layer.self_attn, layer.linear1, layer.linear2]
        inner = self.depth // 2  # the layers nearest the bottleneck
        for coder in (*self.encoder[-inner:], *self.tencoder[-inner:], *self.decoder[:inner], *self.tdecoder[:inner]):
            parts += [
                m
                for m in coder.modules()
                if isinstance(m, nn.Conv1d | nn.Conv2d | nn.ConvTranspose1d | nn.ConvTranspose2d)
            ]
        # the next frequency decoder's 3×3 rewrite too (4 % of a segment in float32): its rounding left the stems as
        # far from float32's as before on three real segments, where its neighbours' did not (docs/htdemucs.md)
        next_decoder = self.decoder[inner]
        assert isinstance(next_decoder, DecoderLayer)
        parts.append(next_decoder.rewrite)
        return parts

    # The STFT pair, framed so that frames = ceil(length / hop) exactly (HTDemucs's _spec/_ispec).
    def spec(self, x: Tensor) -> Tensor:
        """(batch, channels, length) → complex (batch, channels, nfft/2, ceil(length/hop))."""
        hop, length = self.hop, x.shape[-1]
        frames = -(-length // hop)
        pad = hop // 2 * 3
        x = F.pad(x, (pad, pad + frames * hop - length), mode="reflect")
        shape = x.shape[:-1]
        z = torch.stft(
            x.reshape(-1, x.shape[-1]),
            self.nfft,
            hop,
            window=self.window,
            normalized=True,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        return z.view(*shape, *z.shape[-2:])[..., :-1, 2 : 2 + frames]

    def ispec(self, z: Tensor, length: int) -> Tensor:
        """complex (batch, channels, nfft/2, frames) → (batch, channels, length): `spec` undone."""
        return self._istft(F.pad(z, (2, 2, 0, 1)), length)

    def _istft(self, z: Tensor, length: int) -> Tensor:
        """The inverse STFT of a spectrogram that `ispec` has padded: two empty frames each side, an empty top
        row (any layout: a frames-major one spares the transform a copy)."""
        hop = self.hop
        pad = hop // 2 * 3
        total = hop * -(-length // hop) + 2 * pad
        shape = z.shape[:-2]
        x = torch.istft(
            z.reshape(-1, *z.shape[-2:]), self.nfft, hop, window=self.window, normalized=True, length=total, center=True
        )
        return x.view(*shape, total)[..., pad : pad + length]

    def _padded_spectrogram(self, x: Tensor, scale: Tensor | None = None, shift: Tensor | None = None) -> Tensor:
        """The spectral branch's output, real and imaginary parts as channels (batch, sources, 2·channels, freqs,
        frames), as the complex spectrogram `_istft` takes: written once, frames-major, into a zeroed frame.
        ``scale`` and ``shift`` (batch, 1, 1, 1): x is still normalised, and x · scale + shift is written (in place
        in the frame: one pass over the spectrogram fewer, the same numbers; not for autograd)."""
        batch, sources, wide, freqs, frames = x.shape
        z = torch.empty(batch, sources, wide // 2, frames + 4, freqs + 1, dtype=torch.complex64, device=x.device)
        parts = torch.view_as_real(z)  # (…, frames + 4, freqs + 1, 2)
        parts[..., :2, :, :] = 0
        parts[..., -2:, :, :] = 0
        parts[..., freqs, :] = 0
        inside = parts[..., 2:-2, :freqs, :]
        if x.stride(2) == 1 and x.stride(1) == wide:  # channels last (the decoder's layout on the CPU)
            # Each bin's real and imaginary parts lie side by side: copied as one complex number, 64 bins at a
            # time so that what is read stays in the cache while it is spread over the stems (faster than copying
            # the floats one by one).
            pairs = x.permute(0, 3, 4, 1, 2).unflatten(-1, (wide // 2, 2))  # (batch, freqs, frames, sources, …, 2)
            bins = torch.view_as_complex(pairs).permute(0, 3, 4, 2, 1)  # (batch, sources, channels, frames, freqs)
            for start in range(0, freqs, 64):
                z[..., 2:-2, start : min(start + 64, freqs)].copy_(bins[..., start : start + 64])
        else:
            inside.copy_(x.view(batch, sources, wide // 2, 2, freqs, frames).permute(0, 1, 2, 5, 4, 3))
        if scale is not None and shift is not None:
            inside.mul_(scale.view(batch, 1, 1, 1, 1, 1)).add_(shift.view(batch, 1, 1, 1, 1, 1))
        return z.transpose(-1, -2)

    def network(self, mix: Tensor, mag: Tensor) -> tuple[Tensor, Tensor]:
        """mix (batch, channels, segment) and its STFT as real channels (batch, 2·channels, nfft/2, frames) →
        the spectral branch (batch, sources, 2·channels, nfft/2, frames) and the waveform branch
        (batch, sources, channels, segment)."""
        x, xt, std, mean = self._network(mix, mag)
        return x * std[:, None] + mean[:, None], xt

    def _network(self, mix: Tensor, mag: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """`network` with the spectral branch still normalised: (x, xt, std, mean), x · std + mean being
        `network`'s spectral branch (std and mean: (batch, 1, 1, 1))."""
        batch, _, freqs, frames = mag.shape
        mean = mag.mean(dim=(1, 2, 3), keepdim=True)
        std = mag.std(dim=(1, 2, 3), keepdim=True)
        x = (mag - mean) / (1e-5 + std)
        meant = mix.mean(dim=(1, 2), keepdim=True)
        stdt = mix.std(dim=(1, 2), keepdim=True)
        xt = (mix - meant) / (1e-5 + stdt)

        saved, saved_t, lengths, lengths_t = [], [], [], []
        for index, (encode, tencode) in enumerate(zip(self.encoder, self.tencoder)):
            lengths.append(x.shape[-1])
            lengths_t.append(xt.shape[-1])
            xt = tencode(xt)
            saved_t.append(xt)
            x = encode(x)
            if index == 0:
                rows = torch.arange(x.shape[-2], device=x.device)
                x = x + self.freq_emb_scale * self.freq_emb(rows).t()[None, :, :, None]
            saved.append(x)

        b, c, f, t = x.shape
        x = self.channel_upsampler(x.reshape(b, c, f * t)).view(b, -1, f, t)
        xt = self.channel_upsampler_t(xt)
        x, xt = self.crosstransformer(x, xt)
        x = self.channel_downsampler(x.reshape(b, -1, f * t)).view(b, c, f, t)
        xt = self.channel_downsampler_t(xt)

        for decode, tdecode in zip(self.decoder, self.tdecoder):
            x = decode(x, saved.pop(), lengths.pop())
            xt = tdecode(xt, saved_t.pop(), lengths_t.pop())

        sources = len(self.sources)
        xt = xt.view(batch, sources, -1, mix.shape[-1]) * stdt[:, None] + meant[:, None]
        return x.view(batch, sources, -1, freqs, frames), xt, std, mean

    def forward(self, audio: Tensor) -> Tensor:
        length = audio.shape[-1]
        if length > self.segment:
            raise ValueError(f"HTDemucs takes at most {self.segment} samples at a time, not {length}")
        mix = F.pad(audio, (0, self.segment - length))
        z = self.spec(mix)
        batch, channels, freqs, frames = z.shape
        mag = torch.view_as_real(z).permute(0, 1, 4, 2, 3).reshape(batch, 2 * channels, freqs, frames)
        if torch.is_grad_enabled():
            x, xt = self.network(mix, mag)
            scale = shift = None
        else:  # the spectral branch de-normalised as it is written into the iSTFT's frame
            x, xt, scale, shift = self._network(mix, mag)
        if x.device.type == "mps":  # MPS has no complex iSTFT
            x = x.cpu()
            scale, shift = (None, None) if scale is None or shift is None else (scale.cpu(), shift.cpu())
        out = xt + self._istft(self._padded_spectrogram(x, scale, shift), self.segment).to(xt.device)
        return out[..., :length]
