"""A separation job: decoder → chunker (separator on the device) → stems writer, streamed end to end.

Memory depends on the segment length, not the song: the file is read in blocks, each finished block of stems goes
straight to the writers, and nothing is kept once written.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core.cancel import CancelToken
from ..core.chunker import DEFAULT_OVERLAP_SECONDS, DEFAULT_SEGMENT_SECONDS, Chunker
from ..core.device import resolve_device
from ..core.errors import AudioError, DeviceUnavailable, ModelError, StemDeskError
from ..core.postprocess import PostProcessing
from ..core.separator import Separator
from ..export import certificate
from ..export.nullcheck import NullResult, null_residual
from ..export.stems import StemsWriter
from ..io.audio import AudioInfo, iter_blocks, probe
from ..io.formats import OutputFormat
from ..io.model_store import DEFAULT_MODEL, ModelCard, load_estimator
from ..io.process import limit_threads
from ..io.registry import Registry

Progress = Callable[[dict], None]


@dataclass
class SeparateOptions:
    model: str = DEFAULT_MODEL
    format: OutputFormat = field(default_factory=OutputFormat)
    device: str = "auto"
    threads: int | None = None
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
        }


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


def set_threads(threads: int | None) -> None:
    """The worker, not the library, decides how many threads torch and numpy's BLAS use (two pools fighting over
    two cores run many times slower than one)."""
    if threads is not None:
        if threads < 1:
            raise StemDeskError("The number of threads must be at least 1.", setting="threads")
        limit_threads(threads)


class SeparationEngine:
    """A loaded model on a device, reusable across files (the CLI, the batch workers and the app share it)."""

    def __init__(self, model: str | ModelCard = DEFAULT_MODEL, device: str = "auto", registry: Registry | None = None):
        try:
            self.device = resolve_device(device)
        except DeviceUnavailable:
            raise
        except ValueError as error:  # an unknown device name
            raise StemDeskError(str(error), setting="device", value="auto") from None
        self.estimator, self.card = load_estimator(model, registry=registry)  # a plugin's folder may hold it
        self.estimator.to(self.device)

    @property
    def sources(self) -> tuple[str, ...]:
        """The stems written: the model's outputs if its card merges sources, else the estimator's sources."""
        return tuple(self.card.outputs) if self.card.outputs else self.estimator.sources

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
        timeline can fill its lanes while the job runs (offset counts samples from ``options.start``)."""
        started = time.monotonic()
        info = probe(path)
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
        total = (info.frames - start) if frames is None else min(frames, info.frames - start)
        post = options.postprocessing(self.card)
        try:
            steps = post.steps(self.estimator.sources)
        except ValueError as error:  # the vocal gate on a model without vocals
            raise StemDeskError(f"Model {self.card.id!r}: {error}.", setting="vocal_gate") from None
        try:
            separator = Separator(
                self.estimator, self.device, steps, post.wiener, self.card.outputs, shifts=options.shifts
            )
        except ValueError as error:
            raise StemDeskError(f"Model {self.card.id!r}: {error}.") from None
        chunker = Chunker(
            lambda x: separator(x, rate).stems,
            **separator.chunking(rate, options.segment_seconds, options.overlap_seconds),
        )

        # The chunker emits stems in order; the matching original samples wait in this queue for the exact residual.
        waiting: deque[torch.Tensor] = deque()

        def decoded() -> Iterator[torch.Tensor]:
            for block in iter_blocks(info, start=start, frames=total):
                tensor = torch.from_numpy(block)
                waiting.append(tensor)
                yield tensor

        def original(n: int) -> np.ndarray:
            parts, need = [], n
            while need:
                head = waiting[0]
                if head.shape[-1] <= need:
                    parts.append(waiting.popleft())
                    need -= head.shape[-1]
                else:
                    parts.append(head[..., :need])
                    waiting[0] = head[..., need:]
                    need = 0
            return torch.cat(parts, dim=-1).numpy()

        def report(event: dict) -> None:
            if progress is not None:
                progress({**event, "input": str(info.path), "seconds": time.monotonic() - started})

        found: list[NullResult] = []

        def certify(temps: list[Path]) -> dict:
            null = null_residual(info.path, temps, start, total, names=self.sources)
            found.append(null)
            settings = {**options.settings(post), "device": str(self.device)}
            return certificate.build("stems", info.path, settings, self.card, null.as_dict())

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
                for stems in chunker.stream(decoded(), total=total, progress=report, cancel=cancel):
                    n = stems.shape[-1]
                    block = stems.numpy()
                    writer.write(block, original(n))
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
        )
