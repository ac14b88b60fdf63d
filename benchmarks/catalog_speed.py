"""The catalog's models' speed on this CPU: StemDesk against the publisher's own network code, same weights.

    .venv/bin/python benchmarks/catalog_speed.py [--threads 1 2] [--models ID ...] [--write-catalog [--no-measure]]
    .venv/bin/python benchmarks/catalog_speed.py --check-only     # StemDesk's stems against the reference's only

For each catalog model whose config the catalog carries and whose network the reference code builds
(`BS-RoFormer==0.4.1` for BS-RoFormer and Mel-RoFormer; MSST's TFC-TDF v3 as `audio-separator==0.47.1` carries it,
for MDX23C), the publisher's network is built from that config with random weights (speed does not depend on them),
saved as Music-Source-Separation-Training saves a checkpoint, and imported as `stemdesk models install --file` imports
it (`stemdesk.io.model_import.convert`); how far StemDesk's stems are from the reference's on the chunk is recorded
(largest difference over the reference's peak). Timed in
one process at each thread count, one chunk of the config's ``chunk_size`` each, after a warm-up: the package's
forward pass (float32), StemDesk's at float32 and at bfloat16 (`--precision bf16`), with how far the bfloat16 stems are
from the float32 ones (SDR, dB, on random weights: a measure of the arithmetic, not of the model's quality).

A 3-minute song's time follows from each side's own chunking: StemDesk's chunker (`Separator.chunking`) against
the publisher's inference (MSST's ``demix``: chunks every ``chunk_size / num_overlap`` samples over the song padded by
a chunk less a step at each end). ``--write-catalog`` writes the song times into stemdesk/io/catalog.json's
``speed`` of each model measured, with the name of the CPU it was measured on. Results: benchmarks/results/catalog-speed.json.
"""

from __future__ import annotations

import argparse
import copy
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
sys.path.insert(0, str(ROOT / "tests"))  # the reference networks as the tests build them

from catalog_networks import HTDEMUCS, as_msst_runs, mdx23c_reference, roformer_reference  # noqa: E402

from stemdesk.core.defaults import DEFAULT_OVERLAP_SECONDS, DEFAULT_SEGMENT_SECONDS  # noqa: E402
from stemdesk.core.precision import apply_precision, choose_precision  # noqa: E402
from stemdesk.core.separator import Separator  # noqa: E402
from stemdesk.io.atomic import atomic_write_bytes  # noqa: E402
from stemdesk.io.catalog_entries import catalog_path  # noqa: E402
from stemdesk.io.model_import import convert, read_config  # noqa: E402
from stemdesk.io.process import cpu_bf16_flags  # noqa: E402

SONG_SECONDS = 180.0
RATE = 44100


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def reference_network(architecture: str, model: dict, settings: dict) -> torch.nn.Module:
    """The publisher's network (the code MSST's configs are written for) from a config, as the tests build it."""
    return mdx23c_reference(settings) if architecture == "mdx23c" else roformer_reference(architecture, model)


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
        reference = reference_network(entry["architecture"], model, settings)
        ckpt = Path(temp) / "model.ckpt"
        torch.save(reference.state_dict(), ckpt)
        ours = convert([ckpt], config).estimator.eval()
    reduced = apply_precision(copy.deepcopy(ours), "bf16")
    torch.manual_seed(1)
    audio = torch.randn(1, 2, chunk) * 0.1
    song = int(SONG_SECONDS * RATE)
    ours_chunks, theirs_chunks = stemdesk_chunks(ours, song), publisher_chunks(chunk, overlap, song)
    with torch.inference_mode():
        exact, half = ours(audio), reduced(audio)
        theirs = reference(audio) if entry["architecture"] == "mdx23c" else as_msst_runs(reference, audio)
        theirs = theirs if theirs.dim() == 4 else theirs[:, None]  # one stem: the reference drops the stems axis
        rows = {
            str(count): timings(count, reference, ours, reduced, audio, ours_chunks, theirs_chunks, entry["id"])
            for count in threads
        }
    return {
        "architecture": entry["architecture"],
        "parameters": sum(p.numel() for p in ours.parameters()),
        "chunk_samples": chunk,
        "chunks_per_song": {"stemdesk": ours_chunks, "publisher": theirs_chunks, "publisher_num_overlap": overlap},
        **checks(ours, exact, half, theirs),
        "threads": rows,
    }


