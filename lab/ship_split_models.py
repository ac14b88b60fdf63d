"""Copy split models trained by `stemdesk train --split` into this checkout's models/, as shipped models.

    .venv/bin/python -m lab.ship_split_models MODELS_FOLDER ID[=SHIPPED_ID] [ID[=SHIPPED_ID] ...]

MODELS_FOLDER is the models folder of the home the training ran in (…/stemdesk/models); ID=SHIPPED_ID ships the
model trained as ID under the shipped name (a retrained `stemdesk-drumkit`). The card keeps everything
the trainer wrote; this adds what a shipped card has: the one-line summary a user reads first (its stems, its
validation against the baselines, its size), the weights' licence (CC0-1.0: trained only on the CC0 sessions of
../shared/data/cc0-efree-sessions), and data folders named relative to the checkout; then renders the README again.
How they were trained, with the commands: lab/notes/split-models.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from stemdesk.io.atomic import atomic_write_bytes
from stemdesk.training.model_card import render

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
    parts.append(f"{card.get('weights_bytes', 0) / 1e6:.1f} MB. Weights: CC0-1.0.")
    return " ".join(parts)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("models", nargs="+")
    args = parser.parse_args()
    for model in args.models:
        trained, _, shipped = model.partition("=")
        print(ship(args.folder, trained, shipped or None))


if __name__ == "__main__":
    main()
