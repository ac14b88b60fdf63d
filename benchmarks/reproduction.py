"""Reproduction table: every seed estimator trained with the same CPU budget on the same songs, next to the oracles.

    .venv/bin/python benchmarks/reproduction.py [--minutes 4] [--only roma_cnn1,unet] [--threads 1]

Training songs and validation songs come from ../shared/data, split by song exactly as for the shipped models
(stemdesk/training/default_models.py). Each system trains for ``--minutes`` of wall-clock time on one thread, is exported as
a model ``repro-<system>`` into the user's models folder (so `stemdesk separate --model repro-<system>` runs it),
and is scored on the validation songs:

- uSDR (global SDR per song, the MDX definition), median over songs, on whole songs;
- BSS Eval v4 (museval) median-over-frames SDR / SIR / SAR on a 20-second vocal excerpt of the five validation
  songs with the most vocals, median over excerpts;
- separation speed (seconds of audio per second, one thread) and parameter count.

4-stem systems are also scored on vocals / accompaniment (the sum of their other stems), so every row has those
two columns. The oracles (IRM, IBM at the same STFT as the shipped model, MIX) need no training. Results go to
benchmarks/results/reproduction.json and docs/reproduction.md. A system that was already trained (its model
exists with the same config and budget) is only re-scored; pass --retrain to train again.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stemdesk.core.chunker import Chunker  # noqa: E402
from stemdesk.core.estimators import build_estimator  # noqa: E402
from stemdesk.core.metrics import usdr  # noqa: E402
from stemdesk.core.postprocess import oracle_masks  # noqa: E402
from stemdesk.core.separator import Separator  # noqa: E402
from stemdesk.core.stft import STFT, STFTConfig  # noqa: E402
from stemdesk.io.model_store import find_model, load_estimator, user_models_dir  # noqa: E402
from stemdesk.training.dataset import load_songs  # noqa: E402
from stemdesk.training.default_models import DATA, SOURCES, split  # noqa: E402
from stemdesk.training.metrics import bss_eval_v4  # noqa: E402
from stemdesk.training.train import TrainConfig, Trainer, export_model, regroup, source_map  # noqa: E402

TWO = ["vocals", "accompaniment"]
AT22 = {"sample_rate": 22050}

# Each system as its paper describes it, sized to train on one CPU core in minutes.
SYSTEMS: dict[str, dict] = {
    "deep_karaoke": {
        "estimator": "deep_karaoke",
        "paper": "Simpson et al. 2015",
        "config": {
            "sources": TWO,
            "stft": {"n_fft": 2048, "hop": 512},
            "window": 20,
            "filters": [8, 16],
            "hidden": 128,
            "alpha": 0.5,
        },
    },
    "roma_cnn1": {
        "estimator": "roma_cnn",
        "paper": "Roma et al. 2018 (cnn1: sigmoid + MSE)",
        "config": {
            "sources": SOURCES,
            "stft": {"n_fft": 2048, "hop": 256, **AT22},
            "head": "cnn1",
            "context_frames": 11,
            "filters": [16, 16],
            "hidden": 256,
        },
    },
    "roma_cnn2": {
        "estimator": "roma_cnn",
        "paper": "Roma et al. 2018 (cnn2: softmax + NLL, binary)",
        "config": {
            "sources": SOURCES,
            "stft": {"n_fft": 2048, "hop": 256, **AT22},
            "head": "cnn2",
            "context_frames": 11,
            "filters": [16, 16],
            "hidden": 256,
        },
    },
    "roma_dnn": {
        "estimator": "roma_cnn",
        "paper": "Roma et al. 2018 (DNN baseline, 5 frames)",
        "config": {
            "sources": SOURCES,
            "stft": {"n_fft": 2048, "hop": 256, **AT22},
            "head": "cnn1",
            "context_frames": 5,
            "filters": [],
            "hidden": 256,
        },
    },
    "lin_cnn": {
        "estimator": "lin_cnn",
        "paper": "Lin et al. 2018",
        "config": {
            "sources": TWO,
            "stft": {"n_fft": 4096, "win_length": 1024, "hop": 256, **AT22},
            "context_frames": 9,
            "filters": [8, 16],
            "hidden": 256,
            "theta": None,
        },
    },
    "open_unmix": {
        "estimator": "open_unmix",
        "paper": "Open-Unmix BiLSTM (George et al. baseline), L1",
        "config": {"sources": SOURCES, "stft": {"n_fft": 4096, "hop": 1024}, "hidden": 128, "layers": 2},
    },
    "open_unmix_dual": {
        "estimator": "open_unmix",
        "paper": "Open-Unmix BiLSTM, dual loss (0.9 mag + 0.1 time)",
        "config": {
            "sources": SOURCES,
            "stft": {"n_fft": 4096, "hop": 1024},
            "hidden": 128,
            "layers": 2,
            "objective": "dual",
        },
    },
    "transformer": {
        "estimator": "open_unmix",
        "paper": "Open-Unmix with a transformer trunk",
        "config": {
            "sources": SOURCES,
            "stft": {"n_fft": 4096, "hop": 1024},
            "hidden": 128,
            "layers": 2,
            "trunk": "transformer",
        },
    },
    "unet": {
        "estimator": "unet",
        "paper": "Spleeter U-Net (Jansson et al.; Prétet et al. 2018), base 8",
        "config": {"sources": SOURCES, "stft": {"n_fft": 4096, "hop": 1024}, "base": 8, "patch": 256, "max_bins": 1024},
    },
    "densenet": {
        "estimator": "densenet",
        "paper": "DenseNet (Takahashi & Mitsufuji 2017)",
        "config": {
            "sources": SOURCES,
            "stft": {"n_fft": 4096, "hop": 1024},
            "growth": 8,
            "layers": 2,
            "levels": 3,
            "max_bins": 1024,
        },
    },
    "mmdensenet": {
        "estimator": "mmdensenet",
        "paper": "MMDenseNet (Takahashi & Mitsufuji 2017)",
        "config": {
            "sources": SOURCES,
            "stft": {"n_fft": 4096, "hop": 1024},
            "growth": 8,
            "layers": 2,
            "levels": 3,
            "max_bins": 1024,
            "bands": [0, 128, 384],
        },
    },
}
ORACLE_STFT = STFTConfig(n_fft=4096, hop=1024)
EXCERPT_SECONDS = 20.0
BSS_SONGS = 5


def bss_subset(songs) -> set[int]:
    """BSS Eval is slow (about 2 s per second of 4-stem audio): it runs on the BSS_SONGS songs with the most
    vocals."""
    count = BSS_SONGS
    energy = [float(np.square(song.stems[0].astype(np.float32)).mean()) for song in songs]
    return set(int(i) for i in np.argsort(energy)[::-1][:count])


def separate_song(fn, audio: torch.Tensor, rate: int) -> torch.Tensor:
    chunker = Chunker(lambda x: fn(x), int(20 * rate), int(rate))
    return chunker.run(audio)


def score(
    name: str, sources: list[str], estimate_fn, songs, seconds_per_second: float | None, parameters: int | None
) -> dict:
    """estimate_fn(song_index, mix) → stems in ``sources`` order (sources, channels, length)."""
    two_map = source_map(TWO, sources) if sources != TWO else None
    bss_songs = bss_subset(songs)
    usdr_rows: dict[str, list[float]] = {}
    per_song: dict[str, dict[str, float]] = {}
    bss_rows: dict[str, dict[str, list[float]]] = {}
    for index, song in enumerate(songs):
        truth4 = song.audio()
        truth = regroup(truth4, source_map(sources, SOURCES))
        estimate = estimate_fn(index, truth4.sum(0))
        views = [(sources, truth, estimate, set(sources))]
        if two_map is not None:  # a 4-stem system's accompaniment: the sum of its other stems
            views.append((TWO, regroup(truth, two_map), regroup(estimate, two_map), {"accompaniment"}))
        usable = {s: all(song.usable[i] for i in idx) for s, idx in zip(sources, source_map(sources, SOURCES))}
        start, stop = song.loudest_window(0, EXCERPT_SECONDS)
        with_bss = index in bss_songs
        for names, ref, est, include in views:
            values = usdr(ref, est)
            if with_bss:
                bss = bss_eval_v4(ref[..., start:stop].numpy(), est[..., start:stop].numpy(), song.sample_rate)
            for i, source in enumerate(names):
                # Undefined where the reference is silent (instrumental excerpts, songs without a bass stem).
                silent = float(ref[i].pow(2).mean()) < 1e-8
                if source not in include or not usable.get(source, True) or silent:
                    continue
                usdr_rows.setdefault(source, []).append(float(values[i]))
                per_song.setdefault(song.name, {})[source] = round(float(values[i]), 3)
                for metric in ("sdr", "sir", "sar") if with_bss else ():
                    bss_rows.setdefault(source, {}).setdefault(metric, []).append(float(bss[metric][i]))
    result = {
        "system": name,
        "sources": sources,
        "parameters": parameters,
        "speed_x_realtime": seconds_per_second,
        "usdr": {},
        "bss": {},
        "usdr_per_song": per_song,
    }
    for source, values in usdr_rows.items():
        result["usdr"][source] = round(float(np.median(values)), 2)
        if source in bss_rows:
            result["bss"][source] = {m: round(float(np.nanmedian(v)), 2) for m, v in bss_rows[source].items()}
    return result


def oracle_row(kind: str, songs) -> dict:
    """Score an oracle (masks from the true sources at the shipped model's STFT) on ``songs``."""
    stft = STFT(ORACLE_STFT)

    def oracle(index, mix):
        spec = stft(songs[index].audio())  # (sources, channels, bins, frames)
        masks = oracle_masks(spec.unsqueeze(0), kind)[0]
        stems = stft.inverse(masks * spec.sum(0), mix.shape[-1])
        stems[-1] = mix - stems[:-1].sum(0)
        return stems

    row = score(f"oracle_{kind}", SOURCES, oracle, songs, None, None)
    row["paper"] = (
        f"oracle {kind.upper()} at STFT 4096/1024" if kind != "mix" else "MIX: each source gets 1/4 of the mixture"
    )
    return row


def speed(estimator, seconds: float = 30.0) -> float:
    separator = Separator(estimator)
    audio = torch.randn(2, int(seconds * 44100)) * 0.1
    separate_song(lambda x: separator(x, 44100).stems, audio[:, : 44100 * 2], 44100)  # warm up
    start = time.perf_counter()
    separate_song(lambda x: separator(x, 44100).stems, audio, 44100)
    return round(seconds / (time.perf_counter() - start), 1)


def cli_null_check(model_id: str, song: Path, outdir: Path) -> dict:
    """Separate a real song with the real CLI (``--model`` picks the system) and null-check the 16-bit stems."""
    import io

    from stemdesk.cli import main as cli

    out, err = io.StringIO(), io.StringIO()
    code = cli(["separate", str(song), "-o", str(outdir), "--model", model_id, "--bit-depth", "16"], out=out, err=err)
    if code != 0:
        return {"separated": False, "error": err.getvalue().strip()}
    stems = sorted((outdir / song.stem).glob("*.wav"))
    out = io.StringIO()
    cli(["nullcheck", str(song), *map(str, stems)], out=out)
    result = json.loads(out.getvalue())
    return {"separated": True, "stems": [p.stem for p in stems], "bit_exact": result["bit_exact"]}


def real_song_excerpt(folder: Path) -> Path:
    """20 seconds of the CC0 validation song with vocals, as 16-bit WAV (the mixture is the sum of the stems)."""
    import soundfile as sf

    path = folder / "sodium-excerpt.wav"
    stems = [
        sf.read(
            str(DATA / "cc0-efree" / "3.Sodium" / f"{s}.ogg"), start=200 * 44100, frames=20 * 44100, dtype="float32"
        )[0]
        for s in SOURCES
    ]
    sf.write(str(path), sum(stems), 44100, subtype="PCM_16")
    return path


def markdown(rows: list[dict], minutes: float) -> str:
    columns = ["vocals", "accompaniment", "drums", "bass", "other"]
    lines = [
        "# Reproduction table",
        "",
        f"Produced by `.venv/bin/python benchmarks/reproduction.py --minutes {minutes:g}`: every system trained for "
        f"{minutes:g} CPU-minutes (one thread) on the same songs of ../shared/data, scored on validation songs never "
        "trained on (split by song). uSDR: global SDR per song, median over songs (dB). SDR/SIR/SAR: BSS Eval v4 "
        "median over one-second frames of a 20-second vocal excerpt of the 5 validation songs with the most vocals, "
        "median over those songs (dB). Speed: times "
        "real time separating stereo 44.1 kHz audio on one thread. These are short CPU budgets on 35 minutes of "
        "audio: they rank the methods under equal, small budgets; they do not reproduce the papers' numbers.",
        "",
        "The last column: the system run through `stemdesk separate --model repro-<system>` on a 20-second excerpt of a "
        "real song, its 16-bit stems null-checked against the mixture.",
        "",
        "| system | paper | params | speed | "
        + " | ".join(f"{c} uSDR" for c in columns)
        + " | "
        + " | ".join(f"{c} SDR/SIR/SAR" for c in ("vocals", "accompaniment"))
        + " | CLI null |",
        "|" + "---|" * (4 + len(columns) + 3),
    ]
    for row in rows:
        cells = [
            row["system"],
            row.get("paper", ""),
            f"{row['parameters']:,}" if row.get("parameters") else "–",
            f"{row['speed_x_realtime']}x" if row.get("speed_x_realtime") else "–",
        ]
        cells += [f"{row['usdr'][c]:.2f}" if c in row["usdr"] else "–" for c in columns]
        for c in ("vocals", "accompaniment"):
            b = row["bss"].get(c)
            cells.append(f"{b['sdr']:.1f} / {b['sir']:.1f} / {b['sar']:.1f}" if b else "–")
        cli = row.get("cli")
        cells.append("–" if cli is None else "bit-exact" if cli.get("bit_exact") else f"FAILED {cli}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--only", help="comma-separated systems (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--workdir", type=Path, default=ROOT / "training" / "runs" / "reproduction")
    parser.add_argument(
        "--cli-check",
        action="store_true",
        help="only run every trained system through the CLI on a real song and null-check it",
    )
    args = parser.parse_args()
    results_path = ROOT / "benchmarks" / "results" / "reproduction.json"
    if args.cli_check:
        saved = json.loads(results_path.read_text())
        for row in saved["rows"]:
            if row["system"] in SYSTEMS and (not args.only or row["system"] in args.only.split(",")):
                with tempfile.TemporaryDirectory() as temp:
                    row["cli"] = cli_null_check(
                        f"repro-{row['system']}", real_song_excerpt(Path(temp)), Path(temp) / "out"
                    )
                print(row["system"], json.dumps(row["cli"]), flush=True)
        results_path.write_text(json.dumps(saved, indent=1) + "\n")
        (ROOT / "docs" / "reproduction.md").write_text(markdown(saved["rows"], saved["minutes"]))
        return
    torch.set_num_threads(args.threads)
    if not (DATA / "cc0-efree").is_dir():
        raise SystemExit(f"{DATA} is missing: the reproduction table needs ../shared/data")
    train_dirs, valid_dirs = split(DATA)
    train, valid = load_songs(train_dirs, SOURCES), load_songs(valid_dirs, SOURCES)
    chosen = args.only.split(",") if args.only else list(SYSTEMS)
    previous = json.loads(results_path.read_text()) if results_path.is_file() else {"rows": []}
    rows = {row["system"]: row for row in previous["rows"]}

    for kind in ("irm", "ibm", "mix"):
        rows[f"oracle_{kind}"] = oracle_row(kind, valid)
        print(json.dumps(rows[f"oracle_{kind}"]), flush=True)

    for name in chosen:
        system = SYSTEMS[name]
        model_id = f"repro-{name}"
        config = TrainConfig(
            estimator=system["estimator"],
            config=system["config"],
            excerpt_seconds=6.0,
            batch=8,
            lr=1e-3,
            validate_every=10**9,
            minutes=args.minutes,
            threads=args.threads,
        )
        folder = user_models_dir() / model_id
        trained = False
        try:
            card = find_model(model_id)
            trained = (
                card.config == build_estimator(system["estimator"], system["config"]).config()
                and card.raw.get("training", {}).get("minutes") == args.minutes
            )
        except Exception:  # noqa: BLE001 - not installed yet
            trained = False
        if args.retrain or not trained:
            trainer = Trainer(config, train, valid[:0] or valid[:1], args.workdir / name)
            trainer.config.validate_every = 10**9
            started = time.monotonic()
            trainer.run(export=None)
            card_facts = {
                "description": f"{system['paper']}, reproduction-table budget",
                "training_data": {
                    "train_songs": [p.name for p in train_dirs],
                    "research_only": "trained on MUSDB18 excerpts: research use only",
                },
                "licenses": {"weights": "GPL-3.0-or-later; MUSDB18 data: research use only"},
                "training": {
                    "minutes": args.minutes,
                    "steps": trainer.step,
                    "seconds": round(time.monotonic() - started),
                },
            }
            export_model(folder, model_id, card_facts)(
                trainer.estimator, {"valid_usdr": {}, "songs": {}, "step": trainer.step}
            )
        estimator, card = load_estimator(model_id)
        separator = Separator(estimator)
        rate = valid[0].sample_rate

        def run(index, mix, separator=separator, rate=rate):
            return separate_song(lambda x: separator(x, rate).stems, mix, rate)

        row = score(
            name, list(estimator.sources), run, valid, speed(estimator), sum(p.numel() for p in estimator.parameters())
        )
        row["paper"] = system["paper"]
        row["steps"] = card.raw.get("training", {}).get("steps")
        with tempfile.TemporaryDirectory() as temp:
            row["cli"] = cli_null_check(model_id, real_song_excerpt(Path(temp)), Path(temp) / "out")
        rows[name] = row
        print(json.dumps(row), flush=True)
        ordered = [rows[k] for k in [f"oracle_{k}" for k in ("irm", "ibm", "mix")] + list(SYSTEMS) if k in rows]
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps({"minutes": args.minutes, "rows": ordered}, indent=1) + "\n")
        (ROOT / "docs").mkdir(exist_ok=True)
        (ROOT / "docs" / "reproduction.md").write_text(markdown(ordered, args.minutes))


if __name__ == "__main__":
    main()
