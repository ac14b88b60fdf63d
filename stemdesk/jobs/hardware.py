"""First-run hardware probe: what this machine can compute on, and the settings that follow from it."""

from __future__ import annotations

import os

import torch

from ..core.device import accelerators, auto_device
from ..io.process import default_threads


def probe_hardware() -> dict:
    there = accelerators()
    return {
        "cpu_threads": os.cpu_count() or 1,
        "cuda": there["cuda"],
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if there["cuda"]
        else [],
        "mps": there["mps"],
    }


def defaults_for(hardware: dict) -> dict:
    """The GPU when there is one (as `resolve_device`'s 'auto' picks it); on the CPU, `default_threads`."""
    return {
        "device": auto_device(hardware["cuda"], hardware["mps"]),
        "threads": default_threads(hardware["cpu_threads"]),
    }
