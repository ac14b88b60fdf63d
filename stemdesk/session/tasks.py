"""The work both front ends start, built once: separate (with the instrumental and sessions beside the stems),
export, bounce, check data, fine-tune, train from scratch, install a model, import a checkpoint.

A `Task` is what to run and on which queue; it knows nothing of who runs it. The command line calls ``task.run``
with a progress bar; the app submits it to a `JobQueue` and gets the result back on its own thread. Each task's
result says what it found (the null check travels in the separation's result), so no front end reads a file back
to learn how its own job went.
"""

from __future__ import annotations

import copy
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from ..core.cancel import CancelToken
from ..core.errors import StemDeskError
from ..export.remix import RemixResult, render_remix
from ..export.remix import instrumental as write_instrumental
from ..export.session import write_session
from ..io.atomic import atomic_folder
from ..io.formats import OutputFormat
from ..io.installable import INSTALLABLE
from ..io.model_store import ModelCard
from ..io.registry import Registry, Written
from ..io.stems import CERTIFICATE, Stems, find_stems
from ..jobs.separate import SeparateOptions, SeparateResult, SeparationEngine, set_threads
from ..mixer.mix import Mix
from ..training.finetune import FineTuneRequest as FineTune
from ..training.scratch import ScratchRequest as Scratch

T = TypeVar("T")
Progress = Callable[[dict], None]


@dataclass
class Task(Generic[T]):
    """``work(progress, cancel)`` does the job on whatever thread runs it; ``device`` names the queue it belongs
    on ("cpu", "cuda", "io", "network"), so two tasks never fight over one device."""

    title: str
    work: Callable[[Progress, CancelToken], T]
    device: str = "cpu"
    model: str = ""  # the model it uses, for the jobs list

    def run(self, progress: Progress | None = None, cancel: CancelToken | None = None) -> T:
        return self.work(progress or (lambda event: None), cancel or CancelToken())


class Engines:
    """Loaded models, reused across tasks (loading HTDemucs takes seconds). Safe to use from worker threads.
    Model ids are looked up with ``registry``'s folders too (default: the built-in search path)."""

    def __init__(self, registry: Registry | None = None):
        self._engines: dict[tuple[str, str], SeparationEngine] = {}
        self._lock = threading.Lock()
        self.registry = registry

    def get(self, model: str, device: str) -> SeparationEngine:
        with self._lock:
            key = (model, device)
            if key not in self._engines:
                self._engines[key] = SeparationEngine(model, device, self.registry)
            return self._engines[key]


@dataclass
class Extras:
    """What is written beside stems: the exact instrumental (mix − vocals) and DAW sessions of ``mix``."""

    instrumental: bool = False
    sessions: Sequence[str] = ()
    mix: Mix | None = None
    tempo: float | None = None

    def __bool__(self) -> bool:
        return self.instrumental or bool(self.sessions)


@dataclass
class Separation:
    """A separation's result: the stems (with the null check's finding), and the extras written beside them."""

    result: SeparateResult
    instrumental: Path | None = None
    sessions: dict[str, Written] = field(default_factory=dict)


def write_extras(
    stems: Stems,
    base: Path,
    extras: Extras,
    mixture: Path | None = None,
    instrumental_path: Path | None = None,
    cancel: CancelToken | None = None,
    registry: Registry | None = None,
) -> tuple[Path | None, dict[str, Written]]:
    """The instrumental at ``instrumental_path`` (default "BASE instrumental.EXT") and a session per kind at
    BASE.<ext>, each kind one of ``registry``'s exporters (default: the built-ins). ``mixture`` is the original song
    (the instrumental is checked against it; an NI Stem file's mix track is made of it). Returns (instrumental,
    {kind: what was written})."""
    if mixture is not None and stems.mixture is None:
        stems = replace(stems, mixture=Path(mixture))
    written = None
    if extras.instrumental:  # stems without vocals are refused by the karaoke mix the instrumental is made with
        target = instrumental_path or base.parent / f"{base.name} instrumental.{stems.format().extension}"
        written = write_instrumental(stems, target, mixture, cancel=cancel).path
    sessions = {
        kind: write_session(kind, stems, extras.mix or Mix(), base, extras.tempo, registry) for kind in extras.sessions
    }
    return written, sessions


