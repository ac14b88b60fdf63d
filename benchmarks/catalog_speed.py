"""The catalog's models' speed on this CPU: StemDesk against the publisher's own network code, same weights.

    .venv/bin/python benchmarks/catalog_speed.py [--threads 1 2] [--models ID ...] [--write-catalog [--no-measure]]

For each catalog model whose config the catalog carries (the publisher's YAML, word for word) and whose network the
reference package builds (`BS-RoFormer==0.4.1`: BS-RoFormer and Mel-RoFormer), the publisher's network is built from
that config with random weights (speed does not depend on them), saved as Music-Source-Separation-Training saves a
checkpoint, and imported as `stemdesk models install --file` imports it (`stemdesk.io.model_import.convert`). Timed in
one process at each thread count, one chunk of the config's ``chunk_size`` each, after a warm-up: the package's
forward pass (float32), StemDesk's at float32 and at bfloat16 (`--precision bf16`), with how far the bfloat16 stems are
from the float32 ones (SDR, dB, on random weights: a measure of the arithmetic, not of the model's quality).

A 3-minute song's time follows from each side's own chunking: StemDesk's chunker (`Separator.chunking`) against
the publisher's inference (MSST's ``demix``: chunks every ``chunk_size / num_overlap`` samples over the song padded by
a chunk less a step at each end). ``--write-catalog`` writes the song times into stemdesk/io/catalog.json's
``speed`` of each model measured, with the CPU's name. Results: benchmarks/results/catalog-speed.json.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stemdesk.core.defaults import DEFAULT_OVERLAP_SECONDS, DEFAULT_SEGMENT_SECONDS  # noqa: E402
from stemdesk.core.precision import apply_precision  # noqa: E402
from stemdesk.core.separator import Separator  # noqa: E402
from stemdesk.io.atomic import atomic_write_bytes  # noqa: E402
from stemdesk.io.catalog_entries import catalog_path  # noqa: E402
from stemdesk.io.model_import import convert, read_config  # noqa: E402

SONG_SECONDS = 180.0
RATE = 44100


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def reference_network(architecture: str, model: dict) -> torch.nn.Module:
    """The publisher's network (the package MSST's configs are written for) from a config's model section."""
    if architecture == "bs_roformer":
        from bs_roformer.bs_roformer import BSRoformer as network
    elif architecture == "mel_band_roformer":
        from bs_roformer.mel_band_roformer import MelBandRoformer as network
    else:
        raise SystemExit(f"no reference network for {architecture}")
    accepted = inspect.signature(network.__init__).parameters
    # MSST's own copy of the network has no linear-attention layers, which the package adds unless told not to
    model = {"linear_transformer_depth": 0, **model}
    # MSST's loader reads the YAML's !!python/tuple as tuples, which the package's type checks insist on
    chosen = {k: tuple(v) if isinstance(v, list) else v for k, v in model.items() if k in accepted}
    return network(**chosen).eval()


def timed(fn) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def sdr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return round(float(10 * torch.log10(a.pow(2).sum() / (a - b).pow(2).sum().clamp_min(1e-30))), 1)


def stemdesk_chunks(estimator, samples: int) -> int:
    plan = Separator(estimator).chunking(RATE, DEFAULT_SEGMENT_SECONDS, DEFAULT_OVERLAP_SECONDS)
    step = plan["segment"] - plan["overlap"]
    return max(1, math.ceil((samples - plan["overlap"]) / step))


def publisher_chunks(chunk: int, overlap: int, samples: int) -> int:
    step = chunk // overlap
    border = chunk - step
    padded = samples + 2 * border if samples > 2 * border and border > 0 else samples
    return math.ceil(padded / step)


