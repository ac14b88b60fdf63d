"""MDX23C (Kim and Kim's TFC-TDF U-Net v3, from the Sound Demixing Challenge 2023) behind the waveform-estimator
interface, as trained by Music-Source-Separation-Training (MSST) and shipped as ``.ckpt`` files with a YAML config
(the community's drum-separation models among them).

The network reads the mixture's complex STFT (periodic Hann window of ``n_fft``, hop ``hop``, centred with
reflection), keeps its first ``dim_f`` bins and lays the real and imaginary parts of each channel out as image
channels, each cut into ``num_subbands`` bands of bins stacked as more channels. A U-Net over (frames, bins) of
TFC-TDF blocks (3×3 convolutions, a bottlenecked dense layer across bins, a 1×1 shortcut) goes down ``num_scales``
times by ``scale`` and back up with skip connections; its output, times the first convolution's, meets the input
again in two 1×1 convolutions that return each stem's complex spectrogram directly (not a mask). The bins above
``dim_f`` are zero; the iSTFT gives the stems' waveforms. They need not sum to the mixture, so `Separator` spreads
what they leave over them (the core's null rule). A model trained for one ``target_instrument`` gets the mixture
minus that stem as its last source.

The layers keep the parameter names of the reference implementation (MSST's ``models/mdx23c_tfc_tdf_v3.py``, MIT,
also shipped by the ``audio-separator`` package), so its state dicts load as they are. Norms and activations are
the ones its config names: ``BatchNorm``, ``InstanceNorm`` (affine), ``GroupNorm<groups>``, anything else none at
all, as the reference reads them; ``gelu``, ``relu`` or ``elu<alpha>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import WaveformEstimator

GROUP_NORM = re.compile(r"GroupNorm(\d+)")


def norm_layer(norm: str | None) -> Callable[[int], nn.Module]:
    """The config's ``norm`` as a factory of norms over ``channels``. The reference maps every name it does not
    know (and none) to no norm, so a network trained with one has no norm weights to load either."""
    if norm == "BatchNorm":
        return nn.BatchNorm2d
    if norm == "InstanceNorm":
        return lambda channels: nn.InstanceNorm2d(channels, affine=True)
    if norm is not None and "GroupNorm" in norm:
        match = GROUP_NORM.fullmatch(norm)
        if match is None:
            raise ValueError(f"norm {norm!r} is not GroupNorm followed by its number of groups (e.g. GroupNorm4)")
        groups = int(match[1])
        return lambda channels: nn.GroupNorm(groups, channels)
    return lambda channels: nn.Identity()


def activation(act: str) -> nn.Module:
    """The config's ``act``: gelu, relu or elu<alpha> (e.g. elu1.0)."""
    if act == "gelu":
        return nn.GELU()
    if act == "relu":
        return nn.ReLU()
    if act.startswith("elu"):
        try:
            return nn.ELU(float(act[3:]))
        except ValueError:
            pass
    raise ValueError(f"act {act!r} is not gelu, relu or elu<alpha> (e.g. elu1.0)")


def conv_block(norm: Callable[[int], nn.Module], act: nn.Module, conv: nn.Module, channels: int) -> nn.Sequential:
    """norm → activation → a layer: the pre-activation unit every block of the network is made of."""
    return nn.Sequential(norm(channels), act, conv)


