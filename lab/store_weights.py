"""Store the shipped models' weights smaller, only where the stems they make do not change.

    .venv/bin/python -m lab.store_weights [MODEL ...] [--data ../shared/data] [--limit-db 0.01]

For each model in this checkout's models/ (or the ones named), the weights are stored again as float16 with their
matrices as int8 (one float32 scale per output channel; `stemdesk.io.model_store.weights_bytes`), and both the
stored weights and the candidate separate the validation songs (`stemdesk.training.validation.split`, the songs the
cards' scores come from) through the real separator and chunker, with the post-processing the card asks for. The
candidate replaces the file only when every stem's median uSDR moves by at most ``--limit-db``; otherwise fewer
matrices are tried (those holding three quarters, then half of the parameters), and a model where none passes
keeps its file. A model that borrows another's weights (``weights_from``) follows its twin.

Each model's measurement goes to lab/benchmarks/results/weights-storage.json as soon as it is made (per stem: the
median before and after, the change, and the largest change on any one song), and its card gets
``weights_storage_check`` with the same facts. A model whose card already names the stored file of a finished check
is skipped (``--again`` checks it with the choices as they are now), so a killed run resumes. The old file's sha256 is replaced by the new one in the lab's results files
that name it (the reproduction rows, the default's record of its second stage), since the check shows they describe
the same stems.

A split model (``split`` in its card) is measured on its own held-out song's true children instead (global uSDR of
each child, the parent being their sum), the song its card's validation names.

    .venv/bin/python -m lab.store_weights --compress [MODEL ...]

then stores each model's weights file compressed, losslessly (`stemdesk.io.model_store.compress_weights`): LZMA
(``.xz``), except the default model, which loads with every separation, as gzip (``.gz``), which decodes about ten
times faster and costs about 1 % more. The card's sha256 stays the same, since it names the safetensors bytes.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from stemdesk.core.postprocess import PostProcessing
from stemdesk.core.separator import Separator
from stemdesk.io.atomic import atomic_write_bytes
from stemdesk.io.model_store import (
    DEFAULT_MODEL,
    compress_weights,
    dequantise,
    load_estimator,
    read_card,
    read_weights,
    weights_bytes,
    weights_file,
)
from stemdesk.training.dataset import load_songs
from stemdesk.training.validation import Validator, median, split

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
RESULTS = ROOT / "lab" / "benchmarks" / "results" / "weights-storage.json"
# Files that name a model's weights by sha256 and describe what those weights do.
NAMING_FILES = ("lab/benchmarks/results/*.json", "benchmarks/results/*.json", "models/*/card.json")
SOURCES = ["vocals", "drums", "bass", "other"]


def candidates(estimator: torch.nn.Module) -> list[tuple[str, int | None]]:
    """The int8 choices to try, most compact first: every matrix, then the fewest largest ones that hold 95, 90,
    75 and 50 % of the parameters, then float16 alone (``int8_from`` None)."""
    sizes = sorted((p.numel() for p in estimator.parameters() if p.dim() >= 2), reverse=True)
    total = sum(p.numel() for p in estimator.parameters())
    choices: list[tuple[str, int | None]] = []
    if sizes:
        choices.append(("every matrix", sizes[-1]))
        for share in (0.95, 0.9, 0.75, 0.5):
            held = 0
            for size in sizes:
                held += size
                if held >= share * total:
                    if size not in [c[1] for c in choices]:
                        choices.append((f"the largest matrices, {int(share * 100)} % of the parameters", size))
                    break
    choices.append(("float16 only", None))
    return choices


def score(validator: Validator | SplitValidator, estimator: torch.nn.Module) -> dict:
    with torch.inference_mode():
        return validator.score(estimator.eval())


class SplitValidator:
    """A split model's held-out song, scored as `Validator.score` scores songs: {"median": {child: dB}, "songs":
    {song: {child: dB}}}, the global uSDR of each child against the session's true child (the parent their sum)."""

    def __init__(self, card) -> None:
        import sys

        sys.path.insert(0, str(ROOT / "benchmarks"))
        from splits import held_out  # the splits benchmark's held-out song, as the shipped cards' figures

        self.children = list(card.sources)
        self.song, truth, _, self.rate = held_out(card)
        self.truth = torch.from_numpy(truth).double()

    def score(self, estimator: torch.nn.Module) -> dict:
        stems = Separator(estimator)(self.truth.sum(0).float(), self.rate).stems.double()
        scores = {}
        for index, child in enumerate(self.children):
            reference, error = self.truth[index], self.truth[index] - stems[index]
            scores[child] = float(10 * torch.log10((reference.square().sum() + 1e-8) / (error.square().sum() + 1e-8)))
        return {"median": scores, "songs": {self.song: scores}}


def compress(ids: list[str], results: dict) -> None:
    """Each model's weights file compressed losslessly, its bytes before and after in the results."""
    rows = results.setdefault("compressed", {})
    for model_id in ids:
        folder = MODELS / model_id
        card = read_card(folder)
        if card.raw.get("weights_from"):
            continue
        before = weights_file(folder)
        plain = len(read_weights(before))
        written = compress_weights(folder, "gz" if model_id == DEFAULT_MODEL else "xz")
        rows[model_id] = {"file": written.name, "bytes_plain": plain, "bytes": written.stat().st_size}
        print(f"{model_id}: {plain / 1e6:.2f} MB → {written.name} {written.stat().st_size / 1e6:.2f} MB", flush=True)
        atomic_write_bytes(RESULTS, (json.dumps(results, indent=2) + "\n").encode("utf-8"))


