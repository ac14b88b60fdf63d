"""`stemdesk batch`: a catalog separated resumably, on local worker processes or on a Ray cluster."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from ..core.errors import StemDeskError
from .common import EXIT_ERROR
from .options import (
    add_device_option,
    add_format_options,
    add_model_option,
    add_precision_option,
    add_segment_option,
)


def add_parser(commands: Any) -> None:
    batch = commands.add_parser(
        "batch",
        help="separate a catalog, resumably, locally or on a Ray cluster",
        description="Separate every audio file under INPUT (a folder, recursed, or a "
        "CSV/JSONL manifest of paths) into OUTDIR, mirroring the input tree. "
        "Results are appended to OUTDIR/stemdesk-batch.jsonl; running the same "
        "command again skips what is done and retries what failed.",
    )
    batch.add_argument("input", type=Path, help="a folder of songs, or a CSV (column path) or JSONL manifest")
    batch.add_argument(
        "-o", "--outdir", type=Path, required=True, help="the folder the stems go into, mirroring INPUT's tree"
    )
    add_model_option(batch)
    add_format_options(batch)
    add_segment_option(batch)
    batch.add_argument("--workers", type=int, default=1, help="worker processes (or Ray actors)")
    batch.add_argument("--threads-per-worker", type=int, default=1, help="CPU threads of each worker (default 1)")
    batch.add_argument("--retries", type=int, default=1, help="attempts after the first for a failing song")
    batch.add_argument("--ray", metavar="ADDRESS", help="run on a Ray cluster ('auto' or host:port)")
    batch.add_argument(
        "--gpus-per-worker", type=float, default=0.0, help="the share of a GPU each Ray actor gets (default 0)"
    )
    add_device_option(
        batch,
        runs="each worker runs the model",
        auto="a GPU when the worker has one (on Ray: with --gpus-per-worker), else the CPU",
    )
    add_precision_option(batch)
    batch.add_argument(
        "--split",
        action="append",
        default=[],
        metavar="STEM=MODEL",
        help="split a stem further with a split model, as stemdesk separate --split (repeat for more stems)",
    )
    batch.add_argument(
        "--midi",
        action="store_true",
        help="also write MIDI of each song's stems, as stemdesk separate --midi (needs Basic Pitch: stemdesk midi "
        "--install)",
    )
    batch.add_argument(
        "--karaoke",
        nargs="?",
        const="",
        metavar="EXTRAS",
        help="also a karaoke track of each song that has a lyrics file of the same name beside it (.txt, .lrc or "
        ".ass), as stemdesk karaoke writes it from the stems the batch wrote; EXTRAS: video,cdg,ultrastar",
    )
    batch.set_defaults(handler=run)


LYRICS_SUFFIXES = (".txt", ".lrc", ".ass")
KARAOKE_EXTRAS = ("video", "cdg", "ultrastar")


def karaoke_extras(text: str | None) -> set[str]:
    """--karaoke's EXTRAS ("video,cdg"), checked before any song is separated."""
    extras = {item.strip() for item in (text or "").split(",") if item.strip()}
    unknown = sorted(extras - set(KARAOKE_EXTRAS))
    if unknown:
        raise StemDeskError(f"--karaoke takes {', '.join(KARAOKE_EXTRAS)} (comma-separated), not {', '.join(unknown)}.")
    return extras


def lyrics_beside(song: Path) -> Path | None:
    """The lyrics file of the same name as ``song`` beside it, if there is one."""
    return next((song.with_suffix(s) for s in LYRICS_SUFFIXES if song.with_suffix(s).is_file()), None)


def run_karaoke(args: argparse.Namespace, extras: set[str], out: TextIO) -> list[str]:
    """The karaoke pass after the batch: each separated song with lyrics beside it gets its karaoke files from the
    stems the batch wrote (this process, one song at a time). Returns the songs that failed, with why."""
    from ..jobs.batch import discover_catalog
    from ..session import karaoke
    from ..session.tasks import Engines

    engines, failed, made = Engines(args.registry), [], 0
    songs = discover_catalog(args.input)
    without = [Path(s.input).name for s in songs if lyrics_beside(Path(s.input)) is None]
    for song in songs:
        lyrics = lyrics_beside(Path(song.input))
        if lyrics is None:
            continue
        folder = Path(args.outdir) / song.relative
        request = karaoke.KaraokeRequest(
            song=Path(song.input),
            lyrics=lyrics,
            outdir=folder.parent,
            model=args.model,
            video="video" in extras,
            cdg="cdg" in extras,
            ultrastar="ultrastar" in extras,
            threads=args.threads_per_worker,
            device=args.device,
        )
        try:
            result = karaoke.karaoke(request, engines).run()
        except StemDeskError as error:
            failed.append(f"{song.input}: karaoke: {error}")
            continue
        made += 1
        unsure = f", unsure lines {result.unsure}" if result.unsure else ""
        print(f"karaoke: {folder}: {', '.join(result.files)}{unsure}", file=out)
    print(f"karaoke: {made} songs made, {len(without)} without lyrics beside them", file=out)
    return failed


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..core.device import resolve_device
    from ..jobs.batch import BatchSettings, run_batch, summary_dict
    from ..jobs.separate import parse_splits

    settings = BatchSettings(
        model=args.model,
        format=args.format,
        bit_depth=args.bit_depth,
        segment=args.segment,
        threads=args.threads_per_worker,
        device=args.device,
        precision=args.precision,
        splits=parse_splits(args.split),
        midi=args.midi,
    )
    settings.options()  # refuse impossible formats before starting workers
    extras = karaoke_extras(args.karaoke) if args.karaoke is not None else None
    if args.midi and not args.ray:  # local workers read the transcriber from this home (a cluster's nodes: theirs)
        from ..transcribe.model import basic_pitch_model

        basic_pitch_model()
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
        registry=args.registry,  # workers see the models in plugins' folders too
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
    failed = run_karaoke(args, extras, out) if extras is not None else []
    for line in failed:
        print(f"failed: {line}", file=out)
    return EXIT_ERROR if summary.failed or failed else 0
