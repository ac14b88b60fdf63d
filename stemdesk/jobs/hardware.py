"""First-run hardware probe: what this machine can compute on, and the settings that follow from it."""

from __future__ import annotations

import os

import torch

from ..io.process import default_threads


def probe() -> dict:
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return {
        "cpu_threads": os.cpu_count() or 1,
        "cuda": cuda,
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "mps": mps,
    }


def defaults_for(hardware: dict) -> dict:
    """The GPU when there is one; on the CPU, `default_threads`."""
    device = "cuda" if hardware["cuda"] else "mps" if hardware["mps"] else "cpu"
    return {"device": device, "threads": default_threads(hardware["cpu_threads"])}
