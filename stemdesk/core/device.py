"""Choosing a compute device."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import DeviceUnavailable

if TYPE_CHECKING:  # torch loads with the first device chosen, not with the command line's choices
    import torch

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU. Asking for an absent device is an error that says so."""
    import torch

    if name not in DEVICES and not name.startswith("cuda:"):
        raise ValueError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    cuda = torch.cuda.is_available()
    mps = torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name.startswith("cuda") and not cuda:
        raise DeviceUnavailable("CUDA was requested but this machine has no CUDA GPU.", setting="device", value="cpu")
    if name == "mps" and not mps:
        raise DeviceUnavailable("MPS was requested but this machine has no Apple GPU.", setting="device", value="cpu")
    return torch.device(name)
