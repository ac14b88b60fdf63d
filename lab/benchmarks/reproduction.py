"""Reproduction table: every seed method's recipe trained with the same CPU budget on the same songs, next to the
oracles, and each paper's central claim checked against what was measured.

    .venv/bin/python lab/benchmarks/reproduction.py [--minutes 4] [--only roma-cnn1,pretet-unet] [--threads 1]
        [--teacher htdemucs --teacher-share 0.5 --teacher-targets ...] [--noise RECIPE]

The systems are the recipes of `stemdesk train --recipe` (stemdesk/training/recipes.py), trained from scratch by the
same code (`stemdesk.training.scratch.train_recipe`: pre-training stage, objective, augmentation), so a row is what
`stemdesk train --recipe NAME` makes with that budget. Training songs and validation songs come from ../shared/data,
split by song exactly as for the shipped models (lab/default_models.py); with ``--teacher`` every
recipe also trains on the teacher-labelled corpus (`stemdesk.training.corpus`, the same loading and weighting as
default_models.py), and its card says the weights are for personal and research use only. The songs (and the
corpus) are loaded once, when the first recipe trains. Each system trains for ``--minutes`` of wall-clock time on
one thread, is exported as a model ``repro-<recipe>`` (float16; over 10 MB stops the run) into ``--models-dir``
(default: this checkout's models/, where StemDesk ships them; `stemdesk separate --model repro-<recipe>` runs it, with
the post-processing its card asks for), and is scored on the validation songs with that post-processing:

- uSDR (global SDR per song, the MDX definition), median over songs, on whole songs, and the vocals' margin over
  doing nothing (a quarter of the mixture as the estimate); a system under +3 dB gets a note in its card;
- BSS Eval v4 (museval) median-over-frames SDR / SIR / SAR on a 20-second vocal excerpt of the five validation
  songs with the most vocals, median over excerpts;
- separation speed (seconds of audio per second, one thread), parameter count, size on disk, CPU-minutes and steps.

4-stem systems are also scored on vocals / accompaniment (the sum of their other stems), so every row has those
two columns. The oracles (IRM, IBM at the same STFT as the shipped model, MIX) need no training. Each row goes to
lab/benchmarks/results/reproduction.json as soon as it is scored, and the results section of lab/notes/reproduction.md (the
method section above it is kept) is written again from that file by `lab.reproduction`, with the
claims table. ``--noise RECIPE`` trains one recipe a second time with another seed: the run-to-run noise the claims
are judged against.

Resuming: run folders live in the user cache (``--workdir``) and each recipe checkpoints every
``--checkpoint-minutes``. Running the same command again after a kill resumes the recipe in progress from its
checkpoint with what is left of its budget; recipes already installed with the same setup (trainer settings,
budget, threads, seed, teacher options) are only scored again, and not even that when the results file has their
row for the same weights. So a run carried over several machines resumes from what was committed: the shipped
models and lab/benchmarks/results/reproduction.json. That file also names the labelled songs the rows trained on
(``teacher_songs``, by sha256): later rows train on exactly those, and a song missing from the cache (a new machine)
stops the run with the command that labels it. ``--retrain`` starts the chosen recipes over.
``--decay-minutes M``: the learning rate falls linearly to 0 over each recipe's last M minutes (it is otherwise
constant: the benchmark validates once, at the end, so it is never halved). A larger ``--minutes`` than the results
file's continues that round: each recipe's checkpoint trains on to the new budget, on the same labelled songs, as
long as neither schedule had begun its decay by the checkpoint (`stemdesk.training.scratch.longer_budget`): the rate
before the decay does not depend on the budget, so this is the longer run. The oracle rows are kept; the shorter
round's rows are dropped (git keeps them). ``--warm-restart`` makes a longer round when those checkpoints are gone
(a new machine) or past the start of their decay: each recipe starts from its model of the results file's round,
as committed in ``--models-dir`` (its card's setup must be that round's), with a new optimiser, the rate rising
again over ``--warmup-steps`` and the same final decay; it trains for the minutes the larger ``--minutes`` adds, and
its card's budget counts both runs (steps, CPU-seconds, ``training.budget.warm_restart``). The noise run starts from
its recipe's model too, before that model is replaced, so the two differ only by the restart's random draws.

A recipe that trains exactly as an earlier one and differs only in what separation does after the network
(``pretet-unet-post`` and ``pretet-unet``) takes the earlier one's weights instead of training the same thing again:
its comparison is then paired, the post-processing alone. Two runs may share one machine (``--only`` with disjoint
recipes, one per core): each adds its rows to the results file under a lock.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from scoring import DATA, SOURCES, oracle_row, score, separate_song  # noqa: E402

from lab import reproduction as report  # noqa: E402
from stemdesk.core.errors import StemDeskError  # noqa: E402
from stemdesk.core.estimators import build_estimator  # noqa: E402
from stemdesk.core.postprocess import PostProcessing  # noqa: E402
from stemdesk.core.separator import Separator  # noqa: E402
from stemdesk.io.atomic import atomic_write_bytes  # noqa: E402
from stemdesk.io.model_store import (  # noqa: E402
    WEIGHT_FILES,
    amend_card,
    find_model,
    load_estimator,
    read_card,
    read_weights,
    search_path,
    shipped_models_dir,
    weights_bytes,
    weights_file,
)
from stemdesk.io.paths import cache_dir  # noqa: E402
from stemdesk.training.corpus import Labelled, Teacher, add_teacher  # noqa: E402
from stemdesk.training.data import Song  # noqa: E402
from stemdesk.training.dataset import data_terms, load_songs, song_folder  # noqa: E402
from stemdesk.training.model_card import render  # noqa: E402
from stemdesk.training.options import add_teacher_options  # noqa: E402
from stemdesk.training.recipes import PAPER_RECIPES  # noqa: E402
from stemdesk.training.scratch import (  # noqa: E402
    SIZE_LIMIT,
    Plan,
    ScratchRequest,
    card_facts,
    choose_for_model,
    longer_budget,
    plan,
    prepare_run,
    record_budget,
    train_recipe,
)
from stemdesk.training.train import export_model  # noqa: E402
from stemdesk.training.validation import split  # noqa: E402

# Each system is a recipe of `stemdesk train` (its paper's settings, sized to train on one CPU core).
SYSTEMS = list(PAPER_RECIPES)
# The generated part of lab/notes/reproduction.md starts at this line; everything above it is written by hand.
RESULTS_MARKER = "<!-- Everything below is written by lab/benchmarks/reproduction.py. -->"


def borrow_weights(folder: Path, twin_card) -> None:
    """A twin's weights are stored once: when the file just exported is the twin's own, bit for bit, the card points
    at the twin's (``weights_from``; the store still checks their sha256 against this card) and the copy goes."""
    card = read_card(folder)
    if twin_card.raw.get("weights_from") or card.weights_sha256 != twin_card.weights_sha256:
        return
    raw = {}
    for key, value in card.raw.items():
        raw[key] = value
        if key == "weights_sha256":
            raw["weights_from"] = twin_card.id
    atomic_write_bytes(folder / "card.json", (json.dumps(raw, indent=2) + "\n").encode("utf-8"))
    for name in WEIGHT_FILES:
        (folder / name).unlink(missing_ok=True)


