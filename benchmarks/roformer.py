"""An imported BS-RoFormer's speed: StemDesk against the `BS-RoFormer` package's own forward pass, same weights.

    .venv/bin/python benchmarks/roformer.py [--threads 1] [--segments 1]

A network of the released shape of the RoFormers users import most (UVR's and MSST's `model_bs_roformer_ep_317`:
dim 512, depth 12, stereo, 62 bands, 8-s chunks at 44.1 kHz), random weights (speed does not depend on them),
saved as MSST saves a checkpoint with its YAML and imported the way `stemdesk models import` imports one
(`stemdesk.io.model_import.convert`). Timed on the same process and thread count, ``--segments`` chunks each,
after one warm-up: the package's forward pass (float32), StemDesk's at float32 and at bfloat16 (which "auto" does not
choose for a RoFormer: its quality on real weights is not measured here; `--precision bf16` forces it), with the
stems' distance between them (SDR, dB). Needs `pip install BS-RoFormer==0.4.1 librosa` (`scripts/setup.sh --test`).
Results: benchmarks/results/roformer.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stemdesk.core.precision import apply_precision  # noqa: E402
from stemdesk.io.model_import import convert  # noqa: E402

CHUNK = 352800
RELEASED = dict(  # model_bs_roformer_ep_317_sdr_12.9755.yaml's model section
    dim=512,
    depth=12,
    stereo=True,
    num_stems=1,
    time_transformer_depth=1,
    freq_transformer_depth=1,
    dim_head=64,
    heads=8,
    stft_n_fft=2048,
    stft_hop_length=441,
    stft_win_length=2048,
    mask_estimator_depth=2,
    # the package's default bands, which the released config spells out
    freqs_per_bands=(2,) * 24 + (4,) * 12 + (12,) * 8 + (24,) * 8 + (48,) * 8 + (128, 129),
)


def yaml_for(path: Path, model: dict) -> Path:
    lines = ["audio:", f"  chunk_size: {CHUNK}", "  num_channels: 2", "  sample_rate: 44100", "model:"]
    for key, value in model.items():
        if isinstance(value, tuple):
            lines += [f"  {key}: !!python/tuple"] + [f"  - {v}" for v in value]
        else:
            lines.append(f"  {key}: {str(value).lower() if isinstance(value, bool) else value}")
    lines += ["training:", "  instruments:", "  - vocals", "  - other", "  target_instrument: vocals"]
    path.write_text("\n".join(lines) + "\n")
    return path


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def sdr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return round(float(10 * torch.log10(a.pow(2).sum() / (a - b).pow(2).sum())), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--segments", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "roformer.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from bs_roformer.bs_roformer import BSRoformer

    torch.manual_seed(0)
    reference = BSRoformer(**RELEASED).eval()
    with tempfile.TemporaryDirectory(prefix="stemdesk-roformer-") as temp:
        ckpt = Path(temp) / "model_bs_roformer_ep_317_sdr_12.9755.ckpt"
        torch.save(reference.state_dict(), ckpt)
        ours = convert([ckpt], yaml_for(Path(temp) / "config.yaml", RELEASED)).estimator.eval()
    reduced = apply_precision(copy.deepcopy(ours), "bf16")
    audio = torch.randn(1, 2, CHUNK) * 0.1
    rows = {}
    with torch.inference_mode():
        outputs = {
            "BS-RoFormer package (float32)": lambda: reference(audio),
            "StemDesk (float32)": lambda: ours(audio)[:, :1],
            "StemDesk (bfloat16, --precision bf16)": lambda: reduced(audio)[:, :1],
        }
        stems = {}
        for name, run in outputs.items():
            seconds = timed(run, args.segments)
            out = run()
            stems[name] = out if out.dim() == 4 else out[:, None]
            rows[name] = {"seconds_per_segment": round(seconds, 2)}
            print(name, rows[name], flush=True)
    package = rows["BS-RoFormer package (float32)"]["seconds_per_segment"]
    for name in ("StemDesk (float32)", "StemDesk (bfloat16, --precision bf16)"):
        rows[name]["speedup_vs_package"] = round(package / rows[name]["seconds_per_segment"], 2)
    exact = stems["StemDesk (float32)"]
    rows["StemDesk (bfloat16, --precision bf16)"]["stems_apart_from_float32_db"] = sdr(
        exact, stems["StemDesk (bfloat16, --precision bf16)"]
    )
    result = {
        "shape": RELEASED,
        "parameters": sum(p.numel() for p in ours.parameters()),
        "threads": args.threads,
        "segments": args.segments,
        "rows": rows,
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
