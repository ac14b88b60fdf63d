"""The small commands: `stemdesk gui` (the desktop app, also what `stemdesk` alone starts), `stemdesk midi` and
`stemdesk plugins`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from .common import EXIT_ERROR


def add_parsers(commands: Any) -> None:
    gui = commands.add_parser("gui", help="the desktop app (also what `stemdesk` with no command starts)")
    gui.add_argument("files", nargs="*", type=Path, help="a song or a .stemdesk project to open")
    commands.add_parser("midi", help="list MIDI input ports and your MIDI-learn mappings").set_defaults(
        handler=run_midi
    )
    commands.add_parser("plugins", help="list installed plugins and what they add").set_defaults(handler=run_plugins)


def start_app(args: argparse.Namespace, err: TextIO) -> int:
    """`stemdesk gui` (and `stemdesk` alone): the app, or one line saying why it cannot start."""
    try:
        from ..app.main import run
    except ImportError as error:
        print(
            f"stemdesk: the desktop app cannot start ({error}). Install PySide6-Addons, or use the command "
            "line: stemdesk --help",
            file=err,
        )
        return EXIT_ERROR
    return run(args.files, registry=args.registry)


def run_plugins(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    for plugin in args.plugins:
        state = "loaded: " + (", ".join(plugin.provides) or "nothing") if plugin.loaded else "DISABLED"
        print(f"{plugin.name} ({plugin.distribution or plugin.target}): {state}", file=out)
    if not args.plugins:
        print("No plugins installed.", file=out)
    return 0


def run_midi(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..mixer.midi import MidiMap, input_names, mappings_path

    ports = input_names()
    print("MIDI inputs: " + (", ".join(ports) if ports else "none (connect a controller, or start JACK)"), file=out)
    bindings = MidiMap.load().bindings
    print(f"Mappings ({mappings_path()}):", file=out)
    for (channel, cc), control in sorted(bindings.items()):
        print(f"  channel {channel + 1} CC {cc} -> {control}", file=out)
    return 0
