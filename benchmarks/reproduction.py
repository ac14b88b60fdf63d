"""Reproduction table: every seed method's recipe trained with the same CPU budget on the same songs, next to the
oracles.

    .venv/bin/python benchmarks/reproduction.py [--minutes 4] [--only roma-cnn1,pretet-unet] [--threads 1]

The systems are the recipes of `stemdesk train --recipe` (stemdesk/training/recipes.py), trained from scratch by the
same code (`stemdesk.training.scratch.train_recipe`: pre-training stage, objective, augmentation), so a row is what
`stemdesk train --recipe NAME` makes with that budget. Training songs and validation songs come from ../shared/data,
split by song exactly as for the shipped models (stemdesk/training/default_models.py). Each system trains for
``--minutes`` of wall-clock time on one thread, is exported as a model ``repro-<recipe>`` into the user's models
folder (so `stemdesk separate --model repro-<recipe>` runs it, with the post-processing its card asks for), and is
scored on the validation songs with that post-processing:

- uSDR (global SDR per song, the MDX definition), median over songs, on whole songs;
- BSS Eval v4 (museval) median-over-frames SDR / SIR / SAR on a 20-second vocal excerpt of the five validation
  songs with the most vocals, median over excerpts;
- separation speed (seconds of audio per second, one thread) and parameter count.

4-stem systems are also scored on vocals / accompaniment (the sum of their other stems), so every row has those
two columns. The oracles (IRM, IBM at the same STFT as the shipped model, MIX) need no training. Results go to
benchmarks/results/reproduction.json and to the results section of docs/reproduction.md (the method section above
it is kept). A system that was already trained (its model exists with the same config and budget) is only
re-scored; pass --retrain to train again.
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
from stemdesk.core.metrics import usdr  # noqa: E402
from stemdesk.core.postprocess import PostProcessing, oracle_masks  # noqa: E402
from stemdesk.core.separator import Separator  # noqa: E402
from stemdesk.core.stft import STFT, STFTConfig  # noqa: E402
from stemdesk.io.model_store import find_model, load_estimator, user_models_dir  # noqa: E402
from stemdesk.training.dataset import data_terms, load_songs, song_folder  # noqa: E402
from stemdesk.training.default_models import DATA, SOURCES, split  # noqa: E402
from stemdesk.training.metrics import bss_eval_v4  # noqa: E402
from stemdesk.training.recipes import PAPER_RECIPES  # noqa: E402
from stemdesk.training.scratch import ScratchRequest, card_facts, plan, record_budget, train_recipe  # noqa: E402
from stemdesk.training.train import export_model, regroup, source_map  # noqa: E402

TWO = ["vocals", "accompaniment"]

# Each system is a recipe of `stemdesk train` (its paper's settings, sized to train on one CPU core).
SYSTEMS = {name: f"{recipe.paper} ({recipe.variant})" for name, recipe in PAPER_RECIPES.items()}
# The generated part of docs/reproduction.md starts at this line; everything above it is written by hand.
RESULTS_MARKER = "<!-- Everything below is written by benchmarks/reproduction.py. -->"
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


def separator_for(estimator, card) -> Separator:
    """The separator `stemdesk separate` builds for a model: with the post-processing its card asks for."""
    post = PostProcessing.from_card(card.raw.get("postprocessing"))
    return Separator(estimator, "cpu", post.steps(estimator.sources), post.wiener)


def speed(separator: Separator, seconds: float = 30.0) -> float:
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


def write_doc(results: str) -> None:
    """docs/reproduction.md: the hand-written part up to RESULTS_MARKER as it is, then ``results``."""
    path = ROOT / "docs" / "reproduction.md"
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Reproduction\n\n"
    head = text.split(RESULTS_MARKER)[0].rstrip() + "\n\n"
    path.write_text(head + RESULTS_MARKER + "\n\n" + results, encoding="utf-8")


def markdown(rows: list[dict], minutes: float) -> str:
    columns = ["vocals", "accompaniment", "drums", "bass", "other"]
    lines = [
        "## Results",
        "",
        f"Produced by `.venv/bin/python benchmarks/reproduction.py --minutes {minutes:g}`: every system trained for "
        f"{minutes:g} CPU-minutes (one thread) on the same songs of ../shared/data, scored on validation songs never "
        "trained on (split by song). uSDR: global SDR per song, median over songs (dB). SDR/SIR/SAR: BSS Eval v4 "
        "median over one-second frames of a 20-second vocal excerpt of the 5 validation songs with the most vocals, "
        "median over those songs (dB). Speed: times "
        "real time separating stereo 44.1 kHz audio on one thread. These are short CPU budgets on 35 minutes of "
        "audio: they rank the methods under equal, small budgets; they do not reproduce the papers' numbers.",
        "",
        "The last column: the system run through `stemdesk separate --model repro-<recipe>` on a 20-second excerpt of a "
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
        write_doc(markdown(saved["rows"], saved["minutes"]))
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

    unknown = [name for name in chosen if name not in SYSTEMS]
    if unknown:
        raise SystemExit(f"unknown systems {unknown}; the systems are the recipes: {', '.join(SYSTEMS)}")
    terms = data_terms([song_folder(p) for p in train_dirs + valid_dirs])
    for name in chosen:
        model_id = f"repro-{name}"
        request = ScratchRequest(
            data=[DATA / "musdb7-train", DATA / "cc0-efree"],
            name=model_id,
            recipe=name,
            minutes=args.minutes,
            threads=args.threads,
        )
        made = plan(request)
        made.config.validate_every = 10**9  # one validation round, at the end, on one song (scoring follows)
        made.config.threads = args.threads
        folder = user_models_dir() / model_id
        try:
            card = find_model(model_id)
            trained = (
                json.loads(json.dumps(card.config)) == json.loads(json.dumps(made.estimator_config))
                and card.raw.get("training", {}).get("budget", {}).get("minutes") == args.minutes
            )
        except Exception:  # noqa: BLE001 - not installed yet
            trained = False
        if args.retrain or not trained:
            wall, cpu = time.monotonic(), time.process_time()
            facts = card_facts(
                request,
                made,
                terms,
                [p.name for p in train_dirs],
                [p.name for p in valid_dirs],
                {},
            )
            facts["description"] += ", reproduction-table budget (benchmarks/reproduction.py)"
            trainer, pretrained = train_recipe(
                made, train, valid[:1], args.workdir / name, export=None, progress=None, cancel=None
            )
            export_model(folder, model_id, facts, half=True)(
                trainer.estimator, {"valid_usdr": {}, "songs": {}, "step": trainer.step}
            )
            record_budget(folder, made.config, args.minutes, trainer.step, pretrained, wall, cpu)
        estimator, card = load_estimator(model_id)
        separator = separator_for(estimator, card)
        rate = valid[0].sample_rate

        def run(index, mix, separator=separator, rate=rate):
            return separate_song(lambda x: separator(x, rate).stems, mix, rate)

        row = score(
            name, list(estimator.sources), run, valid, speed(separator), sum(p.numel() for p in estimator.parameters())
        )
        row["paper"] = SYSTEMS[name]
        row["steps"] = card.raw.get("training", {}).get("budget", {}).get("steps")
        with tempfile.TemporaryDirectory() as temp:
            row["cli"] = cli_null_check(model_id, real_song_excerpt(Path(temp)), Path(temp) / "out")
        rows[name] = row
        print(json.dumps(row), flush=True)
        ordered = [rows[k] for k in [f"oracle_{k}" for k in ("irm", "ibm", "mix")] + list(SYSTEMS) if k in rows]
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps({"minutes": args.minutes, "rows": ordered}, indent=1) + "\n")
        write_doc(markdown(ordered, args.minutes))


if __name__ == "__main__":
    main()
