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
    """stems float (sources, channels, n), mix float (channels, n) → integer stems with Σ = quantise(mix, bits),
    each within the ``bits``-bit range: int32 up to 24 bits (sums of up to 255 clipped 24-bit stems fit in it),
    int64 above (in-memory 32-bit audio)."""
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    q = quantise(stems, bits)
    target = quantise(mix, bits)
    if bits > 24:
        q, target = q.astype(np.int64), target.astype(np.int64)
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


def exact_float_stems(stems: np.ndarray, mix: np.ndarray) -> np.ndarray:
    """float stems (sources, channels, n) of the float mixture (channels, n) → float64 stems that add up to it
    exactly, in any order, wherever float64 can hold such parts.

    At each sample, every stem but the last is rounded to a multiple of a power of two g, chosen so that any sum of
    the stems there is a whole number of g's below 2^53, so adding them is exact in any order; the last stem is
    mix − Σ others, exact whenever the mixture is itself a multiple of g. It is for every sample of audio decoded from
    16- or 24-bit PCM, and for float32 audio unless the stems there are over 150 dB louder than the mixture.
    A float64 mixture that uses all 53 bits of a sample cannot be split into float64 parts that add up to it exactly;
    there the sum is within one rounding of it. Rounding moves a stem by at most 2^-48 of the loudest stem at that
    sample (with four stems), some 290 dB below it."""
    count = stems.shape[0]
    out = stems.astype(np.float64)  # a copy: the caller's stems stay as they are
    mix = mix.astype(np.float64, copy=False)
    bound = np.maximum(np.abs(out).max(axis=0), np.abs(mix))  # < 2^exponent
    _, exponent = np.frexp(bound)
    # Σ |stems| < 2·count·2^exponent, so in units of g = 2^step every partial sum stays below 2^53
    step = np.maximum(exponent + int(np.ceil(np.log2(2 * count))) - 53, -1074)
    for index in range(count - 1):
        out[index] = np.ldexp(np.rint(np.ldexp(out[index], -step)), step)
    out[-1] = mix - out[:-1].sum(axis=0)
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
