"""What a training-data source adds: second stages trained with and without it, each in the default cascade.

    .venv/bin/python lab/benchmarks/data_sources.py BASE=FOLDER NAME=FOLDER ... [--exponents 1.0,0.7]

Each FOLDER holds a `stemdesk-4stem-lite`-style model or a `stemdesk-4stem`-style cascade, whose second stage is
taken with its card's settings (a BiLSTM, or one with a band-split correction as the shipped default's), or is a
trainer checkpoint of a plain second stage (`…/checkpoint.safetensors`, its moving average when it has one). Each is put behind Spleeter's vocal U-Net as
in `stemdesk-4stem` (needs `stemdesk models install spleeter-2stem`) and scored on the validation songs of
lab/default_models.py, for every rest exponent given. Medians over 14 songs move by a few tenths of a dB
from noise alone, so the report also pairs each song with itself: the median per-song difference against the
first entry, and on how many songs it is better.

How the runs compared in lab/notes/training-data.md were made (one thread each, side by side):

    python -m lab.default_models stemdesk-4stem-lite --continue-from ORIG --lr 5e-4 --ema 0.998 --minutes 110
    python -m lab.synthetic SYNTH --songs 60 --seconds 30
    python -m lab.default_models stemdesk-4stem-lite --continue-from ORIG --lr 5e-4 --ema 0.998 --minutes 110 \\
        --synthetic SYNTH

``--bottleneck`` instead asks where the shipped cascade's error lies, on the 13 MUSDB excerpts of the validation
songs (whole-song oracles need more memory than a training run leaves): the cascade as it is, with the true vocal
mask (ideal ratio) in place of the U-Net's, and with the true split of the rest in place of the second stage's.

Results: lab/benchmarks/results/data_sources.json (or data_sources_bottleneck.json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import scoring  # noqa: E402
from scoring import DATA, SOURCES  # noqa: E402

from lab.default_models import CASCADE, LITE  # noqa: E402
from stemdesk.core.estimators import build_estimator  # noqa: E402
from stemdesk.core.masks import ratio_masks  # noqa: E402
from stemdesk.core.separator import Separator  # noqa: E402
from stemdesk.core.stft import STFT  # noqa: E402
from stemdesk.io.model_store import load_estimator, read_card  # noqa: E402
from stemdesk.training.dataset import load_songs  # noqa: E402
from stemdesk.training.validation import split  # noqa: E402

STEMS = ("drums", "bass", "other", "vocals", "accompaniment")


def second_stage(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """A second stage's entry in the cascade ({"kind", "config"}) and weights: a lite model folder's, a cascade
    folder's second stage (its card says what kind), or a trainer checkpoint's (its moving average if it keeps one),
    which can only be a plain BiLSTM stage: a checkpoint does not record a correction's settings."""
    plain = {"kind": "open_unmix", "config": LITE}
    if path.is_dir():
        estimator, card = load_estimator(read_card(path))
        state = estimator.state_dict()
        entry = (
            card.config["second"] if card.estimator == "cascade" else {"kind": card.estimator, "config": card.config}
        )
    else:
        tensors = load_file(str(path))
        state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        state.update({k[len("ema.") :]: v for k, v in tensors.items() if k.startswith("ema.")})
        if any(k.startswith("second.base.") for k in state):
            raise SystemExit(
                f"{path} holds a second stage with a band-split correction, whose settings only a model card keeps: "
                "export it (python -m lab.default_models ... --export-checkpoint) and name that folder"
            )
        entry = plain
    if any(k.startswith("second.") for k in state):
        state = {k[len("second.") :]: v.float() for k, v in state.items() if k.startswith("second.")}
    return entry, state


def score(
    name: str, second: tuple[dict, dict], exponent: float, valid, first_state: dict, second_input: str = "mix"
) -> dict:
    entry, state = second
    config = {**CASCADE, "second": entry, "rest_exponent": exponent, "second_input": second_input}
    cascade = build_estimator("cascade", config).eval()
    cascade.load_state_dict({**first_state, **{f"second.{k}": v for k, v in state.items()}})  # strict
    separator = Separator(cascade)
    rate = valid[0].sample_rate
    return scoring.score(
        name,
        list(separator.sources),
        lambda index, mix: scoring.separate_song(lambda x: separator(x, rate).stems, mix, rate),
        valid,
        None,
        None,
    )


