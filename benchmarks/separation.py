"""Separation speed and memory, as ratios against baselines measured in the same run.

    .venv/bin/python benchmarks/separation.py [--model stemdesk-4stem] [--threads 1] [--long-minutes 60]

1. A 3-minute stereo 44.1 kHz song (a CC0 song from ../shared/data when present, else synthesised), separated
   file-to-files by `stemdesk separate` in a fresh process: wall time from launch to exit (interpreter start-up
   and imports included) and peak memory (max RSS).
2. The floor: the same command and pipeline with the parameter-free MIX estimator (decode, STFT, masks, iSTFT, the
   exact residual, encode and write four stems), so the ratio is what the network itself costs.
3. The same model with glibc's allocator left at its defaults (STEMDESK_ALLOCATOR=system; see
   stemdesk/io/process.py): what StemDesk's allocator settings buy.
4. A long file (60 minutes by default) built by repeating the song: peak memory against the 3-minute run, which
   must stay flat because the pipeline streams from the decoder to the writers.

Each run is a fresh process so max RSS is its own; results go to benchmarks/results/separation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cc0-efree"
sys.path.insert(0, str(ROOT))

from stemdesk.core.estimators import build_estimator  # noqa: E402
from stemdesk.io.atomic import atomic_write_bytes  # noqa: E402
from stemdesk.io.demo import synthesise_song  # noqa: E402
from stemdesk.io.model_store import save_model  # noqa: E402

SONG_SECONDS = 180.0


# Linux keeps a process's peak memory across exec, and a forked child starts with its parent's peak: measured
# straight from this (large) process, every child would report at least this process's own peak. A small launcher,
# exec'd afresh, forks the command instead and reports the command's own peak through a file.
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as report:
    report.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def timed(cmd: list[str], env: dict | None) -> tuple[int, str, str, float, float]:
    """Run ``cmd``: its exit code, output, error output, wall time from launch to exit (interpreter start-up and
    imports included: what a user waits for) and its own peak memory in MB (its max RSS, through `LAUNCHER`)."""
    with (
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
        tempfile.NamedTemporaryFile("r") as peak,
    ):
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", LAUNCHER, peak.name, *cmd], stdout=out, stderr=err, text=True, env=env
        )
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        kilobytes = peak.read().strip()
        return proc.returncode, out.read(), err.read(), wall, int(kilobytes or 0) / 1024


# Other architectures, random weights (only their speed is compared), file in → four 16-bit WAV stems out.
# Open-Unmix's package imports torchaudio at load time for a backend this benchmark does not use; a stub stands in.
OTHERS = {
    "open-unmix (umxhq architecture)": r"""
import sys, types, importlib.util
sys.modules.setdefault('torchaudio', types.ModuleType('torchaudio'))
spec = importlib.util.find_spec('openunmix')
package = types.ModuleType('openunmix'); package.__path__ = list(spec.submodule_search_locations)
sys.modules['openunmix'] = package
from openunmix.model import OpenUnmix, Separator
nets = {s: OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=512, max_bin=1487) for s in SOURCES}
model = Separator(nets, niter=1, residual=False, filterbank='torch').eval()
separate = lambda x: model(x[None])[0]
""",
    "htdemucs": r"""
from demucs.htdemucs import HTDemucs
from demucs.apply import apply_model
model = HTDemucs(sources=SOURCES).eval()
separate = lambda x: apply_model(model, x[None], split=True, overlap=0.25, progress=False)[0]
""",
}
OTHER_RUNNER = r"""
import sys, torch, soundfile as sf
torch.set_num_threads(int(sys.argv[3]))
SOURCES = ['drums', 'bass', 'other', 'vocals']
exec(sys.argv[4])
audio, rate = sf.read(sys.argv[1], dtype='float32', always_2d=True)
with torch.no_grad():
    stems = separate(torch.from_numpy(audio.T.copy()))
