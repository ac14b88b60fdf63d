"""A separation job: decoder → chunker (separator on the device) → stems writer, streamed end to end.

Memory depends on the segment length, not the song: the file is read in blocks, each finished block of stems goes
straight to the writers, and nothing is kept once written.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import numpy as np
import torch

from ..core.cancel import CancelToken
from ..core.chunker import Chunker
from ..core.defaults import DEFAULT_OVERLAP_SECONDS, DEFAULT_SEGMENT_SECONDS
from ..core.device import resolve_device
from ..core.ensemble import Ensemble, Member
from ..core.errors import AudioError, DeviceUnavailable, ModelError, StemDeskError
from ..core.estimators import AnyEstimator
from ..core.postprocess import PostProcessing
from ..core.precision import PRECISIONS, apply_precision, choose_precision
from ..core.separator import Separator
from ..export import certificate
from ..export.nullcheck import NullResult, null_residual
from ..export.stems import StemsWriter, exact_float_stems, integer_stems
from ..io.audio import MAX_RATE, MIN_RATE, AudioInfo, iter_blocks, probe
from ..io.decode import holding
from ..io.ensemble import EnsembleCard, find_card
from ..io.formats import DEFAULT_FORMAT, OutputFormat
from ..io.model_store import DEFAULT_MODEL, ModelCard, load_estimator
from ..io.process import cpu_bf16_flags, limit_threads, tune_allocator_for_reduced_precision
from ..io.registry import Registry

Progress = Callable[[dict], None]
# Sample formats with more precision than float32 (libsndfile subtypes)
WIDE_SUBTYPES = frozenset({"PCM_32", "DOUBLE"})


@dataclass
class SeparateOptions:
    model: str = DEFAULT_MODEL
    format: OutputFormat = field(default_factory=OutputFormat)
    device: str = "auto"
    precision: str = "auto"  # "auto", "fp32" or "bf16": see stemdesk.core.precision
    start: float = 0.0
    duration: float | None = None
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS
    overlap_seconds: float = DEFAULT_OVERLAP_SECONDS
    # Post-processing asked for; where these leave it open (0 / None), what the model's card asks for applies
    # unless ``model_postprocessing`` is off (see `postprocessing`).
    wiener: int = 0  # multichannel Wiener iterations
    vocal_gate: tuple[float, float] | None = None  # (min silence seconds a, energy ratio b)
    binarise: float | None = None  # α of f_α(x) = 1 / (1 + exp(−α(x − 0.5)))
    model_postprocessing: bool = True
    shifts: int = 0  # test-time random shifts, averaged (Separator's shifts)
    certify: bool = True  # check the null on the written files, write a certificate
    # split models run on the stems written: ((parent stem, split model), ...), see stemdesk.jobs.split
    splits: tuple[tuple[str, str], ...] = ()
    # the parents among ``splits`` given as clean-ups (--clean): their models must be clean-ups (de-reverb, denoise)
    cleans: tuple[str, ...] = ()

    def postprocessing(self, card: ModelCard | None = None) -> PostProcessing:
        """The post-processing a separation with ``card``'s model applies: these options where set, the card's
        "postprocessing" block elsewhere (a research model trained with an energy gate is separated with it)."""
        try:
            asked = PostProcessing(self.wiener, self.vocal_gate, self.binarise)
        except ValueError as error:
            raise StemDeskError(f"Post-processing: {error}.") from None
        if card is None or not self.model_postprocessing:
            return asked
        try:
            return asked.over(PostProcessing.from_card(card.raw.get("postprocessing")))
        except ValueError as error:
            raise ModelError(f"Model {card.id!r}: {error}. Reinstall the model.") from None

    def settings(self, post: PostProcessing | None = None) -> dict:
        """What the certificate records about how the stems were made (``post``: the post-processing applied)."""
        post = post if post is not None else self.postprocessing()
        return {
            "format": self.format.name,
            "depth": self.format.depth,
            "start_seconds": self.start,
            "duration_seconds": self.duration,
            "segment_seconds": self.segment_seconds,
            "overlap_seconds": self.overlap_seconds,
            "wiener_iterations": post.wiener,
            "vocal_gate": list(post.vocal_gate) if post.vocal_gate else None,
            "binarise": post.binarise,
            "model_postprocessing": self.model_postprocessing,
            "shifts": self.shifts,
            **({"splits": dict(self.splits)} if self.splits else {}),
            **({"cleans": list(self.cleans)} if self.cleans else {}),
        }


class SeparateKeywords(TypedDict, total=False):
    """`separate_options`' keywords besides the model, as the Python API takes them (``**options``); their defaults
    and what each means are `separate_options`'."""

    format: str
    bit_depth: str | int | None
    device: str
    precision: str
    start: float
    duration: float | None
    segment: float | None
    wiener: int
    vocal_gate: tuple[float, float] | None
    binarise: float | None
    shifts: int
    model_postprocessing: bool
    certify: bool
    split: Mapping[str, str] | Sequence[str] | None
    clean: Mapping[str, str] | Sequence[str] | None


