"""Building blocks shared by the estimators."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class InputScaler(torch.nn.Module):
    """log-magnitude with a learned per-bin offset and scale (Open-Unmix's input normalisation).

    mag (..., bins, frames) → (..., bins, frames). The trainer initialises ``mean``/``scale`` from data.
    """

    def __init__(self, bins: int):
        super().__init__()
        self.mean = torch.nn.Parameter(torch.zeros(bins, 1))
        self.scale = torch.nn.Parameter(torch.ones(bins, 1))

    def forward(self, mag: Tensor) -> Tensor:
        return (torch.log(mag + 1e-4) - self.mean) * self.scale


def frame_windows(x: Tensor, before: int, after: int) -> Tensor:
    """x (batch, features, frames) → (batch, frames, features, before + 1 + after): for each frame, the frames
    around it, zero-padded at the ends."""
    padded = F.pad(x, (before, after))
    return padded.unfold(-1, before + 1 + after, 1).transpose(1, 2)


def overlap_average(windows: Tensor, frames: int) -> Tensor:
    """Average predictions of sliding windows back onto frames (Deep Karaoke's hop-1 averaging).

    windows (batch, frames + width − 1, bins, width): window s covers frames s − (width − 1) … s. Every frame is
    covered by exactly ``width`` windows. Returns (batch, bins, frames).
    """
    batch, count, bins, width = windows.shape
    cols = windows.permute(0, 2, 3, 1).reshape(batch, bins * width, count)
    out = F.fold(cols, output_size=(1, frames + 2 * (width - 1)), kernel_size=(1, width))
    return out[:, :, 0, width - 1 : width - 1 + frames] / width
