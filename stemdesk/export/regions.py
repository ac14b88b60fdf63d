"""A region of a stem as a file of its own, for dragging out of the app into a DAW or a file manager: the stem's
samples over the span, copied exactly (the stem's own sample format), with a certificate that says where they come
from and that they are the stem's, checked by reading both back."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import StemDeskError
from ..io.audio import AtomicAudioWriter, AudioReader, probe
from . import certificate

SHORTEST = 0.01  # seconds: a shorter selection is a click, not a region


def region_name(song: str, stem: str, start_seconds: float, end_seconds: float) -> str:
    """ "<song> <stem> <start>-<end>.wav", the times in song seconds (a split stem's child: "vocals lead")."""
    return f"{song} {stem.replace('/', ' ')} {start_seconds:.2f}-{end_seconds:.2f}.wav"


def write_region(stem: Path, start: int, end: int, out: Path, song_start: int = 0) -> Path:
    """Samples ``start``..``end`` of the stem file ``stem`` into the WAV ``out`` at the stem's own sample format, and
    ``<out>.certificate.json`` beside it. ``song_start``: where the stem starts in its song (an excerpt's stems), for
    the certificate's song times. Raises StemDeskError when the span is not inside the stem or too short."""
    info = probe(stem)
    rate = info.sample_rate
    if not 0 <= start < end <= info.frames:
        raise StemDeskError(
            f"The selection ({(song_start + start) / rate:.2f}-{(song_start + end) / rate:.2f} s) is not inside the "
            f"stems, which cover {song_start / rate:.2f}-{(song_start + info.frames) / rate:.2f} s of the song: "
            "select within them."
        )
    if (end - start) / rate < SHORTEST:
        raise StemDeskError(f"The selection is shorter than {SHORTEST * 1000:.0f} ms: drag across more of the lane.")
    dtype = "int32" if info.subtype in ("PCM_16", "PCM_24", "PCM_32") else "float64"
    subtype = info.subtype if info.subtype in ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE") else "FLOAT"
    with AudioReader(info) as reader:
        reader.seek(start)
        samples = reader.read(end - start, dtype)
    out = Path(out)
    with AtomicAudioWriter(out, rate, info.channels, "WAV", subtype) as writer:
        writer.write(samples if dtype == "int32" else samples.astype(np.float32 if subtype == "FLOAT" else np.float64))
        writer.close()
        with AudioReader(writer.temp) as check:
            back = check.read(end - start, dtype)
        if not np.array_equal(back, samples.astype(back.dtype)):  # the writer's guarantee, checked before it counts
            raise StemDeskError(f'"{out.name}" did not read back as the stem\'s samples; nothing was kept.')
        writer.commit()
    cert = certificate.build(
        "region",
        stem,
        {
            "stem": stem.name,
            "start_sample": start,
            "end_sample": end,
            "song_start_seconds": (song_start + start) / rate,
            "song_end_seconds": (song_start + end) / rate,
            "subtype": subtype,
        },
        null={"applicable": False, "reason": "a region of one stem", "identical_to_source": True},
    )
    certificate.write_beside(out.parent, cert, [out], name=f"{out.name}.certificate.json")
    return out
