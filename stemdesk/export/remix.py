"""Offline export of a remix (or the exact instrumental) from a folder of stems, streamed to disk.

The instrumental is the karaoke mix (vocals muted, everything else at unity). Rendered at the stems' own PCM depth it
is exactly mixture − vocals, sample for sample, because unity strips are added in float64 without any gain. A mix in
another key or tempo goes through the same `KeyTempo` stream as live playback, so the bounce is what was heard.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.cancel import CancelToken
from ..core.errors import AudioError, MixError
from ..io.audio import AtomicAudioWriter
from ..io.formats import OutputFormat
from ..io.registry import Registry
from ..io.stems import Stems
from ..mixer.keytempo import KeyTempo
from ..mixer.mix import Mix, preset
from ..mixer.render import Renderer, render_automated
from . import certificate
from .nullcheck import null_residual

BLOCK = 1 << 16
# A processing hook: takes each rendered block (channels, n) float32 and returns the block to write in its place.
Process = Callable[[np.ndarray], np.ndarray]


@dataclass
class RemixResult:
    path: Path
    frames: int  # written (a render at another tempo is longer or shorter than the stems)
    seconds: float
    clipped: int  # samples clipped to full scale (PCM output only)
    certificate: Path | None
    null: dict | None = None  # the certificate's null section: checked against the mixture, or why not


def _null_check(stems: Stems, mix: Mix, out: Path, mixture: Path | None) -> dict:
    """Whether the render plus the muted stems nulls against the mixture (only for mixes of unity strips)."""
    if mix.changes_key_or_tempo:
        return {
            "applicable": False,
            "reason": f"the mix plays at {mix.describe_key_tempo()}, so it cannot null against the original",
        }
    if not mix.is_unity(stems.names, mutes=True):
        return {"applicable": False, "reason": "the mix changes levels or adds effects, so it cannot null"}
    if mixture is None:
        return {"applicable": False, "reason": "no mixture given to check against (--mixture)"}
    muted = [(name, p) for name, p in zip(stems.names, stems.paths) if not mix.heard(name)]
    # stems of an excerpt are checked against the same excerpt of the mixture
    result = null_residual(
        mixture,
        [out, *[p for _, p in muted]],
        start=stems.start,
        frames=stems.info.frames,
        names=["render", *[n for n, _ in muted]],
    )
    return {
        "applicable": True,
        "against": [Path(mixture).name, "render", *[p.name for _, p in muted]],
        "mixture_samples": [stems.start, stems.start + stems.info.frames],
        **result.as_dict(),
    }


def mixed_blocks(stems: Stems, mix: Mix, cancel: CancelToken | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """The mix of the stems, streamed: (samples of the stems done so far, (channels, n) float32) per block, with
    fresh effect state, the automation applied block by block, and then the mix's key and tempo (the blocks are
    then of other lengths, len(stems) / tempo in all)."""
    info = stems.info
    renderer = Renderer(mix, stems.names, info.sample_rate, info.channels)
    key_tempo = (
        KeyTempo(info.sample_rate, info.channels, mix.semitones, mix.tempo) if mix.changes_key_or_tempo else None
    )
    for done, blocks in stems.blocks(BLOCK):
        if cancel is not None:
            cancel.raise_if_cancelled()
        # automation times are song time (recorded at the playhead): an excerpt's stems start stems.start into it
        audio = render_automated(renderer, mix, blocks, stems.start + done - blocks.shape[-1], info.sample_rate)
        if key_tempo is not None:
            key_tempo.push(audio)
            audio = key_tempo.pull(key_tempo.available)
        if audio.shape[-1]:
            yield done, audio
    if key_tempo is not None:
        key_tempo.end()
        yield info.frames, key_tempo.pull(key_tempo.available)


def render_remix(
    stems: Stems,
    mix: Mix,
    out: str | Path,
    fmt: OutputFormat | None = None,
    mixture: str | Path | None = None,
    kind: str = "remix",
    progress: Callable[[dict], None] | None = None,
    cancel: CancelToken | None = None,
    process: Process | None = None,
    settings: Callable[[], dict] | None = None,
) -> RemixResult:
    """Render ``mix`` of ``stems`` to ``out`` (atomically) and write a certificate beside it.

    A stem split into children plays as them (`Stems.as_leaves`). fmt defaults to the stems' own format. With
    ``mixture`` (the original song), a mix of unity strips (mutes allowed) is checked to null against it together
    with the muted stems. ``process`` is applied to each rendered block before it is written (a render so processed
    is not checked to null); ``settings()`` adds to the certificate's settings once everything is written, so it can
    report what the processing measured.
    """
    started = time.monotonic()
    out = Path(out)
    fmt = fmt or stems.format()
    stems = stems.as_leaves()  # a split stem plays as its children, through its group's strip
    if out.suffix.lower() != f".{fmt.extension}":
        out = out.with_name(out.name + f".{fmt.extension}") if not out.suffix else out.with_suffix(f".{fmt.extension}")
    info = stems.info
    clipped = frames = 0
    try:
        with AtomicAudioWriter.for_format(out, info.sample_rate, info.channels, fmt) as writer:
            for done, audio in mixed_blocks(stems, mix, cancel):
                if process is not None:
                    audio = process(audio)
                clipped += writer.write_float(audio)
                frames += audio.shape[-1]
                if progress is not None:
                    progress({"done": done, "total": info.frames, "seconds": time.monotonic() - started})
            writer.close()
            if process is not None:
                null = {"applicable": False, "reason": "the render is processed after mixing, so it cannot null"}
            else:
                null = _null_check(stems, mix, writer.temp, Path(mixture) if mixture else None)
            cert = certificate.build(
                kind,
                None,
                {
                    "mix": mix.to_dict(),
                    "stems": stems.names,
                    "format": fmt.name,
                    "depth": fmt.depth,
                    **(
                        {"key_tempo": _key_tempo(mix, info.frames, frames, info.sample_rate)}
                        if mix.changes_key_or_tempo
                        else {}
                    ),
                    **(settings() if settings else {}),
                },
                null=null,
            )
            if stems.source is not None:
                cert["source"] = stems.source
            if fmt.name == "wav":
                certificate.embed_wav(writer.temp, cert)
            path = writer.commit()
    except OSError as error:
        raise AudioError(
            f'Writing "{out}" failed: {error.strerror or error}. Free some space or choose another '
            "folder; nothing partial was left."
        ) from None
    cert_path = certificate.write_beside(out.parent, cert, [path], name=f"{out.name}.certificate.json")
    return RemixResult(path, frames, time.monotonic() - started, clipped, cert_path, null)


def _key_tempo(mix: Mix, song_frames: int, frames: int, rate: int) -> dict:
    """What the certificate says of a render in another key or tempo."""
    return {
        "semitones": mix.semitones,
        "tempo": mix.tempo,
        "description": mix.describe_key_tempo(),
        "method": "band-limited varispeed and phase vocoder (stemdesk.mixer.keytempo)",
        "stems_seconds": song_frames / rate,
        "seconds": frames / rate,
    }


def instrumental(stems: Stems, out: str | Path, mixture: str | Path | None = None, **kwargs) -> RemixResult:
    """mixture − vocals, exactly, in the stems' own format."""
    return render_remix(stems, preset("karaoke", stems.names), out, stems.format(), mixture, "instrumental", **kwargs)


def mix_from_file(path: str | Path, registry: Registry | None = None) -> Mix:
    """A mix file (MIX.json), its effects of ``registry``'s kinds (default: the built-ins). Raises MixError naming
    the file when it is not one."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise AudioError(f'Cannot read the mix "{path}": {error.strerror or error}.') from None
    try:
        return Mix.from_json(data, registry)
    except MixError as error:
        raise MixError(f'"{path.name}": {error}') from None
