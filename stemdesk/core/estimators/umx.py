"""Open-Unmix as released (Stöter, Uhlich, Liutkus and Mitsufuji 2019; the ``openunmix`` package, MIT): one
recurrent network per target, so that the ``.pth`` files of umxhq, umxl and models trained with its recipe load
as they are.

Each target network turns the mixture's magnitude into a gain per bin; its estimate is gain × magnitude. StemDesk
divides the estimates by their sum (the ``ratio`` policy), which is Open-Unmix's own ``softmask`` separation without
its Wiener step (``niter=0``); ``--wiener 1`` adds a multichannel Wiener step like its default ``niter=1``. With
fewer targets than sources the last source is the residual, as Open-Unmix's ``--residual`` makes it.

StemDesk's other ``open_unmix`` estimator is a different network (one trunk for all sources, log input) for
training; this one keeps the reference's layers and parameter names.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Estimator


class UMXTarget(nn.Module):
    """One Open-Unmix target network, with the reference's parameter names (fc1, bn1, lstm, fc2, bn2, fc3, bn3,
    input_mean, input_scale, output_scale, output_mean)."""

    def __init__(self, bins: int, channels: int, hidden: int, layers: int, max_bin: int, unidirectional: bool):
        super().__init__()
        self.bins, self.max_bin, self.hidden = bins, max_bin, hidden
        self.fc1 = nn.Linear(max_bin * channels, hidden, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden)
        self.lstm = nn.LSTM(
            input_size=hidden,
            hidden_size=hidden if unidirectional else hidden // 2,
            num_layers=layers,
            bidirectional=not unidirectional,
            batch_first=False,
            dropout=0.4 if layers > 1 else 0.0,
        )
        self.fc2 = nn.Linear(2 * hidden, hidden, bias=False)
        self.bn2 = nn.BatchNorm1d(hidden)
        self.fc3 = nn.Linear(hidden, bins * channels, bias=False)
        self.bn3 = nn.BatchNorm1d(bins * channels)
        self.input_mean = nn.Parameter(torch.zeros(max_bin))
        self.input_scale = nn.Parameter(torch.ones(max_bin))
        self.output_scale = nn.Parameter(torch.ones(bins))
        self.output_mean = nn.Parameter(torch.ones(bins))

    def forward(self, mag: Tensor) -> Tensor:
        """mag (batch, channels, bins, frames) → gain ≥ 0 (batch, channels, bins, frames); the reference returns
        gain × mag."""
        batch, channels, bins, frames = mag.shape
        x = mag.permute(3, 0, 1, 2)[..., : self.max_bin]  # (frames, batch, channels, max_bin)
        x = (x + self.input_mean) * self.input_scale
        x = self.bn1(self.fc1(x.reshape(-1, channels * self.max_bin)))  # (frames·batch, hidden)
        x = torch.tanh(x.reshape(frames, batch, self.hidden))
        x = torch.cat([x, self.lstm(x)[0]], -1)  # (frames, batch, 2·hidden)
        x = F.relu(self.bn2(self.fc2(x.reshape(-1, 2 * self.hidden))))
        x = self.bn3(self.fc3(x)).reshape(frames, batch, channels, bins)
        gain = F.relu(x * self.output_scale + self.output_mean)
        return gain.permute(1, 2, 3, 0)  # (batch, channels, bins, frames)


class UMX(Estimator):
    """Open-Unmix's per-target networks behind the mask interface. Config: ``sources`` (the targets, then one
    residual source when ``residual``), ``stft``, ``channels``, and the networks' ``hidden``, ``layers``,
    ``max_bin`` (input bins kept) and ``unidirectional``. State-dict keys: ``target_models.<target>.<reference
    name>``, as in Open-Unmix's ``Separator``."""

    kind = "umx"

    def __init__(
        self,
        *args: Any,
        hidden: int = 512,
        layers: int = 3,
        max_bin: int | None = None,
        unidirectional: bool = False,
        **kwargs: Any,
    ):
        kwargs.setdefault("mask", "ratio")
        if kwargs["mask"] != "ratio":
            raise ValueError("Open-Unmix's estimates are magnitudes: its mask policy is 'ratio'")
        super().__init__(*args, **kwargs)
        max_bin = int(max_bin or self.bins)
        self.hyper.update(hidden=hidden, layers=layers, max_bin=max_bin, unidirectional=unidirectional)
        targets = self.sources[: self.predicted]
        self.target_models = nn.ModuleDict(
            {
                name: UMXTarget(self.bins, self.channels, hidden, layers, min(max_bin, self.bins), unidirectional)
                for name in targets
            }
        )

    def forward(self, mag: Tensor) -> Tensor:
        gains = torch.stack([model(mag) for model in self.target_models.values()], dim=1)
        # Estimates (gain × magnitude) are divided by their sum; with a residual source the gains are the masks
        # and the residual gets what they leave.
        return gains if self.residual else gains * mag.unsqueeze(1)  # (batch, predicted, channels, bins, frames)
