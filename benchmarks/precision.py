"""Does reduced precision keep a model's quality? Every validation song separated at float32 and at the precision
StemDesk would choose (or ``--precision``), scored against the true stems.

    .venv/bin/python benchmarks/precision.py [--model htdemucs] [--precision bf16] [--threads 1]

The validation songs are those the shipped models' scores come from (`stemdesk.training.validation.split` of
../shared/data: 13 MUSDB excerpts and the CC0 song 3.Sodium), separated through the real separator and chunker (the
model's own segments and crossfade, the null rule) and scored by uSDR per stem. Reported per stem: the median over
songs at each precision and its change (the goal: within 0.05 dB), the song that lost most, and how far the reduced
precision's stems are from float32's (SDR of one against the other, median over songs). Results:
benchmarks/results/precision-<model>.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stemdesk.core.metrics import usdr  # noqa: E402
from stemdesk.core.precision import apply_precision, choose_precision  # noqa: E402
from stemdesk.core.separator import Separator  # noqa: E402
from stemdesk.io.model_store import load_estimator  # noqa: E402
from stemdesk.io.process import cpu_bf16_flags  # noqa: E402
from stemdesk.training.data import regroup, source_map  # noqa: E402
from stemdesk.training.dataset import load_songs  # noqa: E402
from stemdesk.training.validation import median, separate_song, split  # noqa: E402

SOURCES = ["vocals", "drums", "bass", "other"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="htdemucs")
    parser.add_argument("--precision", default="auto", help="the reduced precision to check (auto: StemDesk's choice)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reference, card = load_estimator(args.model)
    chosen, reason = choose_precision(args.precision, torch.device("cpu"), reference, cpu_bf16_flags())
    if chosen == "fp32":
        sys.exit(f"{args.model} would run at fp32 here ({reason}): nothing to compare.")
    reduced = apply_precision(copy.deepcopy(reference), chosen)
    songs = load_songs(split(args.data)[1], SOURCES)
    mapping = source_map(reference.sources, SOURCES)
    rows: dict[str, dict] = {}
    seconds = {"fp32": 0.0, chosen: 0.0}
    for song in songs:
        truth = regroup(song.audio(), mapping)
        usable = [all(song.usable[i] for i in idx) for idx in mapping]
        stems = {}
        for name, estimator in (("fp32", reference), (chosen, reduced)):
            separator = Separator(estimator, "cpu")
            start = time.perf_counter()
            with torch.inference_mode():
                stems[name] = separate_song(separator, truth.sum(0), song.sample_rate)
            seconds[name] += time.perf_counter() - start
        exact, fast = usdr(truth, stems["fp32"]), usdr(truth, stems[chosen])
        apart = usdr(stems["fp32"], stems[chosen])
        rows[song.name] = {
            source: {"fp32": round(float(e), 4), chosen: round(float(f), 4), "stems_apart_db": round(float(a), 1)}
            for source, e, f, a, ok in zip(reference.sources, exact, fast, apart, usable)
            if ok
        }
        print(song.name, rows[song.name], flush=True)
    summary = {}
    for source in reference.sources:
        scored = {name: row[source] for name, row in rows.items() if source in row}
        before = median([r["fp32"] for r in scored.values()])
        after = median([r[chosen] for r in scored.values()])
        worst = min(scored, key=lambda name: scored[name][chosen] - scored[name]["fp32"])
        summary[source] = {
            "median_fp32_db": round(before, 4),
            f"median_{chosen}_db": round(after, 4),
            "median_change_db": round(after - before, 4),
            "worst_song": worst,
            "worst_song_change_db": round(scored[worst][chosen] - scored[worst]["fp32"], 4),
            "stems_apart_median_db": round(median([r["stems_apart_db"] for r in scored.values()]), 1),
        }
    result = {
        "model": args.model,
        "precision": chosen,
        "reason": reason,
        "threads": args.threads,
        "songs": len(songs),
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "speedup": round(seconds["fp32"] / seconds[chosen], 2),
        "stems": summary,
        "per_song": rows,
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
    }
    out = args.out or ROOT / "benchmarks" / "results" / f"precision-{args.model}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_song"}, indent=1))


if __name__ == "__main__":
    main()
