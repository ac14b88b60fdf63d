"""Does fine-tuning on an artist's songs help that artist's other songs? Leave-one-song-out, through the trainer.

    .venv/bin/python benchmarks/finetune.py [--data ../shared/data/cc0-efree] [--from stemdesk-4stem]
        [--minutes 30] [--folds 2.Lithium,5.Rubidium] [--parallel 2] [--lr 5e-5] [--freeze second.]

Each fold holds one song out and runs the whole `stemdesk train` job (data checks, fine-tune for the time budget,
score card) on the others, in its own process with one thread and its own user folders, so nothing lands in
yours. The held-out song is also the validation song the trainer selects its best step on, as in
`stemdesk train --valid SONG`; a fold whose fine-tune never beats the base exports nothing and reports its best
step. Without --lr/--freeze the base model's card decides (its ``fine_tune`` advice).
Results: benchmarks/results/finetune.json and finetune.md (per fold, per stem: base, tuned, gain).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"


def vocal_error(model: str, data: Path, song_name: str) -> dict:
    """Where a model's vocal error lies on a song: its vocal SDR over the seconds in which the vocal stem sounds,
    and the share of its vocal error energy in the seconds in which the vocal stem is silent (40 dB below its
    loudest second). A model that calls a vocal-like synth "vocals" in an instrumental section shows it here."""
    import torch

    from stemdesk.core.separator import Separator
    from stemdesk.io.model_store import load_estimator
    from stemdesk.training.dataset import SOURCES, discover, read_song
    from stemdesk.training.validation import separate_song

    estimator, _ = load_estimator(model)
    song = read_song(next(s for s in discover(data) if s.name == song_name), mixture=False).to_song(
        [True] * len(SOURCES)
    )
    stems = song.audio()
    rate = song.sample_rate
    estimate = separate_song(Separator(estimator), stems.sum(0), rate)
    index = estimator.sources.index("vocals")
    seconds = stems.shape[-1] // rate

    def per_second(x: torch.Tensor) -> torch.Tensor:
        return x[:, : seconds * rate].reshape(x.shape[0], seconds, rate).pow(2).sum(dim=(0, 2))

    truth, error = per_second(stems[0]), per_second(estimate[index] - stems[0])
    sounding = truth > 1e-4 * truth.max()
    return {
        "sdr_where_sung_db": round(10 * float(torch.log10(truth[sounding].sum() / error[sounding].sum())), 2),
        "error_share_where_silent": round(float(error[~sounding].sum() / error.sum()), 3),
        "silent_seconds": int((~sounding).sum()),
    }


def run_fold(args: argparse.Namespace) -> None:
    """One fold, in this process: fine-tune with --valid SONG and write what happened as JSON."""
    from stemdesk.core.errors import StemDeskError
    from stemdesk.io.paths import runs_dir
    from stemdesk.training.finetune import FineTuneRequest, fine_tune

    start: dict = {}

    def progress(event: dict) -> None:
        if event.get("stage") == "start":
            start.update(event)

    request = FineTuneRequest(
        data=args.data,
        base=args.base,
        name="fold",
        minutes=args.minutes,
        valid=[args.fold],
        lr=args.lr,
        freeze=args.freeze,
        threads=1,
    )
    started = time.monotonic()
    try:
        card = fine_tune(request, progress=progress)
        result = {
            "exported": True,
            "base": card["base"]["usdr"],
            "tuned": card["fine_tuned"]["usdr"],
            "steps": card["steps"],
        }
    except StemDeskError:
        if not start:
            raise
        log = runs_dir() / request.name / "checkpoints" / "log.jsonl"
        history = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        best = max(history, key=lambda h: h["valid_mean"])
        result = {
            "exported": False,
            "base": {k: round(v, 2) for k, v in start["valid"].items()},
            "tuned": {k: round(v, 2) for k, v in best["valid_usdr"].items()},
            "best_step": best["step"],
            "steps": history[-1]["step"],
        }
    result.update(
        {
            "fold": args.fold,
            "lr": start.get("lr"),
            "freeze": start.get("freeze"),
            "seconds": round(time.monotonic() - started),
        }
    )
    result["vocal_error"] = {"base": vocal_error(args.base, args.data, args.fold)}
    if result["exported"]:
        result["vocal_error"]["tuned"] = vocal_error(request.name, args.data, args.fold)
    args.out.write_text(json.dumps(result, indent=1))


def folds_of(data: Path) -> list[str]:
    return sorted(p.name for p in data.iterdir() if p.is_dir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cc0-efree")
    parser.add_argument("--from", dest="base", default="stemdesk-4stem")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--folds", help="comma-separated songs to hold out, one fold each (default: every song)")
    parser.add_argument("--parallel", type=int, default=max(1, (os.cpu_count() or 1)))
    parser.add_argument("--lr", type=float)
    parser.add_argument("--freeze", nargs="*")
    parser.add_argument("--fold", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fold:
        run_fold(args)
        return
    if not args.data.is_dir():
        sys.exit(f"{args.data} is not a folder of multitrack songs")
    folds = args.folds.split(",") if args.folds else folds_of(args.data)
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="stemdesk-finetune-"))
    pending, running, results = list(folds), [], []
    while pending or running:
        while pending and len(running) < args.parallel:
            fold = pending.pop(0)
            home = work / fold
            env = {
                **os.environ,
                "XDG_DATA_HOME": str(home / "data"),
                "XDG_CONFIG_HOME": str(home / "config"),
                "OMP_NUM_THREADS": "1",
            }
            command = [
                sys.executable,
                __file__,
                "--fold",
                fold,
                "--out",
                str(home / "result.json"),
                "--data",
                str(args.data),
                "--from",
                args.base,
                "--minutes",
                str(args.minutes),
            ]
            if args.lr is not None:
                command += ["--lr", str(args.lr)]
            if args.freeze is not None:
                command += ["--freeze", *args.freeze]
            home.mkdir(parents=True)
            log = open(home / "log.txt", "w")
            running.append((fold, home, subprocess.Popen(command, env=env, stdout=log, stderr=log), log))
            print(f"fold {fold}: started", flush=True)
        time.sleep(5)
        for item in list(running):
            fold, home, process, log = item
            if process.poll() is None:
                continue
            running.remove(item)
            log.close()
            if process.returncode != 0:
                print(f"fold {fold}: failed, see {home / 'log.txt'}", flush=True)
                continue
            results.append(json.loads((home / "result.json").read_text()))
            print(f"fold {fold}: {json.dumps(results[-1])}", flush=True)
    (RESULTS / "finetune.json").write_text(json.dumps(results, indent=1))
    (RESULTS / "finetune.md").write_text(render(results, args))
    print(render(results, args))


def render(results: list[dict], args: argparse.Namespace) -> str:
    sources = ["vocals", "drums", "bass", "other"]
    lines = [
        f"Leave-one-song-out fine-tuning of {args.base} on {args.data.name}, {args.minutes:g} minutes per fold, "
        "one thread (uSDR dB on the held-out song: base → tuned, gain).",
        "",
        "| held out | lr | frozen | steps | " + " | ".join(sources) + " | exported |",
        "|" + "---|" * (5 + len(sources)),
    ]
    for r in results:
        cells = []
        for s in sources:
            if s in r["base"]:
                cells.append(f"{r['base'][s]:.2f} → {r['tuned'][s]:.2f} ({r['tuned'][s] - r['base'][s]:+.2f})")
            else:
                cells.append("–")
        exported = "yes" if r["exported"] else f"no (best step {r['best_step']})"
        lines.append(
            f"| {r['fold']} | {r['lr']:g} | {', '.join(r['freeze']) or '–'} | {r['steps']} | "
            + " | ".join(cells)
            + f" | {exported} |"
        )
    lines += [
        "",
        "Vocal error on the held-out song (base → tuned): SDR over the seconds in which the vocal stem "
        "sounds, and the share of the vocal error energy in the seconds in which it is silent.",
        "",
        "| held out | silent seconds | SDR where sung | error share where silent |",
        "|---|---|---|---|",
    ]
    for r in results:
        base, tuned = r["vocal_error"]["base"], r["vocal_error"].get("tuned")
        cells = [
            str(base[key]) + (f" → {tuned[key]}" if tuned else "")
            for key in ("sdr_where_sung_db", "error_share_where_silent")
        ]
        lines.append(f"| {r['fold']} | {base['silent_seconds']} | " + " | ".join(cells) + " |")
    voiced = [r for r in results if "vocals" in r["base"]]
    best = [r["tuned"]["vocals"] - r["base"]["vocals"] for r in voiced]
    # What a user ends with: the base model itself where the fine-tune exported nothing.
    kept = [gain if r["exported"] else 0.0 for gain, r in zip(best, voiced)]
    if best:
        lines += [
            "",
            f"Vocals, median over {len(best)} folds: {statistics.median(best):+.2f} dB at the best step "
            f"(from {min(best):+.2f} to {max(best):+.2f}); {statistics.median(kept):+.2f} dB for the model "
            "a user ends with (the base where nothing was exported).",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
