"""`stemdesk separate` and `stemdesk demo`: songs into OUTDIR/<song name>/<stem>.<ext>, each with its null check."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..core.errors import StemDeskError
from ..io.formats import READABLE
from ..io.registry import Registry
from .common import EXIT_NULL, ProgressBar, count
from .options import (
    add_device_option,
    add_excerpt_options,
    add_format_options,
    add_instrumental_option,
    add_model_option,
    add_outdir_options,
    add_postprocessing_options,
    add_precision_option,
    add_segment_option,
    add_session_option,
    add_threads_option,
)

if TYPE_CHECKING:
    from ..jobs.separate import SeparateResult


def add_parsers(commands: Any, sessions: Callable[[str], list[str]]) -> None:
    sep = commands.add_parser(
        "separate",
        help="separate songs into stems",
        description=f"Separate songs ({READABLE}) into OUTDIR/<song name>/<stem>.<ext>.",
    )
    sep.add_argument("inputs", nargs="+", metavar="INPUT", type=Path, help="the songs to separate")
    add_outdir_options(sep)
    add_separation_options(sep, sessions)
    sep.set_defaults(handler=run_separate)

    split = commands.add_parser(
        "split",
        help="split a stem file you have with a split model (vocals into lead and backing, drums into the kit)",
        description="Split stem files into DIR/<stem name>/<child>.<ext> with a split model; the children add up "
        "to the stem exactly (16- and 24-bit: bit for bit) and a certificate says so. DIR: beside each stem.",
    )
    split.add_argument("inputs", nargs="+", metavar="STEM", type=Path, help="the stem files to split")
    split.add_argument("--model", required=True, help="the split model (`stemdesk models --all` lists them)")
    split.add_argument(
        "-o", "--outdir", type=Path, help="the folder for DIR/<stem name>/ (default: the folder of each stem)"
    )
    split.add_argument(
        "--overwrite", action="store_true", help="replace the children an earlier split left in DIR/<stem name>"
    )
    add_format_options(split)
    add_device_option(split)
    add_precision_option(split)
    add_threads_option(split)
    add_segment_option(split)
    split.set_defaults(handler=run_split)

    demo = commands.add_parser("demo", help="separate a demo song (fetched from Debian or synthesised)")
    add_outdir_options(demo)
    add_separation_options(demo, sessions)
    demo.set_defaults(handler=run_demo)


def add_separation_options(parser: argparse.ArgumentParser, sessions: Callable[[str], list[str]]) -> None:
    """What `separate` and `demo` take beyond their songs and folder."""
    add_model_option(parser)
    add_format_options(parser)
    add_device_option(parser)
    add_precision_option(parser)
    add_threads_option(parser)
    add_excerpt_options(parser)
    add_segment_option(parser)
    add_session_option(parser, sessions, "also write DAW sessions or DJ stem files")
    add_instrumental_option(parser, "instrumental.<ext>")
    parser.add_argument(
        "--split",
        action="append",
        default=[],
        metavar="STEM=MODEL",
        help="split a stem further with a split model into <song>/<stem>/<child>.<ext> (e.g. "
        "vocals=stemdesk-vocals-leadback, drums=stemdesk-drumkit, or a catalog model: vocals=mel-roformer-karaoke "
        "into lead and backing, drums=mdx23c-drumsep into the kit's pieces); repeat for more stems",
    )
    parser.add_argument(
        "--clean",
        action="append",
        default=[],
        metavar="STEM=MODEL",
        help="clean a stem up without losing anything: --split with a clean-up model (de-reverb, denoise), whose "
        "children are the stem cleaned and what was taken out, and add up to it exactly (e.g. "
        "vocals=mel-roformer-dereverb-anvuew → <song>/vocals/dry.<ext> and reverb.<ext>; "
        "vocals=mel-roformer-denoise-aufr33 → clean and noise); one split or clean-up per stem",
    )
    parser.add_argument(
        "--midi",
        action="store_true",
        help="also write MIDI from the stems: <stem>.mid beside each and <song>.mid with every track "
        "(see `stemdesk midi`; needs Basic Pitch: stemdesk midi --install)",
    )
    post = parser.add_argument_group("post-processing (each keeps the null)")
    add_postprocessing_options(post)
    post.add_argument(
        "--no-model-postprocessing",
        action="store_true",
        help="leave out the post-processing the model's card asks for (a research model trained with it)",
    )
    post.add_argument(
        "--shifts",
        type=count,
        default=0,
        metavar="N",
        help="average N passes over the song delayed by random offsets of up to 0.5 s (test-time "
        "augmentation, as Demucs's --shifts; N times slower)",
    )


def run_separate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    return separate(args.inputs, args, out, err)


def run_demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..io.demo import make_demo
    from ..session import tasks

    song = make_demo()
    credits = song.with_suffix(".txt")
    about = credits.read_text(encoding="utf-8").strip() if credits.is_file() else "synthesised by StemDesk"
    print(f"Demo song: {song} ({about})", file=out)
    folder = args.outdir / song.stem
    if not args.overwrite and tasks.stems_of(folder, song):  # the demo's own stems, from an earlier run
        print(f"Replacing the demo's stems from an earlier run in {folder}", file=out)
        args.overwrite = True
    return separate([song], args, out, err)


def separate(inputs: Sequence[Path], args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..io.process import default_threads, tune_allocator
    from ..jobs.separate import separate_options
    from ..session import tasks

    tune_allocator()

    options = separate_options(
        model=args.model,
        format=args.format,
        bit_depth=args.bit_depth,
        device=args.device,
        precision=args.precision,
        start=args.start,
        duration=args.duration,
        segment=args.segment,
        wiener=args.wiener,
        vocal_gate=args.vocal_gate,
        binarise=args.binarise,
        shifts=args.shifts,
        model_postprocessing=not args.no_model_postprocessing,
        split=args.split,
        clean=args.clean,
    )
    if args.midi:  # refused before anything is separated when the transcriber is not there
        from ..transcribe.model import basic_pitch_model

        basic_pitch_model()
    folders = tasks.separation_folders(options, args.registry, inputs, args.outdir, overwrite=args.overwrite)
    threads = args.threads if args.threads is not None else default_threads()
    engines = tasks.Engines(args.registry)
    extras = tasks.Extras(args.instrumental, args.session, midi=args.midi)
    unnulled = []  # songs whose written stems failed their null check: the stems stay, the exit code says so
    for path, folder in zip(inputs, folders):
        task = tasks.separate(engines, path, folder, options, extras, threads=threads, overwrite=args.overwrite)
        made = task.run(ProgressBar(path.name))
        result = made.result
        seconds = result.frames / result.info.sample_rate
        print(
            f"{path.name}: {len(result.outputs)} stems in {result.outputs[0].parent} "
            f"({seconds:.1f} s of audio in {result.seconds:.1f} s, {seconds / result.seconds:.1f}x real time, "
            f"model {result.model} on {result.device}, {result.precision})"
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
        for split in made.splits:
            if not print_split(split.parent, split.result, out):
                unnulled.append(f"{path.name} ({split.parent})")
        if made.midi is not None:
            midi = made.midi
            counts = ", ".join(f"{stem} {count}" for stem, count in midi.notes.items())
            print(f"  MIDI: {midi.song} ({midi.timing.tempo:g} BPM; notes: {counts})", file=out)
        print_extras(made.instrumental, made.sessions, out)
    if unnulled:
        print(f"stemdesk: the stems of {', '.join(unnulled)} do not null (see the certificate).", file=err)
        return EXIT_NULL
    _offer_htdemucs(args.model, args.registry, err)
    return 0


def _offer_htdemucs(model: str, registry: Registry | None, err: TextIO) -> None:
    """Once, after a separation with the default model, on stderr when it is a terminal (a script's log would
    spend the one telling): that HTDemucs separates better, and how to install it."""
    from ..session import hints

    if not err.isatty() or (offer := hints.offer_after_separation(model, "cli", registry)) is None:
        return
    print(
        f"\n{offer.text}\nInstall it with `stemdesk models install {offer.model}`, which shows the licence for you "
        "to accept. This tip is not shown again.",
        file=err,
    )
    hints.record("cli", "shown")


def print_extras(instrumental: Path | None, sessions: dict, out: TextIO) -> None:
    """The instrumental and the sessions written beside stems (separate, export)."""
    if instrumental is not None:
        print(f"  instrumental: {instrumental}", file=out)
    for kind, written in sessions.items():
        print(f"  {kind} session: {written.path}", file=out)
        if written.note:
            print(f"    {written.note}", file=out)


def print_split(parent: str, result: SeparateResult, out: TextIO) -> bool:
    """One split's line (its children, model and null); False when its children do not null."""
    children = ", ".join(p.stem for p in result.outputs)
    line = f"  {parent} split by {result.model} into {children} in {result.outputs[0].parent}"
    if result.null is not None:
        line += f"; null-sum check against {parent}: {result.null.verdict}"
    print(line, file=out)
    caution = split_caution(result.model)
    if caution:
        print(f"  caution: {caution}", file=out)
    return result.null is None or result.null.passed


def split_caution(model: str) -> str | None:
    """What the split model's card says a user must know about it (worse than an equal split on unheard songs)."""
    from ..io.model_store import find_model

    try:
        return find_model(model).caution
    except StemDeskError:
        return None


def run_split(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..io.process import default_threads, tune_allocator
    from ..jobs.separate import separate_options
    from ..session import tasks

    tune_allocator()
    options = separate_options(
        model=args.model,
        format=args.format,
        bit_depth=args.bit_depth,
        device=args.device,
        precision=args.precision,
        segment=args.segment,
    )
    folders = tasks.split_folders(args.model, args.registry, args.inputs, args.outdir, args.overwrite)
    threads = args.threads if args.threads is not None else default_threads()
    engines = tasks.Engines(args.registry)
    failed = []
    for path, folder in zip(args.inputs, folders):
        result = tasks.split(engines, path, folder, options, threads=threads).run(ProgressBar(path.name))
        if not print_split(path.stem, result, out):
            failed.append(path.name)
        elif result.certificate is not None:
            print(f"  certificate {result.certificate}", file=out)
    if failed:
        print(f"stemdesk: the children of {', '.join(failed)} do not null (see the certificate).", file=err)
        return EXIT_NULL
    return 0
