"""Frame-context mask networks: Deep Karaoke (Simpson et al. 2015), the Roma et al. 2018 CNNs and DNN, and the
Lin et al. 2018 pixel-wise CNN.

Each is written as in its paper (a window of frames in, masks for the centre frame or for the whole window out),
but computed for all frames at once: the convolutions run over the whole spectrogram, and the dense layers see
each frame's window of features. ``channels=1``: stereo files are processed per channel, as in the papers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Estimator
from .layers import InputScaler, frame_windows, overlap_average


def _conv_trunk(
    kernel: tuple[int, int], filters: tuple[int, ...], pool: tuple[tuple[int, int], ...], batch_norm: bool
) -> torch.nn.Sequential:
    """Conv → (BN) → ReLU → max-pool layers over (frames, bins); time is never strided so every frame keeps
    its own features."""
    layers: list[torch.nn.Module] = []
    channels = 1
    for width, pooling in zip(filters, pool):
        layers.append(torch.nn.Conv2d(channels, width, kernel, padding=(kernel[0] // 2, kernel[1] // 2)))
        if batch_norm:
            layers.append(torch.nn.BatchNorm2d(width))
        layers.append(torch.nn.ReLU())
        if pooling != (1, 1):
            layers.append(torch.nn.MaxPool2d(pooling, ceil_mode=True))
        channels = width
    return torch.nn.Sequential(*layers)


def _trunk_features(trunk: torch.nn.Module, x: Tensor) -> Tensor:
    """x (batch, frames, bins) → per-frame features (batch, channels·reduced_bins, frames)."""
    y = trunk(x.unsqueeze(1))  # (batch, filters, frames, reduced_bins)
    batch, filters, frames, reduced = y.shape
    return y.permute(0, 1, 3, 2).reshape(batch, filters * reduced, frames)


class DeepKaraoke(Estimator):
    """Simpson et al. 2015: a convolutional DNN over ``window``-frame excerpts predicting a probabilistic ideal
    binary mask for vocals over the whole excerpt. At inference the excerpts slide with hop 1 and the predictions
    for each bin are averaged; in eval mode a confidence threshold ``alpha`` turns them into binary masks
    (vocals where p > α, the rest to the residual source: α trades interference against artefacts).

    Sources: a vocal source and a residual (accompaniment). Objective: binary cross-entropy against the IBM, of
    the averaged probabilities ("ibm_bce") or, as in the paper, of each excerpt's own ("ibm_bce_windows").
    """

    kind = "deep_karaoke"

    def __init__(
        self,
        *args,
        window: int = 20,
        filters: tuple[int, ...] = (8, 16),
        hidden: int = 128,
        alpha: float | None = 0.5,
        **kwargs,
    ):
        kwargs.setdefault("mask", "sigmoid")
        kwargs.setdefault("residual", True)
        kwargs.setdefault("channels", 1)
        kwargs.setdefault("context", window - 1)
        kwargs.setdefault("objective", "ibm_bce")
        super().__init__(*args, window=window, filters=list(filters), hidden=hidden, alpha=alpha, **kwargs)
        if self.predicted != 1:
            raise ValueError("deep_karaoke predicts one source (vocals) and leaves the rest to the residual")
        self.window = window
        self.alpha = alpha
        self.scaler = InputScaler(self.bins)
        self.trunk = _conv_trunk((3, 7), tuple(filters), ((1, 4),) * len(filters), batch_norm=False)
        reduced = self.bins
        for _ in filters:
            reduced = -(-reduced // 4)
        self.dense = torch.nn.Sequential(
            torch.nn.Linear(filters[-1] * reduced * window, hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(hidden, window * self.bins),
        )

    def window_probabilities(self, mag: Tensor) -> Tensor:
        """mag (batch, channels, bins, frames) → each excerpt's own vocal probabilities (batch·channels,
        frames + window − 1, bins, window): excerpt s covers frames s − (window − 1) … s, zero-padded at the ends,
        so every frame is covered by exactly ``window`` of them."""
        batch, channels, bins, frames = mag.shape
        x = self.scaler(mag).reshape(batch * channels, bins, frames).transpose(1, 2)  # (b·c, frames, bins)
        features = _trunk_features(self.trunk, x)  # (b·c, feat, frames)
        w = self.window
        windows = F.pad(features, (w - 1, w - 1)).unfold(-1, w, 1).transpose(1, 2)  # (b·c, frames+w−1, feat, w)
        logits = self.dense(windows.flatten(2))  # (b·c, n, w·bins)
        return torch.sigmoid(logits).reshape(batch * channels, -1, w, bins).transpose(2, 3)

    def probabilities(self, mag: Tensor) -> Tensor:
        """mag (batch, 1, bins, frames) → vocal probability (batch, 1, bins, frames), averaged over windows."""
        batch, channels, bins, frames = mag.shape
        probs = self.window_probabilities(mag)
        return overlap_average(probs, frames).reshape(batch, channels, bins, frames)

    def forward(self, mag: Tensor, windows: bool = False) -> Tensor:
        """The averaged probabilities as raw masks (batch, 1, channels, bins, frames), binarised at α in eval mode;
        with ``windows``, each excerpt's own probabilities (see `window_probabilities`): what the
        "ibm_bce_windows" objective trains, as the paper trains each excerpt on its own mask."""
        if windows:
            return self.window_probabilities(mag)
        p = self.probabilities(mag).unsqueeze(1)  # (batch, 1, channels, bins, frames)
        if not self.training and self.alpha is not None:
            return (p > self.alpha).to(p.dtype)
        return p


class RomaCNN(Estimator):
    """Roma et al. 2018: conv layers (ReLU, batch norm, max-pooling) then fully connected layers over an
    ``context_frames``-frame window, predicting the centre frame's masks for every source in one pass.

    head "cnn1": sigmoid masks trained with MSE against soft (ratio) masks, renormalised to sum to one.
    head "cnn2": softmax trained with NLL against the loudest source; in eval mode the argmax gives binary masks
    that split the mixture exactly. ``filters=()`` is the paper's DNN baseline (no conv layers, 5 frames).
    """

    kind = "roma_cnn"

    def __init__(
        self,
        *args,
        head: str = "cnn1",
        context_frames: int = 11,
        filters: tuple[int, ...] = (16, 16),
        hidden: int = 256,
        **kwargs,
    ):
        if head not in ("cnn1", "cnn2"):
            raise ValueError("head must be 'cnn1' (sigmoid, MSE) or 'cnn2' (softmax, NLL)")
        kwargs.setdefault("mask", "sigmoid" if head == "cnn1" else "ratio")
        kwargs.setdefault("channels", 1)
        kwargs.setdefault("context", context_frames // 2)
        kwargs.setdefault("objective", "irm_mse" if head == "cnn1" else "argmax_nll")
        super().__init__(
            *args, head=head, context_frames=context_frames, filters=list(filters), hidden=hidden, **kwargs
        )
        self.head = head
        self.side = context_frames // 2  # frames each side (not `half`: that is Module.half())
        self.scaler = InputScaler(self.bins)
        pools = tuple((1, 4) for _ in filters)
        self.trunk = _conv_trunk((3, 3), tuple(filters), pools, batch_norm=True)
        reduced, width = self.bins, 1
        for f in filters:
            reduced, width = -(-reduced // 4), f
        features = width * reduced * context_frames
        self.dense = torch.nn.Sequential(
            torch.nn.Linear(features, hidden),
            torch.nn.BatchNorm1d(hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(hidden, self.predicted * self.bins),
        )

    def forward(self, mag: Tensor) -> Tensor:
        batch, channels, bins, frames = mag.shape
        x = self.scaler(mag).reshape(batch * channels, bins, frames)
        features = _trunk_features(self.trunk, x.transpose(1, 2)) if len(self.trunk) else x
        windows = frame_windows(features, self.side, self.side)  # (b·c, frames, feat, ctx)
        hidden = self.dense[0](windows.flatten(2))  # (b·c, frames, hidden)
        hidden = self.dense[1](hidden.transpose(1, 2)).transpose(1, 2)  # batch norm over hidden
        out = self.dense[4](self.dense[3](self.dense[2](hidden)))  # (b·c, frames, P·bins)
        out = out.reshape(batch, channels, frames, self.predicted, bins).permute(0, 3, 1, 4, 2)
        if self.head == "cnn1":
            return torch.sigmoid(out)  # renormalised by the policy
        probs = torch.softmax(out, dim=1)
        if not self.training:
            return F.one_hot(probs.argmax(dim=1), self.predicted).movedim(-1, 1).to(probs.dtype)
        return probs


class LinCNN(Estimator):
    """Lin et al. 2018: a pixel-wise CNN on ``context_frames``×bins excerpts (window 1024 zero-padded to FFT
    4096, hop 256 at 22.05 kHz in the paper), 3×12 convolutions with frequency-only max-pooling, dense layers with
    dropout, and a sigmoid vocal mask for the centre frame trained on the ideal binary mask with cross-entropy and
    soft targets 0.02/0.98. In eval mode a threshold ``theta`` binarises it; accompaniment = 1 − vocal mask.
    """

    kind = "lin_cnn"

    def __init__(
        self,
        *args,
        context_frames: int = 9,
        filters: tuple[int, ...] = (8, 16),
        hidden: int = 256,
        theta: float | None = None,
        targets: tuple[float, float] = (0.02, 0.98),
        **kwargs,
    ):
        kwargs.setdefault("mask", "sigmoid")
        kwargs.setdefault("residual", True)
        kwargs.setdefault("channels", 1)
        kwargs.setdefault("context", context_frames // 2)
        kwargs.setdefault("objective", "ibm_bce")
        super().__init__(
            *args,
            context_frames=context_frames,
            filters=list(filters),
            hidden=hidden,
            theta=theta,
            targets=list(targets),
            **kwargs,
        )
        if self.predicted != 1:
            raise ValueError("lin_cnn predicts one source (vocals) and leaves the rest to the residual")
        self.side = context_frames // 2  # frames each side (not `half`: that is Module.half())
        self.theta = theta
        self.targets = tuple(targets)
        self.scaler = InputScaler(self.bins)
        self.trunk = _conv_trunk((3, 12), tuple(filters), ((1, 12),) * len(filters), batch_norm=False)
        reduced = self.bins
        for _ in filters:
            reduced = -(-reduced // 12)
        self.dense = torch.nn.Sequential(
            torch.nn.Linear(filters[-1] * reduced * context_frames, hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.5),
            torch.nn.Linear(hidden, self.bins),
        )

    def encode(self, mag: Tensor) -> Tensor:
        """mag (batch, channels, bins, frames) → each frame's hidden features (batch·channels, frames, hidden): the
        convolutions over its ``context_frames``-frame excerpt through the first dense layer. These are the layers
        the autoencoder pre-training trains (`stemdesk.training.pretrain`)."""
        batch, channels, bins, frames = mag.shape
        x = self.scaler(mag).reshape(batch * channels, bins, frames).transpose(1, 2)
        windows = frame_windows(_trunk_features(self.trunk, x), self.side, self.side)
        return self.dense[1](self.dense[0](windows.flatten(2)))

    def forward(self, mag: Tensor) -> Tensor:
        batch, channels, bins, frames = mag.shape
        p = torch.sigmoid(self.dense[3](self.dense[2](self.encode(mag))))  # (b·c, frames, bins)
        p = p.reshape(batch, channels, frames, bins).transpose(2, 3).unsqueeze(1)  # (batch, 1, ch, bins, frames)
        if not self.training and self.theta is not None:
            return (p > self.theta).to(p.dtype)
        return p
