"""HTDemucs: StemDesk's port against onnxruntime and against the `demucs` package's own apply_model, same weights,
same segments (7.8 s, a quarter overlap, no shifts), measured in one run.

    .venv/bin/python benchmarks/htdemucs.py [--threads 1,2] [--seconds 180] [--long-minutes 20] [--rounds 2]

``stemdesk`` is `stemdesk separate --model htdemucs` as a user runs it: the precision StemDesk chooses on this CPU
(bfloat16 for the transformer where the CPU computes it: `stemdesk.core.precision`). ``stemdesk-fp32`` is the
same with ``--precision fp32``. The speed-up is
``stemdesk`` against the faster reference; the thread scaling is each StemDesk row's one-thread time over its
time at each other thread count.

Needs `stemdesk models install htdemucs --accept-license`, ``pip install onnxruntime`` and, for the reference,
``pip install --no-deps demucs julius einops openunmix`` (the demucs package's model code, no weights: it is given
the installed weights, which keep its parameter names). Each system runs in a fresh process, file in → four 32-bit
float WAV stems out; seconds are wall time from launch to exit, memory is the process's peak RSS.

"Identical stems": each reference's stems against StemDesk's raw network stems (the same chunking, no null rule),
as the largest absolute difference and as SDR (dB). StemDesk's shipped stems differ from the raw ones only by the
residual spread over them (`spread_residual`): that difference is reported too.
Results: benchmarks/results/htdemucs.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from separation import machine, make_song, repeat_song, timed  # noqa: E402

SOURCES = ["drums", "bass", "other", "vocals"]

# A child process: read the song, separate it, write the stems. argv: song, outdir, threads, system.
RUNNER = r"""
import sys, torch, soundfile as sf, numpy as np
torch.set_num_threads(int(sys.argv[3]))
song, outdir, system = sys.argv[1], sys.argv[2], sys.argv[4]
from stemdesk.io.model_store import find_model, load_estimator
from stemdesk.core.chunker import Chunker
from stemdesk.core.separator import Separator
model, card = load_estimator('htdemucs')
audio, rate = sf.read(song, dtype='float32', always_2d=True)
x = torch.from_numpy(audio.T.copy())
plan = Separator(model).chunking(rate, 0, 0)
if system == 'stemdesk-raw':
    fn = lambda seg: model(seg[None])[0]
elif system == 'onnxruntime':
    import onnxruntime as ort, tarfile, tempfile, os
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(sys.argv[3]); options.inter_op_num_threads = 1
    session = ort.InferenceSession(sys.argv[5], options)
    def fn(seg):
        n = seg.shape[-1]
        mix = torch.nn.functional.pad(seg, (0, model.segment - n))[None]
        z = model.spec(mix)
        mag = torch.view_as_real(z).permute(0, 1, 4, 2, 3).reshape(1, 4, *z.shape[-2:])
        xs, xt = session.run(None, {'input': mix.numpy(), 'onnx::ReduceMean_1': mag.numpy()})
        xs, xt = torch.from_numpy(xs), torch.from_numpy(xt)
        spec = torch.view_as_complex(xs.view(1, 4, 2, 2, *xs.shape[-2:]).permute(0, 1, 2, 4, 5, 3).contiguous())
        return (xt + model.ispec(spec, model.segment))[0, ..., :n]
elif system == 'demucs-apply_model':
    from demucs.htdemucs import HTDemucs
    from demucs.apply import apply_model
    from safetensors.torch import load_file
    ref = HTDemucs(sources=['drums', 'bass', 'other', 'vocals'], bottom_channels=512, dconv_mode=3,
                   segment=7.8).eval()
    ref.load_state_dict(load_file(str(card.weights_path)), strict=True)
    with torch.no_grad():
        stems = apply_model(ref, x[None], shifts=0, split=True, overlap=0.25, progress=False)[0]
    fn = None
if fn is not None:
    with torch.inference_mode():
        stems = Chunker(fn, **plan).run(x)
for name, stem in zip(['drums', 'bass', 'other', 'vocals'], stems):
    sf.write(f'{outdir}/{name}.wav', stem.numpy().T, rate, subtype='FLOAT')
