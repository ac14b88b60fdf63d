"""Choosing a compute device: the one place that says what 'auto' means."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import DeviceUnavailable

if TYPE_CHECKING:  # torch loads with the first device chosen, not with the command line's choices
    import torch

DEVICES = ("auto", "cpu", "cuda", "mps")


def accelerators() -> dict[str, bool]:
    """Which accelerators this machine has: {"cuda": ..., "mps": ...} (imports torch)."""
    import torch

    mps = getattr(torch.backends, "mps", None)  # builds without Apple's backend have no torch.backends.mps
    return {"cuda": torch.cuda.is_available(), "mps": bool(mps is not None and mps.is_available())}


def auto_device(cuda: bool, mps: bool) -> str:
    """What 'auto' picks given the accelerators there are: CUDA, then Apple's MPS, then the CPU."""
    return "cuda" if cuda else "mps" if mps else "cpu"


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU. Asking for an absent device is an error that says so."""
    import torch

    if name not in DEVICES and not name.startswith("cuda:"):
        raise ValueError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    there = accelerators()
    if name == "auto":
        return torch.device(auto_device(**there))
    if name.startswith("cuda") and not there["cuda"]:
        raise DeviceUnavailable("CUDA was requested but this machine has no CUDA GPU.", setting="device", value="cpu")
    if name == "mps" and not there["mps"]:
        raise DeviceUnavailable("MPS was requested but this machine has no Apple GPU.", setting="device", value="cpu")
    return torch.device(name)
