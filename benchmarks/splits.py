"""Split models against their targets, on the song each held out (its card's validation song, never trained on).

    .venv/bin/python benchmarks/splits.py [--models stemdesk-vocals-leadback,stemdesk-drumkit] [--threads 1]
                                          [--runs 3] [--no-separated] [--no-speed | --speed-only]

Needs ../shared/data/cc0-efree-sessions (the artist's session tracks) and cc0-efree (the songs' four stems).

1. Quality: each child of the model's split, scored against the child's true tracks (the song's session tracks
   sorted by the stem set in the model's card; where an unsplit track sounds, a drum loop, those seconds are left
   out, as training left them out). Metric: uSDR (global SDR, the MDX definition) over each one-second frame where
   the child sounds (above −60 dBFS), median over those frames (museval's aggregation of framewise SDR), and the
   global uSDR of the whole song beside it. Systems: the model on the true parent stem; the two baselines on the
   true parent (the parent split in equal parts; a crossover: kick below 150 Hz, cymbals above 5 kHz, the rest
   between, where the children have those names); the model on the parent as the default model separates it from
   the song, and as HTDemucs does (when installed). Target: every child of the model on the true parent at least
   4 dB above the better baseline.
2. Speed and memory: a 3-minute excerpt of the song separated by `stemdesk separate` with the default model, and
   again with `--split PARENT=MODEL` (fresh processes, same threads, the two in turn `--runs` times, 3 by default):
   what the split adds (its model, its files, its null and the tree's) over the separation's time, the median of
   the pairs' shares. Target: at most 30 % more, and the peak memory of the
   separation with the split at most 1 GB. Also timed: the parent stem file split on its own by `stemdesk split`
   (its process's start-up included).
3. Null: the separations with `--split` at 16 and 24 bits: the children add up to their parent and the whole tree
   to the song, bit for bit (the certificate's null checks).
4. Training: the card's training time and threads (target: within 30 minutes on 2 threads).

Results: benchmarks/results/splits.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from separation import timed  # noqa: E402

from stemdesk.core.estimators.crossover import Crossover  # noqa: E402
from stemdesk.core.estimators.mix import MixEstimator  # noqa: E402
from stemdesk.core.separator import Separator  # noqa: E402
from stemdesk.io.atomic import atomic_write_bytes  # noqa: E402
from stemdesk.io.model_store import DEFAULT_MODEL, find_model  # noqa: E402
from stemdesk.jobs.separate import SeparationEngine, separate_options  # noqa: E402
from stemdesk.training.split import CROSSOVER_BANDS  # noqa: E402
from stemdesk.training.stemsets import (  # noqa: E402
    SILENT_RMS,
    check_session,
    discover_sessions,
    parse_stemset,
    session_gate,
)

MODELS = ("stemdesk-vocals-leadback", "stemdesk-drumkit")
TARGET_DB = 4.0
SPEED_SHARE = 0.30
MEMORY_MB = 1024
TRAIN_MINUTES = 30.0
EXCERPT_SECONDS = 180.0


def framewise(reference: np.ndarray, estimate: np.ndarray, rate: int) -> dict[str, float | None]:
    """reference, estimate (channels, n): the median over one-second frames where the reference sounds of each
    frame's uSDR, and the global uSDR."""
    frames = reference.shape[-1] // rate
    values = []
    for i in range(frames):
        ref = reference[:, i * rate : (i + 1) * rate].astype(np.float64)
        if np.sqrt(np.mean(ref**2)) < SILENT_RMS:
            continue
        err = ref - estimate[:, i * rate : (i + 1) * rate]
        values.append(10 * np.log10((np.sum(ref**2) + 1e-8) / (np.sum(err**2) + 1e-8)))
    total = 10 * np.log10(
        (np.sum(reference.astype(np.float64) ** 2) + 1e-8) / (np.sum((reference - estimate) ** 2) + 1e-8)
    )
    return {
        "median_frame_usdr": round(float(np.median(values)), 2) if values else None,
        "frames": len(values),
        "global_usdr": round(float(total), 2),
    }


def scores(truth: np.ndarray, estimate: np.ndarray, children: list[str], rate: int) -> dict:
    return {child: framewise(truth[i], estimate[i], rate) for i, child in enumerate(children)}