def measure(entry: dict, threads: list[int]) -> dict:
    with tempfile.TemporaryDirectory(prefix="stemdesk-catalog-speed-") as temp:
        config = Path(temp) / entry["config"]["file"]
        config.write_text(entry["config"]["content"])
        settings = read_config(config)
        model, audio_cfg = settings["model"], settings.get("audio", {})
        chunk = int(audio_cfg.get("chunk_size", 352800))
        overlap = int(settings.get("inference", {}).get("num_overlap", 4))
        torch.manual_seed(0)
        reference = reference_network(entry["architecture"], model)
        ckpt = Path(temp) / "model.ckpt"
        torch.save(reference.state_dict(), ckpt)
        ours = convert([ckpt], config).estimator.eval()
    reduced = apply_precision(copy.deepcopy(ours), "bf16")
    torch.manual_seed(1)
    audio = torch.randn(1, 2, chunk) * 0.1
    song = int(SONG_SECONDS * RATE)
    ours_chunks, theirs_chunks = stemdesk_chunks(ours, song), publisher_chunks(chunk, overlap, song)
    rows: dict = {}
    with torch.inference_mode():
        exact, half = ours(audio), reduced(audio)
        for count in threads:
            torch.set_num_threads(count)
            package = timed(lambda: reference(audio))
            fp32 = timed(lambda: ours(audio))
            bf16 = timed(lambda: reduced(audio))
            rows[str(count)] = {
                "seconds_per_chunk": {
                    "package": round(package, 2),
                    "float32": round(fp32, 2),
                    "bfloat16": round(bf16, 2),
                },
                "song_minutes": {
                    "publisher": round(theirs_chunks * package / 60, 1),
                    "float32": round(ours_chunks * fp32 / 60, 1),
                    "bfloat16": round(ours_chunks * bf16 / 60, 1),
                },
            }
            print(entry["id"], count, rows[str(count)], flush=True)
    return {
        "architecture": entry["architecture"],
        "parameters": sum(p.numel() for p in ours.parameters()),
        "chunk_samples": chunk,
        "chunks_per_song": {"stemdesk": ours_chunks, "publisher": theirs_chunks, "publisher_num_overlap": overlap},
        "bfloat16_apart_from_float32_db": sdr(exact, half),
        "threads": rows,
    }


def speed_record(result: dict, cpu: str) -> dict:
    """The catalog's ``speed`` of a model from its measurement (`CatalogEntry.speed_text` words it)."""
    rows = result["threads"]
    return {
        "song_seconds": SONG_SECONDS,
        "minutes_by_threads": {count: row["song_minutes"]["float32"] for count, row in rows.items()},
        "bfloat16_minutes_by_threads": {count: row["song_minutes"]["bfloat16"] for count, row in rows.items()},
        "publisher_minutes_by_threads": {count: row["song_minutes"]["publisher"] for count, row in rows.items()},
        "cpu": cpu,
        "measured_by": "benchmarks/catalog_speed.py (random weights of the published shape)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="*", help="catalog ids (default: every one this can measure)")
    parser.add_argument("--write-catalog", action="store_true")
    parser.add_argument(
        "--no-measure", action="store_true", help="only write the results already measured into the catalog"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "catalog-speed.json")
    args = parser.parse_args()
    catalog = json.loads(catalog_path().read_text(encoding="utf-8"))
    chosen = [
        e
        for e in catalog["models"]
        if (e.get("config") or {}).get("content")
        and e["architecture"] in ("bs_roformer", "mel_band_roformer")
        and (not args.models or e["id"] in args.models)
    ]
    cpu = cpu_name()
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if not args.no_measure:
        results["cpu"] = cpu
    models = results.setdefault("models", {})
    for entry in [] if args.no_measure else chosen:
        models[entry["id"]] = measure(entry, args.threads)
        models[entry["id"]]["measured_at"] = time.strftime("%Y-%m-%d %H:%M")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(args.out, (json.dumps(results, indent=1) + "\n").encode())
    if args.write_catalog:
        for entry in catalog["models"]:
            if entry["id"] in models:
                entry["speed"] = speed_record(models[entry["id"]], results["cpu"])
        atomic_write_bytes(catalog_path(), (json.dumps(catalog, indent=2, ensure_ascii=False) + "\n").encode())
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
