"""Fine-tune an installed model on a user's multitracks: check the data, split by song, train, score, export.

The run folder (``<user data>/runs/<name>``) holds the data report, checkpoints, the log, the score card (JSON and
Markdown) and a PNG of the training and validation curves. The fine-tuned model goes to the user's models folder
with a card naming its parent, data, config and scores; deleting that folder rolls it back.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stemdesk.core.cancel import CancelToken
from stemdesk.core.errors import StemDeskError
from stemdesk.core.estimators import AnyEstimator, Estimator, WaveformEstimator
from stemdesk.core.separator import Separator
from stemdesk.io.atomic import atomic_folder, atomic_path, atomic_write_bytes
from stemdesk.io.model_store import ModelCard, amend_card, find_model, load_estimator, load_state, user_models_dir
from stemdesk.io.paths import runs_dir
from stemdesk.io.process import limit_threads, process_threads

from .augment import Augmentation
from .data import Song, regroup, source_map
from .dataset import SOURCES, SongFiles, describe, discover, load_checked, read_mapping
from .metrics import bss_eval_v4
from .model_card import render
from .options import STEM_FLOOR_DB
from .train import TrainConfig, Trainer, export_model
from .validation import Validator, separate_song


@dataclass
class FineTuneRequest:
    data: Path
    base: str
    name: str
    minutes: float = 30.0
    mapping: Path | None = None
    valid: Sequence[str] = ()  # song names held out; default: the last fifth (at least one)
    lr: float | None = None  # None: what the base model's card recommends (see `fine_tune_advice`)
    freeze: Sequence[str] | None = None  # None: as the card recommends; () trains everything
    adapters: int | None = None  # > 0: low-rank adapters of this rank; 0: none; None: as advised (`fine_tune_plan`)
    ema: float = 0.0  # > 0: validate and export a moving average of the weights
    # no round that costs any stem more than this (dB of median validation uSDR below the base) is exported
    stem_floor_db: float | None = STEM_FLOOR_DB
    threads: int | None = None
    seed: int = 0
    device: str = "cpu"
    augmentation: Augmentation = field(default_factory=Augmentation)
    remix: float = 0.5


DEFAULT_LR = 3e-4

# How to fine-tune a base whose card gives no ``fine_tune`` advice, by estimator kind. HTDemucs's card is written by
# its installer (stemdesk/io/htdemucs.py) from Meta's release and says nothing about fine-tuning, so its advice lives
# here. Training the three outermost decoder layers of each branch was chosen over the whole network, adapters on the
# transformer and fewer or more decoder layers, by cost per step, memory and what held-out songs gained; the uSDR
# loss over waveform L1 (docs/fine-tuning.md, "HTDemucs", has the measurements). Keys: lr, freeze (parameter-name prefixes kept fixed), adapters (rank), batch (excerpts per
# step), validate_every (steps), objective, why.
HTDEMUCS_FROZEN = [
    "encoder.",
    "tencoder.",
    "freq_emb.",
    "channel_",
    "crosstransformer.",
    "decoder.0.",
    "tdecoder.0.",
]
KIND_ADVICE: dict[str, dict] = {
    "htdemucs": {
        "lr": 3e-4,
        "freeze": HTDEMUCS_FROZEN,  # all but the three outermost decoder layers of each branch
        "batch": 1,
        "validate_every": 24,
        "objective": "usdr",
        "why": "measured for HTDemucs on two CPU threads: the decoders' outer layers learn most per CPU-second "
        "(docs/fine-tuning.md, HTDemucs)",
    },
}
# What a fine-tune of a mask model uses unless the advice says otherwise.
MASK_PLAN = {"batch": 8, "validate_every": 50}
WAVEFORM_PLAN = {"batch": 1, "validate_every": 24}


@dataclass
class FineTunePlan:
    """What a fine-tune trains and how: the user's choices where given, else the advice (`fine_tune_plan`)."""

    lr: float
    freeze: tuple[str, ...]
    adapters: int
    batch: int
    validate_every: int
    objective: str | None  # None: the estimator's own (a waveform network: waveform L1)
    advice_from: str  # "card", "kind" or "none": where the advice came from


