"""Offline remix render speed: 4 stems with reverb and compression, against the plain sum of the same stems.

    .venv/bin/python benchmarks/remix.py [--seconds 180] [--repeats 3]

The stems are a real CC0 song from ../shared/data (looped to length) or synthesised noise when it is absent, written
as 24-bit WAV. Each configuration renders the whole song to a 24-bit WAV with `render_remix` (read, mix, write,
certificate), best of --repeats, one thread:
- floor: every strip at unity (the plain sum: I/O and summing only)
- typical: vocals -3 dB with compressor + reverb send, drums compressor + peak EQ, bass compressor, other reverb,
  master limiter
- heavy: reverb and compressor inserted on all four stems, plus the master limiter
Reported: seconds, × real time, and the ratio to the floor. Results: benchmarks/results/remix.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stemdesk.export.remix import render_remix  # noqa: E402
from stemdesk.io.formats import OutputFormat  # noqa: E402
from stemdesk.io.stems import find_stems  # noqa: E402
from stemdesk.mixer.mix import Mix  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "cc0-efree"
NAMES = ["vocals", "drums", "bass", "other"]


def write_stems(folder: Path, seconds: float) -> None:
    song = next(iter(sorted(DATA.glob("*/vocals.ogg"))), None) if DATA.is_dir() else None
    frames = int(seconds * 44100)
    rng = np.random.default_rng(0)
    for name in NAMES:
        if song is not None:
            audio, _ = sf.read(str(song.parent / f"{name}.ogg"), dtype="float32", always_2d=True)
            audio = np.resize(audio, (frames, audio.shape[1]))
        else:
            audio = (rng.standard_normal((frames, 2)) * 0.05).astype(np.float32)
        sf.write(str(folder / f"{name}.wav"), audio, 44100, subtype="PCM_24")


MIXES = {
    "floor": {},
    "typical": {
        "channels": {
            "vocals": {
                "gain_db": -3,
                "sends": {"verb": -10},
                "effects": [{"kind": "compressor", "params": {"threshold_db": -20, "ratio": 3}}],
            },
            "drums": {"effects": [{"kind": "compressor"}, {"kind": "peak", "params": {"gain_db": 2}}]},
            "bass": {"effects": [{"kind": "compressor", "params": {"ratio": 2}}]},
            "other": {"effects": [{"kind": "reverb", "params": {"wet_db": -18}}]},
        },
        "buses": {"verb": [{"kind": "reverb", "params": {"wet_db": 0, "dry_db": -60}}]},
        "master": [{"kind": "limiter"}],
    },
    "heavy": {
        "channels": {name: {"effects": [{"kind": "reverb"}, {"kind": "compressor"}]} for name in NAMES},
        "master": [{"kind": "limiter"}],
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results = {"seconds_of_audio": args.seconds, "stems": 4, "configs": {}}
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "stems"
        folder.mkdir()
        write_stems(folder, args.seconds)
        stems = find_stems(folder)
        for name, data in MIXES.items():
            mix = Mix.from_dict(data)
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                render_remix(stems, mix, Path(work) / f"{name}.wav", OutputFormat.parse("wav", "24"))
                times.append(time.perf_counter() - started)
            best = min(times)
            results["configs"][name] = {"seconds": round(best, 3), "x_realtime": round(args.seconds / best, 1)}
    floor = results["configs"]["floor"]["seconds"]
    for name, row in results["configs"].items():
        row["vs_floor"] = round(row["seconds"] / floor, 2)
        print(f"{name:8s} {row['seconds']:7.2f} s  {row['x_realtime']:7.1f}x real time  {row['vs_floor']:5.2f}x floor")
    out = ROOT / "benchmarks" / "results" / "remix.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
