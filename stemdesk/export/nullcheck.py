"""The engineer's null-sum test on files: invert the sum of the stems, add the mix, measure what is left."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
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
    # each stem's energy (Σ x², full scale = 1) as this check measured it, unrounded, so that the null of a tree of
    # splits can be composed in the process that checked them (`tree_null`); not part of the certificate
    energies: dict[str, float] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict:
        out = asdict(self)
        del out["energies"]
        return out

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
    _check_aligned(mix_info, infos, start, total_frames)
    domain, bits = _domain(infos)
    region = max(1, int(round(region_seconds * mix_info.sample_rate)))
    residual = _Residual(total_frames, len(infos), region)
    readers: list[AudioReader] = []
    try:
        for info in [mix_info, *infos]:
            readers.append(AudioReader(info))
        readers[0].seek(start)
        done = 0
        while done < total_frames:
            n = min(BLOCK, total_frames - done)
            mix_block = readers[0].read(n, "float64", frames_first=True)  # (n, channels), as every block below
            if bits is not None:
                block = residual.of_pcm(mix_block, readers[1:], bits, n)
            else:
                block = residual.of_float(mix_block, readers[1:], n)
            if block is not None:  # None: bit-exact, the usual case: nothing to measure in this block
                residual.add(block, mix_block, done, n)
            done += n
    finally:
        for reader in readers:
            reader.close()
    names = list(names) if names is not None else [Path(i.path).stem for i in infos]
    return residual.result(domain, bits, mix_info, names, worst)


def tree_null(song: NullResult, splits: Mapping[str, NullResult], leaves: Sequence[str]) -> NullResult | None:
    """The null of a tree's leaves against the song, composed from the checks that read them: ``song``, the song's
    stems against the song, and ``splits``, each split parent's children against the parent's file (keys as in
    `Stems.leaves`: "drums/kick" for a child, "bass" for a stem left whole). When every check is bit-exact in the
    same PCM depth, the leaves add up to the song bit for bit, since integers that add up to each parent and parents
    that add up to the song do; their shares of the energy come from the energies those checks measured. None when
    any check is not bit-exact or lacks its energies (a certificate read back has none): then read the leaves with
    `null_residual`."""
    checks = [song, *splits.values()]
    if not all(check.bit_exact and check.domain == song.domain and check.energies for check in checks):
        return None
    energy: dict[str, float] = {}
    for key in leaves:
        parent, _, child = key.partition("/")
        check = splits.get(parent) if child else (None if parent in splits else song)
        if check is None or (child or parent) not in check.energies:
            return None
        energy[key] = check.energies[child or parent]
    total = sum(energy.values())
    shares = {key: round(value / total, 6) if total > 0 else 0.0 for key, value in energy.items()}
    return replace(song, energy_share=shares, energies=energy)


def _check_aligned(mix: AudioInfo, stems: list[AudioInfo], start: int, frames: int) -> None:
    """The stems have the mixture's rate and channels and the length of the excerpt compared, which lies in it."""
    if start < 0 or frames <= 0 or start + frames > mix.frames:
        raise AudioError(f"The excerpt {start}+{frames} lies outside the mixture ({mix.frames} samples).")
    for info in stems:
        if info.sample_rate != mix.sample_rate:
            raise AudioError(
                f'"{info.path.name}" is {info.sample_rate} Hz but the mixture is '
                f"{mix.sample_rate} Hz; stems must share the mixture's sample rate."
            )
        if info.channels != mix.channels:
            raise AudioError(f'"{info.path.name}" has {info.channels} channels but the mixture has {mix.channels}.')
        if info.frames != frames:
            raise AudioError(
                f'"{info.path.name}" is {info.frames} samples long but the mixture is '
                f"{frames}; stems must be sample-aligned with the mixture."
            )


def _domain(stems: list[AudioInfo]) -> tuple[str, int | None]:
    """Where the stems are compared: ("pcm16", 16) or ("pcm24", 24) when all are PCM of that depth, else "float"
    or, when any is lossy, "lossy" (no depth)."""
    subtypes = {info.subtype for info in stems}
    if len(subtypes) == 1 and next(iter(subtypes)) in PCM_BITS:
        bits = PCM_BITS[next(iter(subtypes))]
        return f"pcm{bits}", bits
    return ("lossy" if subtypes & LOSSY else "float"), None


TRUNCATED = "A file ended early while checking the null; it is truncated."


