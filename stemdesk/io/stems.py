"""A folder of stems: the aligned audio files `stemdesk separate` writes (or any folder of aligned audio files),
their order, their colours, and the certificate that names them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..core.errors import AudioError
from .audio import AUDIO_SUFFIXES_READ, AudioInfo, AudioReader, probe
from .formats import PCM_BITS, OutputFormat

STEM_ORDER = ("vocals", "drums", "bass", "other", "accompaniment")
# One colour per stem, for the app's lanes and the tracks of exported DAW sessions alike.
STEM_COLOURS = {
    "vocals": "#e8a33d",
    "drums": "#e0625e",
    "bass": "#5b8def",
    "other": "#5cb85c",
    "accompaniment": "#9b7fd1",
    "instrumental": "#9b7fd1",
}
OTHER_COLOUR = "#8fa0b3"

CERTIFICATE = "stemdesk-certificate.json"
MAX_CERTIFICATE_BYTES = 1 << 20


def colour_of(name: str) -> str:
    """The colour of a stem by name (``#rrggbb``); a split stem's children ("vocals/lead") have their stem's, and
    stems of no known name share one."""
    return STEM_COLOURS.get(name, STEM_COLOURS.get(name.split("/")[0], OTHER_COLOUR))


def read_certificate(folder: Path) -> dict:
    """The JSON certificate in ``folder`` (see `stemdesk.export.certificate`). Raises OSError or ValueError."""
    path = Path(folder) / CERTIFICATE
    if path.stat().st_size > MAX_CERTIFICATE_BYTES:
        raise ValueError(f"{path} is larger than a certificate can be")
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Certified:
    """What the certificate in a folder says of the files beside it."""

    kind: str  # "stems", "remix" ... (`stemdesk.export.certificate.build`)
    outputs: list[Path]  # the files it names, in its order, each in the folder
    source: dict | None  # its "source" entry: the song's file name and sha256
    start_seconds: float  # where in the song the stems begin (an excerpt's --start); 0 for the whole song


def certified(folder: str | Path) -> Certified | None:
    """What the certificate in ``folder`` names, or None when there is none or it cannot be read. Only file names
    are taken from it, so what it names is always in ``folder``: the one reading of a certificate's outputs, for
    finding the stems and for removing an earlier separation's."""
    folder = Path(folder)
    try:
        cert = read_certificate(folder)
        return Certified(
            str(cert.get("kind") or ""),
            [folder / Path(item["file"]).name for item in cert.get("outputs", [])],
            cert.get("source"),
            float((cert.get("settings") or {}).get("start_seconds") or 0.0),
        )
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


@dataclass
class Stems:
    """The stems of one song, aligned: names in order, their files, and the shared format."""

    names: list[str]
    paths: list[Path]
    info: AudioInfo
    source: dict | None = None  # the "source" entry of the stems' certificate, when there is one
    start: int = 0  # samples into the source where the stems begin (an excerpt's --start)
    mixture: Path | None = None  # the source's audio file, when the caller knows where it is
    # stems split further by a split model (`stemdesk.jobs.split`): parent name → its children, from <parent>/
    children: dict[str, Stems] = field(default_factory=dict)

    def leaves(self) -> list[tuple[str, Path]]:
        """The tree's leaves in order, each as (its key, its file): a stem that was split gives its children
        ("vocals/lead"), any other stem itself ("drums"). The leaves add up to the song, as the stems do."""
        out: list[tuple[str, Path]] = []
        for name, path in zip(self.names, self.paths):
            inner = self.children.get(name)
            out += [(f"{name}/{c}", p) for c, p in zip(inner.names, inner.paths)] if inner else [(name, path)]
        return out

    def as_leaves(self) -> Stems:
        """These stems as a mix plays them: each split stem replaced by its children, named as in `leaves`
        ("vocals/lead"); the mix's channel of the split stem is their group (`stemdesk.mixer.mix.Mix`)."""
        if not self.children:
            return self
        keys, paths = zip(*self.leaves())
        return replace(self, names=list(keys), paths=list(paths), children={})

    def format(self) -> OutputFormat:
        """The stems' own format (so an instrumental can be written exactly)."""
        bits = PCM_BITS.get(self.info.subtype)
        name = {".flac": "flac", ".aiff": "aiff", ".aif": "aiff"}.get(self.paths[0].suffix.lower(), "wav")
        return OutputFormat.parse(name, str(bits) if bits else ("32f" if name != "flac" else "24"))

    def blocks(self, block: int, dtype: str = "float64") -> Iterator[tuple[int, np.ndarray]]:
        """Every stem read in step: (samples done so far, (sources, channels, n)) per block, checked for NaN and
        truncation like any read."""
        readers: list[AudioReader] = []
        try:
            for path in self.paths:
                readers.append(AudioReader(path))
            done = 0
            while done < self.info.frames:
                n = min(block, self.info.frames - done)
                parts = [reader.read(n, dtype) for reader in readers]
                if any(part.shape[-1] != n for part in parts):
                    raise AudioError("A stem ended early while rendering; it is truncated. Separate the song again.")
                done += n
                yield done, np.stack(parts)
        finally:
            for reader in readers:
                reader.close()


def earlier_stems(folder: str | Path) -> list[Path]:
    """What an earlier separation left in ``folder``: its certificate and audio files, by name ([] when the folder
    is absent or holds neither). A new separation into the folder would replace them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and (p.name == CERTIFICATE or p.suffix.lower() in AUDIO_SUFFIXES_READ)
    )


def find_stems(folder: str | Path) -> Stems:
    """The stems in a folder written by `stemdesk separate` (or any folder of aligned audio files)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AudioError(f'"{folder}" is not a folder of stems. Give the folder a separation wrote.')
    cert = certified(folder)
    source, paths, start_seconds = None, [], 0.0
    if cert is not None:
        source = cert.source
        if cert.kind == "stems" and cert.outputs:
            paths, start_seconds = cert.outputs, cert.start_seconds
    if not paths or not all(p.is_file() for p in paths):
        # no certificate: any folder of audio files, in the usual stem order (the certificate keeps the model's)
        paths = [
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in AUDIO_SUFFIXES_READ
        ]
        rank = {name: i for i, name in enumerate(STEM_ORDER)}
        paths.sort(key=lambda p: (rank.get(p.stem, len(rank)), p.stem))
    if not paths:
        raise AudioError(f'No stems in "{folder}". Separate a song into it first.')
    infos = [probe(p) for p in paths]
    first = infos[0]
    for info in infos[1:]:
        if (info.sample_rate, info.channels, info.frames) != (first.sample_rate, first.channels, first.frames):
            raise AudioError(
                f'"{info.path.name}" ({info.sample_rate} Hz, {info.channels} ch, {info.frames} samples) '
                f'does not match "{first.path.name}" ({first.sample_rate} Hz, {first.channels} ch, '
                f"{first.frames} samples); stems must be aligned."
            )
    names = [p.stem for p in paths]
    if len(set(names)) != len(names):
        raise AudioError(f'"{folder}" holds two stems with the same name in different formats; keep one.')
    # the separation cut its excerpt at this sample (jobs/separate.py rounds the same way)
    start = max(0, int(round(start_seconds * first.sample_rate)))
    return Stems(names, paths, first, source, start, children=_children(folder, names, paths, first))


def _children(folder: Path, names: list[str], paths: list[Path], info: AudioInfo) -> dict[str, Stems]:
    """The children of each stem a split model split (``<folder>/<stem>/``, whose certificate names the stem's
    file as its source), when they are whole and aligned with it; a folder that is not such is left alone."""
    found: dict[str, Stems] = {}
    for name, path in zip(names, paths):
        inner = folder / name
        cert = certified(inner) if (inner / CERTIFICATE).is_file() else None
        if cert is None or (cert.source or {}).get("file") != path.name or not cert.outputs:
            continue
        if not all(p.is_file() for p in cert.outputs):
            continue
        try:
            infos = [probe(p) for p in cert.outputs]
        except AudioError:
            continue
        if any((i.sample_rate, i.channels, i.frames) != (info.sample_rate, info.channels, info.frames) for i in infos):
            continue
        found[name] = Stems([p.stem for p in cert.outputs], list(cert.outputs), infos[0], cert.source)
    return found
