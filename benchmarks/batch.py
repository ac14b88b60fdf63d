"""Batch throughput: songs per minute for 1 local worker, 2 local workers and Ray with 2 nodes, measured in one run.

    .venv/bin/python benchmarks/batch.py [--songs 8] [--seconds 60] [--model stemdesk-4stem]

The songs are excerpts of the CC0 album in ../shared/data (or synthesised when it is absent), written as 16-bit
WAV. Each configuration separates all of them into a fresh folder with `run_batch`, one torch thread per worker.
Scaling efficiency = throughput / (workers × the 1-worker throughput). The per-song cost is turned into an
estimate for a 100,000-song catalog. Results: benchmarks/results/batch.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stemdesk.io.demo import synthesise_song  # noqa: E402
from stemdesk.jobs.batch import BatchSettings, run_batch  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "cc0-efree"


def make_songs(folder: Path, count: int, seconds: float) -> None:
    songs = sorted(DATA.glob("*/vocals.ogg")) if DATA.is_dir() else []
    for i in range(count):
        path = folder / f"song{i:03d}.wav"
        if songs:
            source = songs[i % len(songs)].parent
            start = int((30 + 40 * (i // len(songs))) * 44100)
            mix = sum(
                sf.read(str(source / f"{s}.ogg"), start=start, frames=int(seconds * 44100), dtype="float32")[0]
                for s in ("vocals", "drums", "bass", "other")
            )
            sf.write(str(path), mix, 44100, subtype="PCM_16")
        else:
            synthesise_song(path, seconds, seed=i)


def ray_cluster() -> tuple[str, list[str]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli = [sys.executable, "-m", "ray.scripts.scripts"]
    common = ["--num-cpus=1", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run(
        cli + ["start", "--head", f"--port={port}", "--include-dashboard=false", *common],
        check=True,
        capture_output=True,
        env=env,
    )
    subprocess.run(cli + ["start", f"--address=127.0.0.1:{port}", *common], check=True, capture_output=True, env=env)
    return f"127.0.0.1:{port}", cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--model", default="stemdesk-4stem")
    args = parser.parse_args()
    settings = BatchSettings(model=args.model, format="wav", bit_depth="16", threads=1)
    results = {}
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        songs = work / "songs"
        songs.mkdir()
        make_songs(songs, args.songs, args.seconds)
        for name, workers in (("local_1_worker", 1), ("local_2_workers", 2)):
            started = time.perf_counter()
            summary = run_batch(songs, work / name, settings, workers=workers)
            wall = time.perf_counter() - started
            results[name] = {
                "workers": workers,
                "seconds": round(wall, 1),
                "done": summary.done,
                "songs_per_minute": round(summary.done / wall * 60, 2),
            }
            print(name, results[name], flush=True)
        try:
            import ray  # noqa: F401

            address, cli = ray_cluster()
            try:
                started = time.perf_counter()
                summary = run_batch(songs, work / "ray", settings, workers=2, ray_address=address)
                wall = time.perf_counter() - started
                results["ray_2_nodes"] = {
                    "workers": 2,
                    "seconds": round(wall, 1),
                    "done": summary.done,
                    "songs_per_minute": round(summary.done / wall * 60, 2),
                }
                print("ray_2_nodes", results["ray_2_nodes"], flush=True)
            finally:
                import ray as ray_module

                ray_module.shutdown()
                subprocess.run(cli + ["stop", "--force"], capture_output=True)
        except ImportError:
            results["ray_2_nodes"] = {"skipped": "ray is not installed"}
    base = results["local_1_worker"]["songs_per_minute"]
    for row in results.values():
        if "songs_per_minute" in row:
            row["scaling_efficiency"] = round(row["songs_per_minute"] / (row["workers"] * base), 2)
    per_song_core_seconds = 60 / base  # one core, one song of args.seconds
    full_song = per_song_core_seconds * (210 / args.seconds)  # a 3.5-minute song
    catalog_core_hours = 100_000 * full_song / 3600
    results["catalog_estimate"] = {
        "assumption": "100,000 songs of 3.5 minutes; cost scales with song length; one core per worker",
        "core_seconds_per_song": round(full_song, 1),
        "core_hours": round(catalog_core_hours, 1),
        "hours_on_10_machines_of_8_cores_at_the_measured_efficiency": round(
            catalog_core_hours / (80 * results["local_2_workers"]["scaling_efficiency"]), 1
        ),
    }
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "batch.json").write_text(
        json.dumps(
            {"songs": args.songs, "seconds_each": args.seconds, "model": args.model, "results": results}, indent=1
        )
        + "\n"
    )
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
