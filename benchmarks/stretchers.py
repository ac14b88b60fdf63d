"""Key and tempo live: StemDesk's own streaming stretcher against the streaming C++ ones on PyPI, block by block.

    python -m venv /tmp/stretchers && /tmp/stretchers/bin/pip install -e . python-stretch pylibrb
    /tmp/stretchers/bin/python benchmarks/stretchers.py [--seconds 20] [--repeats 3]

(`python-stretch` is Signalsmith Stretch, MIT; `pylibrb` is Rubber Band's real-time mode, GPL. Neither is a
dependency of StemDesk: an engine whose package is missing is left out of the table.)

Every engine is fed as the player feeds `KeyTempo`: 1024 input frames a push, stereo float32, what is ready pulled
after each push, one thread. Cost: CPU per 1024-frame block of input, streaming 20 s of the sum of a real CC0 song's
four stems (../shared/data; synthesised noise when it is absent), as a share of the block's 23.2 ms, and its ratio
to `KeyTempo`'s measured in the same run. Quality, against an answer known exactly (key_tempo.py's synthetic notes
rendered at the pitch and timing asked for): the log-spectral distance in dB (lower is closer), after lining each
output up with the answer (each engine has its own latency); a 440 Hz sine's error in cents; and the steepest
sample-to-sample step of the shifted sine against the sine's own (1.00: no click; the player's device tests fail
above 1.05). Results: benchmarks/results/stretchers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from key_tempo import DATA, NAMES, RATE, cents_error, log_spectral_distance, notes  # noqa: E402

from stemdesk.mixer.keytempo import KeyTempo  # noqa: E402

BLOCK = 1024
SETTINGS = [(3.0, 1.0), (-5.0, 1.0), (0.0, 0.8), (0.0, 1.25), (3.0, 0.8)]


class Ours:
    name = "StemDesk KeyTempo (numpy phase vocoder)"

    def __init__(self, semitones: float, tempo: float):
        self.engine = KeyTempo(RATE, 2, semitones, tempo)

    def process(self, block: np.ndarray) -> np.ndarray:
        self.engine.push(block)
        return self.engine.pull(self.engine.available)


class Signalsmith:
    name = "Signalsmith Stretch (python-stretch)"
    cheaper = False

    def __init__(self, semitones: float, tempo: float):
        import python_stretch

        self.engine = python_stretch.Signalsmith.Stretch()
        self.engine.preset(2, float(RATE), self.cheaper)
        self.engine.setTransposeSemitones(semitones)
        self.engine.setTimeFactor(tempo)

    def process(self, block: np.ndarray) -> np.ndarray:
        return self.engine.process(np.ascontiguousarray(block, dtype=np.float32))


class SignalsmithCheaper(Signalsmith):
    name = "Signalsmith Stretch, cheaper preset"
    cheaper = True


class RubberBand:
    name = "Rubber Band R3 real-time (pylibrb, finer engine)"
    engine_option = "ENGINE_FINER"

    def __init__(self, semitones: float, tempo: float):
        import pylibrb

        option = pylibrb.Option
        options = option.PROCESS_REALTIME | getattr(option, self.engine_option) | option.THREADING_NEVER
        self.engine = pylibrb.RubberBandStretcher(
            sample_rate=RATE,
            channels=2,
            options=options,
            initial_time_ratio=1 / tempo,
            initial_pitch_scale=2 ** (semitones / 12),
        )

    def process(self, block: np.ndarray) -> np.ndarray:
        self.engine.process(np.ascontiguousarray(block, dtype=np.float32))
        return self.engine.retrieve_available()


class RubberBandFaster(RubberBand):
    name = "Rubber Band R2 real-time (pylibrb, faster engine)"
    engine_option = "ENGINE_FASTER"


ENGINES = [Ours, Signalsmith, SignalsmithCheaper, RubberBand, RubberBandFaster]


def available(engine: type) -> bool:
    try:
        engine(0.0, 1.0)
    except ImportError:
        return False
    return True


def stream(engine: type, audio: np.ndarray, semitones: float, tempo: float) -> np.ndarray:
    """All the engine makes of ``audio`` fed BLOCK frames at a time, then a second of silence to flush it."""
    stretcher = engine(semitones, tempo)
    padded = np.concatenate([audio, np.zeros((2, RATE), np.float32)], axis=-1)
    out = [stretcher.process(padded[:, i : i + BLOCK]) for i in range(0, padded.shape[-1], BLOCK)]
    return np.concatenate([o for o in out if o.shape[-1]], axis=-1).astype(np.float64)


def aligned(out: np.ndarray, truth: np.ndarray, most: int = 16384) -> np.ndarray:
    """``out`` from where it lines up best with ``truth`` (the engine's latency, found by cross-correlation)."""
    a, b = out[0, : truth.shape[-1] + most], truth[0]
    size = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    xcorr = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)[:most]
    lag = int(np.argmax(xcorr))
    return out[:, lag : lag + truth.shape[-1]]