class TFCTDFBlock(nn.Module):
    """x → tfc2(tfc1(x) + tdf(tfc1(x))) + shortcut(x): 3×3 convolutions over (frames, bins) around a two-layer
    dense map across the ``bins`` bins (narrowed by ``bottleneck``), and a 1×1 shortcut.
    x (batch, channels_in, frames, bins) → (batch, channels, frames, bins)."""

    def __init__(
        self,
        channels_in: int,
        channels: int,
        bins: int,
        bottleneck: int,
        norm: Callable[[int], nn.Module],
        act: nn.Module,
    ):
        super().__init__()
        self.tfc1 = conv_block(norm, act, nn.Conv2d(channels_in, channels, 3, 1, 1, bias=False), channels_in)
        self.tdf = nn.Sequential(
            norm(channels),
            act,
            nn.Linear(bins, bins // bottleneck, bias=False),
            norm(channels),
            act,
            nn.Linear(bins // bottleneck, bins, bias=False),
        )
        self.tfc2 = conv_block(norm, act, nn.Conv2d(channels, channels, 3, 1, 1, bias=False), channels)
        self.shortcut = nn.Conv2d(channels_in, channels, 1, 1, 0, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = self.shortcut(x)
        x = self.tfc1(x)
        x = x + self.tdf(x)
        return self.tfc2(x) + shortcut


class TFCTDF(nn.Module):
    """``count`` TFC-TDF blocks in a row; the first takes ``channels_in`` channels, every block returns ``channels``."""

    def __init__(
        self,
        channels_in: int,
        channels: int,
        count: int,
        bins: int,
        bottleneck: int,
        norm: Callable[[int], nn.Module],
        act: nn.Module,
    ):
        super().__init__()
        self.blocks = nn.ModuleList(
            TFCTDFBlock(channels_in if index == 0 else channels, channels, bins, bottleneck, norm, act)
            for index in range(count)
        )

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class Rescale(nn.Module):
    """norm → activation → a strided convolution (down) or transposed convolution (up) by ``scale`` (frames, bins)."""

    def __init__(
        self,
        channels_in: int,
        channels: int,
        scale: tuple[int, int],
        norm: Callable[[int], nn.Module],
        act: nn.Module,
        up: bool,
    ):
        super().__init__()
        layer = nn.ConvTranspose2d if up else nn.Conv2d
        self.conv = conv_block(norm, act, layer(channels_in, channels, scale, scale, bias=False), channels_in)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class EncoderBlock(nn.Module):
    def __init__(self, tfc_tdf: TFCTDF, downscale: Rescale):
        super().__init__()
        self.tfc_tdf, self.downscale = tfc_tdf, downscale


class DecoderBlock(nn.Module):
    def __init__(self, upscale: Rescale, tfc_tdf: TFCTDF):
        super().__init__()
        self.upscale, self.tfc_tdf = upscale, tfc_tdf


class MDX23C(WaveformEstimator):
    """``sources``: the predicted stems, then (with ``residual``) one source that is the mixture minus them.
    ``segment``: the length the network was trained on (MSST's ``chunk_size``); shorter audio is padded to it.
    The rest are the config's names: ``n_fft``, ``hop`` (hop_length) and ``dim_f`` from its audio section;
    ``width`` (model.num_channels), ``growth``, ``num_scales``, ``scale``, ``num_blocks_per_scale``,
    ``bottleneck_factor``, ``num_subbands``, ``norm`` and ``act`` from its model section."""

    kind: ClassVar[str] = "mdx23c"
    window: Tensor  # a buffer

    def __init__(
        self,
        sources: Sequence[str],
        sample_rate: int = 44100,
        channels: int = 2,
        segment: int = 261120,
        *,
        residual: bool = False,
        n_fft: int = 8192,
        hop: int = 1024,
        dim_f: int = 4096,
        num_subbands: int = 4,
        num_scales: int = 5,
        scale: Sequence[int] = (2, 2),
        num_blocks_per_scale: int = 2,
        width: int = 128,
        growth: int = 128,
        bottleneck_factor: int = 4,
        norm: str | None = "InstanceNorm",
        act: str = "gelu",
        **hyper: Any,
    ):
        super().__init__(sources, sample_rate, channels, segment)
        self.residual = bool(residual)
        self.stems = len(self.sources) - self.residual
        self.n_fft, self.hop, self.dim_f, self.num_subbands = int(n_fft), int(hop), int(dim_f), int(num_subbands)
        self.hyper.update(
            residual=self.residual,
            n_fft=self.n_fft,
            hop=self.hop,
            dim_f=self.dim_f,
            num_subbands=self.num_subbands,
            num_scales=num_scales,
            scale=[int(s) for s in scale],
            num_blocks_per_scale=num_blocks_per_scale,
            width=width,
            growth=growth,
            bottleneck_factor=bottleneck_factor,
            norm=norm,
            act=act,
            **hyper,
        )
        self.check_settings(**self.config())
        frame_scale, bin_scale = scales = (int(scale[0]), int(scale[1]))
        bins = self.dim_f // self.num_subbands
        make_norm, act_layer = norm_layer(norm), activation(act)
        planes = self.num_subbands * channels * 2  # (real, imaginary) of each channel in each subband
        c = width
        self.first_conv = nn.Conv2d(planes, c, 1, 1, 0, bias=False)
        encoder = []
        for _ in range(num_scales):
            encoder.append(
                EncoderBlock(
                    TFCTDF(c, c, num_blocks_per_scale, bins, bottleneck_factor, make_norm, act_layer),
                    Rescale(c, c + growth, scales, make_norm, act_layer, up=False),
                )
            )
            bins, c = bins // bin_scale, c + growth
        self.encoder_blocks = nn.ModuleList(encoder)
        self.bottleneck_block = TFCTDF(c, c, num_blocks_per_scale, bins, bottleneck_factor, make_norm, act_layer)
        decoder = []
        for _ in range(num_scales):
            upscale = Rescale(c, c - growth, scales, make_norm, act_layer, up=True)
            bins, c = bins * bin_scale, c - growth
            decoder.append(
                DecoderBlock(
                    upscale, TFCTDF(2 * c, c, num_blocks_per_scale, bins, bottleneck_factor, make_norm, act_layer)
                )
            )
        self.decoder_blocks = nn.ModuleList(decoder)
        self.final_conv = nn.Sequential(
            nn.Conv2d(c + planes, c, 1, 1, 0, bias=False),
            act_layer,
            nn.Conv2d(c, self.stems * planes, 1, 1, 0, bias=False),
        )
        self.register_buffer("window", torch.hann_window(self.n_fft, periodic=True), persistent=False)

    @staticmethod
    def check_settings(
        sources: Sequence[str],
        channels: int = 2,
        segment: int = 261120,
        residual: bool = False,
        n_fft: int = 8192,
        hop: int = 1024,
        dim_f: int = 4096,
        num_subbands: int = 4,
        num_scales: int = 5,
        scale: Sequence[int] = (2, 2),
        bottleneck_factor: int = 4,
        norm: str | None = "InstanceNorm",
        act: str = "gelu",
        **others: Any,
    ) -> None:
        """Raise ValueError, saying why, when these settings do not make a network the reference could run: the
        U-Net's scales must divide the segment's frames (``segment // hop + 1``) and each subband's bins."""
        if channels != 2:
            raise ValueError("the MDX23C network is stereo (its inverse STFT assumes two channels)")
        if len(sources) - bool(residual) < 1:
            raise ValueError("an MDX23C predicts at least one stem")
        if len(scale) != 2:
            raise ValueError(f"scale must be two factors (frames, bins), not {list(scale)}")
        norm_layer(norm)  # each raises for a name the reference cannot read either
        activation(act)
        frame_scale, bin_scale = (int(s) for s in scale)
        frames, bins = segment // hop + 1, dim_f // max(num_subbands, 1)
        if num_subbands < 1 or not 0 < dim_f <= n_fft // 2 + 1 or dim_f % num_subbands:
            raise ValueError(
                f"dim_f={dim_f} must be at most the {n_fft // 2 + 1} bins of a {n_fft}-point STFT and divisible "
                f"by num_subbands={num_subbands}"
            )
        if min(frame_scale, bin_scale) < 1 or frames % frame_scale**num_scales or bins % bin_scale**num_scales:
            raise ValueError(
                f"{num_scales} scales of {frame_scale}×{bin_scale} do not divide the {frames} frames of a "
                f"{segment}-sample segment (hop {hop}) and the {bins} bins of each subband evenly"
            )
        if bins // bin_scale**num_scales < bottleneck_factor:
            raise ValueError(f"bottleneck_factor={bottleneck_factor} leaves no bins at the bottom of the U-Net")

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    def encode(self, audio: Tensor) -> Tensor:
        """audio (batch, channels, length) → (batch, channels·2·subbands, dim_f / subbands, frames): each channel's
        real then imaginary part, each cut into subbands of consecutive bins."""
        batch, channels, length = audio.shape
        spec = torch.stft(
            audio.reshape(-1, length), self.n_fft, self.hop, window=self.window.to(audio.dtype), return_complex=True
        )  # (batch·channels, bins, frames), centred and padded by reflection
        spec = torch.view_as_real(spec[:, : self.dim_f]).permute(0, 3, 1, 2)  # (batch·channels, 2, dim_f, frames)
        frames = spec.shape[-1]
        return spec.reshape(batch, channels * 2 * self.num_subbands, -1, frames)

    def decode(self, x: Tensor, length: int) -> Tensor:
        """(batch, stems·channels·2·subbands, dim_f / subbands, frames) → stems (batch, stems, channels, length),
        the bins above dim_f zero."""
        batch, _, _, frames = x.shape
        x = x.reshape(batch * self.stems * self.channels, 2, self.dim_f, frames)
        x = F.pad(x, (0, 0, 0, self.bins - self.dim_f))  # (…, 2, bins, frames)
        spec = torch.complex(x[:, 0], x[:, 1])
        out = torch.istft(spec, self.n_fft, self.hop, window=self.window.to(x.dtype), length=length)
        return out.view(batch, self.stems, self.channels, length)

    def network(self, audio: Tensor) -> Tensor:
        """audio (batch, channels, length) → stems (batch, stems, channels, length): the reference's forward."""
        mix = self.encode(audio)  # (batch, planes, bins, frames)
        first = x = self.first_conv(mix)
        x = x.transpose(-1, -2)  # (batch, width, frames, bins): the U-Net scales frames by scale[0], bins by scale[1]
        skips = []
        for encoder in self.encoder_blocks:
            assert isinstance(encoder, EncoderBlock)
            x = encoder.tfc_tdf(x)
            skips.append(x)
            x = encoder.downscale(x)
        x = self.bottleneck_block(x)
        for decoder in self.decoder_blocks:
            assert isinstance(decoder, DecoderBlock)
            x = decoder.tfc_tdf(torch.cat([decoder.upscale(x), skips.pop()], dim=1))
        x = x.transpose(-1, -2) * first  # (batch, width, bins, frames)
        return self.decode(self.final_conv(torch.cat([mix, x], dim=1)), audio.shape[-1])

    def forward(self, audio: Tensor) -> Tensor:
        """audio (batch, channels, length ≤ segment) → stems (batch, sources, channels, length)."""
        length = audio.shape[-1]
        if length > self.segment:
            raise ValueError(f"this MDX23C takes at most {self.segment} samples at a time, not {length}")
        mix = audio
        if length < self.segment:  # MSST pads a short last chunk the same way
            mode = "reflect" if length > self.segment // 2 else "constant"
            mix = F.pad(audio, (0, self.segment - length), mode=mode)
        stems = self.network(mix)[..., :length]
        if self.residual:
            stems = torch.cat([stems, (audio - stems.sum(dim=1))[:, None]], dim=1)
        return stems


__all__ = ["MDX23C"]