def separator_for(estimator, card) -> Separator:
    """The separator `stemdesk separate` builds for a model: with the post-processing its card asks for."""
    post = PostProcessing.from_card(card.raw.get("postprocessing"))
    return Separator(estimator, "cpu", post.steps(estimator.sources), post.wiener)


def speed(separator: Separator, seconds: float = 30.0) -> float:
    audio = torch.randn(2, int(seconds * 44100)) * 0.1
    separate_song(lambda x: separator(x, 44100).stems, audio[:, : 44100 * 2], 44100)  # warm up
    start = time.perf_counter()
    separate_song(lambda x: separator(x, 44100).stems, audio, 44100)
    return round(seconds / (time.perf_counter() - start), 1)


def cli_null_check(model_id: str, song: Path, outdir: Path) -> dict:
    """Separate a real song with the real CLI (``--model`` picks the system) and null-check the 16-bit stems."""
    import io

    from stemdesk.cli import main as cli

    out, err = io.StringIO(), io.StringIO()
    code = cli(["separate", str(song), "-o", str(outdir), "--model", model_id, "--bit-depth", "16"], out=out, err=err)
    if code != 0:
        return {"separated": False, "error": err.getvalue().strip()}
    stems = sorted((outdir / song.stem).glob("*.wav"))
    out = io.StringIO()
    cli(["nullcheck", str(song), *map(str, stems)], out=out)
    result = json.loads(out.getvalue())
    return {"separated": True, "stems": [p.stem for p in stems], "bit_exact": result["bit_exact"]}