DEMUCS_OVERLAP = 0.25  # the demucs command's --overlap


def demucs_networks(entry: dict, folder: Path) -> tuple[list[torch.nn.Module], list[Path], Path | None]:
    """The entry's HTDemucs networks as the demucs package builds them (one, or a bag's members), random weights,
    saved as Demucs publishes them (serialised in float16, named with their checksum), with the bag's YAML from the
    catalog; the networks are what demucs loads back from those files."""
    from demucs.htdemucs import HTDemucs
    from demucs.states import load_model, save_with_checksum, serialize_model
    from omegaconf import OmegaConf

    files = []
    for index, item in enumerate(entry["files"]):
        torch.manual_seed(index)
        network = HTDemucs(sources=list(entry["stems"]), **HTDEMUCS).eval()
        signature = item["file"].split("-")[0]
        save_with_checksum(serialize_model(network, OmegaConf.create({"epochs": 1})), folder / f"{signature}.th")
        files.append(next(folder.glob(f"{signature}-*.th")))
    networks = [load_model(path).eval() for path in files]
    config = None
    if entry.get("config"):
        config = folder / entry["config"]["file"]
        config.write_text(entry["config"]["content"])
    return networks, files, config


def demucs_reference(networks: list[torch.nn.Module], weights: list[list[float]] | None):
    """demucs's apply_model on one segment: each model's stems times its weight for that stem, over the weights' sum."""
    weights = weights or [[1.0] * len(networks[0].sources)] * len(networks)
    factor = torch.tensor(weights)[:, None, :, None, None]  # model, batch, stem, channel, time

    def forward(audio: torch.Tensor) -> torch.Tensor:
        out = torch.stack([network(audio) for network in networks])
        return (out * factor).sum(0) / factor.sum(0)

    return forward


def measure_demucs(entry: dict, threads: list[int]) -> dict:
    with tempfile.TemporaryDirectory(prefix="stemdesk-catalog-speed-") as temp:
        networks, files, config = demucs_networks(entry, Path(temp))
        converted = convert(files, config, names={path: item["file"] for path, item in zip(files, entry["files"])})
        ours = converted.estimator.eval()
        weights = read_config(config).get("weights") if config else None
    reference = demucs_reference(networks, weights)
    reduced = apply_precision(copy.deepcopy(ours), "bf16")
    segment = int(HTDEMUCS["segment"] * RATE)
    torch.manual_seed(1)
    audio = torch.randn(1, 2, segment) * 0.1
    song = int(SONG_SECONDS * RATE)
    stride = int((1 - DEMUCS_OVERLAP) * segment)  # demucs's apply_model: a segment every stride samples
    ours_chunks, theirs_chunks = stemdesk_chunks(ours, song), math.ceil(song / stride)
    with torch.inference_mode():
        exact, half, theirs = ours(audio), reduced(audio), reference(audio)
        rows = {
            str(count): timings(count, reference, ours, reduced, audio, ours_chunks, theirs_chunks, entry["id"])
            for count in threads
        }
    return {
        "architecture": entry["architecture"],
        "networks": len(networks),
        "parameters": sum(p.numel() for p in ours.parameters()),
        "chunk_samples": segment,
        "chunks_per_song": {"stemdesk": ours_chunks, "publisher": theirs_chunks, "publisher_overlap": DEMUCS_OVERLAP},
        **checks(ours, exact, half, theirs),
        "threads": rows,
    }


