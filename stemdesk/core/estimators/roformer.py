"""Band-split RoFormer (Lu et al. 2023) and Mel-band RoFormer (Wang et al. 2023) behind the waveform-estimator
interface, as trained by Music-Source-Separation-Training (MSST) and shipped as ``.ckpt`` files with a YAML config.

The network reads the mixture's complex STFT, splits it into frequency bands (fixed widths, or overlapping mel bands),
projects every band to ``dim`` features, and alternates transformers over time (within each band) and over bands
(within each frame), both with rotary positions. One head per predicted stem returns a complex mask per bin; the
stem is the mixture's STFT times its mask, back through the iSTFT. The masks need not sum to one, so `Separator`
spreads what the stems leave over them (the core's null rule). When the network predicts fewer stems than the
model has sources (a vocal model), the last source is the mixture minus the others.

The layers keep the parameter names of the reference implementation (lucidrains' ``BS-RoFormer`` package, MIT, of
which MSST's copy is a fork), so its state dicts load as they are. The forward pass is MSST's: the DC bin is
zeroed before the iSTFT (``zero_dc``) and a segment shorter than the training length is padded to it (by
reflection when it is longer than half of it). Not carried over: MSST's linear-attention layers, skip connections
and PoPE positions (the importer refuses configs that use them), and the training losses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import WaveformEstimator


class RMSNorm(nn.Module):
    """x / ‖x‖ · √dim · γ over the last dimension."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=-1) * self.scale * self.gamma


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        inner = int(dim * mult)
        self.net = nn.Sequential(
            RMSNorm(dim), nn.Linear(dim, inner), nn.GELU(), nn.Dropout(0.0), nn.Linear(inner, dim), nn.Dropout(0.0)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Rotary(nn.Module):
    """Rotary positions on interleaved feature pairs (rotary-embedding-torch's defaults: θ = 10000, positions
    0…n−1). The frequencies are fixed, so they are a buffer outside the state dict."""

    freqs: Tensor  # a buffer

    def __init__(self, dim: int, theta: float = 10000.0):
        super().__init__()
        freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        """t (..., positions, dim) → the same, rotated by position."""
        positions = torch.arange(t.shape[-2], device=t.device, dtype=self.freqs.dtype)
        angles = (positions[:, None] * self.freqs).repeat_interleave(2, dim=-1)  # (positions, dim)
        pairs = t.unflatten(-1, (-1, 2))
        rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return (t * angles.cos() + rotated * angles.sin()).to(t.dtype)


class Attention(nn.Module):
    """Pre-norm multi-head attention with rotary positions and a sigmoid gate per head."""

    def __init__(self, dim: int, heads: int, dim_head: int, rotary: Rotary):
        super().__init__()
        self.heads = heads
        inner = heads * dim_head
        self.rotary_embed = rotary  # shared by every layer of a branch; it holds no weights
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_gates = nn.Linear(dim, heads)
        self.to_out = nn.Sequential(nn.Linear(inner, dim, bias=False), nn.Dropout(0.0))

    def forward(self, x: Tensor) -> Tensor:
        """x (batch, tokens, dim) → (batch, tokens, dim)."""
        x = self.norm(x)
        q, k, v = self.to_qkv(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)  # (batch, heads, n, d)
        out = F.scaled_dot_product_attention(self.rotary_embed(q), self.rotary_embed(k), v)
        out = out * self.to_gates(x).transpose(1, 2).sigmoid()[..., None]
        return self.to_out(out.transpose(1, 2).flatten(-2))


class Transformer(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, rotary: Rotary, norm_output: bool):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([Attention(dim, heads, dim_head, rotary), FeedForward(dim)]) for _ in range(depth)
        )
        self.norm: nn.Module = RMSNorm(dim) if norm_output else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:  # (attention, feed-forward)
            x = layer[0](x) + x  # type: ignore[index]
            x = layer[1](x) + x  # type: ignore[index]
        return self.norm(x)


