"""Does --shifts help? uSDR per stem of a model with 0 and N test-time shifts, on excerpts of the cc0-efree songs
(never trained on by HTDemucs or the shipped models), each long enough to hold several segments, so the shifts move
the segment grid against the music. Every result is also checked to null.

    .venv/bin/python benchmarks/shifts.py [--model htdemucs] [--shifts 0,2] [--seconds 30] [--start 60]

Results: benchmarks/results/shifts-<model>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stemdesk.core.chunker import Chunker  # noqa: E402
from stemdesk.core.defaults import DEFAULT_OVERLAP_SECONDS, DEFAULT_SEGMENT_SECONDS  # noqa: E402
from stemdesk.core.metrics import usdr  # noqa: E402
from stemdesk.core.separator import Separator  # noqa: E402
from stemdesk.io.model_store import load_estimator  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "cc0-efree"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="htdemucs")
    parser.add_argument("--shifts", default="0,2")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--start", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not DATA.is_dir():
        sys.exit(f"{DATA} is not here (the project's real multitracks; see tests/conftest.py's DATA_MISSING)")
    estimator, card = load_estimator(args.model)
    sources = list(card.outputs or estimator.sources)
    counts = [int(n) for n in args.shifts.split(",")]
    rows: dict[int, list] = {n: [] for n in counts}
    seconds: dict[int, float] = {n: 0.0 for n in counts}
    worst_null = 0.0
    for song in sorted(DATA.iterdir()):
        start, frames = int(args.start * 44100), int(args.seconds * 44100)
        truth = torch.from_numpy(
            np.stack(
                [
                    sf.read(str(song / f"{s}.ogg"), start=start, frames=frames, dtype="float32", always_2d=True)[0].T
                    for s in sources
                ]
            )
        )
        mix = truth.sum(0)
        audible = (truth.square().mean(dim=(1, 2)) > 1e-6).numpy()
        for n in counts:
            separator = Separator(estimator, outputs=card.outputs, shifts=n)
            plan = separator.chunking(44100, DEFAULT_SEGMENT_SECONDS, DEFAULT_OVERLAP_SECONDS)
            began = time.perf_counter()
            stems = Chunker(lambda x, separator=separator: separator(x, 44100).stems, **plan).run(mix)
            seconds[n] += time.perf_counter() - began
            worst_null = max(worst_null, float((stems.sum(0) - mix).abs().max()))
            scores = usdr(truth.double(), stems.double()).numpy()
            scores[~audible] = np.nan
            rows[n].append(scores)
            print(song.name, f"shifts {n}", dict(zip(sources, np.round(scores, 2).tolist())), flush=True)
    result = {
        "model": args.model,
        "excerpt": f"{args.seconds:g} s from {args.start:g} s of each cc0-efree song",
        "null_worst_abs": worst_null,
        "runs": {},
    }
    for n in counts:
        table = np.array(rows[n])
        result["runs"][str(n)] = {
            "median_usdr": dict(zip(sources, np.round(np.nanmedian(table, 0), 2).tolist())),
            "mean_usdr": dict(zip(sources, np.round(np.nanmean(table, 0), 2).tolist())),
            "seconds": round(seconds[n], 1),
        }
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"shifts-{args.model}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
