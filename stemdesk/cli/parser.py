"""The command line's parser: the global options, then each command group's parsers (each in its own module,
with the function that runs it as ``args.handler``)."""

from __future__ import annotations

import argparse

from ..core.version import __version__
from ..io.registry import Registry
from . import batch, karaoke, misc, mixdown, models, separate, train
from .common import sessions_of


def build_parser(registry: Registry | None = None) -> argparse.ArgumentParser:
    """The command line's parser; ``registry`` (what plugins add) sets the choices and rides along on the parsed
    arguments as ``args.registry`` for the commands that need it."""
    parser = argparse.ArgumentParser(
        prog="stemdesk", description="Split songs into stems that null-sum back to the original."
    )
    parser.set_defaults(registry=registry, plugins=[], handler=None)
    sessions = sessions_of(registry)
    parser.add_argument("--version", action="version", version=f"stemdesk {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    separate.add_parsers(commands, sessions)  # separate, demo
    mixdown.add_nullcheck_parser(commands)
    mixdown.add_remix_export_parsers(commands, sessions)  # remix, export
    batch.add_parser(commands)
    karaoke.add_parser(commands)
    train.add_parsers(commands)  # check-data, train
    misc.add_parsers(commands)  # gui, midi, plugins
    models.add_parser(commands)
    return parser