class BandSplit(nn.Module):
    """(batch, frames, Σ band inputs) → (batch, frames, bands, dim): RMSNorm and a linear layer per band."""

    def __init__(self, dim: int, inputs: Sequence[int]):
        super().__init__()
        self.inputs = tuple(inputs)
        self.to_features = nn.ModuleList(nn.Sequential(RMSNorm(n), nn.Linear(n, dim)) for n in self.inputs)

    def forward(self, x: Tensor) -> Tensor:
        bands = x.split(self.inputs, dim=-1)
        return torch.stack([project(band) for band, project in zip(bands, self.to_features)], dim=-2)


def mlp(dim_in: int, dim_out: int, hidden: int, hidden_layers: int) -> nn.Sequential:
    """Linear layers with tanh between them, ``hidden_layers`` of width ``hidden``."""
    dims = (dim_in, *((hidden,) * hidden_layers), dim_out)
    layers: list[nn.Module] = []
    for index, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if index < len(dims) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class MaskEstimator(nn.Module):
    """(batch, frames, bands, dim) → (batch, frames, Σ band inputs): a GLU-gated MLP per band."""

    def __init__(self, dim: int, inputs: Sequence[int], hidden_layers: int, expansion: int = 4):
        super().__init__()
        self.to_freqs = nn.ModuleList(
            nn.Sequential(mlp(dim, n * 2, dim * expansion, hidden_layers), nn.GLU(dim=-1)) for n in inputs
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([head(band) for band, head in zip(x.unbind(dim=-2), self.to_freqs)], dim=-1)


class Roformer(WaveformEstimator):
    """What both RoFormers share. ``sources``: the predicted stems, then (with ``residual``) one source that is the
    mixture minus them. ``segment``: the training length in samples (MSST's ``chunk_size``)."""

    # MSST's own segments overlap more (num_overlap 2-4, faded edges); StemDesk uses the quarter overlap and the
    # triangular weights of its other waveform model.
    window: Tensor  # a buffer
    transformer_norm: ClassVar[bool] = False  # a norm at the end of every transformer
    final_norm_layer: ClassVar[bool] = True  # a norm after the last layer
    # The mask heads' hidden layers: mask_estimator_depth − 1 in the band-split model, mask_estimator_depth in the
    # mel-band one (the references differ there).
    extra_hidden_layer: ClassVar[bool] = False

    def __init__(
        self,
        sources: Sequence[str],
        sample_rate: int = 44100,
        channels: int = 2,
        segment: int = 352800,
        *,
        residual: bool = False,
        dim: int = 512,
        depth: int = 12,
        time_transformer_depth: int = 1,
        freq_transformer_depth: int = 1,
        dim_head: int = 64,
        heads: int = 8,
        n_fft: int = 2048,
        hop: int = 441,
        win_length: int = 2048,
        normalized: bool = False,
        mask_estimator_depth: int = 2,
        mlp_expansion_factor: int = 4,
        zero_dc: bool = True,
        **hyper: Any,
    ):
        super().__init__(sources, sample_rate, channels, segment)
        if channels not in (1, 2):
            raise ValueError("a RoFormer is mono (1 channel) or stereo (2)")
        self.residual = bool(residual)
        self.stems = len(self.sources) - self.residual
        if self.stems < 1:
            raise ValueError("a RoFormer predicts at least one stem")
        self.n_fft, self.hop, self.win_length, self.normalized = n_fft, hop, win_length, normalized
        self.zero_dc = zero_dc
        self.hyper.update(
            residual=self.residual,
            dim=dim,
            depth=depth,
            time_transformer_depth=time_transformer_depth,
            freq_transformer_depth=freq_transformer_depth,
            dim_head=dim_head,
            heads=heads,
            n_fft=n_fft,
            hop=hop,
            win_length=win_length,
            normalized=normalized,
            mask_estimator_depth=mask_estimator_depth,
            mlp_expansion_factor=mlp_expansion_factor,
            zero_dc=zero_dc,
            **hyper,
        )
        time_rotary, freq_rotary = Rotary(dim_head), Rotary(dim_head)
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    Transformer(dim, time_transformer_depth, heads, dim_head, time_rotary, self.transformer_norm),
                    Transformer(dim, freq_transformer_depth, heads, dim_head, freq_rotary, self.transformer_norm),
                ]
            )
            for _ in range(depth)
        )
        if self.final_norm_layer:
            self.final_norm = RMSNorm(dim)
        inputs = [2 * n for n in self.band_sizes()]  # (real, imaginary) of each bin and channel in the band
        self.band_split = BandSplit(dim, inputs)
        self.mask_estimators = nn.ModuleList(
            MaskEstimator(dim, inputs, mask_estimator_depth - 1 + self.extra_hidden_layer, mlp_expansion_factor)
            for _ in range(self.stems)
        )
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    def reduced_precision_modules(self) -> list[nn.Module]:
        """What may compute in bfloat16 (`stemdesk.core.precision`): the dense layers of every transformer (most of
        the arithmetic); norms, rotary positions, attention's softmax, the residual sums, the band split and the mask
        heads stay float32. Not measured on real weights, so "auto" leaves a RoFormer in float32."""
        return [m for m in self.layers.modules() if isinstance(m, nn.Linear)]

    def band_sizes(self) -> list[int]:  # pragma: no cover - abstract
        """How many (bin, channel) entries each band holds."""
        raise NotImplementedError

    def split(self, spec: Tensor) -> Tensor:
        """spec (batch, bins·channels, frames, 2) → the bands' inputs (batch, frames, Σ band inputs)."""
        return spec.permute(0, 2, 1, 3).flatten(-2)

    def masked(self, spec: Tensor, masks: Tensor) -> Tensor:
        """complex spec (batch, bins·channels, frames) × masks (batch, stems, Σ band entries, frames)."""
        return spec[:, None] * masks

    def network(self, audio: Tensor) -> Tensor:
        """audio (batch, channels, length) → stems (batch, stems, channels, length): the reference's forward."""
        batch, channels, length = audio.shape
        window = self.window.to(audio.dtype)
        spec = torch.stft(
            audio.reshape(-1, length),
            self.n_fft,
            self.hop,
            self.win_length,
            window,
            normalized=self.normalized,
            return_complex=True,
        )  # (batch·channels, bins, frames)
        frames = spec.shape[-1]
        # bins and channels interleaved (bin-major), as the reference lays them out for its bands
        spec = spec.view(batch, channels, self.bins, frames).transpose(1, 2).reshape(batch, -1, frames)
        x = self.band_split(self.split(torch.view_as_real(spec)))  # (batch, frames, bands, dim)
        bands, dim = x.shape[-2:]
        for block in self.layers:  # (over time, over bands)
            x = x.transpose(1, 2).reshape(-1, frames, dim)  # (batch·bands, frames, dim)
            x = block[0](x).view(batch, bands, frames, dim).transpose(1, 2)  # type: ignore[index]
            x = block[1](x.reshape(-1, bands, dim)).view(batch, frames, bands, dim)  # type: ignore[index]
        if self.final_norm_layer:
            x = self.final_norm(x)
        masks = torch.stack([head(x) for head in self.mask_estimators], dim=1)  # (batch, stems, frames, entries·2)
        masks = torch.view_as_complex(masks.unflatten(-1, (-1, 2)).transpose(2, 3).contiguous())
        stems = self.masked(spec, masks)  # (batch, stems, bins·channels, frames)
        stems = stems.view(batch, self.stems, self.bins, channels, frames).transpose(2, 3)
        if self.zero_dc:
            stems = stems.index_fill(3, torch.tensor(0, device=stems.device), 0.0)
        out = torch.istft(
            stems.reshape(-1, self.bins, frames),
            self.n_fft,
            self.hop,
            self.win_length,
            window,
            normalized=self.normalized,
            length=length,
        )
        return out.view(batch, self.stems, channels, length)

    def forward(self, audio: Tensor) -> Tensor:
        """audio (batch, channels, length ≤ segment) → stems (batch, sources, channels, length)."""
        length = audio.shape[-1]
        if length > self.segment:
            raise ValueError(f"this RoFormer takes at most {self.segment} samples at a time, not {length}")
        mix = audio
        if length < self.segment:  # MSST pads a short last chunk the same way
            mode = "reflect" if length > self.segment // 2 + 1 else "constant"
            mix = F.pad(audio, (0, self.segment - length), mode=mode)
        stems = self.network(mix)[..., :length]
        if self.residual:
            stems = torch.cat([stems, (audio - stems.sum(dim=1))[:, None]], dim=1)
        return stems