for name, stem in zip(SOURCES, stems):
    sf.write(f"{sys.argv[2]}/{name}.wav", stem.numpy().T, rate, subtype='PCM_16')
"""


def run_other(code: str, song: Path, outdir: Path, threads: int, env: dict) -> dict:
    outdir.mkdir(parents=True, exist_ok=True)
    code_, _, err, wall, peak = timed(
        [sys.executable, "-c", OTHER_RUNNER, str(song), str(outdir), str(threads), code], env
    )
    if code_ != 0:
        return {"error": (err.strip().splitlines() or ["failed"])[-1]}
    return {"seconds": round(wall, 2), "peak_mb": round(peak, 1)}


def make_song(path: Path, seconds: float) -> str:
    songs = sorted(DATA.glob("*/vocals.ogg")) if DATA.is_dir() else []
    if songs:
        folder = songs[1].parent if len(songs) > 1 else songs[0].parent
        n = int(seconds * 44100)
        mix = sum(
            sf.read(str(folder / f"{s}.ogg"), frames=n, dtype="float32")[0]
            for s in ("vocals", "drums", "bass", "other")
        )
        sf.write(str(path), mix, 44100, subtype="PCM_16")
        return f"cc0-efree/{folder.name}, first {seconds:.0f} s"
    synthesise_song(path, seconds)
    return f"synthesised, {seconds:.0f} s"


def repeat_song(source: Path, target: Path, minutes: float) -> None:
    audio, rate = sf.read(str(source), dtype="int16")
    total = int(minutes * 60 * rate)
    with sf.SoundFile(str(target), "w", rate, audio.shape[1], subtype="PCM_16") as out:
        written = 0
        while written < total:
            block = audio[: total - written]
            out.write(block)
            written += len(block)


def run(song: Path, outdir: Path, model: str, threads: int, env: dict) -> dict:
    """``stemdesk separate`` as a user runs it, file in → four 16-bit WAV stems out."""
    cmd = [
        sys.executable,
        "-m",
        "stemdesk",
        "separate",
        str(song),
        "-o",
        str(outdir),
        "--model",
        model,
        "--threads",
        str(threads),
        "--device",
        "cpu",
        "--bit-depth",
        "16",
    ]
    code, out, err, wall, peak = timed(cmd, env)
    if code != 0:
        raise SystemExit(f"benchmark run failed:\n{out}\n{err}")
    return {"seconds": round(wall, 3), "peak_mb": round(peak, 1)}


def machine() -> str:
    cpu = platform.machine()
    try:
        names = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{os.cpu_count()} CPU cores ({cpu}), no GPU used"


def write_speed_to_card(model: str, result: dict) -> None:
    """The measured speed goes into the shipped model's card (and its README)."""
    from stemdesk.training.model_card import render

    folder = ROOT / "models" / model
    card = json.loads((folder / "card.json").read_text())
    three = result["three_minutes"]
    card.setdefault("metrics", {})["speed"] = {
        "machine": machine(),
        "threads": result["threads"],
        "seconds": three["model"]["seconds"],
        "peak_mb": three["model"]["peak_mb"],
        "real_time_factor": three["real_time_factor"],
        "time_ratio_to_floor": three["time_ratio_to_floor"],
        "measured_at": result["measured_at"],
    }
    atomic_write_bytes(folder / "card.json", (json.dumps(card, indent=2) + "\n").encode())
    atomic_write_bytes(folder / "README.md", render(card).encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="stemdesk-4stem")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--long-minutes", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=2, help="runs per measurement; the fastest counts")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also time Open-Unmix's and HTDemucs's architectures (pip install --no-deps openunmix "
        "demucs julius einops)",
    )
    parser.add_argument(
        "--card",
        action="store_true",
        help="write the 3-minute result into the model's card (shipped models in models/)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        models = work / "models"
        est = build_estimator(
            "mix", {"sources": ["vocals", "drums", "bass", "other"], "stft": {"n_fft": 4096, "hop": 1024}}
        )
        save_model(models / "floor-mix", "floor-mix", est, {"description": "benchmark floor"})
        # the floor's folder, then any the caller named (a model under test that is not installed)
        search = os.pathsep.join(p for p in (str(models), os.environ.get("STEMDESK_MODELS_PATH", "")) if p)
        env = {**os.environ, "STEMDESK_MODELS_PATH": search, "OMP_NUM_THREADS": str(args.threads)}
        song = work / "song.wav"
        described = make_song(song, SONG_SECONDS)

        def best(model: str, path: Path, env: dict = env) -> dict:
            runs = [run(path, work / "out" / f"{model}-{i}", model, args.threads, env) for i in range(args.repeats)]
            return {"seconds": min(r["seconds"] for r in runs), "peak_mb": max(r["peak_mb"] for r in runs)}

        floor = best("floor-mix", song)
        model = best(args.model, song)
        untuned = best(args.model, song, {**env, "STEMDESK_ALLOCATOR": "system"})
        others = {}
        if args.compare:
            for name, code in OTHERS.items():
                others[name] = run_other(code, song, work / "other" / name.split()[0], args.threads, env)
                if "seconds" in others[name]:
                    others[name]["time_ratio_to_stemdesk"] = round(others[name]["seconds"] / model["seconds"], 2)
        long_song = work / "long.wav"
        repeat_song(song, long_song, args.long_minutes)
        long = run(long_song, work / "out" / "long", args.model, args.threads, env)

    result = {
        "song": described,
        "song_seconds": SONG_SECONDS,
        "model": args.model,
        "threads": args.threads,
        "three_minutes": {
            "model": model,
            "floor": floor,
            "time_ratio_to_floor": round(model["seconds"] / floor["seconds"], 2),
            "real_time_factor": round(SONG_SECONDS / model["seconds"], 1),
            "allocator_defaults": {**untuned, "time_ratio_to_tuned": round(untuned["seconds"] / model["seconds"], 2)},
        },
        "long_file": {
            "minutes": args.long_minutes,
            **long,
            "peak_ratio_to_three_minutes": round(long["peak_mb"] / model["peak_mb"], 3),
            "real_time_factor": round(args.long_minutes * 60 / long["seconds"], 1),
        },
        "others_random_weights": others,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "separation.json").write_text(json.dumps(result, indent=2) + "\n")
    if args.card:
        write_speed_to_card(args.model, result)
    print(f"3-minute song ({described}), {args.threads} thread(s), file in → 4 stems out:")
    print(f"  floor (MIX, no network): {floor['seconds']:7.2f} s  {floor['peak_mb']:7.1f} MB")
    print(
        f"  {args.model:23s}: {model['seconds']:7.2f} s  {model['peak_mb']:7.1f} MB  "
        f"= {result['three_minutes']['time_ratio_to_floor']}x the floor's time, "
        f"{result['three_minutes']['real_time_factor']}x real time"
    )
    print(
        f"  {'  glibc malloc defaults':23s}: {untuned['seconds']:7.2f} s  {untuned['peak_mb']:7.1f} MB  "
        f"= {result['three_minutes']['allocator_defaults']['time_ratio_to_tuned']}x the tuned time"
    )
    for name, row in others.items():
        print(
            f"  {name:23s}: "
            + (
                f"{row['seconds']:7.2f} s  {row['peak_mb']:7.1f} MB  = {row['time_ratio_to_stemdesk']}x StemDesk's time"
                if "seconds" in row
                else f"not measured ({row['error']})"
            )
        )
    print(
        f"{args.long_minutes:.0f}-minute file: {long['seconds']:.1f} s, peak {long['peak_mb']:.1f} MB "
        f"= {result['long_file']['peak_ratio_to_three_minutes']}x the 3-minute peak"
    )


if __name__ == "__main__":
    main()