"""


def run_system(system: str, song: Path, out: Path, threads: int, onnx: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    if system in ("stemdesk", "stemdesk-fp32"):
        cmd = [
            sys.executable,
            "-m",
            "stemdesk",
            "separate",
            str(song),
            "-o",
            str(out),
            "--model",
            "htdemucs",
            "--threads",
            str(threads),
            "--device",
            "cpu",
            "--bit-depth",
            "32f",
            "--precision",
            "fp32" if system == "stemdesk-fp32" else "auto",
            "--overwrite",
        ]
    else:
        cmd = [sys.executable, "-c", RUNNER, str(song), str(out), str(threads), system, str(onnx)]
    code, _, err, wall, peak = timed(cmd, None)
    if code != 0:
        return {"error": (err.strip().splitlines() or ["failed"])[-1]}
    row = {"seconds": round(wall, 2), "peak_mb": round(peak, 1)}
    certificates = list(out.rglob("stemdesk-certificate.json"))
    if certificates:
        settings = json.loads(certificates[0].read_text())["settings"]
        row["precision"] = f"{settings['precision']} ({settings['precision_reason']})"
    return row


def stems_of(folder: Path) -> np.ndarray:
    found = {p.stem: p for p in folder.rglob("*.wav")}
    return np.stack([sf.read(str(found[s]), dtype="float64")[0] for s in SOURCES])


def agreement(a: np.ndarray, b: np.ndarray) -> dict:
    diff = a - b
    sdr = 10 * np.log10(np.square(a).sum() / max(np.square(diff).sum(), 1e-30))
    return {"max_abs": float(np.abs(diff).max()), "sdr_db": round(float(sdr), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="1")
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--long-minutes", type=float, default=20.0)
    parser.add_argument("--systems", default="stemdesk,stemdesk-fp32,onnxruntime,demucs-apply_model")
    parser.add_argument("--rounds", type=int, default=1, help="passes over the systems; each keeps its fastest")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "htdemucs.json")
    args = parser.parse_args()
    import tarfile

    from stemdesk.io.htdemucs import ONNX_MEMBER, TARBALL

    result = {"machine": machine(), "measured_at": time.strftime("%Y-%m-%d %H:%M"), "runs": {}}
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        song = temp / "song.wav"
        result["song"] = make_song(song, args.seconds)
        onnx = temp / ONNX_MEMBER
        # the npm tarball the tests keep in the clone (.test-cache) or, from older checkouts, in the user cache
        found = [p for p in (ROOT / ".test-cache" / TARBALL, Path.home() / ".cache" / "stemdesk-tests" / TARBALL)]
        tarball = next((p for p in found if p.is_file()), found[0])
        if tarball.is_file():
            with tarfile.open(tarball) as archive:
                archive.extract(ONNX_MEMBER, temp, filter="data")
        for threads in [int(t) for t in args.threads.split(",")]:
            passes: dict[str, list[dict]] = {}
            # ``--rounds`` passes over the systems, in turn: each keeps its fastest pass (a busy moment on the
            # machine slows one pass of one system, not every pass of it)
            for _ in range(args.rounds):
                for system in args.systems.split(","):
                    row = run_system(system, song, temp / f"{system}-{threads}", threads, onnx)
                    print(threads, system, row, flush=True)
                    passes.setdefault(system, []).append(row)
            runs: dict = {}
            for system, rows in passes.items():
                timed_rows = [r for r in rows if "seconds" in r]
                runs[system] = min(timed_rows, key=lambda r: r["seconds"]) if timed_rows else rows[-1]
                if len(timed_rows) > 1:
                    runs[system]["passes_seconds"] = [r["seconds"] for r in timed_rows]
            # every system's stems against one float32 system's: the raw network's, else StemDesk's at fp32
            base = next((s for s in ("stemdesk-raw", "stemdesk-fp32") if "seconds" in runs.get(s, {})), None)
            raw = stems_of(temp / f"{base}-{threads}") if base else None
            for system, row in runs.items():
                if "seconds" in row and raw is not None and system != base:
                    row[f"against_{base}"] = agreement(raw, stems_of(temp / f"{system}-{threads}"))
            fastest_ref = min(
                (runs[s]["seconds"] for s in ("onnxruntime", "demucs-apply_model") if "seconds" in runs.get(s, {})),
                default=None,
            )
            if fastest_ref and "seconds" in runs.get("stemdesk", {}):
                runs["speedup_vs_fastest_reference"] = round(fastest_ref / runs["stemdesk"]["seconds"], 2)
            result["runs"][str(threads)] = runs
            one = result["runs"].get("1", {})
            for system in ("stemdesk", "stemdesk-fp32"):
                if threads != 1 and "seconds" in one.get(system, {}) and "seconds" in runs.get(system, {}):
                    runs[f"{system}_scaling_over_one_thread"] = round(
                        one[system]["seconds"] / runs[system]["seconds"], 2
                    )
        if args.long_minutes > 0:
            long = temp / "long.wav"
            repeat_song(song, long, args.long_minutes)
            row = run_system("stemdesk", long, temp / "long", 1, onnx)
            three = result["runs"][args.threads.split(",")[0]]["stemdesk"]
            if "peak_mb" in row and "peak_mb" in three:
                row["peak_ratio_to_song"] = round(row["peak_mb"] / three["peak_mb"], 3)
            result["long_file"] = {"minutes": args.long_minutes, **row}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
