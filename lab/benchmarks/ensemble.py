"""Does an ensemble beat its members? stemdesk-4stem alone, htdemucs alone and stemdesk-4stem+htdemucs on the songs
the default model is validated on, each through the code `stemdesk separate --model ...` runs (the engine's
separator and the chunker's default segments).

    .venv/bin/python lab/benchmarks/ensemble.py [--models stemdesk-4stem,htdemucs] [--blends 0.75,0.9] [--threads 1]

Validation songs: the split of stemdesk/training/validation.py (every seventh MUSDB 7-s excerpt and the CC0
song "3.Sodium", whole). Metric: uSDR (global SDR per song, the MDX definition, `lab/benchmarks/scoring.score`),
median over songs, per stem; a song where a reference stem is silent is left out for that stem. Also reported:
how many songs the ensemble wins per stem against each member; the largest |Σ stems − mix| of every system; the
ensemble's 16- and 24-bit stems written by the real command line and null-checked from the files; and blends
(1 − w) · A + w · B of the two members' own stems for the weights in ``--blends``, which is what the ensemble
A+B*(w / (1 − w)) computes up to where the segments fall, found without running the networks again.
Needs htdemucs installed (`stemdesk models install htdemucs --accept-license`; research use only).
Results: lab/benchmarks/results/ensemble.json, and the table printed for docs/quality.md.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import scoring  # noqa: E402
from scoring import DATA, SOURCES  # noqa: E402

from stemdesk.cli import main as cli  # noqa: E402
from stemdesk.io.process import tune_allocator  # noqa: E402
from stemdesk.jobs.separate import SeparateOptions, SeparationEngine  # noqa: E402
from stemdesk.training.dataset import load_songs  # noqa: E402
from stemdesk.training.validation import song_chunker, split  # noqa: E402

COLUMNS = ["vocals", "drums", "bass", "other", "accompaniment"]


def run_system(model: str, songs, keep: list | None = None) -> dict:
    """Score ``model`` (an id or an ensemble's string) on ``songs``; ``keep`` collects its stems per song in the
    order of SOURCES."""
    engine = SeparationEngine(model, "cpu")
    separator = engine.separator(SeparateOptions(model=model))
    sources = list(engine.sources)
    order = [sources.index(s) for s in SOURCES]
    worst_null, seconds = 0.0, 0.0

    def estimate(index, mix):
        nonlocal worst_null, seconds
        began = time.perf_counter()
        stems = song_chunker(separator, songs[index].sample_rate).run(mix)
        seconds += time.perf_counter() - began
        worst_null = max(worst_null, float((stems.double().sum(0) - mix.double()).abs().max()))
        if keep is not None:
            keep.append(stems[order].clone())
        print(f"  {model}: {songs[index].name} ({mix.shape[-1] / songs[index].sample_rate:.0f} s)", flush=True)
        return stems

    parameters = sum(p.numel() for estimator, _ in engine.members for p in estimator.parameters())
    row = scoring.score(model, sources, estimate, songs, None, parameters)
    audio_seconds = sum(song.length / song.sample_rate for song in songs)
    row.update(
        {
            "model": engine.description,
            "seconds": round(seconds, 1),
            "x_realtime": round(audio_seconds / seconds, 2),
            "null_worst_abs": worst_null,
        }
    )
    return row


def blend_row(name: str, weight: float, first: list, second: list, songs) -> dict:
    """(1 − weight) · first + weight · second, song by song (both in SOURCES order); sums to the mix as they do."""
    return scoring.score(
        name, SOURCES, lambda index, mix: (1 - weight) * first[index] + weight * second[index], songs, None, None
    )


def wins(ensemble: dict, member: dict) -> dict[str, str]:
    """Per stem: on how many songs the ensemble's uSDR is above the member's, "n/m"."""
    counts = {}
    for stem in COLUMNS:
        pairs = [
            (scores[stem], member["usdr_per_song"][song][stem])
            for song, scores in ensemble["usdr_per_song"].items()
            if stem in scores and stem in member["usdr_per_song"].get(song, {})
        ]
        if pairs:
            counts[stem] = f"{sum(a > b for a, b in pairs)}/{len(pairs)}"
    return counts


def files_null(model: str, song, folder: Path) -> dict:
    """The ensemble through the real command line on one validation song's mix, in 16 and 24 bits, null-checked
    from the written files."""
    found = {}
    mix = song.audio().double().sum(0).numpy().T
    for depth in ("16", "24"):
        path = folder / f"mix{depth}.wav"
        sf.write(str(path), np.clip(mix, -1, 1), song.sample_rate, subtype=f"PCM_{depth}")
        out, err = io.StringIO(), io.StringIO()
        began = time.perf_counter()
        code = cli(
            [
                "separate",
                str(path),
                "-o",
                str(folder / depth),
                "--model",
                model,
                "--bit-depth",
                depth,
                "--threads",
                "1",
            ],
            out=out,
            err=err,
        )
        if code != 0:
            found[depth] = {"error": err.getvalue().strip()}
            continue
        seconds = time.perf_counter() - began
        stems = sorted((folder / depth / path.stem).glob("*.wav"))
        out = io.StringIO()
        cli(["nullcheck", str(path), *map(str, stems)], out=out)
        result = json.loads(out.getvalue())
        found[depth] = {
            "song": song.name,
            "bit_exact": result["bit_exact"],
            "max_abs": result["max_abs"],
            "seconds": round(seconds, 1),
        }
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="stemdesk-4stem,htdemucs", help="the two members, A,B")
    parser.add_argument("--blends", default="0.75,0.9", help="weights w of B in the offline blends")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tune_allocator()
    scoring.BSS_SONGS = 0
    first, second = args.models.split(",")
    ensemble = f"{first}+{second}"
    _, valid_dirs = split(DATA)
    songs = load_songs(valid_dirs, SOURCES)
    started = time.perf_counter()
    kept: dict[str, list] = {first: [], second: []}
    rows = [run_system(first, songs, kept[first]), run_system(second, songs, kept[second]), run_system(ensemble, songs)]
    blends = [
        blend_row(f"{1 - w:g} {first} + {w:g} {second}, offline", w, kept[first], kept[second], songs)
        for w in [0.5] + [float(w) for w in args.blends.split(",") if w]
    ]
    with tempfile.TemporaryDirectory() as folder:
        null = files_null(ensemble, songs[0], Path(folder))
    result = {
        "valid_songs": [p.name for p in valid_dirs],
        "threads": args.threads,
        "rows": rows,
        "blends": blends,
        "ensemble_wins": {member["system"]: wins(rows[2], member) for member in rows[:2]},
        "files_null": null,
        "seconds_total": round(time.perf_counter() - started, 1),
    }
    out = ROOT / "lab" / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ensemble.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = ["| system | " + " | ".join(COLUMNS) + " | seconds (× real time) |", "|" + "---|" * (len(COLUMNS) + 2)]
    for row in rows + blends:
        timing = f"{row['seconds']} ({row['x_realtime']}×)" if "seconds" in row else "–"
        scores = " | ".join(f"{row['usdr'][c]:.2f}" if c in row["usdr"] else "–" for c in COLUMNS)
        lines.append(f"| {row['system']} | {scores} | {timing} |")
    print("\n".join(lines))
    print(json.dumps({k: result[k] for k in ("ensemble_wins", "files_null", "seconds_total")}, indent=1))


if __name__ == "__main__":
    main()