class BSRoformer(Roformer):
    """Band-split RoFormer: ``freqs_per_bands`` consecutive bins per band, covering every bin once."""

    kind: ClassVar[str] = "bs_roformer"

    def __init__(self, *args: Any, freqs_per_bands: Sequence[int] = (), **kwargs: Any):
        self.freqs_per_bands = [int(n) for n in freqs_per_bands]
        super().__init__(*args, freqs_per_bands=self.freqs_per_bands, **kwargs)

    def band_sizes(self) -> list[int]:
        if len(self.freqs_per_bands) < 2 or sum(self.freqs_per_bands) != self.bins:
            raise ValueError(
                f"freqs_per_bands must split the {self.bins} bins of a {self.n_fft}-point STFT into bands "
                f"(they add up to {sum(self.freqs_per_bands)})"
            )
        return [n * self.channels for n in self.freqs_per_bands]


def mel_band_bins(sample_rate: int, n_fft: int, bands: int) -> np.ndarray:
    """Which bins each of ``bands`` overlapping mel bands covers (bands, bins) as booleans: the non-zero entries of
    librosa's Slaney mel filter bank (``librosa.filters.mel(sr, n_fft, n_mels)``), with the first bin given to the
    first band and the last bin to the last, as the Mel-band RoFormer does."""

    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        f = np.asarray(f, dtype=np.float64)
        mel = f / (200.0 / 3)
        log = f >= 1000.0
        return np.where(log, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        hz = m * (200.0 / 3)
        return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), hz)

    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(np.array(0.0)), hz_to_mel(np.array(sample_rate / 2.0)), bands + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    lower = -ramps[:bands] / fdiff[:bands, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper)).astype(np.float32)
    covered = weights > 0
    covered[0, 0] = covered[-1, -1] = True
    return covered