def steepest_step_ratio(audio: np.ndarray, hz: float, amplitude: float) -> float:
    """The steepest step between two samples in the steady middle of a shifted sine, over the steepest the sine
    itself takes: above 1 is a click."""
    middle = audio[0, audio.shape[-1] // 4 : 3 * audio.shape[-1] // 4]
    level = np.sqrt(2 * np.mean(middle**2)) or amplitude
    return float(np.max(np.abs(np.diff(middle))) / (2 * np.sin(np.pi * hz / RATE) * level))


def song(seconds: float) -> np.ndarray:
    track = next(iter(sorted(DATA.glob("*/vocals.ogg"))), None) if DATA.is_dir() else None
    frames = int(seconds * RATE)
    if track is None:
        return (np.random.default_rng(0).standard_normal((2, frames)) * 0.1).astype(np.float32)
    total = sum(
        np.resize(
            sf.read(str(track.parent / f"{n}.ogg"), start=30 * RATE, frames=frames, always_2d=True)[0], (frames, 2)
        )
        for n in NAMES
    )
    return np.ascontiguousarray(total.T, dtype=np.float32)


def cost_per_block(engine: type, audio: np.ndarray, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        stretcher = engine(3.0, 0.8)
        started = time.process_time()
        for i in range(0, audio.shape[-1], BLOCK):
            stretcher.process(audio[:, i : i + BLOCK])
        best = min(best, (time.process_time() - started) / (audio.shape[-1] / BLOCK))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    engines = [engine for engine in ENGINES if available(engine)]
    results: dict = {"block_frames": BLOCK, "cost_at": "+3 st, 80 %", "engines": {}}
    mix = song(args.seconds)
    ours = cost_per_block(Ours, mix, args.repeats)
    source = notes(6.0)
    sine = np.repeat((0.5 * np.sin(2 * np.pi * 440 * np.arange(4 * RATE) / RATE))[None], 2, 0).astype(np.float32)
    for engine in engines:
        cost = ours if engine is Ours else cost_per_block(engine, mix, args.repeats)
        row: dict = {
            "ms_per_block": round(cost * 1000, 3),
            "share_of_real_time": round(cost / (BLOCK / RATE), 3),
            "vs_ours": round(cost / ours, 2),
        }
        for semitones, tempo in SETTINGS:
            truth = notes(6.0, 2 ** (semitones / 12), tempo)
            meant = 440 * 2 ** (semitones / 12)
            shifted = stream(engine, sine, semitones, tempo)
            row[f"{semitones:+g} st, {tempo * 100:g} %"] = {
                "notes_lsd_db": round(
                    log_spectral_distance(aligned(stream(engine, source, semitones, tempo), truth), truth), 2
                ),
                "sine_cents": round(cents_error(shifted, meant), 3),
                "sine_steepest_step": round(steepest_step_ratio(shifted, meant, 0.5), 3),
            }
        results["engines"][engine.name] = row
        print(f"{engine.name:52s} {json.dumps(row)}", flush=True)
    out = ROOT / "benchmarks" / "results" / "stretchers.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
