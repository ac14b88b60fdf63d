"""Open-Unmix-style recurrent mask network (Stöter et al. 2019; the baseline of George et al.).

One network predicts all sources jointly: the recurrent trunk is shared and the output layer has one mask per
source, channel and bin, normalised by the mask policy (softmax by default) so the masks sum to one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Estimator


class OpenUnmix(Estimator):
    """Input scaling → bandwidth-limited dense layer → BiLSTM (or transformer) with a skip → dense → masks.

    hyper: ``hidden`` width, ``layers`` recurrent layers, ``max_freq`` bandwidth limit of the input in Hz
    (the output always covers every bin), ``trunk`` "lstm" or "transformer".
    """

    kind = "open_unmix"

    def __init__(
        self, *args, hidden: int = 128, layers: int = 3, max_freq: float = 16000.0, trunk: str = "lstm", **kwargs
    ):
        kwargs.setdefault("mask", "softmax")
        super().__init__(*args, hidden=hidden, layers=layers, max_freq=max_freq, trunk=trunk, **kwargs)
        stft = self.stft_config
        self.max_bin = min(self.bins, int(max_freq * stft.n_fft / stft.sample_rate) + 1)
        in_features = self.channels * self.max_bin
        self.input_mean = torch.nn.Parameter(torch.zeros(in_features))
        self.input_scale = torch.nn.Parameter(torch.ones(in_features))
        self.fc1 = torch.nn.Linear(in_features, hidden, bias=False)
        self.bn1 = torch.nn.BatchNorm1d(hidden)
        self.trunk: torch.nn.LSTM | torch.nn.TransformerEncoder
        if trunk == "lstm":
            self.trunk = torch.nn.LSTM(
                hidden,
                hidden // 2,
                num_layers=layers,
                bidirectional=True,
                batch_first=True,
                dropout=0.3 if layers > 1 else 0.0,
            )
        elif trunk == "transformer":
            layer = torch.nn.TransformerEncoderLayer(
                hidden, nhead=4, dim_feedforward=2 * hidden, dropout=0.1, batch_first=True
            )
            self.trunk = torch.nn.TransformerEncoder(layer, num_layers=layers)
        else:
            raise ValueError(f"trunk must be 'lstm' or 'transformer', not {trunk!r}")
        self.fc2 = torch.nn.Linear(2 * hidden, hidden, bias=False)
        self.bn2 = torch.nn.BatchNorm1d(hidden)
        self.fc3 = torch.nn.Linear(hidden, self.predicted * self.channels * self.bins)

    def reduced_precision_modules(self) -> list[torch.nn.Module]:
        """The part that may compute in bfloat16 (`stemdesk.core.precision`): the output layer, most of the network's
        arithmetic (hidden × predicted·channels·bins a frame), whose rounding reaches only the masks' logits."""
        return [self.fc3]

    @property
    def reduced_precision_measured(self) -> bool:
        """Whether this model's stems with its output layer in bfloat16 were measured against float32 (its card's
        setting ``bf16_measured``): only then does "auto" choose bfloat16 for it."""
        return bool(self.hyper.get("bf16_measured"))

    def forward(self, mag: Tensor) -> Tensor:
        batch, channels, bins, frames = mag.shape
        x = torch.log(mag[:, :, : self.max_bin] + 1e-4)  # (batch, channels, max_bin, frames)
        x = x.permute(0, 3, 1, 2).reshape(batch, frames, -1)  # (batch, frames, channels·max_bin)
        x = (x - self.input_mean) * self.input_scale
        x = self.fc1(x)  # (batch, frames, hidden)
        x = torch.tanh(self.bn1(x.transpose(1, 2)).transpose(1, 2))
        y = self.trunk(x)
        y = y[0] if isinstance(y, tuple) else y  # (batch, frames, hidden)
        x = torch.cat([x, y], dim=-1)  # (batch, frames, 2·hidden)
        x = torch.relu(self.bn2(self.fc2(x).transpose(1, 2)).transpose(1, 2))
        # the output layer frame by frame, returned as a (batch, predicted, channels, bins, frames) view: bins vary
        # fastest in memory, as in the spectrogram torch.stft makes, so the masking reads both in step (and the mask
        # policy's softmax keeps this layout: `normalise_masks`)
        x = self.fc3(x).reshape(batch, frames, self.predicted, channels, bins)
        return x.permute(0, 2, 3, 4, 1)
