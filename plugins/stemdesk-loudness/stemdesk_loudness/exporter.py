"""Render the remix twice: once to measure it, once through `render_remix` gained to the target (24-bit WAV)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pedalboard

from stemdesk.core.errors import AudioError
from stemdesk.export.remix import mixed_blocks, render_remix
from stemdesk.io.formats import OutputFormat

from .meter import LoudnessMeter

DEFAULT_TARGET = -14.0  # LUFS, what the main streaming services normalise to
CEILING_DB = -1.0


def write_loudness_matched(stems, mix, out: Path, tempo=None, target: float | None = None) -> Path:
    target = float(os.environ.get("STEMDESK_LUFS", DEFAULT_TARGET)) if target is None else target
    if not -70 < target < 0:
        raise AudioError(f"A loudness target of {target} LUFS makes no sense; use -70 to 0 (e.g. -14).")
    rate, channels = stems.info.sample_rate, stems.info.channels
    meter = LoudnessMeter(rate, channels)
    for _, block in mixed_blocks(stems, mix):
        meter.add(block)
    measured = meter.integrated()
    if measured is None:
        raise AudioError("The remix is silent (below the -70 LUFS gate); there is no loudness to match.")
    gain = 10 ** ((target - measured) / 20)
    limiter = None
    if meter.peak * gain > 10 ** (CEILING_DB / 20):
        limiter = pedalboard.Pedalboard([pedalboard.Limiter(threshold_db=CEILING_DB, release_ms=100.0)])
    check = LoudnessMeter(rate, channels)

    def gained(block: np.ndarray) -> np.ndarray:
        block = (block * gain).astype(np.float32)
        if limiter is not None:
            block = limiter.process(block, rate, reset=False)
        check.add(block)
        return block

    def settings() -> dict:
        return {
            "target_lufs": target,
            "measured_lufs": round(measured, 2),
            "gain_db": round(20 * np.log10(gain), 2),
            "limited": limiter is not None,
            "result_lufs": round(check.integrated() or -99, 2),
        }

    path = Path(out).with_name(Path(out).name + ".loudness.wav")
    return render_remix(
        stems, mix, path, OutputFormat.parse("wav", "24"), kind="loudness", process=gained, settings=settings
    ).path
