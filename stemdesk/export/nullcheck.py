"""The engineer's null-sum test on files: invert the sum of the stems, add the mix, measure what is left."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from ..core.errors import AudioError
from ..io.audio import AudioInfo, AudioReader, probe
from ..io.formats import PCM_BITS, quantise
from .stems import FLOAT_NULL_DBFS

LOSSY = {"MPEG_LAYER_III", "VORBIS", "OPUS"}
# Lossy stems cannot null: each encoder adds its own error, loudest at transients. The check only asks that the
# residual's RMS be this many dB below the mixture's, which catches stems that do not belong to the mix.
LOSSY_MARGIN_DB = 12.0
BLOCK = 1 << 18


@dataclass
class NullResult:
    domain: str  # "pcm16", "pcm24", "float" or "lossy"
    max_abs: float  # largest |Σ stems − mix|, full scale = 1.0
    peak_dbfs: float | None  # None when the residual is exactly zero (−∞ dBFS)
    rms_dbfs: float | None
    bit_exact: bool
    passed: bool
    tolerance: str
    frames: int
    energy_share: dict[str, float] = field(default_factory=dict)  # stem -> its share of Σ stem energies
    worst_regions: list[dict] = field(default_factory=list)  # loudest residual windows, loudest first
    # PCM stems: samples of the mixture beyond the depth's full scale (a float or lossy song mastered hot). The stems
    # add up to the mixture quantised, which clips there: their null is exact, and the song's peaks are not in them.
    clipped: int = 0
    mixture_peak_dbfs: float | None = None  # the mixture's peak, when it clips

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def clipping(self) -> str | None:
        """What the stems' depth cut from the song, in words, or None when it cut nothing."""
        if not self.clipped:
            return None
        return (
            f"the song peaks at {self.mixture_peak_dbfs:+.1f} dBFS, above what {self.domain[3:]}-bit stems hold: "
            f"{self.clipped} samples clip, so the stems add up to the song clipped there (32-bit float stems keep it)"
        )

    @property
    def verdict(self) -> str:
        return "bit-exact" if self.bit_exact else ("passed" if self.passed else "FAILED")

    @classmethod
    def from_dict(cls, data: dict) -> NullResult:
        """A certificate's ``null`` section (untrusted: unknown keys are dropped, missing ones are a ValueError)."""
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as error:
            raise ValueError(f"not a null result: {error}") from None


def _energy(block: np.ndarray) -> float:
    """Σ x² of a block, as one dot product (several times faster than np.square(...).sum())."""
    flat = block.ravel()
    return float(flat @ flat)


def _db(value: float) -> float | None:
    return None if value <= 0 else round(20 * math.log10(value), 2)