def real_song_excerpt(folder: Path) -> Path:
    """20 seconds of the CC0 validation song with vocals, as 16-bit WAV (the mixture is the sum of the stems)."""
    import soundfile as sf

    path = folder / "sodium-excerpt.wav"
    stems = [
        sf.read(
            str(DATA / "cc0-efree" / "3.Sodium" / f"{s}.ogg"), start=200 * 44100, frames=20 * 44100, dtype="float32"
        )[0]
        for s in SOURCES
    ]
    sf.write(str(path), sum(stems), 44100, subtype="PCM_16")
    return path


def write_doc(results: str) -> None:
    """lab/notes/reproduction.md: the hand-written part up to RESULTS_MARKER as it is, then ``results``."""
    path = ROOT / "lab" / "notes" / "reproduction.md"
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Reproduction\n\n"
    head = text.split(RESULTS_MARKER)[0].rstrip() + "\n\n"
    atomic_write_bytes(path, (head + RESULTS_MARKER + "\n\n" + results).encode("utf-8"))


def write_results(path: Path, results: dict) -> None:
    """The results file and the doc's results section, both from ``results``, each written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(results, indent=1) + "\n").encode("utf-8"))
    write_doc(report.markdown(results, SYSTEMS))


@contextlib.contextmanager
def locked(path: Path):
    """Hold an exclusive lock beside ``path`` (two runs of this benchmark, one per core, share the results file:
    each reads it, adds its rows and writes it whole under the lock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def show(record: dict) -> None:
    """One line of JSON per event (a recipe starting, a recipe scored)."""
    print(json.dumps(record), flush=True)


def check_size(made, model_id: str) -> None:
    """Fail before training when the recipe's weights, stored as float16, would exceed the research models' limit."""
    data, _ = weights_bytes(build_estimator(made.config.estimator, made.config.config), half=True)
    if len(data) > SIZE_LIMIT:
        raise SystemExit(
            f"{model_id}: its weights would take {len(data) / 1e6:.1f} MB as float16, over the {SIZE_LIMIT / 1e6:g} "
            "MB a research model may take. Make the recipe smaller in stemdesk/training/recipes.py."
        )


def round_summary(results: dict) -> dict:
    """A finished round in brief, kept when a longer budget continues it: its budget and each system's vocals."""
    return {
        "minutes": results.get("minutes"),
        "decay_minutes": results.get("decay_minutes") or 0.0,
        "vocals": {
            row["system"]: row["usdr"]["vocals"]
            for row in results["rows"]
            if not row["system"].startswith("oracle_") and "vocals" in row["usdr"]
        },
    }


def budget_of(results: dict) -> tuple:
    """A results file's budget: its minutes and its final decay's (absent before decays existed: none)."""
    return results.get("minutes"), results.get("decay_minutes") or 0.0


def run_setup(made, teacher: Teacher | None) -> dict:
    """What makes two runs of a recipe the same: the trainer's settings (budget, threads and seed included) and the
    teacher's options. A model installed with the same setup is only scored again; a checkpoint of the same setup
    is resumed."""
    settings = {k: v for k, v in asdict(made.config).items() if k not in ("extra", "checkpoint_minutes")}
    return json.loads(json.dumps({"train_config": settings, "teacher": teacher.options() if teacher else None}))


def training_key(setup: dict) -> str:
    """A setup without what only separation uses (the post-processing): two recipes with the same key train the
    same network the same way (pretet-unet and pretet-unet-post), so the second takes the first's weights."""
    config = {k: v for k, v in setup["train_config"].items() if k != "postprocessing"}
    return json.dumps({**setup, "train_config": config}, sort_keys=True)


def installed_setup(model_id: str) -> dict | None:
    """The setup a repro model was trained with, as its card records it once training and export finished."""
    try:
        return find_model(model_id).raw.get("reproduction", {}).get("setup")
    except StemDeskError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=4.0, help="wall-clock budget of each recipe")
    parser.add_argument(
        "--decay-minutes",
        type=float,
        default=0.0,
        help="the learning rate falls linearly to 0 over each recipe's last M minutes (default: no decay)",
    )
    parser.add_argument("--only", help="comma-separated systems (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="train the chosen recipes again from the start, even when installed with the same setup (a killed "
        "--retrain run is resumed by running it again without --retrain)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=cache_dir() / "reproduction",
        help="run folders (checkpoints) of the recipes (default: the user cache, outside the repository)",
    )
    parser.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=2.0,
        help="checkpoint each recipe this often, so a killed run loses at most this much of it",
    )
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=shipped_models_dir(),
        help="where the trained models go (default: this checkout's models/, where StemDesk ships them; a model "
        "found there with the same setup and a results row for its weights is neither trained nor scored again)",
    )
    add_teacher_options(parser, "the models")
    parser.add_argument(
        "--noise",
        metavar="RECIPE",
        help="also train RECIPE with seed 1 (system RECIPE@seed1): the run-to-run noise the claims are judged against",
    )
    parser.add_argument(
        "--warm-restart",
        action="store_true",
        help="a longer round that starts each recipe from its model of the results file's round (installed in "
        "--models-dir with that round's setup) instead of from scratch: a new optimiser, the rate back up over "
        "--warmup-steps, the same final decay, the earlier round's minutes counted in --minutes. For when that "
        "round's checkpoints are gone (another machine) or past the start of their decay",
    )
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=report.WARMUP_STEPS,
        help=f"with --warm-restart: steps over which the rate rises from 0 to the recipe's (default {report.WARMUP_STEPS})",
    )
    parser.add_argument(
        "--cli-check",
        action="store_true",
        help="only run every trained system through the CLI on a real song and null-check it",
    )
    args = parser.parse_args()
    args.models_dir = args.models_dir.resolve()
    if args.models_dir not in [folder.resolve() for folder in search_path()]:
        # The trained models are loaded and run through the CLI by id: a folder StemDesk does not search yet joins
        # its search path for this run (and its CLI, which runs in this process).
        os.environ["STEMDESK_MODELS_PATH"] = os.pathsep.join(
            p for p in (os.environ.get("STEMDESK_MODELS_PATH", ""), str(args.models_dir)) if p
        )
    results_path = ROOT / "lab" / "benchmarks" / "results" / "reproduction.json"
    if args.cli_check:
        saved = json.loads(results_path.read_text())
        for row in saved["rows"]:
            if row.get("recipe") in SYSTEMS and (not args.only or row["system"] in args.only.split(",")):
                with tempfile.TemporaryDirectory() as temp:
                    row["cli"] = cli_null_check(
                        model_id_of(row["system"]), real_song_excerpt(Path(temp)), Path(temp) / "out"
                    )
                show({"system": row["system"], "cli": row["cli"]})
        write_results(results_path, saved)
        return
    chosen = args.only.split(",") if args.only else list(SYSTEMS)
    unknown = [name for name in chosen + ([args.noise] if args.noise else []) if name not in SYSTEMS]
    if unknown:
        raise SystemExit(f"unknown systems {unknown}; the systems are the recipes: {', '.join(SYSTEMS)}")
    try:
        teacher = Teacher.from_options(args)
    except StemDeskError as error:
        raise SystemExit(f"--teacher: {error}") from None
    torch.set_num_threads(args.threads)
    if not (DATA / "cc0-efree").is_dir():
        raise SystemExit(f"{DATA} is missing: the reproduction table needs ../shared/data")
    train_dirs, valid_dirs = split(DATA)
    valid = load_songs(valid_dirs, SOURCES)
    loaded: dict[str, tuple[list[Song], Labelled | None]] = {}

    def training_songs() -> tuple[list[Song], Labelled | None]:
        """The training songs (with the teacher's, when asked for), loaded the first time a recipe trains and kept
        for every other."""
        if "songs" not in loaded:
            started = time.monotonic()
            train = load_songs(train_dirs, SOURCES)
            # the labelled songs of the rows already in the results file, so that every row trains on the same
            # songs even when the cache has been labelled further (or made again on another machine)
            songs = results.get("teacher_songs")
            try:
                labelled = add_teacher(train, teacher, songs=songs) if teacher is not None else None
            except StemDeskError as error:
                raise SystemExit(f"--teacher: {error}") from None
            if labelled is not None:
                results["teacher_songs"] = sorted(labelled.song_sha256)
            show(
                {
                    "loaded": len(train),
                    "teacher_windows": labelled.windows if labelled else 0,
                    "seconds": round(time.monotonic() - started),
                }
            )
            loaded["songs"] = (train, labelled)
        return loaded["songs"]

    def read_previous() -> dict:
        return json.loads(results_path.read_text()) if results_path.is_file() else {"rows": []}

    previous = read_previous()
    results = {
        "minutes": args.minutes,
        "decay_minutes": args.decay_minutes,
        "setup": json.loads(json.dumps({"threads": args.threads, "teacher": teacher.options() if teacher else None})),
        "rows": [],
    }
    # Rows of another budget, thread count or data would sit beside this run's as if comparable: they are dropped.
    # A larger budget with the same setup continues the same run (prepare_run carries each recipe's checkpoint on):
    # it trains on the same labelled songs, and the oracles, which no budget changes, are kept.
    same_setup = previous.get("setup") == results["setup"]
    restart = None
    if args.warm_restart:
        restart = previous.get("warm_restart") if budget_of(previous) == budget_of(results) else None
        if restart is None:
            restart = warm_restart_of(previous, same_setup, args)
        results["warm_restart"] = restart
    same = same_setup and budget_of(previous) == budget_of(results) and previous.get("warm_restart") == restart
    kept = [row for row in previous["rows"] if same or (same_setup and row["system"].startswith("oracle_"))]
    rows = {row["system"]: row for row in kept}
    if same_setup and previous.get("teacher_songs"):
        results["teacher_songs"] = previous["teacher_songs"]
    # What each earlier budget of the same run measured stays, in brief: whether a longer budget helped.
    results["earlier"] = previous.get("earlier", []) if same_setup else []
    if same_setup and not same and any(not r["system"].startswith("oracle_") for r in previous["rows"]):
        results["earlier"] = [*results["earlier"], round_summary(previous)]
    mine: set[str] = set()  # the rows this run scored: another run's rows in the file are kept as it wrote them

    def save(lock: bool = True) -> None:
        """Add this run's rows to the results file as it is now (another run's rows in it are kept)."""
        order = [f"oracle_{k}" for k in ("irm", "ibm", "mix")] + [n for s in SYSTEMS for n in (s, f"{s}@seed1")]
        with locked(results_path) if lock else contextlib.nullcontext():
            now = read_previous()
            if (budget_of(now), now.get("setup")) == (budget_of(results), results["setup"]):
                theirs = now.get("teacher_songs")
                if theirs and results.setdefault("teacher_songs", theirs) != theirs:
                    raise SystemExit(
                        "Another run of this benchmark trained on other labelled songs; run one at a time."
                    )
                for row in now["rows"]:
                    if row["system"] not in mine:
                        rows[row["system"]] = row
            results["rows"] = [rows[name] for name in order if name in rows]
            write_results(results_path, results)

    # The oracles need no training: scored once (BSS Eval makes them slow, minutes) and kept in the results file;
    # under the lock, so that a run started beside this one waits for them instead of scoring them again.
    with locked(results_path):
        earlier = {row["system"]: row for row in read_previous()["rows"] if row["system"].startswith("oracle_")}
        for kind in ("irm", "ibm", "mix"):
            name = f"oracle_{kind}"
            if name not in earlier or (kind == "mix" and "mixture_as_vocals" not in earlier[name]):
                rows[name] = oracle_row(kind, valid)
                mine.add(name)
                show({"system": name, "usdr": rows[name]["usdr"]})
            else:
                rows[name] = earlier[name]
        save(lock=False)
    terms = data_terms([song_folder(p) for p in train_dirs + valid_dirs])
    systems = [(name, name, 0) for name in chosen] + ([(f"{args.noise}@seed1", args.noise, 1)] if args.noise else [])
    if restart is not None:  # a noise run starts from its recipe's model: before that model is trained on
        systems.sort(key=lambda system: system[2] == 0)
    if args.retrain:  # every chosen recipe starts over; a kill after this is resumed by running without --retrain
        for system, _, _ in systems:
            (args.workdir / system / "setup.json").unlink(missing_ok=True)  # prepare_run then empties the folder
            if installed_setup(model_id_of(system)) is not None:
                amend_card(args.models_dir / model_id_of(system), {"reproduction": {}})

    def planned(
        system: str,
        recipe: str,
        seed: int,
        minutes: float = args.minutes,
        decay: float = args.decay_minutes,
        restart: dict | None = restart,
    ) -> tuple[ScratchRequest, Plan, dict]:
        """The request, the plan and the setup of a system, as this run trains it (or, given another budget and
        warm restart, as the round of that budget trained it). A warm restart trains for the minutes its round
        adds."""
        request = ScratchRequest(
            data=[DATA / "musdb7-train", DATA / "cc0-efree"],
            name=model_id_of(system),
            recipe=recipe,
            minutes=minutes - (restart["from_minutes"] if restart else 0.0),
            threads=args.threads,
            seed=seed,
            teacher=teacher,
        )
        made = plan(request)
        made.config.validate_every = 10**9  # one validation round, at the end, on one song (scoring follows)
        made.config.threads = args.threads
        made.config.checkpoint_minutes = args.checkpoint_minutes
        made.config.decay_minutes = decay
        if restart is None:
            return request, made, run_setup(made, teacher)
        made.config.warmup = restart["warmup_steps"]
        return request, made, {**run_setup(made, teacher), "warm_restart": restart}

    def start_of(system: str, recipe: str, seed: int) -> tuple[str, dict, str]:
        """A warm restart's start: the model of the round before, which must be installed as that round trained
        it. A noise run starts from its recipe's model (seed 0), so that the two differ only by what the warm
        restart draws; it runs first, before that model is replaced. Returns the model's id, its card's training
        budget and its weights' sha256."""
        assert restart is not None
        before = restart["from_round"]
        owner = recipe if seed else system
        model_id = model_id_of(owner)
        earlier = planned(owner, recipe, 0, before["minutes"], before["decay_minutes"], before.get("warm_restart"))
        if installed_setup(model_id) != earlier[2]:
            raise SystemExit(
                f"--warm-restart: {model_id} in {args.models_dir} is not the model the {before['minutes']:g}-minute "
                f"round trained (its card's reproduction.setup differs), so {system} has no start. Restore it from "
                "git, or train the round from scratch (without --warm-restart)."
            )
        card = find_model(model_id)
        return model_id, card.raw.get("training", {}).get("budget", {}), card.weights_sha256

    # training_key -> the first recipe (in SYSTEMS order) trained that way: a later one takes its weights
    trained_as: dict[str, str] = {}
    for name in SYSTEMS:
        trained_as.setdefault(training_key(planned(name, name, 0)[2]), name)
    for index, (system, recipe, seed) in enumerate(systems, 1):
        began = time.monotonic()
        model_id = model_id_of(system)
        request, made, setup = planned(system, recipe, seed)
        check_size(made, model_id)
        folder = args.models_dir / model_id
        workdir = args.workdir / system
        done = rows.get(system)
        installed = installed_setup(model_id) == setup
        if installed and done is not None and done.get("weights_sha256") == find_model(model_id).weights_sha256:
            show({"system": system, "of": f"{index}/{len(systems)}", "action": "done already"})
            write_note(folder, done, rows.get(report.BASELINE), args.minutes, results["earlier"])
            continue
        if seed and done is not None and installed_setup(model_id) is None:
            # A noise run's model is a measurement, not shipped: on another machine its row of this round is what
            # is left of it, and training it again could not start where it did (a warm restart from its recipe's
            # model, which has been trained on since).
            show({"system": system, "of": f"{index}/{len(systems)}", "action": "done already (its row; no model)"})
            continue
        twin = trained_as[training_key(setup)] if seed == 0 else system
        twin = None if twin == system else twin
        if twin is not None and not installed:
            # The same network trained the same way, only separated with other post-processing: its weights are
            # the twin's (a paired comparison of the post-processing, and no second training of the same thing)
            if installed_setup(model_id_of(twin)) != planned(twin, twin, 0)[2]:
                raise SystemExit(f"{system} shares {twin}'s training: run {twin} first (it comes first in SYSTEMS).")
            show({"system": system, "of": f"{index}/{len(systems)}", "action": f"weights of {twin}"})
            train, labelled = training_songs()
            twin_card = find_model(model_id_of(twin))
            estimator, _ = load_estimator(twin_card)
            facts = card_facts(
                request, made, terms, [p.name for p in train_dirs], [p.name for p in valid_dirs], {}, labelled, train
            )
            facts["description"] += f", reproduction-table budget (lab/benchmarks/reproduction.py): {twin}'s weights"
            step = twin_card.raw.get("metrics", {}).get("step", 0)
            export_model(folder, model_id, facts, half=True)(estimator, {"valid_usdr": {}, "songs": {}, "step": step})
            amend_card(
                folder,
                {
                    "training": twin_card.raw["training"],
                    "weights_bytes": weights_file(folder).stat().st_size,
                    "reproduction": {"setup": setup, "weights_of": twin},
                },
            )
            borrow_weights(folder, twin_card)
        elif not installed:
            train, labelled = training_songs()
            start = start_of(system, recipe, seed) if restart is not None else None
            earlier = prepare_run(workdir, setup, continues=longer_budget(setup))
            spent = (earlier or {}).get("seconds", 0.0) / 60
            show(
                {
                    "system": system,
                    "of": f"{index}/{len(systems)}",
                    "action": ("resume" if earlier else "train") + (f" from {start[0]}" if start else ""),
                    "from_step": (earlier or {}).get("step", 0),
                    "minutes_left": round(max(0.0, request.minutes - spent), 2),
                }
            )
            wall, cpu = time.monotonic(), time.process_time()
            facts = card_facts(
                request,
                made,
                terms,
                [p.name for p in train_dirs],
                [p.name for p in valid_dirs],
                {},
                labelled,
                train,
            )
            facts["description"] += ", reproduction-table budget (lab/benchmarks/reproduction.py)"
            init = load_estimator(start[0])[0].state_dict() if start else None
            trainer, pretrained = train_recipe(
                made,
                train,
                valid[:1],
                workdir,
                export=None,
                progress=None,
                cancel=None,
                whole_budget=True,
                init_state=init,
            )
            if trainer.step == 0:
                raise SystemExit(f"{system}: --minutes {args.minutes:g} left no time for a training step.")
            export_model(folder, model_id, facts, half=True)(
                trainer.estimator, {"valid_usdr": {}, "songs": {}, "step": trainer.step}
            )
            if made.recipe.threshold is not None:
                choice = choose_for_model(folder, made.recipe.threshold, train)
                show({"system": system, "threshold": choice["key"], "chosen": choice["chosen"]})
            record_budget(
                folder, made.config, request.minutes, trainer, pretrained, wall, cpu, start[1:] if start else None
            )
            amend_card(folder, {"reproduction": {"setup": setup}})  # last: only now is it installed
        else:
            show({"system": system, "of": f"{index}/{len(systems)}", "action": "re-score"})
        size = len(read_weights(weights_file(folder)))  # the stored safetensors, as exported
        if size > SIZE_LIMIT:
            raise SystemExit(
                f"{model_id}: its weights take {size / 1e6:.1f} MB on disk, over the {SIZE_LIMIT / 1e6:g} MB a "
                "research model may take (float16 was refused: a parameter is beyond its range, or the recipe is "
                "too large). Make the recipe smaller in stemdesk/training/recipes.py."
            )
        estimator, card = load_estimator(model_id)
        separator = separator_for(estimator, card)
        rate = valid[0].sample_rate

        def run(index, mix, separator=separator, rate=rate):
            return separate_song(lambda x: separator(x, rate).stems, mix, rate)

        row = score(
            system,
            list(estimator.sources),
            run,
            valid,
            speed(separator),
            sum(p.numel() for p in estimator.parameters()),
        )
        budget = card.raw.get("training", {}).get("budget", {})
        taught = card.raw.get("training_data", {}).get("teacher")
        row.update(
            {
                "paper": PAPER_RECIPES[recipe].paper,
                "variant": PAPER_RECIPES[recipe].variant + (f", seed {seed}" if seed else ""),
                "recipe": recipe,
                "seed": seed,
                "steps": budget.get("steps"),
                "cpu_minutes": round(budget["training_cpu_seconds"] / 60, 1)
                if "training_cpu_seconds" in budget
                else None,
                "weights_bytes": size,
                "weights_sha256": card.weights_sha256,
                "loss_trend": budget.get("loss_trend"),
                "teacher": {k: taught[k] for k in ("model", "minutes", "drawn_share_per_source")} if taught else None,
            }
        )
        with tempfile.TemporaryDirectory() as temp:
            row["cli"] = cli_null_check(model_id, real_song_excerpt(Path(temp)), Path(temp) / "out")
        rows[system] = row
        mine.add(system)
        save()
        baseline = rows.get(report.BASELINE)
        write_note(folder, row, baseline, args.minutes, results["earlier"])
        show(
            {
                "system": system,
                "of": f"{index}/{len(systems)}",
                "scored": True,
                "steps": row["steps"],
                "cpu_minutes": row["cpu_minutes"],
                "usdr": row["usdr"],
                "vs_nothing_db": report.vs_mixture(row, baseline),
                "weights_mb": round(size / 1e6, 2),
                "seconds": round(time.monotonic() - began),
            }
        )