class MelBandRoformer(Roformer):
    """Mel-band RoFormer: ``num_bands`` overlapping mel bands; a bin's mask is the average of its bands' masks.
    Each transformer ends in a norm, there is no final norm and the mask heads have one hidden layer more, as in
    the reference."""

    kind: ClassVar[str] = "mel_band_roformer"
    transformer_norm: ClassVar[bool] = True
    final_norm_layer: ClassVar[bool] = False
    extra_hidden_layer: ClassVar[bool] = True
    freq_indices: Tensor  # buffers
    bands_per_entry: Tensor

    def __init__(self, *args: Any, num_bands: int = 60, **kwargs: Any):
        self.num_bands = int(num_bands)
        super().__init__(*args, num_bands=self.num_bands, **kwargs)

    def _layout(self) -> tuple[Tensor, Tensor, list[int]]:
        covered = torch.from_numpy(mel_band_bins(self.sample_rate, self.n_fft, self.num_bands))
        if covered.shape[1] != self.bins or not covered.any(dim=0).all():
            raise ValueError(f"{self.num_bands} mel bands do not cover every bin of a {self.n_fft}-point STFT")
        bins = torch.arange(self.bins).expand(self.num_bands, -1)[covered]  # each band's bins, band after band
        indices = (bins[:, None] * self.channels + torch.arange(self.channels)).flatten()
        per_bin = covered.sum(dim=0).repeat_interleave(self.channels)
        return indices, per_bin, [int(n) * self.channels for n in covered.sum(dim=1)]

    def band_sizes(self) -> list[int]:
        indices, per_bin, sizes = self._layout()
        self.register_buffer("freq_indices", indices, persistent=False)
        self.register_buffer("bands_per_entry", per_bin.float(), persistent=False)
        return sizes

    def split(self, spec: Tensor) -> Tensor:
        return spec[:, self.freq_indices].permute(0, 2, 1, 3).flatten(-2)

    def masked(self, spec: Tensor, masks: Tensor) -> Tensor:
        batch, stems, _, frames = masks.shape
        index = self.freq_indices[None, None, :, None].expand(batch, stems, -1, frames)
        summed = torch.zeros(batch, stems, *spec.shape[1:], dtype=masks.dtype, device=masks.device)
        summed = summed.scatter_add(2, index, masks)
        return spec[:, None] * (summed / self.bands_per_entry.clamp(min=1e-8)[:, None])


__all__ = ["BSRoformer", "MelBandRoformer", "mel_band_bins"]
