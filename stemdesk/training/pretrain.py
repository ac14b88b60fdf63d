"""Pre-training stages that run before a separator is trained: Lin et al.'s autoencoder.

Lin et al. (2018) pre-train their network as an autoencoder on mixtures before training it to predict the vocal
mask. Here the autoencoder is the separator's own encoder (`LinCNN.encode`: the convolutions over each frame's
excerpt of ``context_frames`` frames and the first dense layer) with a linear decoder that rebuilds the frame's
input, its log-magnitudes as the estimator's input scaling normalises them. The scaling is set from data first and
held fixed (otherwise the autoencoder could shrink its own target to nothing). Only the encoder's weights are kept:
the decoder is dropped and the separator's output layer starts fresh, so the exported model is the plain estimator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from stemdesk.core.cancel import CancelToken
from stemdesk.core.errors import Cancelled
from stemdesk.core.estimators import Estimator

# The pre-training stages a recipe can ask for.
PRETRAINING = ("autoencoder",)


class FrameAutoencoder(torch.nn.Module):
    """``estimator.encode`` → a linear decoder → each frame's scaled log-magnitudes.

    ``forward``: mag (batch, channels, bins, frames) → the reconstruction's mean squared error (a scalar)."""

    def __init__(self, estimator: Estimator):
        super().__init__()
        encoder = callable(getattr(estimator, "encode", None)) and hasattr(estimator, "scaler")
        if not encoder or "hidden" not in estimator.hyper:
            raise ValueError(
                f"{estimator.kind} has no encoder to pre-train; autoencoder pre-training is built for lin_cnn"
            )
        self.estimator = estimator
        self.decoder = torch.nn.Linear(int(estimator.hyper["hidden"]), estimator.bins)

    def trainable(self) -> list[torch.nn.Parameter]:
        """The encoder's and the decoder's parameters (the input scaling stays as set from data)."""
        return [p for name, p in self.named_parameters() if not name.startswith("estimator.scaler.")]

    def forward(self, mag: Tensor) -> Tensor:
        batch, channels, bins, frames = mag.shape
        hidden = self.estimator.encode(mag)  # (batch·channels, frames, hidden)
        with torch.no_grad():
            target = self.estimator.scaler(mag).reshape(batch * channels, bins, frames).transpose(1, 2)
        return F.mse_loss(self.decoder(hidden), target)


def pretrain_autoencoder(
    estimator: Estimator,
    mixtures: Callable[[], Tensor],
    seconds: float,
    steps: int | None = None,
    lr: float = 1e-3,
    progress: Callable[[dict], None] | None = None,
    cancel: CancelToken | None = None,
    report_every: int = 25,
) -> dict[str, Any]:
    """Train ``estimator``'s encoder as an autoencoder for ``seconds`` (wall clock) or ``steps``, whichever ends
    first, on the batches of mixture magnitudes ``mixtures()`` returns ((batch, channels, bins, frames) on the
    estimator's bins). The estimator's weights are changed in place. Returns what the stage did: steps, wall-clock
    and CPU seconds, and the reconstruction loss of its first and last steps (each the mean of up to five)."""
    model = FrameAutoencoder(estimator).to(next(estimator.parameters()).device)
    model.train()
    optimizer = torch.optim.AdamW(model.trainable(), lr=lr, weight_decay=1e-5)
    started, cpu = time.monotonic(), time.process_time()
    # The scaling is held fixed: no gradient flows into it, which also spares the backward pass the first
    # convolution's input gradient.
    scaling = [(p, p.requires_grad) for p in estimator.scaler.parameters()]
    for parameter, _ in scaling:
        parameter.requires_grad_(False)
    try:
        losses = _train(model, optimizer, mixtures, time.monotonic() + seconds, steps, progress, cancel, report_every)
    finally:
        for parameter, trained in scaling:
            parameter.requires_grad_(trained)
    estimator.zero_grad(set_to_none=True)
    head, tail = losses[:5], losses[-5:]
    return {
        "kind": "autoencoder",
        "steps": len(losses),
        "seconds": round(time.monotonic() - started, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "loss_first": round(sum(head) / len(head), 5) if head else None,
        "loss_last": round(sum(tail) / len(tail), 5) if tail else None,
    }


def _train(
    model: FrameAutoencoder,
    optimizer: torch.optim.Optimizer,
    mixtures: Callable[[], Tensor],
    deadline: float,
    steps: int | None,
    progress: Callable[[dict], None] | None,
    cancel: CancelToken | None,
    report_every: int,
) -> list[float]:
    """The pre-training loop; returns each step's loss."""
    losses: list[float] = []
    while time.monotonic() < deadline and (steps is None or len(losses) < steps):
        if cancel is not None and cancel.cancelled:
            raise Cancelled("Training cancelled during pre-training; nothing was kept.")
        loss = model(mixtures())
        if not bool(torch.isfinite(loss)):
            raise FloatingPointError(
                f"autoencoder pre-training diverged at step {len(losses)}; lower the learning rate"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.trainable(), 5.0)
        optimizer.step()
        losses.append(float(loss.item()))
        if progress is not None and len(losses) % report_every == 0:
            progress(
                {
                    "stage": "pretrain",
                    "step": len(losses),
                    "loss": losses[-1],
                    "eta_seconds": max(0.0, deadline - time.monotonic()),
                }
            )
    return losses
