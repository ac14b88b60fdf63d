"""Key and tempo: what they cost live, and how close they come to the right answer.

    .venv/bin/python benchmarks/key_tempo.py [--seconds 20] [--repeats 3]

Cost: the player's own path (`MixSource.read`, 1024 frames a block, as the audio device asks) over 4 stems of a real
CC0 song from ../shared/data (synthesised noise when it is absent), one thread. The baseline is the same song at its
own key and tempo, measured in the same run; each setting is reported as milliseconds of CPU per block, its ratio to
the baseline, and the share of the block's 23.2 ms of sound it takes.

Quality, against an answer known exactly: synthetic notes (harmonic tones with attacks and decays) rendered at the
pitch and timing a key or tempo change should give, compared with what `KeyTempo` makes of the originals, as the
log-spectral distance of the two spectrograms (dB, lower is closer; 0 is identical). Rubber Band through
pedalboard's `time_stretch` (offline, whole buffer, finer engine, formants not preserved) is measured on the same
notes as a reference. And a 440 Hz sine: the frequency error in cents. Results: benchmarks/results/key_tempo.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pedalboard
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stemdesk.app.playback import MixSource  # noqa: E402
from stemdesk.mixer.keytempo import KeyTempo  # noqa: E402
from stemdesk.mixer.mix import Mix  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "cc0-efree"
NAMES = ["vocals", "drums", "bass", "other"]
RATE = 44100
SETTINGS = [(3.0, 1.0), (-5.0, 1.0), (0.0, 0.8), (0.0, 1.25), (3.0, 0.8), (12.0, 0.5), (-12.0, 2.0)]


def write_stems(folder: Path, seconds: float) -> tuple[Path, dict[str, Path]]:
    song = next(iter(sorted(DATA.glob("*/vocals.ogg"))), None) if DATA.is_dir() else None
    frames = int(seconds * RATE)
    rng = np.random.default_rng(0)
    stems, total = {}, np.zeros((frames, 2))
    for name in NAMES:
        if song is not None:
            audio = sf.read(str(song.parent / f"{name}.ogg"), start=30 * RATE, frames=frames, always_2d=True)[0]
            audio = np.resize(audio, (frames, 2))
        else:
            audio = rng.standard_normal((frames, 2)) * 0.05
        stems[name] = folder / f"{name}.wav"
        sf.write(str(stems[name]), audio, RATE, subtype="FLOAT")
        total += audio
    sf.write(str(folder / "mix.wav"), total, RATE, subtype="FLOAT")
    return folder / "mix.wav", stems


def cpu_per_block(mix_path: Path, stems: dict[str, Path], mix: Mix, repeats: int) -> float:
    """CPU seconds per 1024-frame block of MixSource.read over the whole song, best of ``repeats``."""
    best = float("inf")
    for _ in range(repeats):
        source = MixSource(mix_path, stems, mix)
        blocks = 0
        started = time.process_time()
        while source.read(1024).shape[-1]:
            blocks += 1
        best = min(best, (time.process_time() - started) / blocks)
        source.close()
    return best


def notes(seconds: float, pitch: float = 1.0, tempo: float = 1.0, seed: int = 0) -> np.ndarray:
    """Harmonic notes with sharp attacks and exponential decays, (2, n): at ``pitch`` times their frequencies and
    ``tempo`` times as fast, it is what a key or tempo change of the same notes must sound like."""
    rng = np.random.default_rng(seed)
    n = int(seconds / tempo * RATE)
    out = np.zeros(n)
    t0 = 0.0
    while t0 < seconds:
        f0 = 110 * 2 ** (rng.integers(0, 24) / 12) * pitch
        length = rng.uniform(0.2, 0.6)
        start, count = int(t0 / tempo * RATE), int(length / tempo * RATE)
        t = np.arange(min(count, n - start)) / RATE
        envelope = np.exp(-t * tempo / (0.3 * length)) * np.minimum(1, t * tempo / 0.003)
        tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 9) if f0 * h < 0.45 * RATE)
        out[start : start + len(t)] += 0.2 * envelope * tone
        t0 += rng.uniform(0.1, 0.4)
    return np.stack([out, 0.8 * out]).astype(np.float32)


def log_spectral_distance(a: np.ndarray, b: np.ndarray, size: int = 2048, hop: int = 512) -> float:
    """RMS difference of the two log-magnitude spectrograms (first channel) in dB, over bins within 60 dB of the
    loudest; phase-blind, so a stretch is judged by what is heard."""
    n = min(a.shape[-1], b.shape[-1])
    window = np.hanning(size)

    def spectrogram(x: np.ndarray) -> np.ndarray:
        frames = np.lib.stride_tricks.sliding_window_view(x[0, :n].astype(np.float64), size)[::hop]
        return np.abs(np.fft.rfft(frames * window, axis=-1))

    sa, sb = spectrogram(a), spectrogram(b)
    floor = max(sa.max(), sb.max()) * 1e-3
    da, db = 20 * np.log10(np.maximum(sa, floor)), 20 * np.log10(np.maximum(sb, floor))
    return float(np.sqrt(np.mean((da - db) ** 2)))


def stream(audio: np.ndarray, semitones: float, tempo: float) -> np.ndarray:
    engine = KeyTempo(RATE, audio.shape[0], semitones, tempo)
    out = []
    for i in range(0, audio.shape[-1], 1024):
        engine.push(audio[:, i : i + 1024])
        out.append(engine.pull(engine.available))
    engine.end()
    out.append(engine.pull(engine.available))
    return np.concatenate(out, axis=-1)


def rubber_band(audio: np.ndarray, semitones: float, tempo: float) -> np.ndarray:
    return pedalboard.time_stretch(
        audio, RATE, stretch_factor=tempo, pitch_shift_in_semitones=semitones, preserve_formants=False
    )


def cents_error(audio: np.ndarray, meant: float) -> float:
    middle = audio[0, audio.shape[-1] // 4 : 3 * audio.shape[-1] // 4].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(len(middle))))
    k = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    hz = (k + 0.5 * (a - c) / (a - 2 * b + c)) * RATE / len(middle)
    return float(1200 * np.log2(hz / meant))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results: dict = {"seconds_of_audio": args.seconds, "block_frames": 1024, "cost": {}, "quality": {}}
    with tempfile.TemporaryDirectory() as work:
        mix_path, stems = write_stems(Path(work), args.seconds)
        baseline = cpu_per_block(mix_path, stems, Mix(), args.repeats)
        results["cost"]["baseline (own key and tempo)"] = {"ms_per_block": round(baseline * 1000, 3)}
        for semitones, tempo in SETTINGS:
            cost = cpu_per_block(mix_path, stems, Mix(semitones=semitones, tempo=tempo), args.repeats)
            results["cost"][f"{semitones:+g} st, {tempo * 100:g} %"] = {
                "ms_per_block": round(cost * 1000, 3),
                "vs_baseline": round(cost / baseline, 2),
                "share_of_real_time": round(cost / (1024 / RATE), 3),
            }
    source = notes(6.0)
    sine = np.repeat((0.5 * np.sin(2 * np.pi * 440 * np.arange(4 * RATE) / RATE))[None], 2, 0).astype(np.float32)
    for semitones, tempo in SETTINGS:
        truth = notes(6.0, 2 ** (semitones / 12), tempo)
        ours, reference = stream(source, semitones, tempo), rubber_band(source, semitones, tempo)
        meant = 440 * 2 ** (semitones / 12)
        results["quality"][f"{semitones:+g} st, {tempo * 100:g} %"] = {
            "notes_lsd_db": round(log_spectral_distance(ours, truth), 2),
            "notes_lsd_db_rubber_band": round(log_spectral_distance(reference, truth), 2),
            "sine_cents": round(cents_error(stream(sine, semitones, tempo), meant), 4),
            "sine_cents_rubber_band": round(cents_error(rubber_band(sine, semitones, tempo), meant), 4),
            "length_error_samples": int(stream(sine, semitones, tempo).shape[-1] - round(sine.shape[-1] / tempo)),
        }
    for name, row in results["cost"].items():
        print(f"cost    {name:30s} {json.dumps(row)}")
    for name, row in results["quality"].items():
        print(f"quality {name:30s} {json.dumps(row)}")
    out = ROOT / "benchmarks" / "results" / "key_tempo.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
