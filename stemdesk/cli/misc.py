"""The small commands: `stemdesk gui` (the desktop app, also what `stemdesk` alone starts), `stemdesk midi` and
`stemdesk plugins`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from .common import EXIT_ERROR
from .options import add_device_option


def add_parsers(commands: Any) -> None:
    gui = commands.add_parser("gui", help="the desktop app (also what `stemdesk` with no command starts)")
    gui.add_argument("files", nargs="*", type=Path, help="a song or a .stemdesk project to open")
    midi = commands.add_parser(
        "midi",
        help="MIDI from a folder of stems (or, with no folder, list MIDI inputs and MIDI-learn mappings)",
        description="Write a Standard MIDI File per stem beside it (the melody from the vocals, the bass line, the "
        "notes of other, General MIDI drum notes from the drums) and one with every track, with the tempo and key "
        "read from them, using Spotify's Basic Pitch (stemdesk midi --install). With no folder: list the MIDI input "
        "ports and your MIDI-learn mappings.",
    )
    midi.add_argument("stems_dir", nargs="?", type=Path, help="a folder of stems written by `separate`")
    midi.add_argument("--quantise", action="store_true", help="snap the notes to sixteenths (default: as played)")
    midi.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    add_device_option(midi, runs="Basic Pitch runs")
    midi.add_argument(
        "--install", action="store_true", help="install Basic Pitch (the PyPI wheel basic-pitch 0.4.0, Apache-2.0)"
    )
    midi.add_argument("--wheel", type=Path, metavar="FILE", help="with --install: the wheel, downloaded elsewhere")
    midi.set_defaults(handler=run_midi)
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
    if args.install:
        from ..transcribe.model import install_basic_pitch

        print(f"Basic Pitch installed: {install_basic_pitch(args.wheel)} (Apache-2.0)", file=out)
        if args.stems_dir is None:
            return 0
    if args.stems_dir is not None:
        return _transcribe(args, out)
    from ..mixer.midi import MidiMap, input_names, mappings_path

    ports = input_names()
    print("MIDI inputs: " + (", ".join(ports) if ports else "none (connect a controller, or start JACK)"), file=out)
    bindings = MidiMap.load().bindings
    print(f"Mappings ({mappings_path()}):", file=out)
    for (channel, cc), control in sorted(bindings.items()):
        print(f"  channel {channel + 1} CC {cc} -> {control}", file=out)
    return 0


def _transcribe(args: argparse.Namespace, out: TextIO) -> int:
    from ..session import tasks

    made = tasks.midi(args.stems_dir, args.quantise, args.threads, args.device).run()
    timing = made.timing
    key = f", {timing.key}" if timing.key else ""
    print(f"{made.song}: every track, {timing.tempo:g} BPM{key} ({made.seconds:.1f} s)", file=out)
    for stem, path in made.files.items():
        print(f"  {stem}: {made.notes[stem]} notes -> {path}", file=out)
    return 0
