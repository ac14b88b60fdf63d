"""Render the remix twice: once to measure it, once gained to the target and written (atomically) as 24-bit WAV."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pedalboard
import soundfile as sf

from stemdesk.core.errors import AudioError
from stemdesk.export import certificate
from stemdesk.export.stems import quantise
from stemdesk.io.audio import AtomicAudioWriter
from stemdesk.mixer.render import Renderer

from .meter import LoudnessMeter

DEFAULT_TARGET = -14.0      # LUFS, what the main streaming services normalise to
CEILING_DB = -1.0
BLOCK = 1 << 16


def _render(stems, mix):
    """Yield (channels, n) float32 blocks of the remix, with fresh effect state."""
    renderer = Renderer(mix, stems.names, stems.info.sample_rate, stems.info.channels)
    handles = [sf.SoundFile(str(p)) for p in stems.paths]
    try:
        done = 0
        while done < stems.info.frames:
            n = min(BLOCK, stems.info.frames - done)
            if mix.automation:
                renderer.set_mix(mix.at(done / stems.info.sample_rate))
            yield renderer.process(np.stack([h.read(n, dtype="float64", always_2d=True).T for h in handles]))
            done += n
    finally:
        for handle in handles:
            handle.close()


def write_loudness_matched(stems, mix, out: Path, tempo=None, target: float | None = None) -> Path:
    target = float(os.environ.get("STEMDESK_LUFS", DEFAULT_TARGET)) if target is None else target
    if not -70 < target < 0:
        raise AudioError(f"A loudness target of {target} LUFS makes no sense; use -70 to 0 (e.g. -14).")
    rate, channels = stems.info.sample_rate, stems.info.channels
    meter = LoudnessMeter(rate, channels)
    for block in _render(stems, mix):
        meter.add(block)
    measured = meter.integrated()
    if measured is None:
        raise AudioError("The remix is silent (below the -70 LUFS gate); there is no loudness to match.")
    gain = 10 ** ((target - measured) / 20)
    limiter = None
    if meter.peak * gain > 10 ** (CEILING_DB / 20):
        limiter = pedalboard.Pedalboard([pedalboard.Limiter(threshold_db=CEILING_DB, release_ms=100.0)])
    path = Path(out).with_name(Path(out).name + ".loudness.wav")
    check = LoudnessMeter(rate, channels)
    with AtomicAudioWriter(path, rate, channels, "WAV", "PCM_24") as writer:
        for block in _render(stems, mix):
            block = (block * gain).astype(np.float32)
            if limiter is not None:
                block = limiter.process(block, rate, reset=False)
            check.add(block)
            writer.write(quantise(block, 24) << 8)
        writer.close()
        cert = certificate.build("loudness", None, {"mix": mix.to_dict(), "target_lufs": target,
                                                    "measured_lufs": round(measured, 2),
                                                    "gain_db": round(20 * np.log10(gain), 2),
                                                    "limited": limiter is not None,
                                                    "result_lufs": round(check.integrated() or -99, 2)})
        certificate.embed_wav(writer.temp, cert)
        written = writer.commit()
    certificate.write_beside(path.parent, cert, [written], name=f"{path.stem}.certificate.json")
    return written
