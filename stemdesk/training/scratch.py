"""Train an estimator from scratch with a paper's recipe on a user's multitracks, and install it as a model.

`stemdesk train --estimator NAME [--recipe PAPER-VARIANT]` runs `train_from_scratch`: check the data and split it by
song, build the recipe's estimator (with any ``--set`` changes), run its pre-training stage if it has one (Lin et
al.'s autoencoder), train it with its objective and augmentation, validate whole songs through the real separator
with the post-processing the model's card will ask for, and install the best weights into the user's models folder
with a card that says the paper, the recipe, what it sets, the data and its licence, and the CPU budget used. With
``--teacher`` the songs a teacher labelled (`stemdesk.training.corpus`) join the training songs, and the card says the
weights are for personal and research use only. The run folder (``<user data>/runs/<name>``) holds the data report,
checkpoints and the log; running the same command again resumes it.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from stemdesk.core.cancel import CancelToken
from stemdesk.core.errors import StemDeskError
from stemdesk.core.estimators import Estimator, build_estimator
from stemdesk.core.postprocess import PostProcessing
from stemdesk.io.atomic import atomic_folder, atomic_write_bytes
from stemdesk.io.model_store import (
    WEIGHT_FACTS,
    amend_card,
    find_model,
    load_estimator,
    read_card,
    save_model,
    user_models_dir,
    weights_file,
)
from stemdesk.io.paths import runs_dir
from stemdesk.io.process import limit_threads, process_threads

from .augment import NO_AUGMENTATION
from .checkpoints import Checkpoints
from .corpus import TEACHER_TERMS, Labelled, Teacher, add_teacher, teacher_card
from .data import Song
from .dataset import SongFiles, data_terms, discover, read_mapping
from .finetune import checked_split
from .model_card import render
from .pretrain import pretrain_autoencoder
from .recipes import TRAINING, Recipe, resolve, with_settings
from .recipes import describe as describe_recipe
from .split import (
    DEFAULT_FOLDS,
    SplitData,
    fold_verdict,
    gather_split,
    make_folds,
    mean,
    median_of,
    no_harm,
    score_baselines,
    split_facts,
    split_recipe,
    unheard,
)
from .stemsets import StemSet, describe_sessions, is_stemset_file, read_stemset
from .threshold import choose_threshold
from .train import TrainConfig, Trainer, export_model, loss_trend

# Shipping limit of a research model's weights (the issue of the seed methods asks for at most 10 MB each).
SIZE_LIMIT = 10_000_000


@dataclass
class ScratchRequest:
    """What `stemdesk train --estimator` asks for. ``settings``: changes to the recipe's estimator config
    (``--set KEY=VALUE``); ``augmentation``: changes to the recipe's (fields of `Augmentation`), after
    ``no_augmentation`` (which also turns remixing off); ``postprocessing``: post-processing the card asks for
    beyond the recipe's. ``minutes`` is the wall-clock budget of pre-training and training together; ``steps`` and
    ``pretrain_steps`` end them sooner. ``teacher``: also train on the songs it labelled (distillation)."""

    data: Sequence[Path]
    name: str
    estimator: str | None = None
    recipe: str | None = None
    minutes: float = 30.0
    mapping: Path | None = None
    valid: Sequence[str] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    lr: float | None = None
    batch: int | None = None
    steps: int | None = None
    pretrain_steps: int | None = None
    no_augmentation: bool = False
    augmentation: Mapping[str, Any] = field(default_factory=dict)
    remix: float | None = None
    postprocessing: PostProcessing = field(default_factory=PostProcessing)
    ema: float = 0.0  # > 0: validate and export a moving average of the weights
    threads: int | None = None
    seed: int = 0
    device: str = "cpu"
    teacher: Teacher | None = None
    # a split model (`stemdesk.training.split`): the parent it splits, whose children ``mapping`` (a stem set)
    # names; ``start``: a split model of the same children to continue training from, instead of from scratch
    split: str | None = None
    start: str | None = None
    # a split model's no-harm rule on songs it never heard: the songs dealt into this many folds, each held out once
    # while the recipe trains on the others, then the final model trained on every song (`_train_in_folds`); None:
    # `split.DEFAULT_FOLDS` unless ``valid`` names the songs to validate on; 1: one validation song, no folds
    folds: int | None = None


@dataclass
class Plan:
    """A request made concrete: the recipe, the estimator's full config and the trainer's settings."""

    recipe: Recipe
    config: TrainConfig
    estimator_config: dict[str, Any]


def plan(request: ScratchRequest, sources: Sequence[str] | None = None) -> Plan:
    """The recipe and the trainer's settings for ``request``, with the estimator built once to check them.
    ``sources``: the stems it learns when they are not the four (a split model's children; the default recipe
    of a split model is `split.SPLIT_RECIPE`). Raises StemDeskError for a recipe, setting or option that cannot be
    used, saying what can."""
    if request.split and request.estimator is None and request.recipe is None:
        recipe = split_recipe(sources or ())
    else:
        recipe = resolve(request.estimator, request.recipe)
    config = dict(recipe.config)
    if sources is not None:
        config["sources"] = list(sources)
    config = with_settings(config, request.settings)
    try:
        estimator = build_estimator(recipe.estimator, config)
    except (TypeError, ValueError, KeyError) as error:
        start = f"the recipe {recipe.name}" if recipe.paper else "its own defaults"
        changed = f" with --set {', '.join(request.settings)}" if request.settings else ""
        raise StemDeskError(
            f"{recipe.estimator} cannot be built from {start}{changed}: {error}. Give its settings with --set "
            "KEY=VALUE."
        ) from None
    augmentation = NO_AUGMENTATION if request.no_augmentation else recipe.augmentation
    remix = 0.0 if request.no_augmentation else recipe.remix
    try:
        augmentation = replace(augmentation, **dict(request.augmentation))
    except (TypeError, ValueError) as error:
        raise StemDeskError(f"Augmentation: {error}.") from None
    remix = request.remix if request.remix is not None else remix
    if not 0.0 <= remix <= 1.0:
        raise StemDeskError(f"Remixing is a probability between 0 and 1, not {remix}.")
    post = request.postprocessing.over(recipe.postprocessing)
    try:
        post.steps(estimator.sources)
    except ValueError as error:
        raise StemDeskError(f"The recipe {recipe.name}'s model: {error}.") from None
    training = {**TRAINING, **recipe.training}
    if request.lr is not None:
        training["lr"] = request.lr
    if request.batch is not None:
        if request.batch < 1:
            raise StemDeskError(f"The batch must hold at least one example, not {request.batch}.")
        training["batch"] = request.batch
    train_config = TrainConfig(
        estimator=recipe.estimator,
        config=estimator.config(),
        remix=remix,
        augmentation=augmentation,
        postprocessing=post,
        minutes=request.minutes,
        max_steps=request.steps if request.steps is not None else 10**9,
        seed=request.seed,
        device=request.device,
        ema=request.ema,
        data_sources=tuple(sources) if sources is not None else TrainConfig.data_sources,
        **training,
    )
    # The card's words describe what is trained: the recipe with the changes asked for.
    # A threshold the user set with --set is theirs: it is not chosen again after training.
    tuned = recipe.threshold if recipe.threshold not in request.settings else None
    made = replace(recipe, augmentation=augmentation, remix=remix, postprocessing=post, threshold=tuned)
    return Plan(made, train_config, estimator.config())


def gather(folders: Sequence[Path], mapping: Path | None) -> list[SongFiles]:
    """The songs of every folder (or CSV list); a song name found twice is an error, since validation songs are
    named."""
    songs: list[SongFiles] = []
    rules = read_mapping(mapping)
    for folder in folders:
        found = discover(Path(folder), rules)
        if not found:
            raise StemDeskError(
                f'No songs found in "{folder}". Give folders that hold one folder per song with its stems inside '
                "(for a collection of sets, give each set's folder)."
            )
        songs += found
    names = [song.name for song in songs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise StemDeskError(
            f"Songs named {twice} appear in more than one folder; rename them so each name is one song."
        )
    return songs


def train_from_scratch(
    request: ScratchRequest, progress: Callable[[dict], None] | None = None, cancel: CancelToken | None = None
) -> dict[str, Any]:
    """Run the whole job; returns what it made (the model's id, folder, recipe, steps, validation scores, size).
    Raises StemDeskError for anything the user can fix."""
    wall, cpu = time.monotonic(), time.process_time()
    stemset = _stemset(request)
    made = plan(request, stemset.children if stemset is not None else None)
    recipe, config = made.recipe, made.config
    out_folder = user_models_dir() / request.name
    try:
        existing = find_model(request.name)
    except StemDeskError:
        existing = None
    if existing is not None and existing.folder != out_folder:
        raise StemDeskError(f"A model named {request.name!r} already ships with StemDesk; choose another --out.")
    limit_threads(request.threads or process_threads())
    config.threads = torch.get_num_threads()
    run = runs_dir() / request.name
    run.mkdir(parents=True, exist_ok=True)
    split_data: SplitData | None = None
    if stemset is not None:
        split_data = gather_split(request.data, stemset, request.valid)
        report, loaded = split_data.report, split_data.loaded
        train_names, valid_names = split_data.train, split_data.valid
        atomic_write_bytes(run / "data-report.json", json.dumps(report, indent=1).encode())
        atomic_write_bytes(run / "data-report.txt", describe_sessions(report).encode())
        used = split_data.terms_songs()
    else:
        songs = gather(request.data, request.mapping)
        report, loaded, train_names, valid_names = checked_split(songs, run, request.valid, "training")
        used = [song for song in songs if song.name in loaded]
    folds = _fold_count(request, split_data)
    if split_data is not None and folds > 1:
        return _train_in_folds(request, made, split_data, folds, run, out_folder, (wall, cpu), progress, cancel)
    train = [loaded[n] for n in train_names]
    valid = [loaded[n] for n in valid_names]
    labelled = add_teacher(train, request.teacher) if request.teacher is not None else None
    terms = data_terms(used)
    facts = card_facts(request, made, terms, train_names, valid_names, report["excluded"], labelled, train)
    scored: dict[str, dict] = {}
    if split_data is not None:
        stems = split_data.stemset
        scored = score_baselines(stems.children, made.estimator_config["stft"], valid, stems.group_kinds)
        facts = split_card(facts, request, split_data, scored, train_names)
    staged = run / "model"
    shutil.rmtree(staged, ignore_errors=True)
    trainer, pretrained = train_recipe(
        made,
        train,
        valid,
        run,
        export_model(staged, request.name, facts, half=True),
        pretrain_steps=request.pretrain_steps,
        progress=progress,
        cancel=cancel,
        init_state=_start_state(request, made) if request.start else None,
        groups=stemset.group_kinds if stemset is not None else (),
    )
    if trainer.step == 0:
        raise StemDeskError(
            f"--minutes {request.minutes:g} left no time to train after reading the songs"
            + (" and pre-training" if pretrained else "")
            + ". Give more minutes."
        )
    if not (staged / "card.json").is_file():
        raise StemDeskError(
            f"Training ran {trainer.step} steps but never produced a finite validation score, so nothing was "
            f"installed (run folder: {run}). Try a lower --lr."
        )
    if recipe.threshold is not None:
        choose_for_model(staged, recipe.threshold, train)
    if split_data is not None:
        medians = read_card(staged).raw.get("metrics", {}).get("validation_usdr_median_db", {})
        beats, words = no_harm(medians, scored)
        if not beats:
            raise StemDeskError(
                f"{request.name} was not installed: its {words} on {', '.join(valid_names)}. Give it more minutes, "
                f"more songs, or check the stem set (run folder: {run})."
            )
    return _install(request, made, staged, out_folder, run, trainer, pretrained, (wall, cpu), facts)


def _install(
    request: ScratchRequest,
    made: Plan,
    staged: Path,
    out_folder: Path,
    run: Path,
    trainer: Trainer,
    pretrained: dict[str, Any] | None,
    clocks: tuple[float, float],
    facts: dict[str, Any],
) -> dict[str, Any]:
    """Record the budget in the staged model's card, install it, and say what was made."""
    recipe, config = made.recipe, made.config
    size = record_budget(staged, config, request.minutes, trainer, pretrained, *clocks)
    with atomic_folder(out_folder) as folder:
        shutil.copytree(staged, folder, dirs_exist_ok=True)
    installed = read_card(out_folder)
    metrics = installed.raw.get("metrics", {})
    return {
        "model": request.name,
        "folder": str(out_folder),
        "run_folder": str(run),
        "recipe": recipe.name,
        "paper": recipe.paper,
        "estimator": recipe.estimator,
        "steps": trainer.step,
        "best_step": metrics.get("step"),
        "valid_usdr": metrics.get("validation_usdr_median_db", {}),
        "pretraining": pretrained,
        "weights_bytes": size,
        "over_size_limit": size > SIZE_LIMIT,
        "research_only": facts["training_data"].get("research_only"),
        "teacher": request.teacher.model if request.teacher is not None else None,
        "postprocessing": config.postprocessing.as_dict(),
        "split": None
        if "split" not in facts
        else {"parent": facts["split"]["parent"], "baselines": facts["split"]["baselines"]},
        "unheard": facts.get("unheard"),
    }


# A fold's or the final model's run when their steps are fixed: this many times its share of the minutes at most
# (a run slower than the first fold's stops at its share instead, and says so in the card's steps).
FOLD_SLACK = 1.5


def _fold_count(request: ScratchRequest, data: SplitData | None) -> int:
    """How many folds a split model's no-harm rule uses (1: the one validation song)."""
    if data is None:
        if request.folds not in (None, 1):
            raise StemDeskError("--folds is for split models (--split): a four-stem model validates on --valid songs.")
        return 1
    if request.folds is None:
        return 1 if request.valid else min(DEFAULT_FOLDS, len(data.songs))
    if request.folds < 1:
        raise StemDeskError(f"--folds takes 1 (one validation song) or more, not {request.folds}.")
    if request.folds > 1 and request.valid:
        raise StemDeskError("--valid names one validation song; --folds holds every song out in turn: give one.")
    if request.folds > len(data.songs):
        raise StemDeskError(
            f"--folds {request.folds} asks for more folds than the {len(data.songs)} usable songs; give at most "
            f"{len(data.songs)} (one song out at a time)."
        )
    return request.folds


def _fixed_run(made: Plan, steps: int | None, minutes: float) -> None:
    """A fold's or the final model's run: ``steps`` steps (the first fold's, unless --steps fixed them) within
    ``minutes``, validated only at the end, so that the schedule never looks at the songs that then score it and
    every run of the recipe is the same; checkpoints every 2 minutes instead of at validations."""
    made.config.minutes = minutes if steps is None else minutes * FOLD_SLACK
    if steps is not None:
        made.config.max_steps = steps
    made.config.validate_every = 10**9
    made.config.checkpoint_minutes = 2.0


def _train_in_folds(
    request: ScratchRequest,
    made: Plan,
    data: SplitData,
    count: int,
    run: Path,
    out_folder: Path,
    clocks: tuple[float, float],
    progress: Callable[[dict], None] | None,
    cancel: CancelToken | None,
) -> dict[str, Any]:
    """A split model whose no-harm rule looks at songs it never heard. The usable songs are dealt into ``count``
    folds (`make_folds`); for each, the recipe trains on the other songs and its last weights are scored on the
    fold's songs beside the baselines (`score_baselines`). Only when the median over the folds beats every baseline
    (`fold_verdict`) is the final model trained, on every song, for the same steps, and installed; its card's
    validation scores are the folds' (each song scored by the model that never heard it) and ``unheard`` holds
    every fold. The minutes are shared equally by the folds and the final run; the steps are --steps or what the
    first fold reached in its share. Each fold's result is kept in the run folder (``folds.json``) as it ends and
    each run checkpoints, so a killed job resumes where it stopped."""
    stemset = data.stemset
    children = list(stemset.children)
    folds = make_folds(list(data.songs), count)
    share = request.minutes / (len(folds) + 1)
    setup = json.loads(
        json.dumps(
            {
                "folds": folds,
                "minutes": request.minutes,
                "steps": request.steps,
                "recipe": made.recipe.name,
                "estimator": made.estimator_config,
                "training": {
                    k: v for k, v in asdict(made.config).items() if k not in ("minutes", "max_steps", "extra")
                },
                "seed": request.seed,
                "start": request.start,
            },
            default=str,
        )
    )
    record = run / "folds.json"
    saved = json.loads(record.read_text()) if record.is_file() else {}
    if saved.get("setup") != setup:
        saved = {"setup": setup, "rows": {}, "steps": request.steps}
    rows: dict[str, dict] = saved["rows"]
    init_state = _start_state(request, made) if request.start else None
    stft = made.estimator_config["stft"]
    for index, held in enumerate(folds, 1):
        name = ", ".join(held)
        if name in rows:
            continue
        if progress:
            progress({"stage": "fold", "fold": index, "folds": len(folds), "held_out": held})
        fold = plan(request, children)
        _fixed_run(fold, saved["steps"], share)
        valid = [data.validation_song(song) for song in held]
        workdir = run / "folds" / f"fold-{index}"
        prepare_run(workdir, {**setup, "held_out": held})
        trainer, _ = train_recipe(
            fold,
            [data.songs[song] for song in sorted(data.songs) if song not in held],
            valid,
            workdir,
            None,
            progress=progress,
            cancel=cancel,
            init_state=init_state,
            groups=stemset.group_kinds,
        )
        if trainer.step == 0:
            raise StemDeskError(f"--minutes {request.minutes:g} left no time to train fold {index}. Give more minutes.")
        last = trainer.history[-1] if trainer.history and trainer.history[-1]["step"] == trainer.step else None
        if last is None:
            with trainer.averaged_weights():
                result = trainer.validate()
            last = {"valid_usdr": result["median"], "songs": result["songs"]}
        scored = score_baselines(children, stft, valid, stemset.group_kinds)
        rows[name] = {
            "held_out": held,
            "steps": trainer.step,
            "model": {k: round(v, 3) for k, v in last["valid_usdr"].items()},
            "songs": last["songs"],
            "baselines": {label: {k: round(v, 3) for k, v in r["median"].items()} for label, r in scored.items()},
        }
        if stemset.group_kinds:
            rows[name]["model_groups"] = last.get("valid_groups", {})
            rows[name]["baselines_groups"] = {label: r["groups"]["median"] for label, r in scored.items()}
        if saved["steps"] is None:
            saved["steps"] = trainer.step
        atomic_write_bytes(record, json.dumps(saved, indent=1).encode())
    verdict = fold_verdict([(row["model"], row["baselines"]) for row in rows.values()])
    method = (
        f"The usable songs dealt into {len(folds)} folds; for each, the recipe trained from scratch on the other "
        f"songs for {saved['steps']} steps (fixed before the fold was scored) and scored on the fold's songs; global "
        "uSDR, dB. The installed model is the same recipe trained on every song."
    )
    table = {name: {"model": row["model"], **row["baselines"]} for name, row in rows.items()}
    if not verdict["beats_baselines"]:
        best = max(verdict["baselines_median_db"], key=lambda label: mean(verdict["baselines_median_db"][label]))
        raise StemDeskError(
            f"{request.name} was not installed: on songs it never heard ({len(folds)} folds) its median mean uSDR "
            f"{verdict['model_mean_median_db']:.2f} dB does not beat {best}'s {verdict['best_baseline_mean_median_db']:.2f} "
            f"dB (it beat every baseline in {verdict['folds_won']} of {len(folds)} folds; each fold in "
            f"{record}). Give it more minutes, more songs, or check the stem set."
        )
    if progress:
        progress({"stage": "final", "folds": len(folds), "verdict": verdict})
    final = plan(request, children)
    _fixed_run(final, saved["steps"], share)
    everything = [data.songs[song] for song in sorted(data.songs)]
    shortest = min(everything, key=lambda song: song.length).name
    staged = run / "model"
    shutil.rmtree(staged, ignore_errors=True)
    prepare_run(run / "final", {**setup, "steps_fixed": saved["steps"]})
    trainer, pretrained = train_recipe(
        final,
        everything,
        [data.validation_song(shortest)],  # scores nothing the card keeps: the trainer's closing round needs a song
        run / "final",
        None,
        progress=progress,
        cancel=cancel,
        init_state=init_state,
        groups=stemset.group_kinds,
    )
    names = sorted(data.songs)
    facts = card_facts(request, made, data_terms(data.terms_songs()), names, [], data.report["excluded"])
    fold_scores = {label: {"median": verdict["baselines_median_db"][label]} for label in verdict["baselines_median_db"]}
    if stemset.group_kinds:
        for label in fold_scores:
            fold_scores[label]["groups"] = {
                "median": median_of([row["baselines_groups"][label] for row in rows.values()])
            }
    facts = split_card(facts, request, data, fold_scores, names)
    facts["unheard"] = unheard(table, verdict, method)
    facts["description"] += f"; its no-harm rule looked at {len(folds)} folds of songs it never heard"
    per_song = {song: scores for row in rows.values() for song, scores in row["songs"].items()}
    entry: dict[str, Any] = {
        "step": trainer.step,
        "valid_usdr": verdict["model_median_db"],
        "songs": per_song,
        "seconds": round(trainer.seconds, 1),
    }
    if stemset.group_kinds:
        entry["valid_groups"] = median_of([row["model_groups"] for row in rows.values()])
    with trainer.averaged_weights():
        export_model(staged, request.name, facts, half=True)(trainer.estimator, entry)
    return _install(request, made, staged, out_folder, run, trainer, pretrained, clocks, facts)


def _stemset(request: ScratchRequest) -> StemSet | None:
    """The stem set of a split model's training (None for a four-stem model). Raises StemDeskError for a split
    without one, a stem set without a split, or what cannot go with a split."""
    if request.split is None:
        if request.mapping is not None and is_stemset_file(request.mapping):
            raise StemDeskError(
                f'"{request.mapping}" is a stem set (it names its own stems): train a split model with '
                "--split PARENT (the stem it splits, or mix)."
            )
        if request.start is not None:
            raise StemDeskError("Continuing a model (--from) with --estimator is for split models: add --split.")
        return None
    if request.mapping is None:
        raise StemDeskError(
            "A split model needs --mapping: a stem set naming its stems and their tracks, e.g. "
            '{"split": "vocals", "stems": {"lead": ["VOX LEAD*"], "backing": ["BGVOX*"]}, "outside": ["*"]}.'
        )
    if request.teacher is not None:
        raise StemDeskError(
            "A teacher labels the four stems; a split model learns from session tracks: leave out --teacher."
        )
    return read_stemset(request.mapping, request.split)


def _start_state(request: ScratchRequest, made: Plan) -> dict[str, torch.Tensor]:
    """The weights of the split model ``request.start``, which must split the same parent into the same children
    with the same network as this run's."""
    card = find_model(str(request.start))
    estimator, card = load_estimator(card)
    split = card.raw.get("split") or {}
    if split.get("parent") != request.split or list(estimator.sources) != list(made.estimator_config["sources"]):
        raise StemDeskError(
            f"{card.id} splits {split.get('parent') or 'nothing'} into {', '.join(estimator.sources)}; this run "
            f"splits {request.split} into {', '.join(made.estimator_config['sources'])}. Continue a split model of "
            "the same stems, or train from scratch (leave out --from)."
        )
    if card.estimator != made.config.estimator or estimator.config() != made.estimator_config:
        raise StemDeskError(
            f"{card.id} is a {card.estimator} network with other settings than this run's; leave out "
            "--estimator/--recipe/--set to continue it as it is."
        )
    return {k: v.float() for k, v in estimator.state_dict().items()}


def split_card(
    facts: dict[str, Any], request: ScratchRequest, data: SplitData, scored: Mapping[str, dict], train: Sequence[str]
) -> dict[str, Any]:
    """A split model's card facts: what `card_facts` says, worded for a split, and its ``split`` block."""
    stems = data.stemset
    start = f", continued from {request.start}" if request.start else ""
    return {
        **facts,
        "description": f"{request.name}: splits {stems.split} into {', '.join(stems.children)}, trained by "
        f"`stemdesk train --split {stems.split}` on {len(train)} songs' session tracks{start}",
        "purpose": "split",
        "split": split_facts(data, scored),
    }


def choose_for_model(folder: Path, key: str, train: Sequence[Song]) -> dict[str, Any]:
    """Choose the exported model's threshold ``key`` on the training songs (`threshold.choose_threshold`) and write
    the model again with it in its config and the choice in its card (``paper.threshold``); the weights stay."""
    card = read_card(folder)
    estimator, _ = load_estimator(card)
    if not isinstance(estimator, Estimator):
        raise ValueError(f"{card.id} predicts waveforms: it has no mask threshold to choose")
    report = choose_threshold(estimator, key, train)
    facts = {k: v for k, v in card.raw.items() if k not in WEIGHT_FACTS}
    facts["paper"] = {**facts.get("paper", {}), "threshold": report}
    written = save_model(folder, card.id, estimator, facts, half=card.raw.get("weights_storage") == "float16")
    atomic_write_bytes(folder / "README.md", render(written.raw).encode("utf-8"))
    return report


def record_budget(
    folder: Path,
    config: TrainConfig,
    minutes: float,
    trainer: Trainer,
    pretrained: dict[str, Any] | None,
    wall: float,
    cpu: float,
    continued: tuple[Mapping[str, Any], str] | None = None,
) -> int:
    """Add to an exported model's card the CPU budget its training used and its weights' size in bytes, and render
    its README again. ``wall``, ``cpu``: time.monotonic() and time.process_time() when this job began (the whole
    job's time); the training's own time (pre-training and training, over every run that led to the weights, a
    resumed run's earlier ones up to their last checkpoint) comes from ``trainer`` and ``pretrained``.
    ``continued``: the budget and weights' sha256 of the trained model this run started from (a warm restart),
    counted in with `warm_restart_budget`. Returns the size."""
    size = weights_file(folder).stat().st_size
    training = dict(read_card(folder).raw["training"])
    training["config"] = {**training["config"], "excerpt_seconds": config.excerpt_seconds}  # as fitted to the songs
    training["budget"] = {
        "minutes": minutes,
        "threads": config.threads,
        "device": config.device,
        "steps": trainer.step,
        "wall_seconds": round(time.monotonic() - wall),
        "cpu_seconds": round(time.process_time() - cpu),
        "training_wall_seconds": round(trainer.seconds + (pretrained or {}).get("seconds", 0.0)),
        "training_cpu_seconds": round(trainer.cpu_seconds + (pretrained or {}).get("cpu_seconds", 0.0)),
        "pretraining": pretrained,
        "loss_trend": loss_trend(trainer.loss_curve, trainer.decay_step),
        "decay_minutes": config.decay_minutes or None,
        "loss_curve": trainer.loss_curve,
    }
    if continued is not None:
        training["budget"] = warm_restart_budget(training["budget"], *continued)
    card = amend_card(folder, {"training": training, "weights_bytes": size})
    atomic_write_bytes(folder / "README.md", render(card.raw).encode("utf-8"))
    return size


def warm_restart_budget(budget: Mapping[str, Any], before: Mapping[str, Any], weights_sha256: str) -> dict[str, Any]:
    """A card's ``training.budget`` for a warm restart: ``budget`` (what `record_budget` wrote for the run that
    started from a trained model's weights) with the run ``before`` it (that model's own budget) added in. The steps
    and the training's wall-clock and CPU seconds become totals over both; ``minutes`` the whole budget;
    ``warm_restart`` keeps the model it started from and what each part did. The loss trend and curve stay the last
    run's: whether training had flattened is a question about the last steps."""
    combined = dict(budget)
    for key in ("steps", "training_wall_seconds", "training_cpu_seconds"):
        combined[key] = int(budget.get(key) or 0) + int(before.get(key) or 0)
    combined["minutes"] = float(budget.get("minutes") or 0.0) + float(before.get("minutes") or 0.0)
    combined["pretraining"] = budget.get("pretraining") or before.get("pretraining")
    combined["warm_restart"] = {
        "from_weights_sha256": weights_sha256,
        "before": {
            k: before.get(k) for k in ("minutes", "decay_minutes", "steps", "training_cpu_seconds", "loss_trend")
        },
        "after": {k: budget.get(k) for k in ("minutes", "decay_minutes", "steps", "training_cpu_seconds")},
    }
    return combined


def train_recipe(
    made: Plan,
    train: Sequence[Song],
    valid: Sequence[Song],
    workdir: Path,
    export: Callable[[Estimator, dict], None] | None,
    pretrain_steps: int | None = None,
    progress: Callable[[dict], None] | None = None,
    cancel: CancelToken | None = None,
    whole_budget: bool = False,
    init_state: dict[str, torch.Tensor] | None = None,
    groups: Sequence[Sequence[str]] = (),
) -> tuple[Trainer, dict[str, Any] | None]:
    """Train a plan's estimator from scratch on ``train``, validating on ``valid`` (split by song), in ``workdir``
    (checkpoints, log, the pre-training's report): the recipe's pre-training stage first, for its share of
    ``made.config.minutes`` or ``pretrain_steps`` (0: none), then the trainer for the time left. A run already in
    ``workdir`` resumes (and is not pre-trained again); one of another network is refused. ``whole_budget``: the
    minutes are the whole run's, so a resumed run trains only for what its earlier runs left (up to their last
    checkpoint; otherwise it gets the minutes again). ``export`` gets the best weights (see `Trainer.run`). Returns
    the trainer and the pre-training's report (None without one). ``init_state``: start from these weights instead
    of the recipe's start (a warm restart of a trained model, `warm_restart_budget`): no pre-training, no input
    scaling set from data; a checkpoint in ``workdir`` still wins. ``groups``: a split model's group kinds (see
    `Trainer`). Used by `train_from_scratch` and by lab/benchmarks/reproduction.py."""
    recipe, config = made.recipe, made.config
    shortest = min(song.length / song.sample_rate for song in train)
    if shortest < 1.0:
        raise StemDeskError(f"The shortest training song is {shortest:.2f} s; songs must be at least 1 s long.")
    config.excerpt_seconds = min(config.excerpt_seconds, 0.8 * shortest)
    checkpoints = Path(workdir) / "checkpoints"
    trainer = Trainer(config, train, valid, checkpoints, progress=progress, init_state=init_state, groups=groups)
    earlier = trainer.checkpoints.meta()
    if earlier is not None and not _same_network(earlier.get("config", {}), config):
        raise StemDeskError(
            f"The run folder {workdir} holds a run of {earlier['config'].get('estimator')} with other settings, "
            f"which this one cannot resume. Choose another --out, or delete {checkpoints} to start again."
        )
    report_file = Path(workdir) / "pretraining.json"
    pretrained = json.loads(report_file.read_text()) if report_file.is_file() else None
    if whole_budget and earlier is not None:
        spent = earlier.get("seconds", 0.0) + (pretrained or {}).get("seconds", 0.0)
        config.minutes = max(0.0, config.minutes - spent / 60)
    if recipe.pretrain == "autoencoder" and earlier is None and pretrain_steps != 0 and init_state is None:
        trainer.init_input_scaling()
        pretrained = pretrain_autoencoder(
            trainer.estimator,
            lambda: trainer.mixture_magnitudes(config.batch),
            seconds=recipe.pretrain_share * config.minutes * 60,
            steps=pretrain_steps,
            lr=config.lr,
            progress=progress,
            cancel=cancel,
        )
        atomic_write_bytes(report_file, json.dumps(pretrained).encode())
        config.minutes = max(0.0, config.minutes - pretrained["seconds"] / 60)
        trainer.save()  # a run killed before its first checkpoint keeps the pre-trained encoder
    trainer.run(export=export, cancel=cancel)
    return trainer, pretrained


def prepare_run(
    workdir: Path, setup: Mapping[str, Any], continues: Callable[[Mapping[str, Any], float], bool] | None = None
) -> dict[str, Any] | None:
    """Make ``workdir`` the run folder of ``setup`` (JSON values: what the run is, e.g. its settings, budget and
    data): a checkpoint left there by a run of another setup is deleted, with its log and pre-training report, so
    that only a run of the same setup is resumed, or one that ``continues`` says carries on into this one (given
    its setup and the seconds of its budget it had used, pre-training included; see `longer_budget`). Returns the
    checkpoint's meta (its step and the seconds it has trained) when there is one to resume, else None."""
    workdir = Path(workdir)
    ours = json.loads(json.dumps(setup))
    record = workdir / "setup.json"
    theirs = json.loads(record.read_text()) if record.is_file() else None
    checkpoints = Checkpoints(workdir / "checkpoints")
    if theirs != ours:
        meta = checkpoints.meta()
        report = workdir / "pretraining.json"
        spent = (meta or {}).get("seconds", 0.0)
        spent += json.loads(report.read_text()).get("seconds", 0.0) if report.is_file() else 0.0
        if not (continues is not None and theirs is not None and meta is not None and continues(theirs, spent)):
            shutil.rmtree(workdir / "checkpoints", ignore_errors=True)
            report.unlink(missing_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(record, json.dumps(ours, indent=1).encode())
    return checkpoints.meta()


# How far past the start of a larger budget's decay a continued run's checkpoint may be (its last step overran).
OVERRUN_SECONDS = 60.0


def longer_budget(setup: Mapping[str, Any]) -> Callable[[Mapping[str, Any], float], bool]:
    """For `prepare_run`: a run carries on into ``setup`` (a trainer's setup, {"train_config": {...}, ...}) when
    only the budget differs (``minutes``, no smaller, and ``decay_minutes``) and neither schedule had begun to decay the
    learning rate by the checkpoint: the run continued is then the run the larger budget trains (the rate before
    the decay does not depend on the budget). A checkpoint up to `OVERRUN_SECONDS` past the new decay's start is
    taken; the whole budget still counts every second."""
    ours = json.loads(json.dumps(setup))

    def stripped(one: Mapping[str, Any]) -> dict[str, Any]:
        config = {k: v for k, v in one["train_config"].items() if k not in ("minutes", "decay_minutes")}
        return {**one, "train_config": config}

    def decays_at(config: Mapping[str, Any]) -> float:
        decay = config.get("decay_minutes") or 0.0
        return (config["minutes"] - decay) * 60 if decay > 0 else float("inf")

    def continues(theirs: Mapping[str, Any], seconds: float) -> bool:
        old, new = theirs.get("train_config"), ours.get("train_config")
        if not isinstance(old, dict) or not isinstance(new, dict):
            return False
        if not all(isinstance(c.get("minutes"), (int, float)) for c in (old, new)):
            return False
        if stripped(theirs) != stripped(ours):
            return False
        if new["minutes"] < old["minutes"] or seconds > decays_at(old):
            return False
        return seconds <= min(decays_at(new), new["minutes"] * 60) + OVERRUN_SECONDS

    return continues


def _same_network(saved: Mapping[str, Any], config: TrainConfig) -> bool:
    """Whether a checkpoint's trainer settings built the same network as ``config`` (a resumable run)."""
    ours = json.loads(json.dumps({"estimator": config.estimator, "config": config.config}))
    return {"estimator": saved.get("estimator"), "config": saved.get("config")} == ours


def card_facts(
    request: ScratchRequest,
    made: Plan,
    terms: dict,
    train_names: Sequence[str],
    valid_names: Sequence[str],
    excluded: Mapping[str, Any],
    labelled: Labelled | None = None,
    train: Sequence[Song] = (),
) -> dict[str, Any]:
    """The human facts of the exported model's card: the paper and recipe, what it sets, the data and its licences,
    the post-processing separation applies, the training settings. With ``request.teacher``: what ``labelled``
    (its songs among the ``train`` songs) adds, see `teacher_card`. The budget used is added when training ends."""
    recipe, config = made.recipe, made.config
    folders = [str(path) for path in request.data]
    paper = recipe.paper or "none: the estimator's own defaults"
    research = terms["research_only"]
    licences = {
        "weights": "GPL-3.0-or-later (StemDesk)"
        + ("; research and education use only (see training_data.research_only)" if research else ""),
        "training_data": "; ".join(
            f"{source}: " + ", ".join(f"{licence} ({count} songs)" for licence, count in found.items())
            for source, found in terms["sources"].items()
        ),
    }
    if terms["unknown"]:
        licences["unstated"] = (
            f"{terms['unknown']} training or validation songs state no licence (no meta.json): use the weights only "
            "as their owners allow"
        )
    data: dict[str, Any] = {
        "folders": folders,
        "train_songs": list(train_names),
        "valid_songs": list(valid_names),
        "excluded": dict(excluded),
        "augmentation": describe_recipe(recipe, made.estimator_config)["augmentation"],
    }
    if research:
        data["research_only"] = research
    taught = (
        f" and {labelled.seconds / 60:.0f} minutes of {request.teacher.model}'s labels ({TEACHER_TERMS})"
        if request.teacher is not None and labelled is not None
        else ""
    )
    facts = {
        "description": f"{request.name}: {paper}, {recipe.variant} (recipe {recipe.name}), trained from scratch by "
        f"`stemdesk train` on {len(train_names)} songs{taught}",
        "purpose": "research",
        "paper": {
            "reference": paper,
            "recipe": recipe.name,
            "variant": recipe.variant,
            "settings": describe_recipe(recipe, made.estimator_config),
            "changed": dict(request.settings),
        },
        "postprocessing": config.postprocessing.as_dict(),
        "training_data": data,
        "licenses": licences,
        "training": {"from_scratch": True, "config": {k: v for k, v in asdict(config).items() if k != "extra"}},
    }
    if request.teacher is not None and labelled is not None:
        teacher_card(facts, request.teacher, labelled, train, config.remix)
    return facts