def fine_tune_plan(card: ModelCard, request: FineTuneRequest, waveform: bool = False) -> FineTunePlan:
    """The learning rate, frozen parts, adapters, batch, validation interval and objective of a fine-tune: the
    user's choice where given, else what the base model's card recommends (``fine_tune``: measured when the model
    was made, since a pretrained U-Net forgets at rates a small mask net needs), else the advice for its kind of
    estimator (`KIND_ADVICE`), else `DEFAULT_LR` with nothing frozen. Advice for a full fine-tune (no adapters) says
    nothing about a run with adapters, and the other way round: its rate and frozen parts then do not apply."""
    from_card = card.raw.get("fine_tune") or {}
    advice = from_card or KIND_ADVICE.get(card.estimator, {})
    source = "card" if from_card else "kind" if advice else "none"
    advised_rank = int(advice.get("adapters", 0) or 0)
    adapters = advised_rank if request.adapters is None else int(request.adapters)
    if bool(adapters) != bool(advised_rank):
        advice = {k: v for k, v in advice.items() if k not in ("lr", "freeze", "adapters")}
    base = WAVEFORM_PLAN if waveform else MASK_PLAN
    return FineTunePlan(
        lr=float(advice.get("lr", DEFAULT_LR)) if request.lr is None else request.lr,
        freeze=tuple(advice.get("freeze", ())) if request.freeze is None else tuple(request.freeze),
        adapters=adapters,
        batch=int(advice.get("batch", base["batch"])),
        validate_every=int(advice.get("validate_every", base["validate_every"])),
        objective=advice.get("objective"),
        advice_from=source,
    )


def fine_tune_advice(card: ModelCard, request: FineTuneRequest) -> tuple[float, tuple[str, ...]]:
    """The learning rate and frozen parts of a fine-tune (see `fine_tune_plan`)."""
    plan = fine_tune_plan(card, request)
    return plan.lr, plan.freeze


RESEARCH_WORDS = ("research", "personal")


def derived_licence(card: ModelCard, base: str) -> dict[str, str]:
    """The ``licenses`` of a model fine-tuned from ``card`` (named ``base``): where the base's weights are for
    personal and research use only (its card's licences, ``training_data.research_only`` or
    ``redistributable: false`` with such wording), so are the tune's, as weights derived from them."""
    raw = card.raw
    data = raw.get("training_data")
    said = json.dumps(raw.get("licenses") or {}).lower()
    research = any(word in said for word in RESEARCH_WORDS) or (
        isinstance(data, dict) and bool(data.get("research_only"))
    )
    if research:
        return {
            "weights": f"derived from {base}'s weights, which are for personal and research use only "
            "(fine-tuned on the user's own data)"
        }
    return {"weights": f"as the parent model ({base}) and the user's data allow"}


def checked_split(
    songs: Sequence[SongFiles], run: Path, valid: Sequence[str], work: str
) -> tuple[dict, dict[str, Song], list[str], list[str]]:
    """Decode and check ``songs`` once and write the report into ``run``: (the report, the usable songs by name,
    the training songs' names, the validation songs' names; ``valid``: the names asked for, see `split_songs`).
    ``work`` ("training", "fine-tuning") words the error when fewer than two songs are usable."""
    report, loaded = load_checked(songs)  # each song is decoded once, for the checks and for training
    atomic_write_bytes(run / "data-report.json", json.dumps(report, indent=1).encode())
    atomic_write_bytes(run / "data-report.txt", describe(report).encode())
    if len(loaded) < 2:
        raise StemDeskError(
            f"Only {len(loaded)} usable song(s) after the data checks (see {run / 'data-report.txt'}); "
            f"{work} needs at least two: one to train on and one to validate."
        )
    return report, loaded, *split_songs(list(loaded), valid)