# What each flag's value looks like, for its error
EXAMPLES = {"split": "vocals=stemdesk-vocals-leadback", "clean": "vocals=mel-roformer-dereverb-anvuew"}


def parse_splits(values: Iterable[str] | Mapping[str, str] | None, flag: str = "split") -> tuple[tuple[str, str], ...]:
    """``["vocals=NAME", ...]`` (the command line's) or ``{"vocals": "NAME"}`` (the API's) → ((parent, model), ...)
    in order; ``flag`` ("split" or "clean") names the option in errors. Raises StemDeskError for a value without "="
    or a parent named twice."""
    if not values:
        return ()
    pairs: list[tuple[str, str]] = []
    if isinstance(values, Mapping):
        pairs = [(str(k), str(v)) for k, v in values.items()]
    else:
        for value in values:
            parent, sep, model = str(value).partition("=")
            if not sep or not parent.strip() or not model.strip():
                raise StemDeskError(
                    f"--{flag} takes PARENT=MODEL (e.g. {EXAMPLES[flag]}), not {value!r}.", setting=flag
                )
            pairs.append((parent.strip(), model.strip()))
    parents = [p for p, _ in pairs]
    twice = sorted({p for p in parents if parents.count(p) > 1})
    if twice:
        raise StemDeskError(f"{twice[0]} is split twice; give one split model per stem.", setting=flag)
    return tuple(pairs)


def separate_options(
    model: str | None = None,
    format: str = DEFAULT_FORMAT,
    bit_depth: str | int | None = None,
    device: str = "auto",
    precision: str = "auto",
    start: float = 0.0,
    duration: float | None = None,
    segment: float | None = None,
    wiener: int = 0,
    vocal_gate: tuple[float, float] | None = None,
    binarise: float | None = None,
    shifts: int = 0,
    model_postprocessing: bool = True,
    certify: bool = True,
    split: Mapping[str, str] | Sequence[str] | None = None,
    clean: Mapping[str, str] | Sequence[str] | None = None,
) -> SeparateOptions:
    """Separation options from plain values, as every front end has them (the command line's flags, the Python
    API's arguments, a batch's settings, the app's controls). ``model`` None is the default model, ``segment`` None
    the default segment; ``bit_depth`` is 16, 24 or "32f" (None: the format's default). Raises StemDeskError whose
    ``setting`` names the value to change (``segment_seconds``, ``wiener``, ``shifts``; an impossible format or
    depth raises it from `OutputFormat.parse`). The device is kept as named; the task that runs resolves it.
    ``split``: split models to run on the stems written, ``{"vocals": MODEL}`` or ``["vocals=MODEL"]``; ``clean``:
    clean-ups (de-reverb, denoise) given the same way, which run as splits whose children are the stem cleaned and
    what was taken out (``vocals/dry``, ``vocals/reverb``). One split or clean-up per stem."""
    fmt = OutputFormat.parse(format, None if bit_depth is None else str(bit_depth))
    if segment is not None and segment <= 0:
        raise StemDeskError("The segment must be a positive number of seconds.", setting="segment_seconds")
    if wiener < 0:
        raise StemDeskError("The Wiener iterations must be 0 or more.", setting="wiener")
    if shifts < 0:
        raise StemDeskError("The shifts must be 0 or more.", setting="shifts")
    if precision not in PRECISIONS:
        raise StemDeskError(
            f"The precision must be one of {', '.join(PRECISIONS)}, not {precision!r}.", setting="precision"
        )
    splits, cleans = parse_splits(split), parse_splits(clean, "clean")
    both = sorted({p for p, _ in splits} & {p for p, _ in cleans})
    if both:
        raise StemDeskError(
            f"{both[0]} is both split and cleaned; give one split or clean-up per stem (a clean-up is a split too).",
            setting="clean",
        )
    return SeparateOptions(
        model=model or DEFAULT_MODEL,
        format=fmt,
        device=device,
        precision=precision,
        start=float(start),
        duration=None if duration is None else float(duration),
        segment_seconds=DEFAULT_SEGMENT_SECONDS if segment is None else float(segment),
        wiener=int(wiener),
        vocal_gate=None if vocal_gate is None else (float(vocal_gate[0]), float(vocal_gate[1])),
        binarise=None if binarise is None else float(binarise),
        model_postprocessing=model_postprocessing,
        shifts=int(shifts),
        certify=certify,
        splits=splits + cleans,
        cleans=tuple(p for p, _ in cleans),
    )