def held_out(card) -> tuple[str, np.ndarray, np.ndarray, int]:
    """(song, its children's truth (children, 2, n) with unsplit seconds silenced, the gate (n,), rate)."""
    stemset = parse_stemset(card.raw["split"]["stemset"])
    song = card.raw["training_data"]["valid_songs"][0]
    (session,) = [s for s in discover_sessions(DATA / "cc0-efree-sessions", stemset) if s.name == song]
    _, made = check_session(session, stemset)
    assert made is not None
    truth = made.audio().numpy()
    gate = session_gate(session, truth.shape[-1], made.sample_rate)
    return song, truth, gate, made.sample_rate


def run_split(engine: SeparationEngine, parent: np.ndarray, rate: int) -> np.ndarray:
    return engine.separate_array(parent.astype(np.float32), rate, separate_options(engine.card.id)).astype(np.float32)


def quality(model: str, separated: bool, threads: int) -> dict:
    card = find_model(model)
    children = list(card.sources)
    song, truth, gate, rate = held_out(card)
    parent = truth.sum(0)
    engine = SeparationEngine(model, "cpu")
    out: dict = {"song": song, "seconds_scored": round(float(np.sum(gate > 0)) / rate, 1), "systems": {}}
    systems = out["systems"]
    systems["model on the true parent"] = scores(truth, run_split(engine, parent, rate), children, rate)
    stft = dict(card.config["stft"])
    systems["equal parts"] = scores(
        truth, Separator(MixEstimator(children, stft))(torch.from_numpy(parent), rate).stems.numpy(), children, rate
    )
    bands = {c: CROSSOVER_BANDS[c] for c in children if c in CROSSOVER_BANDS}
    if bands:
        crossover = Crossover(children, stft, bands=bands)
        systems["crossover"] = scores(
            truth, Separator(crossover)(torch.from_numpy(parent), rate).stems.numpy(), children, rate
        )
    if separated:
        mixture = sum(
            sf.read(str(DATA / "cc0-efree" / song / f"{s}.ogg"), dtype="float32", always_2d=True)[0].T
            for s in ("vocals", "drums", "bass", "other")
        )[:, : truth.shape[-1]]
        parent_name = card.raw["split"]["parent"]
        for base in (DEFAULT_MODEL, "htdemucs"):
            try:
                separator = SeparationEngine(base, "cpu")
            except Exception as error:  # noqa: BLE001 - HTDemucs is the user's to install
                systems[f"model on {base}'s {parent_name}"] = {"skipped": str(error).splitlines()[0]}
                continue
            stems = separator.separate_array(mixture, rate, separate_options(base))
            estimate = stems[list(separator.sources).index(parent_name)].astype(np.float32) * gate
            systems[f"model on {base}'s {parent_name}"] = scores(
                truth, run_split(engine, estimate, rate), children, rate
            )
    best = {}
    for child in children:
        baselines = [systems[b][child]["median_frame_usdr"] for b in ("equal parts", "crossover") if b in systems]
        baselines = [b for b in baselines if b is not None]
        ours = systems["model on the true parent"][child]["median_frame_usdr"]
        best[child] = {
            "model": ours,
            "better_baseline": max(baselines) if baselines else None,
            "margin_db": round(ours - max(baselines), 2) if ours is not None and baselines else None,
        }
        best[child]["meets_target"] = best[child]["margin_db"] is not None and best[child]["margin_db"] >= TARGET_DB
    out["target"] = best
    return out