def split_songs(names: Sequence[str], valid: Sequence[str]) -> tuple[list[str], list[str]]:
    if valid:
        missing = sorted(set(valid) - set(names))
        if missing:
            raise StemDeskError(f"Validation songs {missing} are not among the usable songs {sorted(names)}.")
        held = list(valid)
    else:
        held = sorted(names)[-max(1, len(names) // 5) :]
    train = [n for n in names if n not in held]
    if not train:
        raise StemDeskError("Every usable song is held out for validation; add songs or choose fewer with --valid.")
    return train, held


def score_card(estimators: dict[str, Estimator], songs: Sequence[Song], known: dict[str, dict] | None = None) -> dict:
    """uSDR on whole validation songs and BSS Eval v4 on each song's loudest-vocal 20 seconds, per system.
    ``known``: a system's uSDR result ({"median", "songs"}, as `Validator.score` gives) already measured on these
    songs with these weights, which is not measured again."""
    card: dict = {}
    validator = Validator(songs, SOURCES)
    for label, estimator in estimators.items():
        result = (known or {}).get(label) or validator.score(estimator)
        bss: dict[str, list] = {}
        separator = Separator(estimator)
        mapping = source_map(estimator.sources, SOURCES)
        for song in songs:
            truth = regroup(song.audio(), mapping)
            rate = song.sample_rate
            start, stop = song.loudest_window(0, 20.0)
            mix = truth.sum(0)[:, start:stop]
            estimate = separate_song(separator, mix, rate)
            scores = bss_eval_v4(truth[:, :, start:stop].numpy(), estimate.numpy(), rate)
            for i, source in enumerate(estimator.sources):
                for metric in ("sdr", "sir", "sar"):
                    bss.setdefault(source, {}).setdefault(metric, []).append(float(scores[metric][i]))
        card[label] = {
            "usdr": {k: round(v, 2) for k, v in result["median"].items()},
            "usdr_per_song": result["songs"],
            "bss": {s: {m: round(float(np.nanmedian(v)), 2) for m, v in d.items()} for s, d in bss.items()},
        }
    return card


def plot_curves(history: Sequence[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    steps = [h["step"] for h in history]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(steps, [h["loss"] for h in history], marker="o")
    left.set_xlabel("step")
    left.set_ylabel("training loss")
    left.set_title("training")
    for source in history[0]["valid_usdr"] if history else []:
        right.plot(steps, [h["valid_usdr"].get(source, float("nan")) for h in history], marker="o", label=source)
    right.set_xlabel("step")
    right.set_ylabel("validation uSDR (dB)")
    right.set_title("validation")
    right.legend()
    figure.suptitle(title)
    figure.tight_layout()
    try:
        with atomic_path(path) as temp:
            figure.savefig(temp, dpi=100)
    finally:
        plt.close(figure)


def fine_tune(
    request: FineTuneRequest, progress: Callable[[dict], None] | None = None, cancel: CancelToken | None = None
) -> dict:
    """Run the whole job; returns the score card. Raises StemDeskError for anything the user can fix.
    ``request.minutes`` is wall-clock time for all of it: checks, training, validation and the score card."""
    job_started = time.monotonic()
    # Unless told, leave a core free (alone) or take an equal share of the cores (under torchrun).
    limit_threads(request.threads or process_threads())
    run = runs_dir() / request.name
    run.mkdir(parents=True, exist_ok=True)
    songs = discover(request.data, read_mapping(request.mapping))
    if not songs:
        raise StemDeskError(f'No songs found in "{request.data}". Put one folder per song with its stems inside.')
    report, loaded, train_names, valid_names = checked_split(songs, run, request.valid, "fine-tuning")
    train = [loaded[n] for n in train_names]
    valid = [loaded[n] for n in valid_names]
    base_estimator, base_card = load_estimator(request.base)
    waveform = isinstance(base_estimator, WaveformEstimator)
    plan = fine_tune_plan(base_card, request, waveform)
    excerpt = _excerpt_seconds(base_estimator, request.base, min(song.length / song.sample_rate for song in train))
    lr, freeze = plan.lr, plan.freeze
    config = TrainConfig(
        estimator=base_card.estimator,
        config=base_card.config,
        lr=lr,
        minutes=request.minutes,
        seed=request.seed,
        threads=torch.get_num_threads(),
        validate_every=plan.validate_every,
        freeze=freeze,
        adapters=plan.adapters,
        beat_start=True,
        stem_floor_db=request.stem_floor_db,
        batch=plan.batch,
        objective=plan.objective,
        remix=request.remix,
        augmentation=request.augmentation,
        ema=request.ema,
        excerpt_seconds=excerpt,
        device=request.device,
    )
    out_folder = user_models_dir() / request.name
    if out_folder.exists() and find_model(request.name).folder != out_folder:
        raise StemDeskError(f"A model named {request.name!r} already ships with StemDesk; choose another --out.")
    facts = _card_facts(request, base_card, config, plan, train_names, valid_names, report["excluded"])
    trainer = Trainer(config, train, valid, run / "checkpoints", progress=progress, init_state=load_state(base_card))
    started = time.monotonic()
    # the score card separates the validation songs twice more (base and tune) and scores BSS windows, which
    # takes a few validation rounds (docs/fine-tuning.md, "The time budget"): the loop leaves room for them
    # (``validations_after``). The best weights are staged in the run folder and installed only at the end, if they are reliably better:
    # a model of the same name from an earlier run stays until then.
    staged = run / "model"
    if trainer.checkpoints.meta() is None:
        # a fresh run; a resumed one (the same run folder after a kill) keeps the best weights it staged so far
        shutil.rmtree(staged, ignore_errors=True)
    trainer.run(
        export=export_model(staged, request.name, facts),
        cancel=cancel,
        finish_by=job_started + request.minutes * 60,
        # a waveform network's score card reuses the trainer's own validations of the base and the best step and
        # only separates the BSS windows anew (about a validation round)
        validations_after=1.0 if waveform else 4.0,
    )
    if trainer.rank != 0:
        # Under torchrun only rank 0 validates, exports and writes the score card.
        return {"rank": trainer.rank, "run_folder": str(run)}
    if trainer.step == 0:
        fixed = started - job_started + 3 * trainer.validation_seconds
        raise StemDeskError(
            f"--minutes {request.minutes:g} leaves no time to train: reading and checking the songs "
            f"and validating took {fixed:.0f} s of it. Give at least {max(1.0, 2 * fixed / 60):.1f} "
            "minutes, or fewer or shorter validation songs."
        )
    gain, noise, per_stem = _better_or_refuse(trainer, request, staged, run)
    amend_card(
        staged,
        {
            "fine_tune_result": {
                "base": request.base,
                "gain_db": round(gain, 3),
                "noise_db": round(noise, 3),
                "gain_usdr_db": per_stem,
                "minutes": request.minutes,
                "threads": config.threads,
                "steps": trainer.step,
            }
        },
    )
    atomic_write_bytes(staged / "README.md", render(json.loads((staged / "card.json").read_text())).encode())
    with atomic_folder(out_folder) as folder:
        shutil.copytree(staged, folder, dirs_exist_ok=True)
    card = _score_card(request, trainer, base_estimator, base_card, valid, waveform, train_names, valid_names)
    card["gain_over_noise_db"] = {"gain": round(gain, 3), "noise": round(noise, 3)}
    card["train_seconds"] = round(time.monotonic() - started)
    atomic_write_bytes(run / "score-card.json", json.dumps(card, indent=1).encode())
    atomic_write_bytes(run / "score-card.md", render_score_card(card).encode())
    plot_curves(trainer.history, run / "curves.png", f"{request.name} from {request.base}")
    card["run_folder"] = str(run)
    return card


def _excerpt_seconds(base: AnyEstimator, base_id: str, shortest: float) -> float:
    """How long each training excerpt is: a waveform network's own segment (a shorter excerpt is padded to it, so
    costs the same), else 6 s or less in a short song. Raises StemDeskError for songs too short."""
    if shortest < 1.0:
        raise StemDeskError(f"The shortest training song is {shortest:.2f} s; songs must be at least 1 s long.")
    if not isinstance(base, WaveformEstimator):
        return min(6.0, 0.8 * shortest)
    excerpt = base.segment / base.sample_rate
    if shortest < excerpt:
        raise StemDeskError(
            f"The shortest training song is {shortest:.1f} s; fine-tuning {base_id} takes excerpts of its "
            f"own segment, {excerpt:.1f} s. Leave out the shorter songs."
        )
    return excerpt


def _card_facts(
    request: FineTuneRequest,
    base_card: ModelCard,
    config: TrainConfig,
    plan: FineTunePlan,
    train_names: list[str],
    valid_names: list[str],
    excluded: Any,
) -> dict:
    """What the tune's card says besides its scores: where it comes from, its data, its licence, how it was
    trained, and how to fine-tune it further."""
    lr, freeze = plan.lr, plan.freeze
    licenses = derived_licence(base_card, request.base)
    training_data: dict = {
        "folder": str(request.data),
        "train_songs": train_names,
        "valid_songs": valid_names,
        "excluded": excluded,
    }
    if "personal and research use only" in licenses["weights"]:
        training_data["research_only"] = licenses["weights"]
    facts = {
        "description": f"{request.name}: {request.base} fine-tuned on {len(train_names)} songs of {request.data}",
        "parent": {"id": base_card.id, "weights_sha256": base_card.weights_sha256},
        "training_data": training_data,
        "licenses": licenses,
        "training": {
            "config": {k: v for k, v in asdict(config).items() if k not in ("extra", "config")},
            "minutes": request.minutes,
            "threads": config.threads,
            "advice_from": plan.advice_from,
        },
        # A fine-tune of this fine-tune starts from the same advice.
        "fine_tune": {
            "lr": lr,
            "freeze": list(freeze),
            **({"adapters": plan.adapters} if plan.adapters else {}),
            "batch": plan.batch,
            "validate_every": plan.validate_every,
            **({"objective": plan.objective} if plan.objective else {}),
            "why": f"how {request.name} was fine-tuned from {base_card.id}",
        },
    }
    if base_card.raw.get("redistributable") is False:
        facts["redistributable"] = False
    return facts


def _better_or_refuse(
    trainer: Trainer, request: FineTuneRequest, staged: Path, run: Path
) -> tuple[float, float, dict[str, float]]:
    """The tune's gain over the base, the run's own noise and the gain per stem, when it was staged and is reliably
    better; else StemDeskError says why nothing was exported."""
    gain, noise = beyond_noise(trainer.start, trainer.history)
    per_stem = best_gains(trainer.start, trainer.history)
    said = "; ".join(f"{s} {g:+.2f}" for s, g in per_stem.items())
    if not (staged / "card.json").is_file():
        raise StemDeskError(
            f"The fine-tuned model never beat the base model ({request.base}) on the validation songs (best round "
            f"{gain:+.2f} dB "
            f"mean validation uSDR over the base, per stem: {said or 'no round'}"
            f"{costly_rounds(trainer.start, trainer.history, request.stem_floor_db)}), so nothing was exported (the "
            "base stays as it is). Try more minutes, a lower --lr, --adapters, or more songs (run folder: "
            + str(run)
            + ")."
        )
    if gain < noise:
        raise StemDeskError(
            f"The fine-tune's best score is {gain:+.2f} dB over {request.base} (mean validation uSDR; per stem: "
            f"{said}), less than this run's own noise ({noise:.2f} dB), so it was not exported: it is not reliably "
            f"better. Try more songs, more minutes or a higher --lr (run folder: {run})."
        )
    return gain, noise, per_stem


def _score_card(
    request: FineTuneRequest,
    trainer: Trainer,
    base_estimator: AnyEstimator,
    base_card: ModelCard,
    valid: list,
    waveform: bool,
    train_names: list[str],
    valid_names: list[str],
) -> dict:
    """The installed tune against its base on the validation songs (a waveform network's rounds reused)."""
    tuned, tuned_card = load_estimator(request.name)
    known = None
    if waveform and trainer.start is not None and trainer.history:
        # the trainer validated the base and the exported weights on these songs already, through the separator
        best = best_round(trainer.history) or trainer.history[-1]  # a tune was exported: a round kept the stems
        known = {
            "base": {"median": trainer.start["valid_usdr"], "songs": trainer.start["songs"]},
            "fine_tuned": {"median": best["valid_usdr"], "songs": best["songs"]},
        }
    card = score_card({"base": base_estimator, "fine_tuned": tuned}, valid, known)
    card["gain_usdr_db"] = {
        s: round(card["fine_tuned"]["usdr"][s] - card["base"]["usdr"][s], 2)
        for s in card["base"]["usdr"]
        if s in card["fine_tuned"]["usdr"]
    }
    listed = (
        (base_card.raw.get("training_data") or {}).get("train_songs", [])
        if isinstance(base_card.raw.get("training_data"), dict)
        else []
    )
    card["valid_seen_by_base"] = [name for name in valid_names if any(str(t).split("/")[-1] == name for t in listed)]
    card.update(
        {
            "base_model": base_card.id,
            "model": request.name,
            "valid_songs": valid_names,
            "train_songs": train_names,
            "steps": trainer.step,
        }
    )
    return card


def best_round(history: list[dict]) -> dict | None:
    """The validation round a fine-tune exports: the best mean among the rounds that keep every stem (`keeps_stems`;
    a round logged before that rule keeps them); None when no round does."""
    kept = [entry for entry in history if entry.get("keeps_stems", True)]
    return max(kept, key=lambda entry: entry["valid_mean"]) if kept else None


def best_gains(start: dict | None, history: list[dict]) -> dict[str, float]:
    """Per stem, the best validation round's median uSDR minus the starting weights' (dB, 2 decimals)."""
    best = best_round(history)
    if start is None or best is None:
        return {}
    return {
        s: round(best["valid_usdr"][s] - start["valid_usdr"][s], 2)
        for s in start["valid_usdr"]
        if s in best["valid_usdr"]
    }


def costly_rounds(start: dict | None, history: list[dict], floor_db: float | None) -> str:
    """For the refusal: the best round by its mean that was not exported because it cost a stem more than
    ``floor_db``, with what it gained and cost per stem; empty when there is none."""
    if start is None:
        return ""
    costly = [e for e in history if not e.get("keeps_stems", True) and e["valid_mean"] > start["valid_mean"]]
    if not costly:
        return ""
    best = max(costly, key=lambda entry: entry["valid_mean"])
    per_stem = ", ".join(
        f"{s} {best['valid_usdr'][s] - start['valid_usdr'][s]:+.2f}"
        for s in start["valid_usdr"]
        if s in best["valid_usdr"]
    )
    return (
        f"; the round at step {best['step']} raised the mean by "
        f"{best['valid_mean'] - start['valid_mean']:+.2f} dB but cost a stem more than {floor_db:g} dB ({per_stem}),"
        " and a tune never costs a stem that much"
    )


RESOLUTION_DB = 0.01  # scores are reported to 0.01 dB: a smaller gain is not one


def beyond_noise(start: dict | None, history: list[dict]) -> tuple[float, float]:
    """(gain, noise) in dB of mean validation uSDR. The gain is the best round over the starting weights; the noise
    is the larger of how much the score moves from one validation round to the next (the run's own wobble: picking
    the best of noisy rounds flatters it) and the standard error of the best round's gain across validation songs,
    and at least the 0.01 dB scores are reported to."""
    best = best_round(history)
    if start is None or best is None:
        return 0.0, RESOLUTION_DB
    gain = best["valid_mean"] - start["valid_mean"]
    means = [start["valid_mean"]] + [entry["valid_mean"] for entry in history]
    steps = np.diff(means[1:]) if len(means) >= 4 else np.zeros(0)  # between training rounds, not from the start
    wobble = float(np.std(steps) / math.sqrt(2)) if len(steps) >= 2 else 0.0
    per_song = [
        np.mean([scores[s] - start["songs"][song][s] for s in scores if s in start["songs"].get(song, {})])
        for song, scores in best.get("songs", {}).items()
        if start["songs"].get(song)
    ]
    spread = float(np.std(per_song, ddof=1) / math.sqrt(len(per_song))) if len(per_song) >= 2 else 0.0
    return gain, max(wobble, spread, RESOLUTION_DB)


def render_score_card(card: dict) -> str:
    sources = list(card["base"]["usdr"])
    seen = card.get("valid_seen_by_base", [])
    if seen:
        held = (
            f"Validation songs (held out from this fine-tune): {', '.join(card['valid_songs'])}. The base model "
            f"{card['base_model']} was trained on {', '.join(seen)}, so scores there are optimistic."
        )
    else:
        held = (
            f"Validation songs (held out from this fine-tune, and not among the training songs "
            f"{card['base_model']}'s card lists): {', '.join(card['valid_songs'])}."
        )
    lines = [
        f"# Score card: {card['model']} (from {card['base_model']})",
        "",
        f"{held} Trained on {len(card['train_songs'])} songs for {card['steps']} steps ({card['train_seconds']} s).",
        "",
        "| system | "
        + " | ".join(f"{s} uSDR" for s in sources)
        + " | "
        + " | ".join(f"{s} SDR/SIR/SAR" for s in sources)
        + " |",
        "|" + "---|" * (1 + 2 * len(sources)),
    ]
    for label in ("base", "fine_tuned"):
        row = card[label]
        cells = [f"{row['usdr'].get(s, float('nan')):.2f}" for s in sources]
        cells += [
            f"{row['bss'][s]['sdr']:.1f} / {row['bss'][s]['sir']:.1f} / {row['bss'][s]['sar']:.1f}"
            if s in row["bss"]
            else "–"
            for s in sources
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Gain in uSDR (dB): " + ", ".join(f"{s} {g:+.2f}" for s, g in card["gain_usdr_db"].items()),
        "",
        (
            f"Exported because the best validation round gained {card['gain_over_noise_db']['gain']:+.2f} dB over "
            f"the base, more than the run's own noise ({card['gain_over_noise_db']['noise']:.2f} dB)."
            if "gain_over_noise_db" in card
            else ""
        ),
        "",
        "![curves](curves.png)",
    ]
    return "\n".join(lines) + "\n"