class _Residual:
    """What the residual Σ stems − mix measured so far, block by block: its peak and energy (and each ``region``'s
    peak), the mixture's energy, each stem's energy, and the mixture's samples a PCM depth clipped."""

    def __init__(self, frames: int, stems: int, region: int):
        self.frames, self.region = frames, region
        self.region_peak = np.zeros(-(-frames // region))
        self.stem_energy = np.zeros(stems)
        self.peak, self.energy, self.mix_energy = 0.0, 0.0, 0.0
        self.clipped, self.mix_peak = 0, 0.0

    def of_pcm(self, mix_block: np.ndarray, stems: list[AudioReader], bits: int, n: int) -> np.ndarray | None:
        """The block's residual in the integer domain of ``bits``, against the mixture quantised to it; None when it
        is bit-exact."""
        total: np.ndarray = np.zeros(mix_block.shape, dtype=np.int64)
        for index, reader in enumerate(stems):
            # 16-bit samples as they are; 24-bit ones in the top bytes of an int32, shifted down in place
            stem = reader.read(n, "int16" if bits == 16 else "int32", frames_first=True)
            if stem.shape != mix_block.shape:
                raise AudioError(TRUNCATED)
            if bits != 16:
                np.right_shift(stem, 32 - bits, out=stem)
            total += stem
            self.stem_energy[index] += _energy(stem.astype(np.float64)) / float(1 << (2 * bits - 2))
        target = quantise(mix_block, bits)
        over = np.abs(mix_block) * float(1 << (bits - 1)) > np.abs(target) + 0.5  # cut by the clip, not rounded
        if over.any():
            self.clipped += int(np.count_nonzero(over))
            self.mix_peak = max(self.mix_peak, float(np.abs(mix_block).max()))
        difference = total - target
        if mix_block.shape[0] == n and not difference.any():
            return None
        return difference / float(1 << (bits - 1))

    def of_float(self, mix_block: np.ndarray, stems: list[AudioReader], n: int) -> np.ndarray:
        """The block's residual in float64."""
        total = np.zeros(mix_block.shape)
        for index, reader in enumerate(stems):
            stem = reader.read(n, "float64", frames_first=True)
            if stem.shape != mix_block.shape:
                raise AudioError(TRUNCATED)
            total += stem
            self.stem_energy[index] += _energy(stem)
        return total - mix_block

    def add(self, residual: np.ndarray, mix_block: np.ndarray, done: int, n: int) -> None:
        """The residual (n, channels) of the ``n`` frames from ``done``."""
        if residual.shape[0] != n:
            raise AudioError(TRUNCATED)
        magnitude = np.abs(residual).max(axis=1)
        # per-region peaks of this block: split it where regions start (np.maximum.at is far slower)
        first = done // self.region
        cuts = np.arange((first + 1) * self.region, done + n, self.region) - done
        peaks = np.maximum.reduceat(magnitude, np.concatenate([[0], cuts]))
        touched = np.arange(first, first + len(peaks))
        self.region_peak[touched] = np.maximum(self.region_peak[touched], peaks)
        self.peak = max(self.peak, float(magnitude.max()))
        self.energy += _energy(residual)
        self.mix_energy += _energy(mix_block)

    def result(self, domain: str, bits: int | None, mix: AudioInfo, names: list[str], worst: int) -> NullResult:
        """The verdict for ``domain``, each stem's share of the energy and the ``worst`` loudest regions."""
        frames, peak = self.frames, self.peak
        rms = math.sqrt(self.energy / (frames * mix.channels))
        bit_exact = bits is not None and peak == 0.0
        if bits is not None:
            passed, tolerance = bit_exact, "bit-exact"
        elif domain == "float":
            passed = peak == 0.0 or 20 * math.log10(peak) <= FLOAT_NULL_DBFS
            tolerance = f"peak <= {FLOAT_NULL_DBFS} dBFS"
        else:
            mix_rms = math.sqrt(self.mix_energy / (frames * mix.channels))
            passed = rms <= mix_rms * 10 ** (-LOSSY_MARGIN_DB / 20)
            tolerance = f"lossy: residual RMS >= {LOSSY_MARGIN_DB:g} dB below the mixture's"
        total_energy = self.stem_energy.sum()
        energies = {name: float(e) for name, e in zip(names, self.stem_energy)}
        share = {
            name: round(float(e / total_energy), 6) if total_energy > 0 else 0.0
            for name, e in zip(names, self.stem_energy)
        }
        rate, region, region_peak = mix.sample_rate, self.region, self.region_peak
        regions = [
            {
                "start_seconds": round(i * region / rate, 3),
                "end_seconds": round(min(frames, (i + 1) * region) / rate, 3),
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
            frames,
            share,
            regions,
            self.clipped,
            _db(self.mix_peak) if self.clipped else None,
            energies,
        )
