"""Copy split models trained by `stemdesk train --split` into this checkout's models/, as shipped models.

    .venv/bin/python -m lab.ship_split_models MODELS_FOLDER ID[=SHIPPED_ID] [ID[=SHIPPED_ID] ...]

    .venv/bin/python -m lab.ship_split_models --folds lab/benchmarks/results/split-folds-SET.json SHIPPED_ID

MODELS_FOLDER is the models folder of the home the training ran in (…/stemdesk/models); ID=SHIPPED_ID ships the
model trained as ID under the shipped name (a retrained `stemdesk-drumkit`). The card keeps everything
the trainer wrote; this adds what a shipped card has: the one-line summary a user reads first (its stems, its
validation against the baselines, its size), the weights' licence (CC0-1.0: trained only on the CC0 sessions of
../shared/data/cc0-efree-sessions), and data folders named relative to the checkout; then renders the README again.
How they were trained, with the commands: lab/notes/split-models.md. ``--folds`` gives a shipped model's card what
its recipe does on songs it never heard (`lab/split_folds.py`), and a caution where it loses to its baselines.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from stemdesk.io.atomic import atomic_write_bytes
from stemdesk.training.model_card import render
from stemdesk.training.split import unheard as split_unheard

ROOT = Path(__file__).resolve().parent.parent
LICENCE = (
    "CC0-1.0: trained only on the CC0 session tracks of Everything is Free (Software-Entwicklungskit); use them "
    "for anything"
)


def summary(card: dict) -> str:
    split = card["split"]
    scores = card.get("metrics", {}).get("validation_usdr_median_db", {})
    song = ", ".join(card["training_data"]["valid_songs"])
    parts = [f"Splits {split['parent']} into {', '.join(card['sources'])}."]
    if scores:
        ours = ", ".join(f"{k} {v:.1f}" for k, v in scores.items())
        parts.append(f"uSDR on the held-out song {song}: {ours} dB")
        for label, values in split.get("baselines", {}).items():
            parts[-1] += f" ({label}: " + ", ".join(f"{values[k]:.1f}" for k in scores if k in values) + ")"
        parts[-1] += "."
    folds = card.get("unheard")
    if isinstance(folds, dict) and isinstance(folds.get("median"), dict):
        model, rest = folds["median"]["model"], {k: v for k, v in folds["median"].items() if k != "model"}
        parts.append(
            f"On songs it never heard (leave one song out, {len(folds['folds'])} folds, median): "
            + ", ".join(f"{k} {model[k]:.1f}" for k in model)
            + "".join(f" ({label}: " + ", ".join(f"{v[k]:.1f}" for k in model) + ")" for label, v in rest.items())
            + (" dB: below it." if not folds.get("beats_baselines") else " dB.")
        )
    parts.append(f"{card.get('weights_bytes', 0) / 1e6:.1f} MB. Weights: CC0-1.0.")
    return " ".join(parts)


def unheard(results: dict) -> dict:
    """The card's ``unheard`` from lab/split_folds.py's results: each fold's model and baselines on the song left
    out, their medians, the verdict, and the caution a user reads where the model is offered when it loses."""
    folds = {song: {"model": row["model_db"], **row["baselines_db"]} for song, row in sorted(results["folds"].items())}
    steps = results["setup"]["steps"]
    method = (
        f"Leave one song out over the {len(folds)} CC0 sessions: the same recipe trained from scratch on the "
        f"other songs for {steps} steps (a stopping point fixed before the run, not the round that "
        "scored best on the song left out), then scored on the song left out; global uSDR, dB "
        "(`python -m lab.split_folds`, lab/benchmarks/results/split-folds-*.json)."
    )
    where = f"leave one song out over the {len(folds)} CC0 sessions"
    return split_unheard(folds, results["summary"], method, where)


def ship(source: Path, model: str, shipped: str | None = None) -> Path:
    shipped = shipped or model
    target = ROOT / "models" / shipped
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source / model, target)
    card = json.loads((target / "card.json").read_text(encoding="utf-8"))
    card["id"] = shipped
    card["description"] = card["description"].replace(model, shipped)
    card["training_data"]["folders"] = ["../shared/data/cc0-efree-sessions"]
    card["licenses"]["weights"] = LICENCE
    card["summary"] = summary(card)
    atomic_write_bytes(target / "card.json", (json.dumps(card, indent=2) + "\n").encode("utf-8"))
    atomic_write_bytes(target / "README.md", render(card).encode("utf-8"))
    return target


def add_folds(model: str, results_file: Path) -> Path:
    """Give a shipped split model's card the folds of its recipe (``unheard``) and render its README again."""
    target = ROOT / "models" / model
    card = json.loads((target / "card.json").read_text(encoding="utf-8"))
    card["unheard"] = unheard(json.loads(results_file.read_text(encoding="utf-8")))
    card["summary"] = summary(card)
    atomic_write_bytes(target / "card.json", (json.dumps(card, indent=2) + "\n").encode("utf-8"))
    atomic_write_bytes(target / "README.md", render(card).encode("utf-8"))
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?")
    parser.add_argument("models", nargs="*")
    parser.add_argument(
        "--folds", type=Path, metavar="RESULTS", help="add lab/split_folds.py's results to the shipped model's card"
    )
    args = parser.parse_args()
    if args.folds is not None:
        for model in args.models or [str(args.folder)]:
            print(add_folds(model, args.folds))
        return
    for model in args.models:
        trained, _, shipped = model.partition("=")
        print(ship(args.folder, trained, shipped or None))


if __name__ == "__main__":
    main()