def compare(before: dict, after: dict) -> dict:
    """Per stem: median uSDR before and after, the change of the median, the largest change on one song."""
    out = {}
    for source, value in before["median"].items():
        changes = [
            after["songs"][song][source] - scores[source]
            for song, scores in before["songs"].items()
            if source in scores
        ]
        out[source] = {
            "median_before_db": round(value, 4),
            "median_after_db": round(after["median"][source], 4),
            "median_change_db": round(after["median"][source] - value, 4),
            "largest_song_change_db": round(max(changes, key=abs), 4),
            "median_song_change_db": round(median(changes), 4),
        }
    return out


def replace_sha(old: str, new: str) -> list[str]:
    changed = []
    for pattern in NAMING_FILES:
        for path in sorted(ROOT.glob(pattern)):
            text = path.read_text()
            if old in text:
                atomic_write_bytes(path, text.replace(old, new).encode("utf-8"))
                changed.append(str(path.relative_to(ROOT)))
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="model ids (default: every model in models/)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="../shared/data")
    parser.add_argument("--limit-db", type=float, default=0.01, help="largest change of a stem's median uSDR")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compress", action="store_true", help="store the weights files compressed (lossless)")
    parser.add_argument("--again", action="store_true", help="check models already checked (new int8 choices)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"limit_db": args.limit_db, "models": {}}
    ids = args.models or sorted(p.name for p in MODELS.iterdir() if (p / "card.json").is_file())
    if args.compress:
        compress(ids, results)
        return
    songs: list = []

    for model_id in ids:
        folder = MODELS / model_id
        card = read_card(folder)
        if card.raw.get("weights_from"):
            continue  # follows its twin below
        done = results["models"].get(model_id)
        if done and done.get("stored_sha256") == card.weights_sha256 and not args.again:
            print(f"{model_id}: checked already ({done['storage']})", flush=True)
            continue
        estimator, _ = load_estimator(card)
        validator: Validator | SplitValidator
        if card.split_parent is not None:
            validator = SplitValidator(card)
        else:
            if not songs:
                songs = load_songs(split(args.data)[1], SOURCES)
                print(f"{len(songs)} validation songs: {', '.join(s.name for s in songs)}", flush=True)
            post = PostProcessing.from_card(card.raw.get("postprocessing"))
            validator = Validator(songs, SOURCES, post)
        start = time.perf_counter()
        before = score(validator, estimator)
        row = None
        for label, int8_from in candidates(estimator):
            data, storage = weights_bytes(estimator, half=True, int8_from=int8_from)
            if storage == "float32" or len(data) >= len(read_weights(card.weights_path)):
                continue
            from safetensors.torch import load as load_bytes

            trial = copy.deepcopy(estimator)
            trial.load_state_dict(dequantise(load_bytes(data)), strict=True)
            after = score(validator, trial)
            stems = compare(before, after)
            worst = max(abs(s["median_change_db"]) for s in stems.values())
            print(f"{model_id}: {label}: {len(data) / 1e6:.1f} MB, largest median change {worst:.4f} dB", flush=True)
            if worst <= args.limit_db:
                row = {
                    "storage": storage,
                    "int8": label,
                    "int8_from": int8_from,
                    "bytes": len(data),
                    "stems": stems,
                    "data": data,
                }
                break
        old_sha, old_bytes = card.weights_sha256, len(read_weights(card.weights_path))
        if row is None:
            results["models"][model_id] = {
                "storage": card.raw.get("weights_storage", "float32"),
                "kept": True,
                "stored_sha256": old_sha,
                "bytes": old_bytes,
            }
        else:
            import hashlib

            data = row.pop("data")
            new_sha = hashlib.sha256(data).hexdigest()
            check = {
                "stored_as": row["storage"],
                "int8": row["int8"],
                "int8_from": row["int8_from"],
                "bytes_before": old_bytes,
                "bytes": row["bytes"],
                "validation_songs": len(validator.songs) if isinstance(validator, Validator) else 1,
                "usdr_db": row["stems"],
                "limit_db": args.limit_db,
                "command": "python -m lab.store_weights",
            }
            atomic_write_bytes(folder / "weights.safetensors", data)
            for stale in (".xz", ".gz"):  # the compressed form of the old weights
                (folder / f"weights.safetensors{stale}").unlink(missing_ok=True)
            raw = {
                **card.raw,
                "weights_storage": row["storage"],
                "weights_sha256": new_sha,
                "weights_storage_check": check,
            }
            atomic_write_bytes(folder / "card.json", (json.dumps(raw, indent=2) + "\n").encode("utf-8"))
            named = replace_sha(old_sha, new_sha)
            for twin in sorted(MODELS.iterdir()):
                twin_card = twin / "card.json"
                if twin_card.is_file() and json.loads(twin_card.read_text()).get("weights_from") == model_id:
                    raw_twin = json.loads(twin_card.read_text())
                    raw_twin["weights_storage"] = row["storage"]
                    atomic_write_bytes(twin_card, (json.dumps(raw_twin, indent=2) + "\n").encode("utf-8"))
            results["models"][model_id] = {
                **{k: v for k, v in row.items()},
                "stored_sha256": new_sha,
                "bytes_before": old_bytes,
                "files_naming_it": named,
            }
        results["models"][model_id]["seconds"] = round(time.perf_counter() - start, 1)
        atomic_write_bytes(RESULTS, (json.dumps(results, indent=2) + "\n").encode("utf-8"))


if __name__ == "__main__":
    main()
