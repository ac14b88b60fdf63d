"""Catalog-scale separation: a resumable batch over a folder tree or a manifest, on local worker processes or on
a Ray cluster, with the same per-song code as `stemdesk separate` (so a song's stems are byte-identical).

The results manifest (``OUTDIR/stemdesk-batch.jsonl``) gets one line per finished attempt, appended in one write
and flushed to disk. Re-running the same command skips songs whose last record is "done" with the same input
hash, model weights and settings and whose outputs are still there; failures are retried ``retries`` times and then
reported. Stems are written through temporary files, so an interrupted song leaves no partial stems; temporary
files of killed workers are swept at the start and the end of a run.

Workers find models where the command line does: the registry's model folders (what plugins add) go to each worker
as plain paths, since a `Registry` holds read-only mappings that do not pickle, and the worker rebuilds a registry
of those folders (separating needs nothing else a plugin adds).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

from ..core.defaults import DEFAULT_SEGMENT_SECONDS
from ..core.errors import StemDeskError
from ..io.atomic import sweep_stale
from ..io.audio import SONG_SUFFIXES_READ
from ..io.ensemble import find_card
from ..io.formats import OutputFormat
from ..io.model_store import sha256_file
from ..io.process import die_with_parent, interrupt, tune_allocator
from ..io.registry import Registry
from ..io.stems import read_certificate
from .separate import SeparateOptions, SeparationEngine, separate_options, set_threads
from .split import check_splits, split_tree

MANIFEST = "stemdesk-batch.jsonl"


@dataclass(frozen=True)
class BatchSettings:
    model: str
    format: str = "wav"
    bit_depth: str | None = None
    segment: float = DEFAULT_SEGMENT_SECONDS
    threads: int = 1
    # Where each worker runs its model: "auto" is a GPU when the worker has one (on Ray: when --gpus-per-worker gives
    # it a share of one), else the CPU.
    device: str = "auto"
    precision: str = "auto"  # see stemdesk.core.precision
    splits: tuple[tuple[str, str], ...] = ()  # (stem, split model): see stemdesk.jobs.split
    midi: bool = False  # MIDI of the stems beside them (stemdesk.transcribe.stems)

    def options(self) -> SeparateOptions:
        """The separation options each song is separated with (`separate_options`, as `stemdesk separate`'s)."""
        return separate_options(
            model=self.model,
            format=self.format,
            bit_depth=self.bit_depth,
            device=self.device,
            precision=self.precision,
            segment=self.segment,
            split=[f"{parent}={model}" for parent, model in self.splits],
        )

    def key(self) -> dict:
        """What must match for a previous result to count: everything that changes the bytes written. Not the
        device: a GPU's stems differ from the CPU's in float rounding only, and both null exactly. Nor "auto"
        precision, which differs between machines as the device does (reduced precision changes the stems by far
        less than the model's own error: docs/htdemucs.md); a precision asked for counts."""
        fmt = OutputFormat.parse(self.format, self.bit_depth)
        key = {"model": self.model, "format": fmt.name, "depth": fmt.depth, "segment": self.segment}
        if self.splits:
            key["splits"] = dict(self.splits)
        if self.midi:
            key["midi"] = True
        return key if self.precision == "auto" else {**key, "precision": self.precision}


@dataclass
class CatalogSong:
    """One song of a catalog to separate (`stemdesk batch`), not a multitrack (training.data.Song)."""

    input: str  # absolute path
    relative: str  # where its stems go, relative to the output folder (mirrors the input tree)


def discover_catalog(source: Path) -> list[CatalogSong]:
    """Audio files under a folder (recursively, sorted), or the paths of a CSV (column ``path``) or JSONL
    (``{"path": ...}``) manifest; relative paths in a manifest are relative to the manifest's folder."""
    source = Path(source)
    if source.is_dir():
        files = sorted(
            p
            for p in source.rglob("*")
            if p.is_file() and p.suffix.lower() in SONG_SUFFIXES_READ and not p.name.startswith(".")
        )
        return [CatalogSong(str(p.resolve()), str(p.relative_to(source).with_suffix(""))) for p in files]
    if not source.is_file():
        raise StemDeskError(f'"{source}" is neither a folder nor a CSV/JSONL manifest.')
    if source.suffix.lower() == ".csv":
        with open(source, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        if rows and "path" not in rows[0]:
            raise StemDeskError(f'"{source}" needs a column named path.')
        paths = [row["path"] for row in rows]
    elif source.suffix.lower() in (".jsonl", ".ndjson"):
        paths = []
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    paths.append(json.loads(line)["path"])
                except (ValueError, KeyError, TypeError):
                    raise StemDeskError(f'"{source}" line {number} is not {{"path": ...}}.') from None
    else:
        raise StemDeskError(f'"{source}": a manifest must be .csv (column path) or .jsonl ({{"path": ...}}).')
    songs = []
    for path in paths:
        full = (source.parent / path).resolve()
        relative = Path(path).with_suffix("")
        if relative.is_absolute() or ".." in relative.parts:
            relative = Path(full.stem)  # never write outside the output folder
        songs.append(CatalogSong(str(full), str(relative)))
    return songs


def sha256_path(path: str) -> str:
    return sha256_file(Path(path))


# Work done in a worker (local process or Ray actor) -----------------------------------------------------------


def model_folders(registry: Registry | None) -> tuple[str, ...]:
    """What a worker needs of the coordinator's registry, picklable: the folders plugins add models in."""
    return tuple(str(folder) for folder in registry.model_folders) if registry is not None else ()


class SongWorker:
    """Holds one loaded model; separates songs and describes the result as a manifest record. ``folders`` are the
    plugins' model folders (`model_folders`), searched as the command line searches them."""

    def __init__(self, settings: BatchSettings, folders: Sequence[str] = ()):
        tune_allocator()
        set_threads(settings.threads)
        self.settings = settings
        registry = Registry(model_folders=tuple(Path(f) for f in folders)) if folders else None
        self.registry = registry
        self.engine = SeparationEngine(settings.model, settings.device, registry, settings.precision)
        self.options = settings.options()
        self.split_engines: dict[str, SeparationEngine] = {}

    def split_engine(self, model: str) -> SeparationEngine:
        """A split model's engine, loaded once per worker."""
        if model not in self.split_engines:
            self.split_engines[model] = SeparationEngine(
                model, self.settings.device, self.registry, self.settings.precision
            )
        return self.split_engines[model]

    def run(self, song: CatalogSong, outdir: str, attempt: int) -> dict:
        started = time.monotonic()
        record = {
            "input": song.input,
            "relative": song.relative,
            "attempt": attempt,
            "model": self.settings.model,
            "weights_sha256": self.engine.card.weights_sha256,
            "settings": self.settings.key(),
            "worker": f"{os.uname().nodename}:{os.getpid()}",
            "device": str(self.engine.device),
        }
        try:
            result = self.engine.separate_file(song.input, Path(outdir) / song.relative, self.options)
            splits = split_tree(result, self.options.splits, self.split_engine, self.options)
            # the separation's certificate already holds the input's and the outputs' hashes: read them instead
            # of hashing everything again (the null check's finding comes with the result)
            cert = read_certificate(result.outputs[0].parent)
            hashes = {item["file"]: item["sha256"] for item in cert["outputs"]}
            null = result.null
            assert null is not None  # a batch always certifies
            outputs = [{"path": str(p.relative_to(outdir)), "sha256": hashes[p.name]} for p in result.outputs]
            nulls = [null]
            for split in splits:
                inner = read_certificate(split.folder)
                inner_hashes = {item["file"]: item["sha256"] for item in inner["outputs"]}
                outputs += [
                    {"path": str(p.relative_to(outdir)), "sha256": inner_hashes[p.name]} for p in split.result.outputs
                ]
                assert split.result.null is not None
                nulls.append(split.result.null)
            if self.settings.midi:  # the notes are no part of the null: listed, not hashed into the outputs
                from ..transcribe.stems import midi_for_stems

                made = midi_for_stems(result.outputs[0].parent, device=str(self.engine.device))
                record["midi"] = [str(p.relative_to(outdir)) for p in [*made.files.values(), made.song]]
            record.update(
                {
                    "status": "done",
                    "input_sha256": cert["source"]["sha256"],
                    "outputs": outputs,
                    "null": {
                        "bit_exact": all(n.bit_exact for n in nulls),
                        "passed": all(n.passed for n in nulls),
                        "peak_dbfs": null.peak_dbfs,
                    },
                    "audio_seconds": result.frames / result.info.sample_rate,
                }
            )
            if not all(n.passed for n in nulls):
                # as `stemdesk separate` exits 3: stems that do not null are not a finished song. They stay on disk
                # to be looked at, the song is redone by the next run, and it is not retried now (the same input
                # and weights give the same stems)
                record.update(
                    {
                        "status": "failed",
                        "retry": False,
                        "error": f"its stems do not null with the input (residual peak {null.peak_dbfs} dBFS): "
                        f"they are kept in {result.outputs[0].parent} with the certificate that says so; "
                        "please report it with that certificate",
                    }
                )
        except StemDeskError as error:
            record.update({"status": "failed", "error": str(error)})
        except Exception as error:  # noqa: BLE001 - an unexpected failure of one song must not stop the catalog
            record.update({"status": "failed", "error": f"{type(error).__name__}: {error}"})
        record["seconds"] = round(time.monotonic() - started, 3)
        return record


_WORKER: SongWorker | None = None


def _init_worker(settings: BatchSettings, coordinator: int, folders: Sequence[str] = ()) -> None:
    global _WORKER  # one model per worker process, loaded once
    # The coordinator stops a worker with SIGTERM when the batch is interrupted: unwinding removes the song's
    # temporary stem files. Ctrl-C reaches the worker too (the terminal's process group) and unwinds the same way.
    signal.signal(signal.SIGTERM, interrupt)
    die_with_parent(coordinator)  # and if the coordinator dies outright (kill -9), so does the worker
    _WORKER = SongWorker(settings, folders)


def _run_in_worker(song: CatalogSong, outdir: str, attempt: int) -> dict:
    assert _WORKER is not None
    try:
        return _WORKER.run(song, outdir, attempt)
    except KeyboardInterrupt:
        # unwound (the song's temporary files are gone); the batch is stopping or dead, so nobody waits for a
        # result, and handing one back to a dead coordinator would hang: end here
        os._exit(130)


# The coordinator -----------------------------------------------------------------------------------------------


@dataclass
class BatchSummary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def real_time_factor(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds else 0.0


class Manifest:
    """The append-only results file. The last record of an input wins."""

    def __init__(self, path: Path):
        self.path = path
        self.records: dict[str, dict] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a crash mid-write is ignored
                self.records[record["input"]] = record

    def append(self, record: dict) -> None:
        line = (json.dumps(record) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.records[record["input"]] = record


def already_done(record: dict | None, song: CatalogSong, weights: str, settings: BatchSettings, outdir: Path) -> bool:
    if not record or record.get("status") != "done":
        return False
    if record.get("weights_sha256") != weights or record.get("settings") != settings.key():
        return False
    if not all(
        (outdir / o).is_file() for o in [*(o["path"] for o in record.get("outputs", [])), *record.get("midi", [])]
    ):
        return False
    return record.get("input_sha256") == sha256_path(song.input)


Progress = Callable[[dict], None]


def run_batch(
    source: Path,
    outdir: Path,
    settings: BatchSettings,
    workers: int = 1,
    retries: int = 1,
    ray_address: str | None = None,
    gpus_per_worker: float = 0.0,
    progress: Progress | None = None,
    registry: Registry | None = None,
) -> BatchSummary:
    """Separate every song of ``source`` into ``outdir``; see the module docstring. ``registry`` (what plugins
    add, `stemdesk.plugins.load_plugins`) adds its model folders to where the coordinator and the workers look."""
    settings.options()  # impossible settings (a format's depth, the segment) are refused before any work
    songs = discover_catalog(source)
    if not songs:
        raise StemDeskError(f'No audio files found in "{source}".')
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    sweep_stale(outdir, recursive=True)
    manifest = Manifest(outdir / MANIFEST)
    card = find_card(settings.model, registry)  # an ensemble's members are checked before any worker starts
    check_splits(settings.options(), registry)
    settings = replace(settings, model=card.id)  # "A*1+B" is "A+B"
    weights = card.weights_sha256
    summary = BatchSummary()
    todo = []
    for song in songs:
        if already_done(manifest.records.get(song.input), song, weights, settings, outdir):
            summary.skipped += 1
        else:
            todo.append(song)
    started = time.monotonic()
    total = len(todo)

    def report(record: dict) -> None:
        manifest.append(record)
        if record["status"] == "done":
            summary.done += 1
            summary.audio_seconds += record.get("audio_seconds", 0.0)
        if progress is not None:
            elapsed = time.monotonic() - started
            finished = summary.done + summary.failed
            rate = finished / elapsed if elapsed else 0.0
            progress(
                {
                    "done": finished,
                    "total": total,
                    "skipped": summary.skipped,
                    "songs_per_minute": rate * 60,
                    "eta": (total - finished) / rate if rate else None,
                    "record": record,
                }
            )

    runner = _run_ray if ray_address else _run_local
    runner(
        todo,
        str(outdir),
        settings,
        model_folders(registry),
        workers,
        retries,
        report,
        summary,
        **({"address": ray_address, "gpus": gpus_per_worker} if ray_address else {}),
    )
    sweep_stale(outdir, recursive=True)
    summary.wall_seconds = time.monotonic() - started
    return summary


def _attempts(todo: Sequence[CatalogSong], retries: int, submit, collect, report, summary) -> None:
    """Submit every song, resubmit failures up to ``retries`` times, report each attempt."""
    attempts = {song.input: 1 for song in todo}
    pending = {submit(song, 1): song for song in todo}
    while pending:
        for handle, record in collect(pending):
            song = pending.pop(handle)
            if record["status"] == "failed" and record.get("retry", True) and attempts[song.input] <= retries:
                attempts[song.input] += 1
                record["retrying"] = True
                report(record)
                pending[submit(song, attempts[song.input])] = song
                continue
            if record["status"] == "failed":
                summary.failed += 1
                summary.failures[song.input] = record["error"]
            report(record)


def _run_local(todo, outdir, settings, folders, workers, retries, report, summary) -> None:
    if not todo:
        return

    # "spawn": each worker starts clean, sets its own torch thread count and loads the model once.
    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=max(1, workers),
            mp_context=get_context("spawn"),
            initializer=_init_worker,
            initargs=(settings, os.getpid(), folders),
        )

    pools = [new_pool()]

    def submit(song, attempt):
        try:
            return pools[0].submit(_run_in_worker, song, outdir, attempt)
        except BrokenProcessPool:  # a worker was killed: start a fresh pool for what remains
            pools[0].shutdown(wait=False, cancel_futures=True)
            pools[0] = new_pool()
            return pools[0].submit(_run_in_worker, song, outdir, attempt)

    def collect(pending) -> Iterator[tuple]:
        finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        for future in finished:
            song = pending[future]
            try:
                yield future, future.result()
            except Exception as error:  # noqa: BLE001 - the worker process died (killed, out of memory)
                yield (
                    future,
                    {
                        "input": song.input,
                        "relative": song.relative,
                        "status": "failed",
                        "error": f"worker died: {type(error).__name__}: {error}",
                        "model": settings.model,
                        "settings": settings.key(),
                    },
                )

    try:
        _attempts(todo, retries, submit, collect, report, summary)
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM: end the song in progress now (its stems are written to temporary files, so nothing
        # half-written is left) instead of letting the executor's exit wait for it, minutes for a long song.
        _stop_workers(pools[0])
        raise
    pools[0].shutdown(wait=True)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    workers = list((getattr(pool, "_processes", None) or {}).values())  # 3.14 has pool.terminate_workers()
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        if worker.is_alive():
            worker.terminate()
    for worker in workers:
        worker.join(timeout=10)


def _reachable(address: str, timeout: float = 5.0) -> None:
    """A host:port that nothing answers on fails here in seconds, not after Ray's minutes of retries."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or address.startswith("ray://"):
        return  # 'auto' and client addresses: Ray says what is wrong quickly
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise StemDeskError(
            f"Cannot reach the Ray cluster at {address}: {error.strerror or error}. Is it running? "
            f"Start one with `ray start --head --port={port}` on {host}, check the address, or run "
            "without --ray."
        ) from None


def _run_ray(todo, outdir, settings, folders, workers, retries, report, summary, address, gpus) -> None:
    try:
        import ray
    except ImportError:
        raise StemDeskError("Ray is not installed: pip install 'ray[default]' (or run without --ray).") from None
    if not todo:
        return
    _reachable(address)
    try:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StemDeskError(
            f"Cannot join the Ray cluster at {address!r}: {first} Start one with `ray start "
            "--head`, give its address (host:port), or run without --ray."
        ) from None
    if not gpus and settings.device == "auto":  # an actor given no GPU runs on the CPU, whatever its node has
        settings = replace(settings, device="cpu")
    actor_class = ray.remote(num_cpus=settings.threads, num_gpus=gpus, max_restarts=2, max_task_retries=0)(SongWorker)
    actors = [actor_class.remote(settings, folders) for _ in range(max(1, workers))]
    free = list(actors)
    busy: dict = {}

    def submit(song, attempt):
        while not free:
            ready, _ = ray.wait(list(busy), num_returns=1)
            free.append(busy.pop(ready[0]))
        actor = free.pop(0)
        ref = actor.run.remote(song, outdir, attempt)
        busy[ref] = actor
        return ref

    def collect(pending) -> Iterator[tuple]:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            song = pending[ref]
            actor = busy.pop(ref, None)
            try:
                record = ray.get(ref)
            except Exception as error:  # noqa: BLE001 - the actor or its node died
                record = {
                    "input": song.input,
                    "relative": song.relative,
                    "status": "failed",
                    "error": f"worker died: {type(error).__name__}",
                    "model": settings.model,
                    "settings": settings.key(),
                }
            if actor is not None:
                free.append(actor)
            yield ref, record

    try:
        _attempts(todo, retries, submit, collect, report, summary)
    finally:
        for actor in actors:
            ray.kill(actor)


def summary_dict(summary: BatchSummary) -> dict:
    data = asdict(summary)
    data["real_time_factor"] = round(summary.real_time_factor, 2)
    data["audio_hours"] = round(summary.audio_seconds / 3600, 3)
    return data
