"""Offline export of a remix (or the exact instrumental) from a folder of stems, streamed to disk.

The instrumental is the karaoke mix (vocals muted, everything else at unity). Rendered at the stems' own PCM depth it
is exactly mixture − vocals, sample for sample, because unity strips are added in float64 without any gain.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import soundfile as sf

from ..core.cancel import CancelToken
from ..core.errors import AudioError
from ..io.audio import AUDIO_SUFFIXES_READ, AtomicAudioWriter, AudioInfo, probe
from ..mixer.effects import MixError
from ..mixer.mix import Mix, preset
from ..mixer.render import Renderer
from . import certificate
from .nullcheck import PCM_BITS, null_residual
from .stems import OutputFormat, quantise

STEM_ORDER = ("vocals", "drums", "bass", "other", "accompaniment")
BLOCK = 1 << 16
AUTOMATION_BLOCK = 1 << 11     # automation is applied per block (46 ms at 44.1 kHz), ramped within it


@dataclass
class Stems:
    """The stems of one song, aligned: names in order, their files, and the shared format."""
    names: list[str]
    paths: list[Path]
    info: AudioInfo
    source: dict | None = None       # the "source" entry of the stems' certificate, when there is one
    start: int = 0                   # samples into the source where the stems begin (an excerpt's --start)

    def format(self) -> OutputFormat:
        """The stems' own format (so an instrumental can be written exactly)."""
        bits = PCM_BITS.get(self.info.subtype)
        name = {".flac": "flac", ".aiff": "aiff", ".aif": "aiff"}.get(self.paths[0].suffix.lower(), "wav")
        return OutputFormat.parse(name, str(bits) if bits else ("32f" if name != "flac" else "24"))


