"""The flags several commands take, each defined once here and added by every command that takes it (as
`stemdesk.training.options.add_teacher_options` does for the trainer's front ends). Where commands differ, a
parameter says how (what the flag is about, its default); the flag's name, type and choices never differ.

Each function takes a parser or an argument group. No torch here: the parser is built before a command runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.defaults import DEFAULT_SEGMENT_SECONDS
from ..core.device import DEVICES
from ..core.precision import PRECISIONS
from ..io.formats import BIT_DEPTHS, DEFAULT_DEPTH, DEFAULT_FORMAT, OUTPUT_FORMATS
from ..io.model_store import DEFAULT_MODEL
from .common import DEFAULT_OUTDIR, count, pair, parse_time

MODEL_HELP = (
    f"model id (default {DEFAULT_MODEL}; see `stemdesk models`), or an ensemble that averages several: A+B, "
    "or A*2+B to weigh A twice"
)
SESSION_KINDS = (
    "aaf (media embedded), aaf-linked (media linked), ardour (an Ardour 7 session folder), dawproject, rpp, "
    "stems-mp4 (NI Stem, ALAC: nulls), stems-mp4-aac (NI Stem, AAC: smaller, does not null), and what plugins add"
)


def add_model_option(parser: Any) -> None:
    """--model: a model id or an ensemble (separate, demo, batch)."""
    parser.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)


def add_device_option(
    parser: Any,
    default: str = "auto",
    runs: str = "the model runs",
    auto: str = "a CUDA or Apple GPU when there is one, else the CPU",
) -> None:
    """--device: ``runs`` says what runs there (the model, each worker's model, the training); ``auto`` what 'auto'
    picks for this command (`stemdesk.core.device.resolve_device`)."""
    parser.add_argument(
        "--device",
        default=default,
        choices=DEVICES,
        help=f"where {runs} (default {default}" + (f": {auto})" if default == "auto" else "; auto: " + auto + ")"),
    )


def add_precision_option(parser: Any) -> None:
    """--precision: the arithmetic the model runs at (separate, demo, batch)."""
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="auto (default): bf16 where this CPU or GPU computes it in hardware and the model has parts measured "
        "to keep its stems (HTDemucs, the shipped split models), else fp32; fp32 or bf16 force one",
    )


def add_threads_option(parser: Any, default: str = "all cores but one, at most 8") -> None:
    """--threads: CPU threads for torch and numpy in this process; ``default`` says what none gives."""
    parser.add_argument("--threads", type=int, help=f"CPU threads (default: {default})")


def add_format_options(
    parser: Any,
    what: str = "the stems'",
    default: str | None = DEFAULT_FORMAT,
    default_text: str | None = None,
    depth_text: str = DEFAULT_DEPTH,
) -> None:
    """--format and --bit-depth of what a command writes (``what``: "the stems'", "the remix's"); ``default_text``
    and ``depth_text`` say what is written when they are not given."""
    parser.add_argument(
        "--format",
        default=default,
        choices=OUTPUT_FORMATS,
        help=f"{what} file format (default {default_text or default})",
    )
    parser.add_argument("--bit-depth", choices=BIT_DEPTHS, help=f"PCM depth or 32-bit float (default {depth_text})")


def add_segment_option(parser: Any) -> None:
    """--segment: seconds of audio per chunk the model sees (separate, demo, batch)."""
    parser.add_argument(
        "--segment", type=float, default=DEFAULT_SEGMENT_SECONDS, help="seconds per chunk (smaller uses less memory)"
    )


def add_outdir_options(parser: Any) -> None:
    """-o/--outdir and --overwrite of the commands that write OUTDIR/<song name>/ (separate, demo)."""
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


def add_session_option(parser: Any, sessions: Callable[[str], list[str]], what: str) -> None:
    """--session: comma-separated kinds of DAW session or DJ stem file (``sessions``: `common.sessions_of`)."""
    parser.add_argument("--session", type=sessions, default=[], help=f"{what}: {SESSION_KINDS}")


def add_instrumental_option(parser: Any, name: str) -> None:
    """--instrumental: also write the song minus its vocals, exactly (``name``: the file it is written to)."""
    parser.add_argument("--instrumental", action="store_true", help=f"also write {name} (mix − vocals, exact)")


def add_excerpt_options(parser: Any) -> None:
    """--start and --duration: separate an excerpt."""
    parser.add_argument("--start", type=parse_time, default=0.0, help="seconds into the song to start at")
    parser.add_argument("--duration", type=parse_time, help="seconds to separate from --start")


def add_postprocessing_options(group: Any, card: bool = False) -> None:
    """--wiener, --vocal-gate and --binarise: post-processing that keeps the null. With ``card`` (training from
    scratch) they are what the new model's card asks its separations for, and --wiener refuses a negative count
    as a usage error (separating, a negative count is the options' error: `jobs.separate.separate_options`)."""
    asks = " (the new model's card asks separation for it)" if card else ""
    group.add_argument(
        "--wiener",
        type=count if card else int,
        default=0,
        metavar="N",
        help=f"multichannel Wiener filtering, N iterations{asks}",
    )
    group.add_argument(
        "--vocal-gate",
        type=pair,
        metavar="A,B",
        help=f"silence vocals quieter than B × the mix for at least A seconds (e.g. 0.5,0.05){asks}",
    )
    group.add_argument("--binarise", type=float, metavar="ALPHA", help=f"sharpen masks with f_α (e.g. 10){asks}")
