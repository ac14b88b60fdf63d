"""`stemdesk check-data` and `stemdesk train`: check multitracks, fine-tune an installed model on them, or train
an estimator from scratch with a paper's recipe (`train --recipes` lists the recipes)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from ..core.errors import StemDeskError
from ..io.model_store import DEFAULT_MODEL
from ..training.options import STEM_FLOOR_DB, add_teacher_options
from .common import EXIT_ERROR, count, positive, probability, setting, value_range
from .options import add_device_option, add_postprocessing_options, add_threads_option

# Options of `train` that only one of its two modes takes, as the command line spells them.
FINE_TUNE_ONLY = {"base": "--from", "freeze": "--freeze", "adapters": "--adapters"}
SCRATCH_ONLY = {
    "settings": "--set",
    "steps": "--steps",
    "batch": "--batch",
    "pretrain_steps": "--pretrain-steps",
    "wiener": "--wiener",
    "vocal_gate": "--vocal-gate",
    "binarise": "--binarise",
    "teacher": "--teacher",
    "teacher_targets": "--teacher-targets",
    "folds": "--folds",
}


def add_parsers(commands: Any) -> None:
    check = commands.add_parser(
        "check-data",
        help="check multitracks before training",
        description="Report, per song, what would make it unusable for training.",
    )
    check.add_argument("data", type=Path, help="folder of song folders, or a CSV list (song,source,path)")
    check.add_argument("--mapping", type=Path, help='JSON: {"vocals": ["Lead Vox*"], "drums": ["Kick*"]}')
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(handler=run_check_data)

    train = commands.add_parser(
        "train",
        help="fine-tune a model on your multitracks, or train an estimator from scratch with a paper's recipe",
        description="With --from (the default): fine-tune an installed model. With --estimator or --recipe: train "
        "that estimator from scratch with a paper's recipe (objective, targets, input framing, pre-training, "
        "augmentation, post-processing) and install it under a research heading. --recipes lists the recipes.",
    )
    train.set_defaults(handler=run_train)
    train.add_argument("--data", type=Path, nargs="+", metavar="DIR", help="folder(s) of song folders, or a CSV list")
    train.add_argument("--mapping", type=Path, help="JSON naming the tracks of each stem (as check-data's)")
    train.add_argument("--from", dest="base", help=f"installed model to fine-tune (default {DEFAULT_MODEL})")
    train.add_argument("--out", help="name of the new model")
    train.add_argument("--minutes", type=float, default=30.0, help="time budget (wall clock)")
    train.add_argument("--valid", nargs="*", default=(), metavar="SONG", help="songs held out for validation")
    train.add_argument(
        "--freeze",
        nargs="*",
        metavar="PREFIX",
        help="parameter-name prefixes to keep fixed (e.g. fc1 trunk); default: as the base model's "
        "card recommends; --freeze alone trains everything",
    )
    train.add_argument(
        "--adapters",
        type=int,
        metavar="RANK",
        help="train low-rank adapters of this rank on the dense layers only (merged on export); 0: none; "
        "default: as the base model's card or its kind advises (none for htdemucs)",
    )
    train.add_argument(
        "--lr", type=float, help="learning rate (default: what the base model's card recommends, else 3e-4)"
    )
    train.add_argument(
        "--ema",
        type=float,
        default=0.0,
        metavar="DECAY",
        help="validate and export a moving average of the weights (e.g. 0.99); 0: the weights",
    )
    train.add_argument(
        "--max-stem-loss",
        type=float,
        default=STEM_FLOOR_DB,
        metavar="DB",
        help="fine-tuning: never export a round that costs any stem more than this many dB of validation uSDR "
        f"below the base, however much the others gain (default {STEM_FLOOR_DB:g})",
    )
    add_device_option(train, default="cpu", runs="training runs")
    add_threads_option(train, "all cores but one; under torchrun, an equal share per process")
    train.add_argument(
        "--split",
        metavar="PARENT",
        help="train a split model of PARENT (vocals, drums, bass, other or mix) into the stems --mapping's stem "
        "set names; with --from, continue that split model",
    )
    train.add_argument(
        "--folds",
        type=positive,
        metavar="N",
        help="a split model: deal the songs into N folds and install it only if, trained without each fold's songs, "
        "it beats the baselines there on the median of the folds; then train it on every song (default: one song "
        "out at a time, up to 5 folds, unless --valid names the validation songs; 1: one validation song)",
    )
    scratch = train.add_argument_group("from scratch (stemdesk/training/recipes.py)")
    scratch.add_argument("--estimator", metavar="NAME", help="train this estimator from scratch")
    scratch.add_argument(
        "--recipe", metavar="PAPER-VARIANT", help="the paper's recipe (default: the estimator's first); see --recipes"
    )
    scratch.add_argument(
        "--recipes", action="store_true", help="list the recipes (with --recipe or --estimator: what one sets)"
    )
    scratch.add_argument(
        "--set",
        dest="settings",
        action="append",
        type=setting,
        default=[],
        metavar="KEY=VALUE",
        help="change the recipe's estimator config (JSON values; stft.hop=512; repeat for more)",
    )
    scratch.add_argument("--steps", type=positive, metavar="N", help="stop after N training steps")
    scratch.add_argument("--batch", type=positive, metavar="N", help="examples per step (default: the recipe's)")
    scratch.add_argument(
        "--pretrain-steps", type=count, metavar="N", help="at most N pre-training steps (0: none; Lin et al.)"
    )
    scratch.add_argument("--seed", type=int, default=0, help="the random seed (default 0)")
    add_teacher_options(scratch)
    augment = train.add_argument_group("augmentation (default: the recipe's; StemDesk's for a fine-tune)")
    augment.add_argument("--no-augment", action="store_true", help="no augmentation and no remixing")
    augment.add_argument("--remix", type=probability, metavar="P", help="sources from different songs")
    augment.add_argument("--gain-db", type=value_range, metavar="LOW,HIGH", help="a gain per source (e.g. -6,3)")
    augment.add_argument("--channel-swap", type=probability, metavar="P", help="swap left and right per source")
    augment.add_argument("--polarity", type=probability, metavar="P", help="invert a source's polarity")
    augment.add_argument(
        "--pitch-time", type=probability, metavar="P", help="pitch and tempo changes through pedalboard (costly)"
    )
    augment.add_argument("--pitch-range", type=float, metavar="SEMITONES", help="largest pitch shift (default 2)")
    augment.add_argument("--tempo-range", type=float, metavar="FRACTION", help="largest tempo change (default 0.1)")
    post = train.add_argument_group("post-processing the model's card asks separation for (from scratch)")
    add_postprocessing_options(post, card=True)


def run_check_data(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..session import tasks

    checked = tasks.check_data(args.data, args.mapping).run()
    print(json.dumps(checked.report, indent=1) if args.json else checked.text, file=out)
    return 0 if checked.report["ok"] else EXIT_ERROR


def _given(args: argparse.Namespace, names: dict[str, str]) -> list[str]:
    """The flags among ``names`` that were given a value other than their default."""
    unset: dict[str, object] = {"settings": [], "adapters": 0, "wiener": 0}
    return [flag for name, flag in names.items() if getattr(args, name) not in (None, unset.get(name))]


def _augmentation(args: argparse.Namespace) -> dict:
    """The augmentation flags given, as changes to the recipe's `Augmentation`."""
    fields = {
        "gain_db": args.gain_db,
        "channel_swap": args.channel_swap,
        "polarity": args.polarity,
        "pitch_time": args.pitch_time,
        "semitones": args.pitch_range,
        "tempo": args.tempo_range,
    }
    return {name: value for name, value in fields.items() if value is not None}