def speed_memory_null(model: str, threads: int, runs: int) -> dict:
    card = find_model(model)
    parent = card.raw["split"]["parent"]
    song = card.raw["training_data"]["valid_songs"][0]
    env = dict(os.environ)
    stemdesk = [str(ROOT / ".venv" / "bin" / "stemdesk")]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mixture = sum(
            sf.read(str(DATA / "cc0-efree" / song / f"{s}.ogg"), frames=int(EXCERPT_SECONDS * 44100), dtype="float32")[
                0
            ]
            for s in ("vocals", "drums", "bass", "other")
        )
        path = work / "song.wav"
        sf.write(str(path), mixture, 44100, subtype="PCM_16")
        threads_flag = ["--threads", str(threads)]

        def separate(out: Path, *extra: str) -> tuple[float, float]:
            command = [*stemdesk, "separate", str(path), "-o", str(out), "--overwrite", *extra, *threads_flag]
            code, _, err, seconds, peak = timed(command, env)
            assert code == 0, err
            return seconds, peak

        # what splitting adds to a separation: the same separation with --split, in one process (the split, its
        # null and the tree's); in pairs, one after the other, so that a machine's drift moves both alike
        split_flag = ["--split", f"{parent}={model}"]
        pairs = []
        for _ in range(runs):
            alone = separate(work / "a", "--bit-depth", "16")
            with_split = separate(work / "b", "--bit-depth", "16", *split_flag)
            pairs.append((alone, with_split))
        # at 16 and 24 bits, each also checked to null at every level
        nulls = {}
        for depth in ("16", "24"):
            out = work / f"null{depth}"
            separate(out, "--bit-depth", depth, *split_flag)
            cert = json.loads((out / "song" / "stemdesk-certificate.json").read_text())
            nulls[depth] = {
                "children_to_parent_bit_exact": cert["splits"][parent]["null"]["bit_exact"],
                "tree_to_song_bit_exact": cert["tree_null"]["bit_exact"],
            }
        # and a stem file split on its own (`stemdesk split`, a process of its own: its start-up included)
        stem = work / "a" / "song" / f"{parent}.wav"
        code, _, err, file_s, file_mb = timed([*stemdesk, "split", str(stem), "--model", model, *threads_flag], env)
        assert code == 0, err
    shares = sorted((b[0] - a[0]) / a[0] for a, b in pairs)
    separate_s = float(np.median([a[0] for a, _ in pairs]))
    split_s = float(np.median([b[0] - a[0] for a, b in pairs]))
    split_mb = max(b[1] for _, b in pairs)
    return {
        "excerpt_seconds": EXCERPT_SECONDS,
        "threads": threads,
        "runs": runs,
        "separate_seconds": round(separate_s, 2),
        "separate_with_split_seconds": round(float(np.median([b[0] for _, b in pairs])), 2),
        "split_seconds": round(split_s, 2),
        "split_share_of_separation": round(float(np.median(shares)), 3),
        "split_shares": [round(x, 3) for x in shares],
        "meets_speed_target": float(np.median(shares)) <= SPEED_SHARE,
        "split_peak_mb": round(split_mb),
        "split_file_seconds": round(file_s, 2),
        "split_file_peak_mb": round(file_mb),
        "separate_peak_mb": round(max(a[1] for a, _ in pairs)),
        "meets_memory_target": split_mb <= MEMORY_MB,
        "null": nulls,
        "meets_null_target": all(all(v.values()) for v in nulls.values()),
    }


def training(model: str) -> dict:
    budget = find_model(model).raw.get("training", {}).get("budget", {})
    minutes = (budget.get("training_wall_seconds") or 0) / 60
    return {
        "budget_minutes": budget.get("minutes"),
        "training_minutes": round(minutes, 2),  # the last step may end a few seconds past the budget
        "job_minutes": round((budget.get("wall_seconds") or 0) / 60, 2),  # reading the songs and scoring included
        "threads": budget.get("threads"),
        "steps": budget.get("steps"),
        "meets_target": (budget.get("minutes") or 99) <= TRAIN_MINUTES and (budget.get("threads") or 99) <= 2,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3, help="pairs of separations timed (the median share counts)")
    parser.add_argument("--no-separated", action="store_true", help="score on the true parents only")
    parser.add_argument("--no-speed", action="store_true", help="leave out speed, memory and null")
    parser.add_argument(
        "--speed-only", action="store_true", help="only speed, memory and null (the quality rows already there stay)"
    )
    args = parser.parse_args()
    if not (DATA / "cc0-efree-sessions").is_dir():
        sys.exit(f"{DATA / 'cc0-efree-sessions'} is missing: the benchmark needs the CC0 session tracks.")
    torch.set_num_threads(args.threads)
    path = ROOT / "benchmarks" / "results" / "splits.json"
    results: dict = json.loads(path.read_text()) if path.is_file() else {}  # other models' rows stay
    results["machine"] = {"cpu": platform.processor() or platform.machine(), "threads": args.threads}
    for model in args.models.split(","):
        print(f"== {model}", flush=True)
        if args.speed_only and model in results:
            made = {**results[model], "speed_memory_null": speed_memory_null(model, args.threads, args.runs)}
            results[model] = made
            print(json.dumps(made["speed_memory_null"], indent=1), flush=True)
            continue
        made = {"quality": quality(model, not args.no_separated, args.threads), "training": training(model)}
        if not args.no_speed:
            made["speed_memory_null"] = speed_memory_null(model, args.threads, args.runs)
        results[model] = made
        print(json.dumps(made, indent=1), flush=True)
    atomic_write_bytes(path, (json.dumps(results, indent=1) + "\n").encode())
    print(f"results: {path}")


if __name__ == "__main__":
    main()
