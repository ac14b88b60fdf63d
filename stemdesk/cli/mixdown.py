"""What is made of stems already written: `stemdesk nullcheck` (do they sum to the song), `stemdesk remix` (one
file through a preset or a mix) and `stemdesk export` (DAW sessions, NI Stem files, the instrumental)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from ..core.errors import StemDeskError
from ..io.registry import Registry
from ..mixer.mix import PRESETS
from .common import EXIT_NULL, ProgressBar
from .options import add_format_options, add_instrumental_option, add_session_option
from .separate import print_extras


def add_nullcheck_parser(commands: Any) -> None:
    null = commands.add_parser(
        "nullcheck",
        help="check that stems sum back to the mixture",
        description="Print one JSON line: max_abs, peak_dbfs, rms_dbfs (null = silence), "
        "bit_exact; exit 3 when the stems do not null within the format's "
        "tolerance (bit-exact for 16/24-bit PCM, -138 dBFS for float).",
    )
    null.add_argument("mix", type=Path, help="the original song")
    null.add_argument("stems", nargs="+", type=Path, help="stem files, or one folder written by `separate`")
    null.add_argument(
        "--regions",
        type=int,
        default=5,
        metavar="N",
        help="list the N one-second windows where the residual is loudest",
    )
    null.set_defaults(handler=run_nullcheck)


def add_remix_export_parsers(commands: Any, sessions: Callable[[str], list[str]]) -> None:
    remix = commands.add_parser(
        "remix",
        help="render a remix of a folder of stems",
        description="Render STEMS_DIR through a preset or a mix file (JSON: gains, pans, "
        "mutes, effects) into one file; a certificate is written beside it.",
    )
    remix.add_argument("stems_dir", type=Path, help="a folder of stems written by `separate`")
    how = remix.add_mutually_exclusive_group()
    how.add_argument("--preset", choices=PRESETS, help="a ready-made mix")
    _add_mix_option(how, "a mix file, or a project (.stemdesk) whose mix to render")
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
    _add_output_option(remix, "the file to write")
    add_format_options(
        remix,
        "the remix's",
        default=None,
        default_text="-o's extension, else the stems' own format",
        depth_text="the stems' own, so a unity mix stays exact",
    )
    _add_mixture_option(remix, "to check that unity mixes null against it")
    remix.set_defaults(handler=run_remix)

    export = commands.add_parser(
        "export",
        help="write DAW sessions (and the instrumental) around stems",
        description="Write DAW sessions referring to STEMS_DIR: DAWproject 1.0 (stems "
        "embedded), REAPER .rpp (stems referenced in place), Ardour 7, AAF; or NI Stem files for DJ software "
        "(OUT.stem.mp4 in ALAC, OUT.aac.stem.mp4 in AAC). The MIDI `stemdesk midi` wrote beside the stems goes into "
        "the DAW sessions as MIDI tracks.",
    )
    export.add_argument("stems_dir", type=Path, help="a folder of stems written by `separate`")
    add_session_option(export, sessions, "the DAW sessions or DJ stem files to write")
    _add_mix_option(export, "gains, pans, mutes, effects and automation")
    export.add_argument(
        "--tempo",
        type=float,
        help="session tempo in BPM (default: the tempo `stemdesk midi` read from the stems, else none / 120 for "
        "REAPER and Ardour)",
    )
    export.add_argument(
        "--loop",
        metavar="START-END",
        help="a loop in seconds of the song, e.g. 12-20.5, marked as the loop in Ardour sessions (default: the loop "
        "of the project given to --mix, if any)",
    )
    add_instrumental_option(export, '"OUTPUT instrumental.<ext>"')
    _add_mixture_option(
        export, "checks the instrumental, and is the mix track of an NI Stem file (else the stems' sum is)"
    )
    _add_output_option(export, "session path without extension")
    export.set_defaults(handler=run_export)


def _add_mix_option(parser: Any, what: str) -> None:
    parser.add_argument("--mix", type=Path, metavar="MIX.json", help=what)


def _add_mixture_option(parser: Any, what: str) -> None:
    parser.add_argument("--mixture", type=Path, metavar="SONG", help=f"the original song: {what}")


def _add_output_option(parser: Any, what: str) -> None:
    parser.add_argument("-o", "--output", type=Path, required=True, help=what)


def mix_file(path: Path, registry: Registry | None = None):
    """--mix: a mix file (MIX.json) or a project (.stemdesk), whose saved mix is used; effects may be plugins'."""
    from ..export.remix import mix_from_file
    from ..session import project as projects

    if path.suffix == projects.SUFFIX:
        return projects.load(path, registry).mix
    return mix_from_file(path, registry)


def run_remix(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..io.stems import find_stems
    from ..session import tasks

    stems = find_stems(args.stems_dir)
    mix = tasks.remix_mix(
        stems,
        args.preset,
        args.amount,
        mix_file(args.mix, args.registry) if args.mix else None,
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
    caution = tasks.split_cautions(args.stems_dir).get("vocals") if args.preset == "karaoke-backing" else None
    if caution:
        print(f"  karaoke-backing keeps the backing vocals of the vocals' split. Caution: {caution}", file=out)
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


def run_export(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..session import tasks

    if not args.session and not args.instrumental:
        raise StemDeskError("Nothing to export: give --session dawproject,rpp and/or --instrumental.")
    mix = mix_file(args.mix, args.registry) if args.mix else None
    choice = tasks.ExportChoice(
        instrumental=args.instrumental, sessions=args.session, tempo=args.tempo, loop=_loop(args.loop, args.mix)
    )
    made = tasks.export(args.stems_dir, args.output, choice, mix, args.mixture, registry=args.registry).run()
    print_extras(made.instrumental, made.sessions, out)
    return 0


def _loop(text: str | None, mix: Path | None) -> tuple[float, float] | None:
    """--loop START-END, else the loop saved in the project given to --mix."""
    from ..session import project as projects

    if text is None:
        if mix is not None and mix.suffix == projects.SUFFIX:
            loop = projects.load(mix).view.get("loop")
            return (float(loop[0]), float(loop[1])) if loop else None
        return None
    try:
        start, end = (float(part) for part in text.split("-", 1))
    except ValueError:
        raise StemDeskError(
            f"--loop {text!r}: give the loop as START-END in seconds of the song, e.g. 12-20.5."
        ) from None
    if not 0 <= start < end:
        raise StemDeskError(f"--loop {text!r}: the loop must start at 0 s or later and end after it starts.")
    return start, end


def run_nullcheck(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..session import tasks

    result = tasks.nullcheck(args.mix, args.stems, args.regions).run()
    print(json.dumps(result.as_dict()), file=out)
    return 0 if result.passed else EXIT_NULL