def null_residual(
    mix: str | Path | AudioInfo,
    stems: Sequence[str | Path],
    start: int = 0,
    frames: int | None = None,
    region_seconds: float = 1.0,
    worst: int = 5,
    names: Sequence[str] | None = None,
) -> NullResult:
    """Stream the mixture and its stems in blocks and measure the residual Σ stems − mix.

    The stems are compared with ``frames`` samples of the mixture from ``start`` (default: all of it).
    PCM stems of one depth are compared in the integer domain against the mixture quantised to that depth
    (pass = bit-exact); float stems in float64 (pass = peak ≤ −138 dBFS); lossy stems pass when the residual's RMS is
    12 dB below the mixture's. The result also names each stem's share of the energy and the ``worst`` windows
    (``region_seconds`` long) where the residual is loudest, for a timeline. ``names`` label the stems (default:
    their file names without the extension). ``mix`` may be the `AudioInfo` the stems were made from, so that a song
    ffmpeg decoded is checked against the very samples the separation read.
    """
    if not stems:
        raise AudioError("Give at least one stem to compare with the mixture.")
    mix_info = mix if isinstance(mix, AudioInfo) else probe(mix)
    infos = [probe(s) for s in stems]
    total_frames = mix_info.frames - start if frames is None else frames
    if start < 0 or total_frames <= 0 or start + total_frames > mix_info.frames:
        raise AudioError(f"The excerpt {start}+{total_frames} lies outside the mixture ({mix_info.frames} samples).")
    for info in infos:
        if info.sample_rate != mix_info.sample_rate:
            raise AudioError(
                f'"{info.path.name}" is {info.sample_rate} Hz but the mixture is '
                f"{mix_info.sample_rate} Hz; stems must share the mixture's sample rate."
            )
        if info.channels != mix_info.channels:
            raise AudioError(
                f'"{info.path.name}" has {info.channels} channels but the mixture has {mix_info.channels}.'
            )
        if info.frames != total_frames:
            raise AudioError(
                f'"{info.path.name}" is {info.frames} samples long but the mixture is '
                f"{total_frames}; stems must be sample-aligned with the mixture."
            )
    subtypes = {info.subtype for info in infos}
    if len(subtypes) == 1 and next(iter(subtypes)) in PCM_BITS:
        bits = PCM_BITS[next(iter(subtypes))]
        domain = f"pcm{bits}"
    else:
        bits = None
        domain = "lossy" if subtypes & LOSSY else "float"

    region = max(1, int(round(region_seconds * mix_info.sample_rate)))
    region_peak = np.zeros(-(-total_frames // region))
    stem_energy = np.zeros(len(infos))
    peak, energy, mix_energy = 0.0, 0.0, 0.0
    clipped, mix_peak = 0, 0.0
    readers: list[AudioReader] = []
    try:
        for info in [mix_info, *infos]:
            readers.append(AudioReader(info))
        readers[0].seek(start)
        done = 0
        while done < total_frames:
            n = min(BLOCK, total_frames - done)
            mix_block = readers[0].read(n, "float64").T
            if bits is not None:
                total: np.ndarray = np.zeros(mix_block.shape, dtype=np.int64)
                for index, reader in enumerate(readers[1:]):
                    stem = reader.read(n, "int32").T.astype(np.int64) >> (32 - bits)
                    if stem.shape != mix_block.shape:
                        raise AudioError("A file ended early while checking the null; it is truncated.")
                    total += stem
                    stem_energy[index] += _energy(stem.astype(np.float64)) / float(1 << (2 * bits - 2))
                target = quantise(mix_block, bits)
                over = np.abs(mix_block) * float(1 << (bits - 1)) > np.abs(target) + 0.5  # cut by the clip, not rounded
                if over.any():
                    clipped += int(np.count_nonzero(over))
                    mix_peak = max(mix_peak, float(np.abs(mix_block).max()))
                difference = total - target
                if mix_block.shape[0] == n and not difference.any():
                    done += n  # bit-exact, the usual case: nothing to measure in this block
                    continue
                residual = difference / float(1 << (bits - 1))
            else:
                total = np.zeros(mix_block.shape)
                for index, reader in enumerate(readers[1:]):
                    stem = reader.read(n, "float64").T
                    if stem.shape != mix_block.shape:
                        raise AudioError("A file ended early while checking the null; it is truncated.")
                    total += stem
                    stem_energy[index] += _energy(stem)
                residual = total - mix_block
            if residual.shape[0] != n:
                raise AudioError("A file ended early while checking the null; it is truncated.")
            magnitude = np.abs(residual).max(axis=1)
            # per-region peaks of this block: split it where regions start (np.maximum.at is far slower)
            first = done // region
            cuts = np.arange((first + 1) * region, done + n, region) - done
            peaks = np.maximum.reduceat(magnitude, np.concatenate([[0], cuts]))
            touched = np.arange(first, first + len(peaks))
            region_peak[touched] = np.maximum(region_peak[touched], peaks)
            peak = max(peak, float(magnitude.max()))
            energy += _energy(residual)
            mix_energy += _energy(mix_block)
            done += n
    finally:
        for reader in readers:
            reader.close()
    rms = math.sqrt(energy / (total_frames * mix_info.channels))
    bit_exact = bits is not None and peak == 0.0
    if bits is not None:
        passed, tolerance = bit_exact, "bit-exact"
    elif domain == "float":
        passed, tolerance = peak == 0.0 or 20 * math.log10(peak) <= FLOAT_NULL_DBFS, f"peak <= {FLOAT_NULL_DBFS} dBFS"
    else:
        mix_rms = math.sqrt(mix_energy / (total_frames * mix_info.channels))
        passed = rms <= mix_rms * 10 ** (-LOSSY_MARGIN_DB / 20)
        tolerance = f"lossy: residual RMS >= {LOSSY_MARGIN_DB:g} dB below the mixture's"
    total_energy = stem_energy.sum()
    names = list(names) if names is not None else [Path(i.path).stem for i in infos]
    share = {
        name: round(float(e / total_energy), 6) if total_energy > 0 else 0.0 for name, e in zip(names, stem_energy)
    }
    rate = mix_info.sample_rate
    regions = [
        {
            "start_seconds": round(i * region / rate, 3),
            "end_seconds": round(min(total_frames, (i + 1) * region) / rate, 3),
            "peak_dbfs": _db(float(region_peak[i])),
        }
        for i in np.argsort(-region_peak, kind="stable")[:worst].tolist()  # plain ints: plain floats out
        if region_peak[i] > 0
    ]
    return NullResult(
        domain,
        peak,
        _db(peak),
        _db(rms),
        bit_exact,
        passed,
        tolerance,
        total_frames,
        share,
        regions,
        clipped,
        _db(mix_peak) if clipped else None,
    )