def checks(ours: torch.nn.Module, exact: torch.Tensor, half: torch.Tensor, theirs: torch.Tensor) -> dict:
    """What a measurement records besides its times: how far the bfloat16 stems are from float32's, how far
    StemDesk's float32 stems are from the reference's, what `--precision auto` runs here, and on which CPU."""
    # a RoFormer of one stem: the reference gives that stem, StemDesk also the mix less it
    apart = float((exact[:, : theirs.shape[1]] - theirs).abs().max() / theirs.abs().max())
    return {
        "bfloat16_apart_from_float32_db": sdr(exact, half),
        "largest_difference_from_the_reference": f"{apart:.1e} of its peak",
        "auto_precision": choose_precision("auto", torch.device("cpu"), ours, cpu_bf16_flags())[0],
        "cpu": cpu_name(),
    }


def timings(count: int, reference, ours, reduced, audio, ours_chunks: int, theirs_chunks: int, name: str) -> dict:
    """One chunk through each side at a thread count, and a song's minutes from each side's chunk count."""
    torch.set_num_threads(count)
    package = timed(lambda: reference(audio))
    fp32 = timed(lambda: ours(audio))
    bf16 = timed(lambda: reduced(audio))
    row = {
        "seconds_per_chunk": {"package": round(package, 2), "float32": round(fp32, 2), "bfloat16": round(bf16, 2)},
        "song_minutes": {
            "publisher": round(theirs_chunks * package / 60, 1),
            "float32": round(ours_chunks * fp32 / 60, 1),
            "bfloat16": round(ours_chunks * bf16 / 60, 1),
        },
    }
    print(name, count, row, flush=True)
    return row


def speed_record(result: dict) -> dict:
    """The catalog's ``speed`` of a model from its measurement (`CatalogEntry.speed_text` words it)."""
    rows = result["threads"]
    # identical stems (sdr's clamp): the network names no part that computes in bfloat16, so it has no such time
    reduced = result["bfloat16_apart_from_float32_db"] < 300
    return {
        "song_seconds": SONG_SECONDS,
        "precision": result.get("auto_precision", "fp32"),  # what --precision auto runs on that CPU
        "minutes_by_threads": {count: row["song_minutes"]["float32"] for count, row in rows.items()},
        "bfloat16_minutes_by_threads": (
            {count: row["song_minutes"]["bfloat16"] for count, row in rows.items()} if reduced else None
        ),
        "publisher_minutes_by_threads": {count: row["song_minutes"]["publisher"] for count, row in rows.items()},
        "cpu": result["cpu"],
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
    parser.add_argument(
        "--check-only",
        action="store_true",
        help="only compare StemDesk's stems with the reference's (no timing; the timings already measured stay)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "catalog-speed.json")
    args = parser.parse_args()
    catalog = json.loads(catalog_path().read_text(encoding="utf-8"))
    chosen = [
        e
        for e in catalog["models"]
        if ((e.get("config") or {}).get("content") or e["architecture"] == "htdemucs")
        and (not args.models or e["id"] in args.models)
    ]
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    models = results.setdefault("models", {})
    for result in models.values():  # measured before each result named its own CPU
        result.setdefault("cpu", results.get("cpu"))
    results.pop("cpu", None)
    for entry in [] if args.no_measure else chosen:
        measured = (measure_demucs if entry["architecture"] == "htdemucs" else measure)(
            entry, [] if args.check_only else args.threads
        )
        if args.check_only:  # the agreement is new; the timings (and the CPU they were measured on) stay
            earlier = models.get(entry["id"], {})
            measured = {**measured, **{k: earlier[k] for k in ("threads", "cpu", "measured_at") if k in earlier}}
            measured["checked_at"] = time.strftime("%Y-%m-%d %H:%M")
        else:
            measured["measured_at"] = time.strftime("%Y-%m-%d %H:%M")
        models[entry["id"]] = measured
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(args.out, (json.dumps(results, indent=1) + "\n").encode())
    if args.write_catalog:
        for entry in catalog["models"]:
            if models.get(entry["id"], {}).get("threads"):
                entry["speed"] = speed_record(models[entry["id"]])
        atomic_write_bytes(catalog_path(), (json.dumps(catalog, indent=2, ensure_ascii=False) + "\n").encode())
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