def separate(
    engines: Engines,
    song: Path,
    folder: Path,
    options: SeparateOptions,
    extras: Extras = Extras(),
    threads: int | None = None,
    on_start: Callable[[Sequence[str]], None] | None = None,
    on_block: Callable[[int, np.ndarray], None] | None = None,
) -> Task[Separation]:
    """Separate ``song`` into ``folder`` with ``options`` and write the extras beside the stems (the instrumental as
    ``instrumental.EXT`` inside the folder). ``on_start(stem names)`` is called once the model is loaded and
    ``on_block`` with each finished block of stems, so a view can fill while the task runs. The sessions are
    written by ``engines``' registry."""
    from ..core.device import resolve_device

    device = str(resolve_device(options.device))

    def work(progress: Progress, cancel: CancelToken) -> Separation:
        if threads is not None and device == "cpu":
            set_threads(threads)
        progress({"message": "loading model"})
        engine = engines.get(options.model, device)
        if on_start is not None:
            on_start(engine.sources)
        result = engine.separate_file(song, folder, options, progress=progress, cancel=cancel, on_block=on_block)
        made = Separation(result)
        if extras:
            stems = find_stems(result.outputs[0].parent)
            made.instrumental, made.sessions = write_extras(
                stems,
                folder / folder.name,
                extras,
                mixture=song,
                instrumental_path=folder / f"instrumental.{stems.format().extension}",
                cancel=cancel,
                registry=engines.registry,
            )
        return made

    return Task(f"Separate {song.name}", work, device, options.model)


@dataclass
class ExportChoice:
    """What an export writes, each named after the song: "NAME stems/" (a copy with the certificate), "NAME
    instrumental.EXT", "NAME mix.wav" (the mix bounced) and NAME.<ext> per session kind."""

    stems: bool = False
    instrumental: bool = True
    mix: bool = False
    sessions: Sequence[str] = ()
    tempo: float | None = None


@dataclass
class Exported:
    stems: Path | None = None
    mix: Path | None = None
    instrumental: Path | None = None
    sessions: dict[str, Written] = field(default_factory=dict)

    @property
    def paths(self) -> list[Path]:
        return [p for p in (self.stems, self.mix, self.instrumental) if p is not None] + [
            written.path for written in self.sessions.values()
        ]

    @property
    def notes(self) -> list[str]:
        """What the exporters had to say about their files (e.g. that AAC stems do not null)."""
        return [written.note for written in self.sessions.values() if written.note]


def export(
    stems_dir: Path,
    base: Path,
    choice: ExportChoice,
    mix: Mix | None = None,
    mixture: Path | None = None,
    registry: Registry | None = None,
) -> Task[Exported]:
    """Write what ``choice`` asks for around the stems in ``stems_dir``, at ``base`` (a folder and the song's name),
    the sessions by ``registry``'s exporters (default: the built-ins). Each file appears whole or not at all."""
    mix = copy.deepcopy(mix) if mix is not None else Mix()
    if not (choice.stems or choice.instrumental or choice.mix or choice.sessions):
        raise StemDeskError("Nothing to export: choose stems, the instrumental, the mix or a session.")

    def work(progress: Progress, cancel: CancelToken) -> Exported:
        found = find_stems(stems_dir)
        base.parent.mkdir(parents=True, exist_ok=True)
        made = Exported()
        if choice.stems:
            made.stems = _copy_stems(found, stems_dir, base.parent / f"{base.name} stems")
        if choice.mix:
            made.mix = render_remix(
                found,
                mix,
                base.parent / f"{base.name} mix.wav",
                OutputFormat.parse("wav", "24"),
                mixture,
                kind="mix",
                cancel=cancel,
            ).path
        made.instrumental, made.sessions = write_extras(
            found,
            base,
            Extras(choice.instrumental, choice.sessions, mix, choice.tempo),
            mixture=mixture,
            cancel=cancel,
            registry=registry,
        )
        return made

    return Task(f"Export {base.name}", work, "io")


def _copy_stems(found: Stems, stems_dir: Path, target: Path) -> Path:
    with atomic_folder(target) as staging:
        for path in [*found.paths, stems_dir / CERTIFICATE]:
            if path.is_file():
                shutil.copy2(path, staging / path.name)
    return target


def bounce(
    stems_dir: Path,
    mix: Mix,
    path: Path,
    fmt: OutputFormat | None = None,
    mixture: Path | None = None,
    kind: str = "mix",
) -> Task[RemixResult]:
    """Render ``mix`` of the stems to ``path`` (format: ``fmt``, else the path's extension at 24 bits for PCM),
    with a certificate beside it; a unity mix is checked to null against ``mixture``."""
    mix = copy.deepcopy(mix)
    if fmt is None:
        fmt = OutputFormat.parse(path.suffix.lower().lstrip(".") or "wav")

    def work(progress: Progress, cancel: CancelToken) -> RemixResult:
        return render_remix(find_stems(stems_dir), mix, path, fmt, mixture, kind=kind, progress=progress, cancel=cancel)

    return Task(f"Export mix {path.name}", work, "io")


