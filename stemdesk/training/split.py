"""Training a split model: a mask network that takes one parent stem (or a whole mix) and splits it into the
children a user's stem set names (`stemdesk.training.stemsets`), trained on their session tracks.

A split model is an ordinary estimator whose sources are the children; its card says which parent it splits
(``split``), so separation runs it on that stem, and the null rule makes the children sum to the parent exactly.
Its no-harm rule: it is installed only when its validation beats two baselines, the parent split in equal parts
(the `mix` estimator) and a fixed split by frequency bands (`crossover`; for a drum kit kick below 150 Hz and
cymbals above 5 kHz), on the mean over its children.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from stemdesk.core.errors import StemDeskError
from stemdesk.core.estimators import Estimator, build_estimator
from stemdesk.core.estimators.crossover import Crossover
from stemdesk.core.estimators.mix import MixEstimator

from .data import Song
from .dataset import SongFiles
from .finetune import split_songs
from .recipes import Recipe
from .stemsets import SessionSong, StemSet, describe_sessions, discover_sessions, load_sessions, taught_seconds
from .validation import Validator

# A split model's network unless --estimator or --recipe says otherwise: Open-Unmix's BiLSTM over the parent's
# whole band (a drum kit's cymbals live above 16 kHz), trained on uSDR (the metric it is validated on) thresholded
# at 30 dB, since one child often sounds alone in an example.
SPLIT_RECIPE = Recipe(
    "split-bilstm",
    "open_unmix",
    "",
    "a BiLSTM mask network over the parent stem (Open-Unmix's layout), trained on thresholded uSDR",
    {
        "sources": ["a", "b"],
        "stft": {"n_fft": 4096, "hop": 1024},
        "hidden": 128,
        "layers": 2,
        "max_freq": 22050.0,
        "objective": "usdr_capped",
    },
    training={"excerpt_seconds": 6.0, "batch": 8, "lr": 1e-3, "validate_every": 100},
)

# The crossover baseline's bands by child name (Hz): what a mixing engineer's crossover split of a drum kit does.
CROSSOVER_BANDS = {"kick": (0.0, 150.0), "cymbals": (5000.0, None), "hats": (5000.0, None)}


@dataclass
class SplitData:
    """A stem set's songs, checked: the report, the usable songs by name (the validation songs as validation scores
    them), and the training/validation split."""

    stemset: StemSet
    report: dict
    loaded: dict[str, Song]
    train: list[str]
    valid: list[str]
    sessions: list[SessionSong]
    songs: dict[str, Song]  # every usable song as training reads it (``loaded`` holds the validation songs as scored)

    def validation_song(self, name: str) -> Song:
        """The song ``name`` as validation scores it: a child only where it sounds (a silent reference has no
        SDR). Training keeps every child as a target, since a child silent in a song is silent there in truth."""
        silent = next(set(s["facts"].get("silent", ())) for s in self.report["songs"] if s["name"] == name)
        return replace(self.songs[name], usable=tuple(child not in silent for child in self.stemset.children))

    def terms_songs(self) -> list[SongFiles]:
        """The songs as `data_terms` reads them (their folders' meta.json holds source and licence)."""
        return [SongFiles(s.name, {"tracks": s.tracks}) for s in self.sessions if s.name in self.loaded]


def gather_split(folders: Sequence[Path], stemset: StemSet, valid: Sequence[str]) -> SplitData:
    """The session songs of every folder sorted by ``stemset``, checked and split by song. Raises StemDeskError
    when fewer than two songs are usable or a child sounds in none of them."""
    sessions: list[SessionSong] = []
    for folder in folders:
        found = discover_sessions(Path(folder), stemset)
        if not found:
            raise StemDeskError(f'No song folders with tracks in "{folder}".')
        sessions += found
    names = [s.name for s in sessions]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise StemDeskError(f"Songs named {twice} appear in more than one folder; rename them so each is one song.")
    report, loaded = load_sessions(sessions, stemset)
    sounding = [c for c in stemset.children if c not in report["never_sounding"]]
    if len(sounding) < 2:
        raise StemDeskError(
            f"Only {len(sounding)} of the stems ({', '.join(sounding) or 'none'}) sound in a usable song: there is "
            f"no split to learn. Check the stem set's patterns (stemdesk check-data DIR --mapping "
            f"{stemset.source or 'MAP.json'}).\n" + describe_sessions(report)
        )
    if len(loaded) < 2:
        raise StemDeskError(
            f"Only {len(loaded)} usable song(s); training needs at least two: one to train on and one to "
            "validate.\n" + describe_sessions(report)
        )
    train, held = split_songs(list(loaded), valid)
    data = SplitData(stemset, report, dict(loaded), train, held, sessions, loaded)
    for name in held:
        data.loaded[name] = data.validation_song(name)
    return data


def split_recipe(children: Sequence[str]) -> Recipe:
    """The default split recipe for these children."""
    config = {**SPLIT_RECIPE.config, "sources": list(children)}
    return Recipe(SPLIT_RECIPE.name, SPLIT_RECIPE.estimator, "", SPLIT_RECIPE.variant, config, SPLIT_RECIPE.training)


def baselines(children: Sequence[str], stft: Mapping[str, Any]) -> dict[str, Estimator]:
    """The no-harm rule's baselines for these children: equal parts, and the crossover (bands by child name where
    `CROSSOVER_BANDS` knows them; without any, the crossover is the equal split and is left out)."""
    made: dict[str, Estimator] = {"equal parts": MixEstimator(list(children), dict(stft))}
    bands = {c: CROSSOVER_BANDS[c] for c in children if c in CROSSOVER_BANDS}
    if bands:
        made["crossover"] = Crossover(list(children), dict(stft), bands=bands)
    return made


def score_baselines(
    children: Sequence[str], stft: Mapping[str, Any], songs: Sequence[Song], groups: Sequence[Sequence[str]] = ()
) -> dict[str, dict]:
    """Each baseline's validation ({"median": {child: dB}, "songs": ...}, and "groups" with ``groups``, the stem
    set's group kinds: see `Validator`) on ``songs``."""
    kinds = [[list(children).index(c) for c in kind] for kind in groups]
    validator = Validator(songs, list(children), groups=kinds)
    return {label: validator.score(estimator) for label, estimator in baselines(children, stft).items()}


def mean(values: Mapping[str, float]) -> float:
    return sum(values.values()) / max(1, len(values))


def no_harm(model: Mapping[str, float], scored: Mapping[str, dict]) -> tuple[bool, str]:
    """Whether the model's validation medians (per child) beat every baseline's on the mean over the children,
    and the sentence that says so."""
    ours = mean(model)
    parts = [f"{label} {mean(result['median']):.2f} dB" for label, result in scored.items()]
    best = max((mean(result["median"]) for result in scored.values()), default=float("-inf"))
    verdict = ours > best
    word = "beats" if verdict else "does not beat"
    return verdict, f"mean validation uSDR {ours:.2f} dB {word} the baselines ({'; '.join(parts)})"


def split_facts(data: SplitData, scored: Mapping[str, dict]) -> dict[str, Any]:
    """What a split model's card says about its split: the parent it takes, its children, the stem set that defined
    them, the seconds left out for unsplit tracks, and the baselines' validation. With groups, also the seconds
    that taught each child exactly and in groups on the training songs, and the baselines' group scores."""
    left_out = {s["name"]: s["facts"].get("seconds_left_out", 0.0) for s in data.report["songs"] if s["ok"]}
    facts = {
        "parent": data.stemset.split,
        "children": list(data.stemset.children),
        "stemset": data.stemset.as_dict(),
        "seconds_left_out": left_out,
        "baselines": {label: result["median"] for label, result in scored.items()},
    }
    if data.stemset.groups:
        facts["seconds_taught"] = taught_seconds(data.report, data.train)
        facts["baselines_groups"] = {label: result["groups"]["median"] for label, result in scored.items()}
    return facts


def check_estimator(estimator: str, config: Mapping[str, Any]) -> None:
    """A split model must predict masks (its children are the parent's masked parts): refuse others early."""
    built = build_estimator(estimator, dict(config))
    if not isinstance(built, Estimator):
        raise StemDeskError(f"{estimator} predicts waveforms; a split model is a mask estimator.")


# Folds when --folds is not given and no --valid song is named: leave one song out for up to this many songs, else
# this many folds of several songs each.
DEFAULT_FOLDS = 5


def make_folds(names: Sequence[str], count: int) -> list[list[str]]:
    """``names`` dealt into ``count`` folds (at most one per song), in name order: fold i holds every count-th song
    from the i-th. Each fold is held out once while the model trains on the others."""
    if count < 2:
        raise StemDeskError(f"Folds hold songs out in turn: give at least 2 folds, not {count}.")
    if len(names) < 2:
        raise StemDeskError(f"{len(names)} usable song(s) cannot be held out in turn: folds need two songs or more.")
    ordered = sorted(names)
    count = min(count, len(ordered))
    return [ordered[i::count] for i in range(count)]


def median_of(tables: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per key, in the order the tables first name it, the median over the tables that hold it (2 decimals)."""
    keys = dict.fromkeys(key for table in tables for key in table)
    return {key: round(float(statistics.median(t[key] for t in tables if key in t)), 2) for key in keys}


def fold_verdict(folds: Sequence[tuple[Mapping[str, float], Mapping[str, Mapping[str, float]]]]) -> dict[str, Any]:
    """The no-harm rule over folds. ``folds``: per fold, (the model's medians per child on the songs it held out,
    {baseline: its medians per child there}); a child silent in a fold's songs is not scored there (validation
    leaves it out), so a fold's mean is over the children it scores, the same for the model and the baselines. The
    model passes when the median over the folds of its mean beats the same median of every baseline. Returns the
    per-child medians over the folds that score the child, the medians of the means, the verdict and in how many
    folds it beat every baseline."""
    labels = list(folds[0][1])
    model_mean = statistics.median(mean(model) for model, _ in folds)
    baseline_means = {label: statistics.median(mean(rest[label]) for _, rest in folds) for label in labels}
    best = max(baseline_means.values())

    return {
        "folds": len(folds),
        "model_median_db": median_of([model for model, _ in folds]),
        "baselines_median_db": {label: median_of([rest[label] for _, rest in folds]) for label in labels},
        "model_mean_median_db": round(model_mean, 2),
        "best_baseline_mean_median_db": round(best, 2),
        "beats_baselines": model_mean > best,
        "folds_won": sum(mean(m) > max(mean(rest[label]) for label in labels) for m, rest in folds),
    }


def unheard(
    folds: Mapping[str, Mapping[str, Mapping[str, float]]],
    verdict: Mapping[str, Any],
    method: str,
    where: str | None = None,
) -> dict:
    """A split model card's ``unheard``: what its recipe did on songs it never heard. ``folds``: by the songs a fold
    held out, {"model": medians per child, baseline: medians per child}; ``verdict``: `fold_verdict` of them;
    ``method``: how the folds were made, for the card; ``where``: the same in a few words. Where the model loses to a baseline on the median or in any
    fold, ``short`` and ``caution`` say so where it is offered."""
    children = list(verdict["model_median_db"])
    median = {"model": dict(verdict["model_median_db"]), **verdict["baselines_median_db"]}
    out: dict[str, Any] = {
        "method": method,
        "folds": {name: {label: dict(v) for label, v in row.items()} for name, row in folds.items()},
        "median": median,
        "folds_won": verdict["folds_won"],
        "beats_baselines": verdict["beats_baselines"],
    }
    label, base = next(iter(verdict["baselines_median_db"].items()))
    split = "an equal split" if label == "equal parts" else label
    ours = ", ".join(f"{c} {verdict['model_median_db'][c]:.1f}" for c in children)
    theirs = ", ".join(f"{base[c]:.1f}" for c in children)
    lost = [
        name
        for name, row in folds.items()
        if mean(row["model"]) <= max(mean(v) for k, v in row.items() if k != "model")
    ]
    where = where or f"{len(folds)} folds, each scored on the songs left out of its training"
    if not verdict["beats_baselines"]:
        out["short"] = f"worse than {split} on unheard songs"
        out["caution"] = (
            f"On songs it never heard ({where}) it does worse than {split} ({label} for every child): median uSDR "
            f"{ours} dB against {theirs} dB; it beat it in {verdict['folds_won']} of the {len(folds)} folds. Listen "
            "before you trust what it splits."
        )
    elif lost:
        out["short"] = f"worse than {split} on {len(lost)} of {len(folds)} unheard folds"
        out["caution"] = (
            f"On songs it never heard ({where}) it beats {split} on the median (uSDR {ours} dB against {theirs} dB) "
            f"but does worse than it on {'; '.join(lost)}: a song unlike the ones it learnt from can come out worse "
            "than halving. Listen before you trust what it splits."
        )
    return out