@dataclass
class SeparateResult:
    input: Path
    outputs: list[Path]
    info: AudioInfo
    frames: int
    seconds: float
    model: str
    device: str
    certificate: Path | None = None
    null: NullResult | None = None  # what the null check on the written files found (None: not certified)
    description: str = ""  # the model for people: its id, or "ensemble of A (weight 2) and B"
    precision: str = "fp32"  # what the model ran at ("bf16": its reduced-precision parts, see core.precision)


def set_threads(threads: int | None) -> None:
    """The worker, not the library, decides how many threads torch and numpy's BLAS use (two pools fighting over
    two cores run many times slower than one)."""
    if threads is not None:
        if threads < 1:
            raise StemDeskError("The number of threads must be at least 1.", setting="threads")
        limit_threads(threads)


class SeparationEngine:
    """A loaded model on a device, reusable across files (the CLI, the batch workers and the app share it).
    ``model`` is a model id, a card, or an ensemble's model string (``A+B``, ``A*2+B``: see `stemdesk.io.ensemble`),
    whose members are all loaded. ``precision`` ("auto", "fp32", "bf16") is what the models run at
    (`stemdesk.core.precision`); `precision` and `precision_reason` say what was chosen and why."""

    def __init__(
        self,
        model: str | ModelCard = DEFAULT_MODEL,
        device: str = "auto",
        registry: Registry | None = None,
        precision: str = "auto",
    ):
        try:
            self.device = resolve_device(device)
        except DeviceUnavailable:
            raise
        except ValueError as error:  # an unknown device name
            raise StemDeskError(str(error), setting="device", value="auto") from None
        # a plugin's folder may hold the model
        self.card: ModelCard | EnsembleCard = find_card(model, registry) if isinstance(model, str) else model
        cards = self.card.members if isinstance(self.card, EnsembleCard) else [self.card]
        self.members: list[tuple[AnyEstimator, ModelCard]] = []
        chosen: list[tuple[str, str]] = []
        for card in cards:
            estimator, card = load_estimator(card, registry=registry)
            try:
                chosen.append(choose_precision(precision, self.device, estimator, cpu_bf16_flags()))
            except ValueError as error:
                raise StemDeskError(f"{error}.", setting="precision", value="auto") from None
            estimator.to(self.device)  # in place
            apply_precision(estimator, chosen[-1][0])  # in place
            self.members.append((estimator, card))
        # An ensemble runs at bf16 when any member does; the reason is the first such member's.
        self.precision, self.precision_reason = next((c for c in chosen if c[0] == "bf16"), chosen[0])
        if self.precision == "bf16" and self.device.type == "cpu":
            tune_allocator_for_reduced_precision()

    @property
    def estimator(self) -> AnyEstimator:
        """The estimator of a single model (an ensemble has one per member: `members`)."""
        if len(self.members) != 1:
            raise TypeError(f"{self.card.id} is an ensemble of {len(self.members)} models")
        return self.members[0][0]

    @property
    def sources(self) -> tuple[str, ...]:
        """The stems written: the model's outputs if its card merges sources, else the estimator's sources (an
        ensemble: the stems its members share)."""
        if isinstance(self.card, EnsembleCard):
            return tuple(self.card.sources)
        return tuple(self.card.outputs) if self.card.outputs else self.estimator.sources

    @property
    def description(self) -> str:
        """The model for people: its id, or what an ensemble is made of."""
        return self.card.describe() if isinstance(self.card, EnsembleCard) else self.card.id

    def postprocessing(self, options: SeparateOptions) -> PostProcessing:
        """What ``options`` ask for over what the model's card asks for. An ensemble applies only what the options
        ask for: its members' cards may ask for different things, and the steps act on the averaged masks."""
        return options.postprocessing(None if isinstance(self.card, EnsembleCard) else self.card)

    def separator(self, options: SeparateOptions) -> Separator | Ensemble:
        """The separator for ``options`` (post-processing, Wiener filtering, shifts): one model's, or an ensemble
        of every member on the same segments."""
        post = self.postprocessing(options)
        try:
            steps = post.steps(self.sources if isinstance(self.card, EnsembleCard) else self.estimator.sources)
        except ValueError as error:  # the vocal gate on a model without vocals
            raise StemDeskError(f"Model {self.card.id!r}: {error}.", setting="vocal_gate") from None
        try:
            if isinstance(self.card, EnsembleCard):
                members = [
                    Member(estimator, weight, card.outputs, card.id)
                    for (estimator, card), weight in zip(self.members, self.card.weights)
                ]
                return Ensemble(members, self.device, steps, post.wiener, shifts=options.shifts)
            return Separator(self.estimator, self.device, steps, post.wiener, self.card.outputs, shifts=options.shifts)
        except ValueError as error:
            raise StemDeskError(f"Model {self.card.id!r}: {error}.") from None

    def _chunker(self, rate: int, options: SeparateOptions) -> Chunker:
        """The model's (or the ensemble's) separator at ``rate`` with ``options``' post-processing, behind the one
        chunker."""
        separator = self.separator(options)
        return Chunker(
            lambda x: separator(x, rate).stems,
            **separator.chunking(rate, options.segment_seconds, options.overlap_seconds),
        )

    def separate_array(
        self,
        audio: np.ndarray,
        rate: int,
        options: SeparateOptions,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
    ) -> np.ndarray:
        """audio (channels, length) at ``rate`` → stems (sources, channels, length) that add up to it exactly.

        Integer audio (int16, or int32 as soundfile reads any PCM) gives stems of its own type whose integer sum is
        the audio, bit for bit (the file writer's rule). Float audio gives float64 stems made by
        `stemdesk.export.stems.exact_float_stems`: they add up to it exactly, in any order, wherever float64 can
        hold such parts (every sample of float32 audio or of audio decoded from 16- or 24-bit PCM). ``options``'
        model settings and post-processing apply; its start, duration and format do not (slice the array)."""
        audio = np.asarray(audio)
        bits = {np.dtype(np.int16): 16, np.dtype(np.int32): 32}.get(audio.dtype)
        if bits is None and audio.dtype.kind != "f":
            raise AudioError(
                f"StemDesk separates float or int16/int32 audio, not {audio.dtype}; convert it first "
                "(for example audio.astype(np.float32) / 32768 for 16-bit integers)."
            )
        if audio.ndim != 2 or audio.shape[0] < 1 or audio.shape[1] < 1:
            raise AudioError(f"The audio must be (channels, samples) with at least one of each, not {audio.shape}.")
        if not MIN_RATE <= int(rate) <= MAX_RATE:
            raise AudioError(
                f"The sample rate {rate} Hz is outside {MIN_RATE}–{MAX_RATE} Hz; resample the audio first."
            )
        mix = audio / float(1 << (bits - 1)) if bits else audio.astype(np.float64)
        if bits is None and not np.isfinite(mix).all():
            bad = int(np.argwhere(~np.isfinite(mix))[0][1])
            raise AudioError(
                f"The audio contains NaN or infinite samples (first at {bad / rate:.3f} s); no stems were made."
            )
        stems = self._chunker(int(rate), options).run(torch.from_numpy(mix), progress=progress, cancel=cancel)
        if bits is None:
            return exact_float_stems(stems.numpy(), mix)
        return integer_stems(stems.numpy(), mix, bits).astype(audio.dtype)

    def separate_file(
        self,
        path: str | os.PathLike,
        outdir: str | os.PathLike,
        options: SeparateOptions,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
        on_block: Callable[[int, np.ndarray], None] | None = None,
    ) -> SeparateResult:
        """Separate one file into ``outdir/<source>.<ext>``. Raises AudioError, Cancelled, OutOfMemory.

        ``on_block(offset, stems)`` sees each finished block of stems (sources, channels, n) as it is written, so a
        timeline can fill its lanes while the job runs (offset counts samples from ``options.start``).

        A song ffmpeg decodes (an M4A, a video's sound track: `stemdesk.io.decode`) is decoded once into a temporary
        WAV; the separation and the null check both read that file, and it is removed when this returns or raises
        (unless a caller holds the song longer, or a bare probe uses it)."""
        with holding(path):
            return self._separate_file(path, outdir, options, progress, cancel, on_block)

    def _separate_file(
        self,
        path: str | os.PathLike,
        outdir: str | os.PathLike,
        options: SeparateOptions,
        progress: Progress | None,
        cancel: CancelToken | None,
        on_block: Callable[[int, np.ndarray], None] | None,
    ) -> SeparateResult:
        started = time.monotonic()
        info = probe(path)
        rate = info.sample_rate
        start, total = excerpt(info, options)
        post = self.postprocessing(options)
        chunker = self._chunker(rate, options)
        mixture = _Mixture(info, start, total)

        def report(event: dict) -> None:
            if progress is not None:
                progress({**event, "input": str(info.path), "seconds": time.monotonic() - started})

        found: list[NullResult] = []

        def certify(temps: list[Path]) -> dict:
            # against the samples the stems were made from (a decoded song's temporary WAV, not a new decoding)
            null = null_residual(info, temps, start, total, names=self.sources)
            found.append(null)
            settings = {
                **options.settings(post),
                "device": str(self.device),
                "precision": self.precision,
                "precision_reason": self.precision_reason,
            }
            return certificate.build("stems", info.path, settings, self.card, null.as_dict(), decoded_by=info.decoder)

        folder = Path(outdir)
        try:
            writer = StemsWriter(folder, self.sources, rate, info.channels, options.format)
        except OSError as error:
            raise AudioError(
                f'Cannot write stems to "{folder}": {error.strerror or error}. '
                "Choose a folder you can write to, with free space."
            ) from None
        written = 0
        with writer:
            try:
                for stems in chunker.stream(mixture.blocks(), total=total, progress=report, cancel=cancel):
                    n = stems.shape[-1]
                    block = stems.numpy()
                    writer.write(block, mixture.original(n))
                    if on_block is not None:
                        on_block(written, block)
                    written += n
                outputs = writer.commit(certify if options.certify else None)
            except OSError as error:
                raise AudioError(
                    f'Writing stems to "{folder}" failed: {error.strerror or error}. '
                    "Free some space or choose another folder; no partial stems were left."
                ) from None
        if written != total:
            raise AudioError(f"Internal error: wrote {written} samples of {total}. Report this bug.")
        return SeparateResult(
            Path(path),
            outputs,
            info,
            total,
            time.monotonic() - started,
            self.card.id,
            str(self.device),
            writer.certificate,
            found[0] if found else None,
            self.description,
            self.precision,
        )


