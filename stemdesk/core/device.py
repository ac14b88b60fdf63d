"""Choosing a compute device."""

from __future__ import annotations

import torch

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU. Asking for an absent device is an error that says so."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise ValueError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    cuda = torch.cuda.is_available()
    mps = torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name.startswith("cuda") and not cuda:
        raise ValueError("CUDA was requested but no CUDA GPU is available; use --device cpu or auto")
    if name == "mps" and not mps:
        raise ValueError("MPS was requested but this machine has no Apple GPU; use --device cpu or auto")
    return torch.device(name)
