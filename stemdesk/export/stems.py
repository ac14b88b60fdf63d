"""Writing stems so that they null against the mixture in the format they are written in.

PCM (16/24-bit WAV, FLAC, AIFF): every stem but the last is rounded to integers, and the last is the integer
residual ``quantise(mix) − Σ others``, moved into the other stems' headroom wherever it would leave the format's
range. Σ stems then equals the mixture quantised to the same format, bit for bit.
Float32: the last stem is ``mix − Σ others`` computed in float64 and rounded once (≤ −138 dBFS residual).
Lossy (MP3, OGG Vorbis): floats in, no null guarantee (the encoder changes every stem); `nullcheck` reports it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..core.errors import AudioError
from ..io.audio import AtomicAudioWriter
from ..io.formats import OutputFormat, pcm_samples, quantise
from .certificate import embed_wav, write_beside

FLOAT_NULL_DBFS = -138.0


def integer_stems(stems: np.ndarray, mix: np.ndarray, bits: int) -> np.ndarray:
    """stems float (sources, channels, n), mix float (channels, n) → int32 stems with Σ = quantise(mix, bits),
    each within the ``bits``-bit range (sums of up to 255 clipped 24-bit stems fit in int32)."""
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    q = quantise(stems, bits)
    target = quantise(mix, bits)
    q[-1] = target - q[:-1].sum(axis=0)
    for i in range(q.shape[0] - 1):
        excess = q[-1] - np.clip(q[-1], low, high)  # > 0 above the range, < 0 below it
        if not excess.any():
            break
        move = np.clip(excess, low - q[i], high - q[i])
        q[i] += move
        q[-1] -= move
    if (q[-1] < low).any() or (q[-1] > high).any():  # impossible while quantise(mix) is in range; kept as a guard
        raise AudioError("Internal error: the integer residual stem does not fit the format. Report this bug.")
    return q


def float_stems(stems: np.ndarray, mix: np.ndarray) -> np.ndarray:
    """float32 stems whose float64 sum equals the mixture to within one rounding of the last stem."""
    out = stems.astype(np.float32)
    out[-1] = (mix.astype(np.float64) - out[:-1].astype(np.float64).sum(axis=0)).astype(np.float32)
    return out


def encode_for_file(stems: np.ndarray, mix: np.ndarray, fmt: OutputFormat) -> np.ndarray:
    """The array handed to soundfile for each stem: int16 / int32 (24-bit as value << 8) / float32."""
    if fmt.bits is not None:
        return pcm_samples(integer_stems(stems, mix, fmt.bits), fmt.bits)
    return float_stems(stems, mix)


class StemsWriter:
    """Streams stems to ``folder/<source>.<ext>``, one atomic writer per stem.

    `write` takes matching blocks of stems and of the original mixture (needed for the exact residual). Nothing
    appears under the final names until `commit`; `abort` (or an exception inside ``with``) removes every
    temporary file.
    """

    def __init__(self, folder: Path, sources: Sequence[str], sample_rate: int, channels: int, fmt: OutputFormat):
        self.folder = Path(folder)
        self.fmt = fmt
        self.paths = [self.folder / f"{source}.{fmt.extension}" for source in sources]
        self.certificate: Path | None = None
        self.writers: list[AtomicAudioWriter] = []
        try:
            for path in self.paths:
                self.writers.append(AtomicAudioWriter.for_format(path, sample_rate, channels, fmt))
        except Exception:
            self.abort()
            raise

    def write(self, stems: np.ndarray, mix: np.ndarray) -> None:
        """stems (sources, channels, n) float, mix (channels, n) float."""
        encoded = encode_for_file(stems, mix, self.fmt)
        for writer, stem in zip(self.writers, encoded):
            writer.write(stem)

    def commit(self, certify: Callable[[list[Path]], dict] | None = None) -> list[Path]:
        """Close every file first, so an error while flushing leaves all targets untouched, then rename.

        ``certify(temporary paths)`` returns the certificate (see `certificate.build`); it is checked on the finished
        files before they take their names, embedded in WAVs and written beside them as JSON.
        """
        for writer in self.writers:
            writer.close()
        cert = certify([writer.temp for writer in self.writers]) if certify is not None else None
        if cert is not None and self.fmt.name == "wav":
            for writer in self.writers:
                embed_wav(writer.temp, cert)
        outputs = [writer.commit() for writer in self.writers]
        if cert is not None:
            self.certificate = write_beside(self.folder, cert, outputs)
        return outputs

    def abort(self) -> None:
        for writer in self.writers:
            writer.abort()

    def __enter__(self) -> StemsWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self.abort()