def paired(base: dict, other: dict) -> dict[str, dict[str, float]]:
    out = {}
    for stem in STEMS:
        diffs = [other[s][stem] - base[s][stem] for s in base if s in other and stem in base[s] and stem in other[s]]
        if diffs:
            out[stem] = {
                "median_diff_db": round(float(np.median(diffs)), 2),
                "mean_diff_db": round(float(np.mean(diffs)), 2),
                "better_on": int(sum(d > 0 for d in diffs)),
                "songs": len(diffs),
            }
    return out


def bottleneck(valid) -> list[dict]:
    """stemdesk-4stem as shipped, with oracle vocals, and with an oracle split of the rest."""
    estimator, _ = load_estimator("stemdesk-4stem")
    stft = STFT(estimator.stft_config)
    rows = []
    for mode in ("as shipped", "true vocal mask", "true split of the rest"):

        def run(index, mix, mode=mode):
            magnitudes = stft(valid[index].audio()).abs()  # (sources, channels, bins, frames)
            ideal = magnitudes / magnitudes.sum(0, keepdim=True).clamp_min(1e-8)
            spec = stft(mix.unsqueeze(0))
            with torch.no_grad():
                masks = estimator(spec.abs())[0]
            if mode == "true vocal mask":
                masks = torch.cat([ideal[:1], (1 - ideal[:1]) * ratio_masks(masks[1:].unsqueeze(0))[0]])
            elif mode == "true split of the rest":
                masks = torch.cat([masks[:1], (1 - masks[:1]) * ratio_masks(ideal[1:].unsqueeze(0))[0]])
            stems = stft.inverse(masks * spec, mix.shape[-1])
            stems[-1] = mix - stems[:-1].sum(0)
            return stems

        rows.append(scoring.score(mode, list(SOURCES), run, valid, None, None))
        print(json.dumps({"system": mode, "usdr": rows[-1]["usdr"]}), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("entries", nargs="*", metavar="NAME=PATH")
    parser.add_argument("--bottleneck", action="store_true", help="where the shipped cascade's error lies")
    parser.add_argument("--exponents", default="1.0", help="rest exponents of the cascade, comma-separated")
    parser.add_argument(
        "--inputs",
        default="mix",
        help="what the second stage hears (the cascade's second_input), comma-separated: mix, rest",
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scoring.BSS_SONGS = 0
    _, valid_dirs = split(DATA)
    valid = load_songs(valid_dirs, SOURCES)
    out = ROOT / "lab" / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    if args.bottleneck:
        excerpts = [song for song, folder in zip(valid, valid_dirs) if folder.parent.name == "musdb7-train"]
        rows = bottleneck(excerpts)
        (out / "data_sources_bottleneck.json").write_text(json.dumps({"rows": rows}, indent=1) + "\n")
        print("| stemdesk-4stem | " + " | ".join(STEMS) + " |\n|" + "---|" * (len(STEMS) + 1))
        for row in rows:
            print(f"| {row['system']} | " + " | ".join(f"{row['usdr'][s]:.2f}" for s in STEMS) + " |")
        return
    if not args.entries:
        parser.error("name at least one second stage as NAME=PATH, or ask for --bottleneck")
    spleeter, _ = load_estimator("spleeter-2stem")
    first = {f"first.{k}": v for k, v in spleeter.state_dict().items() if k.startswith("instruments.0.")}
    rows = []
    for entry in args.entries:
        name, _, path = entry.partition("=")
        state = second_stage(Path(path))
        for exponent in map(float, args.exponents.split(",")):
            for heard in args.inputs.split(","):
                row = score(f"{name} p={exponent:g} hears {heard}", state, exponent, valid, first, heard)
                rows.append(row)
                print(json.dumps({"system": row["system"], "usdr": row["usdr"]}), flush=True)
    base = rows[0]
    lines = [
        f"| system | {' | '.join(STEMS)} | paired against {base['system']}: median diff (better on) |",
        "|" + "---|" * (len(STEMS) + 2),
    ]
    for row in rows:
        row["paired"] = paired(base["usdr_per_song"], row["usdr_per_song"]) if row is not base else {}
        pairs = ", ".join(
            f"{s} {p['median_diff_db']:+.2f} ({p['better_on']}/{p['songs']})"
            for s, p in row["paired"].items()
            if s in ("drums", "bass", "other")
        )
        lines.append(
            f"| {row['system']} | "
            + " | ".join(f"{row['usdr'].get(s, float('nan')):.2f}" for s in STEMS)
            + f" | {pairs or '–'} |"
        )
    (out / "data_sources.json").write_text(
        json.dumps({"rows": rows, "valid_songs": [p.name for p in valid_dirs]}, indent=1) + "\n"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
