"""An exponential moving average of a model's trainable weights (Polyak averaging): what validation scores and
export writes when a run keeps one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


class WeightAverage:
    """The average of ``model``'s trainable parameters with a target ``decay`` (for example 0.999)."""

    def __init__(self, model: nn.Module, decay: float):
        self.model = model
        self.decay = decay
        self.values = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}

    def update(self, step: int) -> None:
        """Move the average towards the weights after optimiser step ``step`` (counted from 0). The decay ramps
        up as (1 + t) / (10 + t) towards ``decay``, so the first steps do not leave the average stuck at the
        starting weights."""
        decay = min(self.decay, (1 + step) / (10 + step))
        current = dict(self.model.named_parameters())
        with torch.no_grad():
            names = list(self.values)
            torch._foreach_lerp_([self.values[n] for n in names], [current[n].detach() for n in names], 1 - decay)

    def load(self, saved: dict[str, Tensor], fallback: dict[str, Tensor]) -> None:
        """Restore the average from a checkpoint; one from a run without averaging (no ``saved`` entry) starts
        the average at its weights, ``fallback``."""
        for name, value in self.values.items():
            value.copy_(saved.get(name, fallback[name]).to(value.device))

    @contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own ones again after it."""
        current = dict(self.model.named_parameters())
        with torch.no_grad():
            own = {n: current[n].detach().clone() for n in self.values}
            for name, value in self.values.items():
                current[name].copy_(value)
        try:
            yield
        finally:
            with torch.no_grad():
                for name, value in own.items():
                    current[name].copy_(value)