def excerpt(info: AudioInfo, options: SeparateOptions) -> tuple[int, int]:
    """Where the part of the song to separate starts and how many frames it has (all of it from ``options.start``,
    or ``options.duration`` of it, up to its end). Raises AudioError for a start past the end or a duration ≤ 0."""
    rate = info.sample_rate
    start = int(round(options.start * rate))
    frames = None if options.duration is None else int(round(options.duration * rate))
    if frames is not None and frames <= 0:
        raise AudioError("The duration to separate must be positive.", setting="duration")
    if start >= info.frames:
        raise AudioError(
            f'The start, {options.start} s, is beyond the end of "{info.path.name}" ({info.seconds:.2f} s).',
            setting="start",
        )
    return start, (info.frames - start) if frames is None else min(frames, info.frames - start)


class _Mixture:
    """The song's samples in blocks for the model (`blocks`), each kept until the stems of the same samples come out
    of the chunker, in order, and the exact residual takes them (`original`).

    The exact residual needs the mixture as the file holds it. float32 holds every sample of 8- to 24-bit PCM and of
    float32 files, not of 32-bit integers or float64: read at float32, those were rounded twice on the way to the
    stems' depth, and the null missed by one step at some samples. The model hears float32."""

    def __init__(self, info: AudioInfo, start: int, frames: int):
        self.info, self.start, self.frames = info, start, frames
        self.wide = info.subtype in WIDE_SUBTYPES
        self.waiting: deque[torch.Tensor] = deque()

    def blocks(self) -> Iterator[torch.Tensor]:
        dtype = "float64" if self.wide else "float32"
        for block in iter_blocks(self.info, start=self.start, frames=self.frames, dtype=dtype):
            tensor = torch.from_numpy(block)
            self.waiting.append(tensor)
            yield tensor.float() if self.wide else tensor

    def original(self, n: int) -> np.ndarray:
        """The next ``n`` samples as read, for the stems just made of them."""
        parts, need = [], n
        while need:
            head = self.waiting[0]
            if head.shape[-1] <= need:
                parts.append(self.waiting.popleft())
                need -= head.shape[-1]
            else:
                parts.append(head[..., :need])
                self.waiting[0] = head[..., need:]
                need = 0
        return torch.cat(parts, dim=-1).numpy()