@dataclass
class DataReport:
    report: dict  # per song: usable or why not (``report["ok"]``: the usable ones)
    text: str  # the same, for people


def check_data(folder: Path, mapping: Path | None = None) -> Task[DataReport]:
    """The training-data report of a folder of song folders (or a CSV list)."""

    def work(progress: Progress, cancel: CancelToken) -> DataReport:
        from ..training.dataset import check_dataset, describe, discover, read_mapping

        songs = discover(Path(folder), read_mapping(mapping))
        if not songs:
            raise StemDeskError(f'No songs found in "{folder}": expected one folder per song with its stems inside.')
        report = check_dataset(songs)
        return DataReport(report, describe(report))

    return Task(f"Check data {Path(folder).name}", work, "cpu")


@dataclass
class Tuned:
    card: dict  # the new model's card (its score card's facts)
    markdown: str  # the score card, rendered
    folder: str  # the run's folder (the score card's curves.png is there)


def fine_tune(request: FineTune) -> Task[Tuned]:
    """Fine-tune ``request.base`` into a new model (a `stemdesk.training.finetune.FineTuneRequest`). Progress
    events carry the trainer's own (step, loss, validation scores as ``valid_usdr``), with the time budget as the
    total."""

    def work(progress: Progress, cancel: CancelToken) -> Tuned:
        from ..training.finetune import fine_tune as run
        from ..training.finetune import render_score_card

        card = run(request, progress=lambda event: progress(_training_progress(event, request.minutes)), cancel=cancel)
        return Tuned(card, "" if card.get("rank") else render_score_card(card), card.get("run_folder", ""))

    return Task(f"Train {request.name}", work, request.device if request.device != "auto" else "cpu", request.base)


def train_from_scratch(request: Scratch) -> Task[dict]:
    """Train an estimator from scratch with a paper's recipe and install it (a
    `stemdesk.training.scratch.ScratchRequest`); the result says what was made (`train_from_scratch`'s summary).
    Progress events are the trainer's (and the pre-training stage's), with the time budget as the total."""

    def work(progress: Progress, cancel: CancelToken) -> dict:
        from ..training.scratch import train_from_scratch as run

        return run(request, progress=lambda event: progress(_training_progress(event, request.minutes)), cancel=cancel)

    device = request.device if request.device != "auto" else "cpu"
    return Task(f"Train {request.name}", work, device, request.recipe or request.estimator or "")


def _training_progress(event: dict, minutes: float) -> dict:
    eta = event.get("eta_seconds")
    report = {**event, "message": f"step {event.get('step', 0)}"}
    if eta is not None:
        report.update({"done": max(0.0, minutes * 60 - eta), "total": minutes * 60})
    if "valid" in event:
        report["valid_usdr"] = event["valid"]
    return report


def install_model(name: str, package: Path | None = None) -> Task[ModelCard]:
    """Install a registry model (see `stemdesk.io.installable`). A model whose licence must be accepted is only
    installed after its front end has shown the licence and the user agreed; this task does not ask."""
    if name not in INSTALLABLE:
        raise StemDeskError(f"Unknown model {name!r}: installable are {', '.join(INSTALLABLE)}.")
    item = INSTALLABLE[name]

    def work(progress: Progress, cancel: CancelToken) -> ModelCard:
        return item.install(
            lambda what, fraction: progress({"message": what, "done": fraction, "total": 1.0}), package=package
        )

    return Task(f"Install {item.title}", work, "network", item.id)


def import_model(files: Sequence[Path], config: Path | None = None, name: str | None = None) -> Task[ModelCard]:
    """Convert a checkpoint a producer downloaded (Demucs .th, Open-Unmix .pth files, a RoFormer .ckpt with its YAML)
    into a model in the user's models folder (see `stemdesk.io.model_import`); no code from the files runs."""
    files = [Path(f) for f in files]
    if not files:
        raise StemDeskError("Nothing to import: choose a checkpoint file.")

    def work(progress: Progress, cancel: CancelToken) -> ModelCard:
        from ..io.model_import import import_model as convert_and_install

        return convert_and_install(
            files,
            config,
            name,
            progress=lambda what, fraction: progress({"message": what, "done": fraction, "total": 1.0}),
        )

    return Task(f"Import {files[0].name}", work, "io", name or files[0].stem)