def _recipes(args: argparse.Namespace, out: TextIO) -> int:
    """`train --recipes`: every recipe in one line each, or what one recipe sets."""
    from ..training.recipes import PAPER_RECIPES, describe, resolve

    if args.recipe or args.estimator:
        recipe = resolve(args.estimator, args.recipe)
        print(f"{recipe.name}: {recipe.paper or 'no paper'}, {recipe.variant}", file=out)
        for what, says in describe(recipe).items():
            print(f"  {what}: {says}", file=out)
        return 0
    for name, recipe in PAPER_RECIPES.items():
        print(f"{name:24} {recipe.estimator:11} {recipe.paper}: {recipe.variant}", file=out)
    print(
        "\nstemdesk train --recipe NAME --data DIR --out ID trains one from scratch; "
        "stemdesk train --recipes --recipe NAME says what it sets.",
        file=out,
    )
    return 0


def run_train(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..session import tasks

    if args.recipes:
        return _recipes(args, out)
    scratch = bool(args.estimator or args.recipe or args.split)
    # a split model may continue one (--from) but freezes nothing and has no adapters
    wrong = _given(
        args, {k: v for k, v in FINE_TUNE_ONLY.items() if not (args.split and k == "base")} if scratch else SCRATCH_ONLY
    )
    if wrong:
        mode = "training from scratch (--estimator/--recipe)" if scratch else "fine-tuning (--from)"
        raise StemDeskError(f"{mode} takes no {', '.join(wrong)}; leave {'it' if len(wrong) == 1 else 'them'} out.")
    if not args.data or not args.out:
        raise StemDeskError("Training needs --data (your multitracks) and --out (a name for the new model).")

    def show(event: dict) -> None:
        scores = ", ".join(f"{k} {v:.2f}" for k, v in event.get("valid", {}).items())
        if event.get("stage") == "start":
            frozen = ", ".join(event.get("freeze", ())) or "nothing"
            print(
                f"base model: validation uSDR {scores} (the bar to beat); learning rate {event.get('lr', 0):g}, "
                f"frozen: {frozen}",
                file=err,
                flush=True,
            )
            return
        if event.get("stage") == "fold":
            print(
                f"fold {event['fold']} of {event['folds']}: training without {', '.join(event['held_out'])}, "
                "then scoring it there",
                file=err,
                flush=True,
            )
            return
        if event.get("stage") == "final":
            verdict = event["verdict"]
            print(
                f"on songs it never heard: median mean uSDR {verdict['model_mean_median_db']:.2f} dB against the "
                f"best baseline's {verdict['best_baseline_mean_median_db']:.2f} dB (ahead in {verdict['folds_won']} "
                f"of {event['folds']} folds); training the model on every song",
                file=err,
                flush=True,
            )
            return
        if event.get("stage") == "pretrain":
            print(
                f"pre-training step {event['step']}: reconstruction loss {event['loss']:.4f}; "
                f"{event['eta_seconds'] / 60:.1f} min left",
                file=err,
                flush=True,
            )
            return
        groups = ", ".join(f"{k} {v:.2f}" for k, v in event.get("valid_groups", {}).items())
        print(
            f"step {event['step']}: loss {event['loss']:.4f}; validation uSDR {scores}"
            + (f" (groups on their seconds: {groups})" if groups else "")
            + f"; {event['eta_seconds'] / 60:.1f} min left",
            file=err,
            flush=True,
        )

    if scratch:
        return _train_from_scratch(args, show, out)
    if len(args.data) > 1:
        raise StemDeskError("Fine-tuning reads one --data folder; put the songs in one folder or list them in a CSV.")
    base = args.base or DEFAULT_MODEL
    request = tasks.FineTune(
        data=args.data[0],
        base=base,
        name=args.out,
        minutes=args.minutes,
        mapping=args.mapping,
        valid=args.valid,
        lr=args.lr,
        freeze=args.freeze,
        adapters=args.adapters,
        ema=args.ema,
        stem_floor_db=args.max_stem_loss,
        threads=args.threads,
        seed=args.seed,
        device=args.device,
        **_fine_tune_augmentation(args),
    )
    card = tasks.fine_tune(request).run(show).card
    if card.get("rank"):
        return 0  # a torchrun worker other than rank 0: rank 0 reports
    gains = ", ".join(f"{k} {v:+.2f} dB" for k, v in card["gain_usdr_db"].items())
    print(
        f"{args.out}: fine-tuned from {base}; validation uSDR change: {gains}. Score card and curves in "
        f"{card['run_folder']}. Use it with --model {args.out}; delete its folder to roll back.",
        file=out,
    )
    return 0


def _fine_tune_augmentation(args: argparse.Namespace) -> dict:
    """The augmentation flags as FineTuneRequest fields (StemDesk's defaults where none is given)."""
    from ..training.augment import NO_AUGMENTATION, Augmentation

    changes = _augmentation(args)
    if not (changes or args.no_augment or args.remix is not None):
        return {}
    try:
        augmentation = replace(NO_AUGMENTATION if args.no_augment else Augmentation(), **changes)
    except ValueError as error:
        raise StemDeskError(f"Augmentation: {error}.") from None
    remix = args.remix if args.remix is not None else (0.0 if args.no_augment else 0.5)
    return {"augmentation": augmentation, "remix": remix}


def _train_from_scratch(args: argparse.Namespace, show: Callable[[dict], None], out: TextIO) -> int:
    from ..core.postprocess import PostProcessing
    from ..session import tasks

    try:
        post = PostProcessing(args.wiener, args.vocal_gate, args.binarise)
    except ValueError as error:
        raise StemDeskError(f"Post-processing: {error}.") from None
    teacher = None
    if args.teacher:
        from ..training.corpus import Teacher

        teacher = Teacher.from_options(args)
    request = tasks.Scratch(
        data=args.data,
        name=args.out,
        estimator=args.estimator,
        recipe=args.recipe,
        minutes=args.minutes,
        mapping=args.mapping,
        valid=args.valid,
        settings=dict(args.settings),
        lr=args.lr,
        batch=args.batch,
        steps=args.steps,
        pretrain_steps=args.pretrain_steps,
        no_augmentation=args.no_augment,
        augmentation=_augmentation(args),
        remix=args.remix,
        postprocessing=post,
        ema=args.ema,
        threads=args.threads,
        seed=args.seed,
        device=args.device,
        teacher=teacher,
        split=args.split,
        start=args.base,
        folds=args.folds,
    )
    made = tasks.train_from_scratch(request).run(show)
    scores = ", ".join(f"{k} {v:.2f}" for k, v in made["valid_usdr"].items())
    pre = made["pretraining"]
    before = f" after {pre['steps']} autoencoder pre-training steps" if pre else ""
    what = made["paper"] or made["estimator"]
    if made.get("split"):
        baselines = "; ".join(
            f"{label} " + ", ".join(f"{k} {v:.2f}" for k, v in medians.items())
            for label, medians in made["split"]["baselines"].items()
        )
        what = f"splits {made['split']['parent']} ({baselines} for the baselines)"
    unheard = made.get("unheard")
    if unheard:
        folds = len(unheard["folds"])
        made["best_step"] = f"{made['steps']}, the median over {folds} folds of songs each fold never heard"
    print(
        f"{made['model']}: {what}, recipe {made['recipe']}, trained "
        f"{'on from ' + args.base if args.split and args.base else 'from scratch'} for "
        f"{made['steps']} steps{before}; validation uSDR at step {made['best_step']}: {scores}.",
        file=out,
    )
    print(
        f"  installed in {made['folder']} ({made['weights_bytes'] / 1e6:.1f} MB); run folder {made['run_folder']}",
        file=out,
    )
    if made["over_size_limit"]:
        print("  its weights are over the 10 MB a research model may ship with: make it smaller (--set)", file=out)
    if made["research_only"]:
        print(f"  {made['research_only']}", file=out)
    if unheard and unheard.get("caution"):
        print(f"  {unheard['caution']}", file=out)
    if made.get("split"):
        parent = made["split"]["parent"]
        print(
            f"  Use it with stemdesk separate SONG --split {parent}={made['model']}, or stemdesk split "
            f"{parent.upper()}.wav --model {made['model']}.",
            file=out,
        )
    else:
        print(f"  Use it with --model {made['model']}; `stemdesk models --all` lists it under Research.", file=out)
    return 0
