"""Low-rank adapters (LoRA, Hu et al. 2021) for fine-tuning: each dense layer W gets a trainable W + (α/r)·B·A with
A (r × in) random and B (out × r) zero, so training starts exactly at the base model; everything else stays frozen.
Exported models have the adapters merged back into W, so they load as the plain estimator they came from.

Dense layers are the ``nn.Linear`` modules and the fused attention projections that are plain matrices
(``in_proj_weight``, as in torch's MultiheadAttention and HTDemucs's transformer): the latter get the same low-rank
term through a parametrisation of that matrix."""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

# Matrices of a module, not nn.Linear layers, that count as dense layers (query, key and value stacked).
DENSE_MATRICES = ("in_proj_weight",)


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None):
        super().__init__()
        self.base = base
        for parameter in base.parameters():
            parameter.requires_grad_(False)
        self.scale = (alpha if alpha is not None else rank) / rank
        self.down = nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features))
        self.up = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: Tensor) -> Tensor:
        return self.base(x) + (x @ self.down.t() @ self.up.t()) * self.scale

    def merged(self) -> nn.Linear:
        layer = copy.deepcopy(self.base)
        with torch.no_grad():
            layer.weight += self.scale * (self.up @ self.down)
        layer.weight.requires_grad_(True)
        return layer


class LoRADelta(nn.Module):
    """The parametrisation W ↦ W + (α/r)·B·A of a plain weight matrix (out × in)."""

    def __init__(self, weight: Tensor, rank: int, alpha: float | None = None):
        super().__init__()
        out_features, in_features = weight.shape
        self.scale = (alpha if alpha is not None else rank) / rank
        self.down = nn.Parameter(torch.randn(rank, in_features, device=weight.device) / math.sqrt(in_features))
        self.up = nn.Parameter(torch.zeros(out_features, rank, device=weight.device))

    def forward(self, weight: Tensor) -> Tensor:
        return weight + self.scale * (self.up @ self.down)


def add_adapters(model: nn.Module, rank: int) -> list[str]:
    """Freeze every parameter of ``model`` and wrap each nn.Linear in a LoRALinear. Returns the wrapped names."""
    if rank < 1:
        raise ValueError("the adapter rank must be at least 1")
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    wrapped = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and not isinstance(module, LoRALinear):
                setattr(module, child_name, LoRALinear(child, min(rank, child.in_features, child.out_features)))
                wrapped.append(f"{name}.{child_name}" if name else child_name)
        for matrix in DENSE_MATRICES:
            weight = module._parameters.get(matrix)
            if isinstance(weight, nn.Parameter) and weight.dim() == 2:
                delta = LoRADelta(weight, min(rank, *weight.shape))
                parametrize.register_parametrization(module, matrix, delta)
                wrapped.append(f"{name}.{matrix}" if name else matrix)
    if not wrapped:
        raise ValueError(f"{type(model).__name__} has no dense layers to adapt; use --freeze instead")
    return wrapped


def merged_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every adapter merged into its dense layer (the original keeps training)."""
    copy_ = copy.deepcopy(model)
    for _, module in list(copy_.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                setattr(module, child_name, child.merged())
    for _, module in list(copy_.named_modules()):
        if parametrize.is_parametrized(module):
            # Undone by hand: torch's remove_parametrizations edits the parametrised class, which the copy shares
            # with the original (a deepcopy keeps classes), and would break the model that keeps training.
            merged = {m: getattr(module, m).detach().clone() for m in module.parametrizations.keys()}
            module.__class__ = module.__class__.__bases__[0]
            del module._modules["parametrizations"]
            for matrix, weight in merged.items():
                module.register_parameter(matrix, nn.Parameter(weight))
    return copy_
