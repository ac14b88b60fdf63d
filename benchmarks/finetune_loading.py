"""How long a fine-tune spends checking and loading its songs before it trains: `load_checked`, the fine-tune's
one pass over the data (each file decoded once), on a folder of multitrack songs.

    .venv/bin/python benchmarks/finetune_loading.py [--data ../shared/data/cc0-efree] [--threads 1]

Prints the seconds, the peak resident memory and what was loaded (songs, their lengths, usable stems) as JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cc0-efree")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not args.data.exists():
        sys.exit(f"{args.data} is not a folder of multitrack songs")
    from stemdesk.io.process import limit_threads
    from stemdesk.training.dataset import discover, load_checked

    limit_threads(args.threads)
    songs = discover(args.data)
    started = time.perf_counter()
    report, loaded = load_checked(songs)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "songs": len(songs),
                "usable": len(report["ok"]),
                "check_and_load_seconds": round(seconds, 1),
                "audio_minutes": round(sum(s.length / s.sample_rate for s in loaded.values()) / 60, 1),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                "loaded": {n: {"length": s.length, "usable": s.usable} for n, s in loaded.items()},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
