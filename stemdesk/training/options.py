"""Command-line options shared by the trainer's front ends (`stemdesk train`, the default models' trainer and the
reproduction benchmark). No torch here: the command line builds its parser before it knows what it will run."""

from __future__ import annotations

from typing import Any

TEACHER_SOURCES = ("vocals", "drums", "bass", "other")
# A fine-tune never exports a round that costs any stem more than this (dB of median validation uSDR below its base).
STEM_FLOOR_DB = 0.2


def add_teacher_options(parser: Any, what: str = "the weights", share: float = 0.5) -> None:
    """--teacher [MODEL], --teacher-share, --teacher-windows and --teacher-targets on ``parser`` (a parser or an
    argument group); ``what`` names what becomes research-only, ``share`` is the default share of examples."""
    parser.add_argument(
        "--teacher",
        nargs="?",
        const="htdemucs",
        metavar="MODEL",
        help="also train on the songs MODEL labelled (default htdemucs; python -m stemdesk.training.corpus): "
        f"{what} become for personal and research use only, like the teacher's",
    )
    parser.add_argument(
        "--teacher-share",
        type=float,
        default=share,
        metavar="S",
        help="with --teacher: the share of training examples drawn from its labels (the rest from real stems)",
    )
    parser.add_argument(
        "--teacher-windows", type=int, default=5, metavar="N", help="with --teacher: 20-second windows per song"
    )
    parser.add_argument(
        "--teacher-targets",
        nargs="+",
        choices=TEACHER_SOURCES,
        metavar="SOURCE",
        help="with --teacher: only these sources' labels are targets (e.g. drums bass, where the teacher is "
        "strong); the others stay in the mix",
    )