def write_note(folder: Path, row: dict, baseline: dict | None, minutes: float, earlier: list) -> None:
    """The card's reproduction facts from the system's row: its validation scores, its vocals over doing nothing
    and, below the bar, the note saying what was measured and why (written again on every run, so a card follows the
    rule as it is now)."""
    card = read_card(folder)
    facts = {
        "reproduction": {
            **card.raw.get("reproduction", {}),
            "vocals_vs_nothing_db": report.vs_mixture(row, baseline),
            "note": report.below_bar_note(row, baseline, minutes, earlier),
        },
        "metrics": {**card.raw.get("metrics", {}), **report.card_metrics(row, card.sources)},
    }
    if any(facts[key] != card.raw.get(key) for key in facts):
        written = amend_card(folder, facts)
        atomic_write_bytes(folder / "README.md", render(written.raw).encode("utf-8"))


def warm_restart_of(previous: dict, same_setup: bool, args: argparse.Namespace) -> dict:
    """What a --warm-restart round starts from: the round in the results file (``previous``), which must have the
    same setup (threads, teacher) and a smaller budget."""
    minutes, decay = budget_of(previous)
    trained = [row for row in previous.get("rows", []) if not row["system"].startswith("oracle_")]
    if not same_setup or not trained or minutes is None or minutes >= args.minutes:
        raise SystemExit(
            "--warm-restart continues the round in lab/benchmarks/results/reproduction.json from its models: it needs "
            "that round's rows, the same --threads and teacher options, and a larger --minutes than its "
            f"{minutes}."
        )
    if args.minutes - minutes <= args.decay_minutes:
        raise SystemExit(f"--warm-restart: the {args.minutes - minutes:g} minutes it adds must outlast the decay.")
    round_ = {"minutes": minutes, "decay_minutes": decay}
    if previous.get("warm_restart"):
        round_["warm_restart"] = previous["warm_restart"]
    return {"from_minutes": minutes, "from_round": round_, "warmup_steps": args.warmup_steps}


def model_id_of(system: str) -> str:
    """The installed model of a system: repro-<recipe>, or repro-<recipe>-seed1 for the noise run."""
    return "repro-" + system.replace("@", "-")


if __name__ == "__main__":
    main()
