"""First-run hardware probe: what this machine can compute on, and the settings that follow from it."""

from __future__ import annotations

import os

import torch


def probe() -> dict:
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return {
        "cpu_threads": os.cpu_count() or 1,
        "cuda": cuda,
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "mps": mps,
    }


def default_threads(cpu_threads: int | None = None) -> int:
    """CPU threads for a separation nobody chose a number for: all but one (the interface, or whatever else runs,
    keeps a core), at most 8. Not torch's default of all of them: measured on 2 cores with one busy, an 8-s song
    took 12.7 s with two threads and 0.4 s with one (each of torch's parallel sections waits for the thread that
    shares a core)."""
    if cpu_threads is None:
        cpu_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(8, cpu_threads - 1))


def defaults_for(hardware: dict) -> dict:
    """The GPU when there is one; on the CPU, `default_threads`."""
    device = "cuda" if hardware["cuda"] else "mps" if hardware["mps"] else "cpu"
    return {"device": device, "threads": default_threads(hardware["cpu_threads"])}
