"""A trained mask estimator with a band-split convolutional correction of its logits on top.

A BiLSTM mask network such as Open-Unmix squeezes every frame's 2 × 1487 magnitudes into ``hidden`` (128) numbers
before its recurrence and draws every bin's mask back out of them: fine enough to find vocals, too coarse to tell a
kick's body from a bass note twenty hertz away. The correction keeps the frequency axis: the spectrum is split into
bands, four bins (43 Hz at 4096/44.1 kHz) wide at the bottom and wider above, each band (its log-magnitudes and the
base's logits there) becomes ``dim`` features, and blocks of dilated convolutions over time (the same weights in
every band) and over neighbouring bands mix them, as in band-split RNNs (Luo & Yu 2023) with convolutions in place
of the recurrences, which one CPU thread runs as large matrix products. Each band's head returns a change of the
base's logits in every bin of the band.

The head starts at zero, so an untrained correction computes exactly the base's masks: a model that adds one
starts where its base is, and the base can stay fixed while only the correction trains. A base with a residual
source (a softmax over [logits, 0], e.g. Spleeter's vocal U-Net giving logits: vocals against the rest) gets its
predicted sources' logits corrected; the residual's stays 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Estimator

# Band widths in bins from the bottom up, as (width, up to bin): at 4096/44.1 kHz a bin is 10.8 Hz, so four-bin
# bands up to 690 Hz (where bass and kick live), then wider ones, each octave-ish range in eight bands or so.
DEFAULT_BANDS: tuple[tuple[int, int], ...] = ((4, 64), (8, 128), (16, 256), (32, 512), (64, 1024), (128, 100_000))


def band_groups(spec: Sequence[Sequence[int]], bins: int) -> list[tuple[int, int, int]]:
    """Groups of equal bands, (first bin, band width, band count), from (width, up to bin) pairs covering ``bins``:
    widths grow with frequency; the last band may reach past ``bins`` (its missing bins count as silent)."""
    groups: list[tuple[int, int, int]] = []
    start = 0
    for width, upto in spec:
        if width < 1:
            raise ValueError(f"a band is at least one bin wide, not {width}")
        end = min(upto, bins)
        if end > start:
            count = -(-(end - start) // width)
            groups.append((start, width, count))
            start += width * count
    if start < bins:
        raise ValueError(f"the bands end at bin {start}, below {bins}: the last (width, up to) must reach it")
    return groups


class ChannelNorm(torch.nn.Module):
    """Layer norm over the channel axis (1) of (batch, channels, ...): each band and frame on its own, so what a
    chunk of a song gets does not depend on the rest of the chunk."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1, dim, 1, 1))
        self.bias = torch.nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = (x - mean).square().mean(dim=1, keepdim=True)
        return (x - mean) * torch.rsqrt(var + 1e-5) * self.weight + self.bias