def find_stems(folder: str | Path) -> Stems:
    """The stems in a folder written by `stemdesk separate` (or any folder of aligned audio files)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AudioError(f'"{folder}" is not a folder of stems. Give the folder `stemdesk separate` wrote.')
    source, start_seconds = None, 0.0
    try:
        cert = certificate.read(folder)
        paths = [folder / item["file"] for item in cert.get("outputs", [])] if cert.get("kind") == "stems" else []
        source = cert.get("source")
        start_seconds = float((cert.get("settings") or {}).get("start_seconds") or 0.0) if paths else 0.0
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        paths = []
    if not paths or not all(p.is_file() for p in paths):
        # no certificate: any folder of audio files, in the usual stem order (the certificate keeps the model's)
        paths = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                 and p.suffix.lower() in AUDIO_SUFFIXES_READ]
        rank = {name: i for i, name in enumerate(STEM_ORDER)}
        paths.sort(key=lambda p: (rank.get(p.stem, len(rank)), p.stem))
    if not paths:
        raise AudioError(f'No stems in "{folder}". Separate a song into it first (stemdesk separate SONG -o ...).')
    infos = [probe(p) for p in paths]
    first = infos[0]
    for info in infos[1:]:
        if (info.sample_rate, info.channels, info.frames) != (first.sample_rate, first.channels, first.frames):
            raise AudioError(f'"{info.path.name}" ({info.sample_rate} Hz, {info.channels} ch, {info.frames} samples) '
                             f'does not match "{first.path.name}" ({first.sample_rate} Hz, {first.channels} ch, '
                             f"{first.frames} samples); stems must be aligned.")
    names = [p.stem for p in paths]
    if len(set(names)) != len(names):
        raise AudioError(f'"{folder}" holds two stems with the same name in different formats; keep one.')
    # the separation cut its excerpt at this sample (jobs/separate.py rounds the same way)
    start = max(0, int(round(start_seconds * first.sample_rate)))
    return Stems(names, paths, first, source, start)


@dataclass
class RemixResult:
    path: Path
    frames: int
    seconds: float
    clipped: int                  # samples clipped to full scale (PCM output only)
    certificate: Path | None


def _null_check(stems: Stems, mix: Mix, out: Path, mixture: Path | None) -> dict:
    """Whether the render plus the muted stems nulls against the mixture (only for mixes of unity strips)."""
    if not mix.is_unity(stems.names, mutes=True):
        return {"applicable": False, "reason": "the mix changes levels or adds effects, so it cannot null"}
    if mixture is None:
        return {"applicable": False, "reason": "no mixture given to check against (--mixture)"}
    muted = [(name, p) for name, p in zip(stems.names, stems.paths) if not mix.audible(name)]
    # stems of an excerpt are checked against the same excerpt of the mixture
    result = null_residual(mixture, [out, *[p for _, p in muted]], start=stems.start, frames=stems.info.frames,
                           names=["render", *[n for n, _ in muted]])
    return {"applicable": True, "against": [Path(mixture).name, "render", *[p.name for _, p in muted]],
            "mixture_samples": [stems.start, stems.start + stems.info.frames], **result.as_dict()}


def mixed_blocks(stems: Stems, mix: Mix, cancel: CancelToken | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """The mix of the stems, streamed: (samples done so far, (channels, n) float32) per block, with fresh effect
    state and the automation applied block by block."""
    info = stems.info
    renderer = Renderer(mix, stems.names, info.sample_rate, info.channels)
    handles = [sf.SoundFile(str(p)) for p in stems.paths]
    try:
        done = 0
        while done < info.frames:
            if cancel is not None:
                cancel.raise_if_cancelled()
            n = min(BLOCK if not mix.automation else AUTOMATION_BLOCK, info.frames - done)
            if mix.automation:
                renderer.set_mix(mix.at(done / info.sample_rate))
            blocks = np.stack([h.read(n, dtype="float64", always_2d=True).T for h in handles])
            if blocks.shape[-1] != n:
                raise AudioError("A stem ended early while rendering; it is truncated. Separate the song again.")
            done += n
            yield done, renderer.process(blocks)
    finally:
        for handle in handles:
            handle.close()


def render_remix(stems: Stems, mix: Mix, out: str | Path, fmt: OutputFormat | None = None,
                 mixture: str | Path | None = None, kind: str = "remix",
                 progress: Callable[[dict], None] | None = None, cancel: CancelToken | None = None) -> RemixResult:
    """Render ``mix`` of ``stems`` to ``out`` (atomically) and write a certificate beside it.

    fmt defaults to the stems' own format. With ``mixture`` (the original song), a mix of unity strips (mutes
    allowed) is checked to null against it together with the muted stems.
    """
    started = time.monotonic()
    out = Path(out)
    fmt = fmt or stems.format()
    if out.suffix.lower() != f".{fmt.extension}":
        out = out.with_name(out.name + f".{fmt.extension}") if not out.suffix else out.with_suffix(f".{fmt.extension}")
    info = stems.info
    container, subtype = fmt.soundfile
    clipped = 0
    try:
        with AtomicAudioWriter(out, info.sample_rate, info.channels, container, subtype) as writer:
            for done, audio in mixed_blocks(stems, mix, cancel):
                if fmt.bits:
                    scale = float(1 << (fmt.bits - 1))
                    clipped += int(np.count_nonzero((audio >= 1.0) | (audio < -1.0 - 0.5 / scale)))
                    encoded = quantise(audio, fmt.bits)
                    writer.write(encoded.astype(np.int16) if fmt.bits == 16 else encoded << 8)
                else:
                    writer.write(audio)
                if progress is not None:
                    progress({"done": done, "total": info.frames, "seconds": time.monotonic() - started})
            writer.close()
            null = _null_check(stems, mix, writer.temp, Path(mixture) if mixture else None)
            cert = certificate.build(kind, None, {"mix": mix.to_dict(), "stems": stems.names,
                                                  "format": fmt.name, "depth": fmt.depth}, null=null)
            if stems.source is not None:
                cert["source"] = stems.source
            if fmt.name == "wav":
                certificate.embed_wav(writer.temp, cert)
            path = writer.commit()
    except OSError as error:
        raise AudioError(f'Writing "{out}" failed: {error.strerror or error}. Free some space or choose another '
                         "folder; nothing partial was left.") from None
    cert_path = certificate.write_beside(out.parent, cert, [path], name=f"{out.name}.certificate.json")
    return RemixResult(path, info.frames, time.monotonic() - started, clipped, cert_path)


def instrumental(stems: Stems, out: str | Path, mixture: str | Path | None = None,
                 **kwargs) -> RemixResult:
    """mixture − vocals, exactly, in the stems' own format."""
    return render_remix(stems, preset("karaoke", stems.names), out, stems.format(), mixture, "instrumental",
                        **kwargs)


def mix_from_file(path: str | Path) -> Mix:
    """A mix file (MIX.json). Raises MixError naming the file when it is not one."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise AudioError(f'Cannot read the mix "{path}": {error.strerror or error}.') from None
    try:
        return Mix.from_json(data)
    except MixError as error:
        raise MixError(f'"{path.name}": {error}') from None

