"""The quality path's speed on whatever device is here (CUDA, else the CPU), from a clone of the code alone.

    python benchmarks/gpu_speed.py [--device cuda] [--seconds 180] [--out FILE]

HTDemucs is the installed one when there is one, else a network of the released shape with random weights (the real
weights cannot travel to a borrowed GPU machine; speed does not depend on them). Measured in one run, same device:

- one 7.8-s segment through the network: float32, and each reduced precision the device offers (StemDesk's policy,
  `stemdesk.core.precision`), with the stems' distance from float32's as SDR (dB);
- a song of ``--seconds`` (synthesised), file in to four 32-bit float WAV stems out through `SeparationEngine` at
  fp32 and at "auto", and the `demucs` package's `apply_model` on the same weights when that package is importable
  (`pip install --no-deps demucs julius einops openunmix`);
- the device's peak memory for each song run (CUDA).

benchmarks/gpu.sh runs this and the CUDA tests; the README says which GPU figures are measured.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stemdesk.core.estimators.htdemucs import HTDemucs  # noqa: E402
from stemdesk.core.precision import apply_precision, choose_precision  # noqa: E402
from stemdesk.io.demo import synthesise_song  # noqa: E402
from stemdesk.io.model_store import find_model, load_estimator, load_state, save_model  # noqa: E402
from stemdesk.io.process import cpu_bf16_flags  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int = 3) -> float:
    """The best of ``repeats`` runs after one warm-up, in seconds."""
    fn()
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def sdr(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    reference, estimate = reference.double().cpu(), estimate.double().cpu()
    return round(float(10 * torch.log10(reference.pow(2).sum() / (reference - estimate).pow(2).sum())), 1)


def the_model(models: Path) -> tuple[str, str]:
    """The installed HTDemucs's id, or a random one of the released shape saved in ``models``."""
    try:
        find_model("htdemucs")
        return "htdemucs", "the installed HTDemucs v4 weights"
    except Exception:  # noqa: BLE001 - not installed: random weights will do for speed
        torch.manual_seed(0)
        save_model(models / "htdemucs-random", "htdemucs-random", HTDemucs(), {"description": "random weights"})
        os.environ["STEMDESK_MODELS_PATH"] = str(models)
        return "htdemucs-random", "random weights of the released shape"


def segment_rows(model_id: str, device: torch.device) -> dict:
    reference, _ = load_estimator(model_id)
    reference = reference.to(device).eval()
    audio = torch.randn(1, 2, reference.segment, device=device) * 0.1
    rows = {}
    with torch.inference_mode():
        exact = reference(audio)
        rows["fp32"] = {"seconds": round(timed(lambda: reference(audio), device), 4)}
        chosen, reason = choose_precision("auto", device, reference, cpu_bf16_flags())
        if chosen != "fp32":
            reduced = apply_precision(copy.deepcopy(reference), chosen)
            fast = reduced(audio)
            seconds = timed(lambda: reduced(audio), device)
            rows[chosen] = {
                "seconds": round(seconds, 4),
                "speedup": round(rows["fp32"]["seconds"] / seconds, 2),
                "stems_apart_from_fp32_db": sdr(exact, fast),
                "reason": reason,
            }
    return rows


def song_rows(model_id: str, device: torch.device, song: Path, out: Path) -> dict:
    from stemdesk.jobs.separate import SeparationEngine, separate_options

    rows = {}
    for precision in ("fp32", "auto"):
        engine = SeparationEngine(model_id, str(device), precision=precision)
        options = separate_options(model=model_id, device=str(device), precision=precision, bit_depth="32f")
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        engine.separate_file(song, out / precision, options)
        sync(device)
        row = {"seconds": round(time.perf_counter() - start, 2), "precision": engine.precision}
        if device.type == "cuda":
            row["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        rows[f"stemdesk ({precision})"] = row
    try:
        from demucs.apply import apply_model
        from demucs.htdemucs import HTDemucs as Reference
    except ImportError as error:
        rows["demucs apply_model"] = {"skipped": f"the demucs package is not importable ({error})"}
        return rows
    reference = Reference(
        sources=["drums", "bass", "other", "vocals"], bottom_channels=512, dconv_mode=3, segment=7.8
    ).eval()
    reference.load_state_dict(load_state(find_model(model_id)), strict=True)
    reference.to(device)
    audio, rate = sf.read(str(song), dtype="float32", always_2d=True)
    x = torch.from_numpy(audio.T.copy())[None].to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    with torch.no_grad():
        apply_model(reference, x, shifts=0, split=True, overlap=0.25, progress=False, device=device)
    sync(device)
    row = {"seconds": round(time.perf_counter() - start, 2)}
    if device.type == "cuda":
        row["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    rows["demucs apply_model"] = row
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_speed.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor()})",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
    }
    with tempfile.TemporaryDirectory(prefix="stemdesk-gpu-") as temp:
        temp = Path(temp)
        model_id, weights = the_model(temp / "models")
        result["weights"] = weights
        result["segment"] = segment_rows(model_id, device)
        print(json.dumps(result, indent=1), flush=True)
        song = temp / "song.wav"
        synthesise_song(song, args.seconds)
        result["song_seconds"] = args.seconds
        result["song"] = song_rows(model_id, device, song, temp / "stems")
        faster = [r["seconds"] for k, r in result["song"].items() if k.startswith("demucs") and "seconds" in r]
        auto = result["song"]["stemdesk (auto)"]["seconds"]
        if faster:
            result["speedup_vs_demucs"] = round(min(faster) / auto, 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