class _Block(torch.nn.Module):
    """A dilated convolution over time (each band alone, shared weights), then one over neighbouring bands (each
    frame alone), each added to its input after a GELU. x: (batch, dim, bands, frames). No norm inside: on one CPU
    thread the elementwise passes over the whole tensor cost more than the convolutions."""

    def __init__(self, dim: int, dilation: int, kernel: int):
        super().__init__()
        pad = dilation * (kernel - 1) // 2
        self.time = torch.nn.Conv2d(dim, dim, (1, kernel), padding=(0, pad), dilation=(1, dilation))
        self.band = torch.nn.Conv2d(dim, dim, (kernel, 1), padding=((kernel - 1) // 2, 0))

    def forward(self, x: Tensor) -> Tensor:
        x = x + F.gelu(self.time(x))
        return x + F.gelu(self.band(x))


class Refined(Estimator):
    """masks = the base's mask policy applied to base logits + correction (see the module's docstring).

    hyper: ``base`` {"kind", "config"} (a mask estimator with softmax masks, built from the registry with this
    estimator's sources, STFT and channels); ``bands`` (width, up to bin) pairs; ``max_freq`` in Hz, above which
    the base's logits stand; ``dim`` features per band; ``dilations`` one block per entry; ``kernel`` size of both
    convolutions.
    """

    kind = "refined"

    def __init__(
        self,
        *args,
        base: Mapping[str, Any],
        bands: Sequence[Sequence[int]] = DEFAULT_BANDS,
        max_freq: float = 16000.0,
        dim: int = 48,
        dilations: Sequence[int] = (1, 2, 4, 8, 16),
        kernel: int = 3,
        **kwargs,
    ):
        from . import build_estimator  # the registry imports this module

        kwargs.setdefault("mask", "softmax")
        super().__init__(
            *args,
            base=dict(base),
            bands=[list(b) for b in bands],
            max_freq=float(max_freq),
            dim=dim,
            dilations=list(dilations),
            kernel=kernel,
            **kwargs,
        )
        if self.mask != "softmax":
            raise ValueError("a refined estimator corrects softmax logits: mask 'softmax'")
        if kernel % 2 != 1:
            raise ValueError(f"the kernel size must be odd, not {kernel}")
        config = self.config()
        shared = {k: config[k] for k in ("sources", "stft", "channels")}
        built = build_estimator(base["kind"], {**shared, **base["config"]})
        if not isinstance(built, Estimator) or built.mask != "softmax" or built.residual != self.residual:
            raise ValueError(
                "a refined estimator's base is a mask estimator with softmax masks and the same residual source"
            )
        if built.sources != self.sources:
            raise ValueError(f"the base separates {list(built.sources)}, not {list(self.sources)}")
        self.base = built
        if hasattr(built, "max_bins"):  # a base with no estimate above a bin (a cascade's first stage) says so
            self.max_bins = built.max_bins
        stft = self.stft_config
        self.max_bin = min(self.bins, int(max_freq * stft.n_fft / stft.sample_rate) + 1)
        self.groups = band_groups(bands, self.max_bin)
        start, width, count = self.groups[-1]
        self.top = start + width * count  # may pass max_bin: the bins above it are padded with silence
        out_bin = self.predicted * self.channels
        # the input layer in two parts, the log-magnitudes' and the base's logits' (no copy of the two side by side)
        self.into_heard = torch.nn.ParameterList(
            torch.nn.Parameter(torch.randn(n, self.channels, w, dim) / (out_bin * w + self.channels * w) ** 0.5)
            for _, w, n in self.groups
        )
        self.into_logits = torch.nn.ParameterList(
            torch.nn.Parameter(torch.randn(n, out_bin, w, dim) / (out_bin * w + self.channels * w) ** 0.5)
            for _, w, n in self.groups
        )
        self.into_bias = torch.nn.Parameter(torch.zeros(1, dim, self.bands, 1))
        self.into_norm = ChannelNorm(dim)
        self.blocks = torch.nn.ModuleList(_Block(dim, d, kernel) for d in dilations)
        # zero: an untrained correction changes nothing
        self.heads = torch.nn.ParameterList(
            torch.nn.Parameter(torch.zeros(n, dim, out_bin, w)) for _, w, n in self.groups
        )

    @property
    def bands(self) -> int:
        return sum(n for _, _, n in self.groups)

    def scaled_input(self):
        return self.base.scaled_input()

    def forward(self, mag: Tensor) -> Tensor:
        logits = self.base(mag)  # (batch, sources, channels, bins, frames)
        batch, sources, channels, bins, frames = logits.shape
        heard = torch.log(mag[:, :, : self.max_bin] + 1e-4)
        guess = logits.flatten(1, 2)[:, :, : self.max_bin]
        if self.top > self.max_bin:
            pad = (0, 0, 0, self.top - self.max_bin)
            heard, guess = F.pad(heard, pad), F.pad(guess, pad)
        features = [
            torch.einsum("bpnwt,npwd->bdnt", heard[:, :, lo : lo + w * n].unflatten(2, (n, w)), from_heard)
            + torch.einsum("bpnwt,npwd->bdnt", guess[:, :, lo : lo + w * n].unflatten(2, (n, w)), from_logits)
            for (lo, w, n), from_heard, from_logits in zip(self.groups, self.into_heard, self.into_logits, strict=True)
        ]
        h = self.into_norm(torch.cat(features, dim=2) + self.into_bias)  # (batch, dim, bands, frames)
        for block in self.blocks:
            h = block(h)
        # the base's logits plus each band's change; in place when no gradient is kept (inference)
        out = logits.flatten(1, 2)
        out = out.clone() if torch.is_grad_enabled() else out
        first = 0
        for (lo, w, n), weight in zip(self.groups, self.heads, strict=True):
            change = torch.einsum("bdnt,ndqw->bqnwt", h[:, :, first : first + n], weight).flatten(2, 3)
            end = min(lo + w * n, self.max_bin)
            out[:, :, lo:end] += change[:, :, : end - lo]
            first += n
        return out.unflatten(1, (sources, channels))
