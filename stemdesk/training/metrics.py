"""BSS Eval v4 (museval) next to the core's global SDR.

museval's package __init__ imports musdb and stempeg, which demand ffmpeg at import time; only its metrics module
is needed, so that file is loaded on its own.
"""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from types import ModuleType

import numpy as np


@lru_cache(maxsize=1)
def _museval_metrics() -> ModuleType:
    spec = importlib.util.find_spec("museval")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("museval is not installed: pip install museval")
    path = next(iter(spec.submodule_search_locations)) + "/metrics.py"
    module_spec = importlib.util.spec_from_file_location("_stemdesk_museval_metrics", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(np.linalg, "linalg"):
        # museval catches np.linalg.linalg.LinAlgError where a window's projection is singular (a stem silent in
        # that second); NumPy 2 has no np.linalg.linalg, so the handler itself raised AttributeError. The module
        # gets a view of NumPy that has it; NumPy itself is left alone.
        linalg = ModuleType("numpy.linalg")
        linalg.__dict__.update(np.linalg.__dict__)
        linalg.linalg = np.linalg  # type: ignore[attr-defined]
        view = ModuleType("numpy")
        view.__dict__.update(np.__dict__)
        view.linalg = linalg  # type: ignore[attr-defined]
        module.np = view  # type: ignore[attr-defined]
    return module


def bss_eval_v4(references: np.ndarray, estimates: np.ndarray, rate: int) -> dict[str, np.ndarray]:
    """BSS Eval v4 as the SiSEC/MUSDB evaluations run it: one-second windows and hops, framewise images.

    references, estimates: (sources, channels, length). Returns median-over-frames SDR, SIR, SAR and ISR per
    source (NaN frames, where a reference is silent, are left out of the median).
    """
    metrics = _museval_metrics()
    ref = np.ascontiguousarray(references.transpose(0, 2, 1), dtype=np.float64)
    est = np.ascontiguousarray(estimates.transpose(0, 2, 1), dtype=np.float64)
    # museval refuses an all-zero signal (a binary mask that never fires, a stem absent from an excerpt); a
    # −200 dBFS dither lets it score such a stem as what it is: nothing (very low SDR), not an error.
    dither = np.random.default_rng(0)
    for signals in (ref, est):
        for i in range(signals.shape[0]):
            if not signals[i].any():
                signals[i] = dither.standard_normal(signals[i].shape) * 1e-10
    sdr, isr, sir, sar, _ = metrics.bss_eval(
        ref,
        est,
        compute_permutation=False,
        window=rate,
        hop=rate,
        framewise_filters=False,
        bsseval_sources_version=False,
    )
    with np.errstate(all="ignore"):
        return {
            name: np.nanmedian(values, axis=1)
            for name, values in (("sdr", sdr), ("sir", sir), ("sar", sar), ("isr", isr))
        }


def sign_test(wins: int, trials: int) -> float:
    """Two-sided exact sign test: the chance of a split at least as uneven as ``wins`` of ``trials`` if either
    system were as likely to win each song."""
    if trials == 0:
        return 1.0
    extreme = max(wins, trials - wins)
    tail = sum(math.comb(trials, k) for k in range(extreme, trials + 1)) / 2**trials
    return min(1.0, 2 * tail)
