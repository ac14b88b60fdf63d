"""The separator: encode (STFT) → estimate masks → apply masks → decode (iSTFT). Each step can be replaced."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor

from .chunker import Chunker, segment_weights
from .estimators.base import AnyEstimator, Estimator, WaveformEstimator
from .masks import apply_mask, normalise_masks, project_onto_mixture, spread_residual
from .postprocess import MaskStep, wiener
from .resample import resample
from .stft import STFT, STFTConfig, interpolate_bins

# The STFT on which a waveform estimator's residual is spread over its stems (`spread_residual`): in seconds, the
# grid of the mask models (4096/1024 at 44.1 kHz), at the audio's own rate.
RESIDUAL_STFT = STFTConfig(n_fft=4096, hop=1024, sample_rate=44100)

# With --shifts, a waveform estimator's blocks hold this many of its segments.
SHIFTED_BLOCK_SEGMENTS = 8

# --shifts: each pass sees the audio delayed by a random 0 to this many seconds (Demucs's test-time augmentation).
MAX_SHIFT_SECONDS = 0.5


@dataclass
class SeparatorOutput:
    """stems (sources, channels, length) on the host; masks are kept only when asked for."""

    stems: Tensor
    masks: Tensor | None = None


class Separator:
    """Separates a block of audio at its native sample rate with one estimator.

    The estimator sees magnitudes on its own STFT grid: the native STFT has the same window and hop in seconds
    (`STFTConfig.at_rate`) and magnitudes are interpolated onto the estimator's bins. Its masks are interpolated back
    and applied to the native spectrogram, so output keeps the input's rate and length with no resampling, and
    the masks still sum to one. A file's channels are grouped to the estimator's channel count (see `group_channels`).
    """

    def __init__(
        self,
        estimator: AnyEstimator,
        device: str | torch.device = "cpu",
        postprocess: Sequence[MaskStep] = (),
        wiener_iterations: int = 0,
        outputs: Mapping[str, Sequence[str]] | None = None,
        residual_spread: str = "spectral",
        shifts: int = 0,
        seed: int = 0,
    ):
        """``postprocess``: mask steps applied in order (e.g. `EnergyGate`, `Binarise`); ``wiener_iterations`` > 0
        replaces plain masking by multichannel Wiener filtering; ``outputs`` merges sources into stems
        (e.g. accompaniment = drums + bass + other), which keeps the null because the sum is unchanged.
        A `WaveformEstimator` predicts stems, not masks: mask steps and Wiener filtering do not apply to it, and
        ``residual_spread`` says how what its stems leave of the mix is given back to them (`spread_residual`).
        ``shifts`` > 0 averages that many passes, each over the audio delayed by a random offset of up to
        `MAX_SHIFT_SECONDS` (drawn from ``seed``, so a run is repeatable), which moves the segment and STFT grids
        against the music; every pass sums to the mix, so their average does too."""
        if shifts < 0:
            raise ValueError("shifts must be 0 or more")
        self.shifts, self.seed = shifts, seed
        self.waveform = isinstance(estimator, WaveformEstimator)
        if self.waveform and (postprocess or wiener_iterations):
            raise ValueError(
                f"{estimator.kind} predicts waveforms, not masks: mask post-processing and Wiener "
                "filtering do not apply to it"
            )
        self.residual_spread = residual_spread
        self.estimator = estimator.eval().to(device)
        self.device = torch.device(device)
        names = list(estimator.sources)
        self.outputs = {name: [names.index(s) for s in group] for name, group in (outputs or {}).items()}
        self.postprocess = tuple(postprocess)
        self.wiener_iterations = wiener_iterations
        self._stfts: dict[int, STFT] = {}

    @property
    def sources(self) -> tuple[str, ...]:
        """The stems this separator returns (after merging)."""
        return tuple(self.outputs) if self.outputs else self.estimator.sources

    @property
    def mask_estimator(self) -> Estimator:
        """The estimator, for the mask steps (only when not `waveform`)."""
        if isinstance(self.estimator, WaveformEstimator):
            raise TypeError(f"{self.estimator.kind} predicts waveforms, not masks")
        return self.estimator

    @property
    def waveform_estimator(self) -> WaveformEstimator:
        """The estimator, for the waveform steps (only when `waveform`)."""
        if not isinstance(self.estimator, WaveformEstimator):
            raise TypeError(f"{self.estimator.kind} predicts masks, not waveforms")
        return self.estimator

    def stft_for(self, sample_rate: int) -> STFT:
        if sample_rate not in self._stfts:
            config = RESIDUAL_STFT if self.waveform else self.mask_estimator.stft_config
            self._stfts[sample_rate] = STFT(config.at_rate(sample_rate)).to(self.device)
        return self._stfts[sample_rate]

    def chunking(self, sample_rate: int, segment_seconds: float, overlap_seconds: float) -> dict:
        """The chunker's settings for this estimator at a rate: {"segment", "overlap", "window"} in samples.
        Mask estimators take the segment asked for (at least four FFTs); a waveform estimator takes its own
        training length, overlapped by a quarter with triangular weights, as its reference implementation does
        (with ``shifts``: blocks of several segments, so that a delayed pass costs one segment more, not twice as
        much; each block is cut into the estimator's own segments inside)."""
        if self.waveform:
            plan = self.waveform_segments(sample_rate)
            if self.shifts:
                plan = {**plan, "segment": plan["segment"] * SHIFTED_BLOCK_SEGMENTS, "window": segment_weights}
            return plan
        n_fft = self.mask_estimator.stft_config.at_rate(sample_rate).n_fft
        segment = max(int(segment_seconds * sample_rate), 4 * n_fft)
        return {
            "segment": segment,
            "overlap": min(int(overlap_seconds * sample_rate), segment // 4),
            "window": segment_weights,
        }

    # The four steps. Subclasses may override any of them.
    def encode(self, audio: Tensor, sample_rate: int) -> Tensor:
        """audio (batch, channels, length) → complex spec (batch, channels, bins, frames) at the native rate."""
        return self.stft_for(sample_rate)(audio)

    @torch.inference_mode()
    def estimate_masks(self, spec: Tensor, sample_rate: int) -> Tensor:
        """spec complex (batch, channels, bins_native, frames) → masks (batch, sources, channels, bins_native, frames)."""
        est = self.mask_estimator
        native = self.stft_for(sample_rate).config.bin_frequencies()
        model = est.stft_config.bin_frequencies()
        mag = interpolate_bins(est.heard(spec), native, model)
        raw = est(mag).float()
        masks = raw if est.sums_to_one else normalise_masks(raw, est.mask, est.residual)
        return interpolate_bins(masks, model, native)

    def apply(self, spec: Tensor, mask: Tensor) -> Tensor:
        """spec complex (batch, channels, bins, frames) × one source's mask (batch, channels, bins, frames)."""
        return apply_mask(spec, mask)

    def decode(self, stem_spec: Tensor, sample_rate: int, length: int) -> Tensor:
        """complex (batch, channels, bins, frames) → real (batch, channels, length)."""
        return self.stft_for(sample_rate).inverse(stem_spec, length)

    @torch.inference_mode()
    def __call__(self, audio: Tensor, sample_rate: int, keep_masks: bool = False) -> SeparatorOutput:
        """audio (channels, length) on the host → stems (sources, channels, length) on the host, Σ stems = audio.

        Sources are applied and decoded one at a time (a third of the peak memory of all at once), and the last
        source is not decoded at all: it is the mixture minus the others, which is what its mask would give up to
        iSTFT rounding, and makes the null exact. With ``shifts``, masks are not kept (each pass has its own grid).
        """
        if not self.shifts:
            return self.separate_once(audio, sample_rate, keep_masks)

        def separate(delayed: Tensor) -> Tensor:
            return self.separate_once(delayed, sample_rate).stems

        return SeparatorOutput(stems=average_shifts(separate, audio, sample_rate, self.shifts, self.seed))

    def waveform_segments(self, sample_rate: int) -> dict:
        """A waveform estimator's own segments at a rate, as the chunker's settings."""
        est = self.waveform_estimator
        segment = est.segment * sample_rate // est.sample_rate
        overlap = int(est.overlap_fraction * segment)
        return {"segment": segment, "overlap": overlap, "window": partial(triangle_weights, segment=segment)}

    def separate_once(self, audio: Tensor, sample_rate: int, keep_masks: bool = False) -> SeparatorOutput:
        """One pass (no shifts): audio (channels, length) on the host → stems (sources, channels, length), Σ = audio."""
        if self.waveform:
            plan = self.waveform_segments(sample_rate)
            if audio.shape[-1] <= plan["segment"]:
                return SeparatorOutput(stems=self._separate_waveform(audio, sample_rate))
            # longer than the network takes: its own segments, crossfaded (each sums to the mix, so their blend does)
            stems = Chunker(lambda x: self._separate_waveform(x, sample_rate), **plan).run(audio)
            return SeparatorOutput(stems=project_onto_mixture(stems, audio))
        spec, order = self.spectrogram(audio, sample_rate)
        masks = self.estimate_masks(spec, sample_rate)  # (groups, sources, est_ch, bins, frames)
        stems, masks = self.stems_from_masks(spec, masks, audio, sample_rate, order)
        if self.outputs:
            stems = project_onto_mixture(self.merge_outputs(stems), audio)
        return SeparatorOutput(stems=stems, masks=masks.cpu() if keep_masks else None)

    def spectrogram(self, audio: Tensor, sample_rate: int) -> tuple[Tensor, Tensor]:
        """audio (channels, length) on the host → (complex spec (groups, est_channels, bins, frames) on the device,
        ``order``: the channel grouping, for `stems_from_masks`)."""
        groups, order = group_channels(audio.shape[0], self.estimator.channels)
        return self.encode(audio.to(self.device, torch.float32)[groups], sample_rate), order

    def stems_from_masks(
        self,
        spec: Tensor,
        masks: Tensor,
        audio: Tensor,
        sample_rate: int,
        order: Tensor,
        postprocess: Sequence[MaskStep] | None = None,
        wiener_iterations: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Masks that sum to one → stems: the mask steps (this separator's unless ``postprocess`` is given), plain
        masking or Wiener filtering, every stem but the last decoded, the last the mixture minus the others.
        spec complex (groups, est_ch, bins, frames), masks (groups, sources, est_ch, bins, frames), audio
        (channels, length) on the host → (stems (sources, channels, length) on the host, the masks as applied)."""
        steps = self.postprocess if postprocess is None else postprocess
        iterations = self.wiener_iterations if wiener_iterations is None else wiener_iterations
        hop_seconds = self.stft_for(sample_rate).config.hop / sample_rate
        for step in steps:
            masks = step(spec, masks, hop_seconds)
        filtered = wiener(spec, masks, iterations) if iterations else None
        channels, length = audio.shape
        count = masks.shape[1]
        stems = torch.empty(count, channels, length, dtype=audio.dtype)
        for source in range(count - 1):
            stem_spec = filtered[:, source] if filtered is not None else self.apply(spec, masks[:, source])
            decoded = self.decode(stem_spec, sample_rate, length)
            stems[source] = ungroup_channels(decoded.unsqueeze(1), order, channels)[0].to("cpu", audio.dtype)
        return project_onto_mixture(stems, audio, in_place=True), masks

    def merge_outputs(self, parts: Tensor, dim: int = 0) -> Tensor:
        """The estimator's sources summed into this separator's stems along ``dim``: stems (sources, channels,
        length) with ``dim`` 0, or masks (groups, sources, channels, bins, frames) with ``dim`` 1. Summing keeps
        masks that sum to one and stems that sum to the mix."""
        if not self.outputs:
            return parts
        groups = [torch.tensor(group, device=parts.device) for group in self.outputs.values()]
        return torch.stack([parts.index_select(dim, group).sum(dim) for group in groups], dim)

    def _separate_waveform(self, audio: Tensor, sample_rate: int) -> Tensor:
        """A waveform estimator at its own rate (resampled there and back when the audio's differs), then its
        residual spread over the stems at the audio's rate."""
        est = self.waveform_estimator
        channels, length = audio.shape
        groups, order = group_channels(channels, est.channels)
        mix = audio.to(self.device, torch.float32)
        batch = resample(mix[groups], sample_rate, est.sample_rate)
        predicted = resample(est(batch), est.sample_rate, sample_rate)[..., :length]  # (groups, S, ch, length)
        stems = ungroup_channels(predicted, order, channels)
        stems = spread_residual(stems, mix, self.residual_spread, self.stft_for(sample_rate))
        stems = project_onto_mixture(stems.to("cpu", audio.dtype), audio)  # exact in the input's precision
        if self.outputs:
            stems = project_onto_mixture(self.merge_outputs(stems), audio)
        return stems


def average_shifts(
    separate: Callable[[Tensor], Tensor], audio: Tensor, sample_rate: int, shifts: int, seed: int = 0
) -> Tensor:
    """--shifts: the mean of ``shifts`` passes of ``separate`` (audio (channels, n) → stems (sources, channels, n)
    that sum to it), each over the audio delayed by a random 0 to `MAX_SHIFT_SECONDS` drawn from ``seed``, so a
    run repeats. Every pass sums to the mix, so the mean does too; the last stem takes the rounding."""
    generator = torch.Generator().manual_seed(seed)
    most = int(MAX_SHIFT_SECONDS * sample_rate)
    total: Tensor | None = None
    for _ in range(shifts):
        offset = int(torch.randint(0, most + 1, (1,), generator=generator))
        delayed = torch.nn.functional.pad(audio, (offset, 0))
        stems = separate(delayed)[..., offset:].to(torch.float64)
        total = stems if total is None else total + stems
    assert total is not None, "average_shifts needs at least one shift"
    return project_onto_mixture((total / shifts).to(audio.dtype), audio)


def triangle_weights(
    length: int, overlap: int, dtype: torch.dtype = torch.float32, segment: int | None = None
) -> Tensor:
    """The reference Demucs crossfade: a triangle over the whole segment peaking at its middle (never zero); a
    shorter last segment takes the triangle's first ``length`` weights."""
    segment = max(segment or length, length)
    half = segment // 2
    weights = torch.cat(
        [torch.arange(1, half + 1, dtype=torch.float64), torch.arange(segment - half, 0, -1, dtype=torch.float64)]
    )
    return (weights / weights.max())[:length].to(dtype)


def group_channels(channels: int, group: int) -> tuple[Tensor, Tensor]:
    """Map a file's channels onto groups of ``group`` channels for the estimator.

    Stereo estimator: channels 1–2, 3–4, … form pairs; a lone channel (mono, or the last of an odd count) is
    duplicated into both sides of a pair and the two estimates are averaged. Mono estimator: each channel alone.
    Returns ``groups`` (n_groups, group) indices into the channels and ``order``, the same indices flattened, used
    by `ungroup_channels` to average duplicates back.
    """
    index = torch.arange(channels)
    if group == 1:
        groups = index[:, None]
    else:
        padded = torch.cat([index, index[-1:].repeat((-channels) % group)])
        groups = padded.reshape(-1, group)
    return groups, groups.reshape(-1)


def ungroup_channels(stems: Tensor, order: Tensor, channels: int) -> Tensor:
    """stems (groups, sources, group, length) → (sources, channels, length), averaging duplicated channels."""
    groups, sources, group, length = stems.shape
    flat = stems.permute(1, 0, 2, 3).reshape(sources, groups * group, length)
    out = torch.zeros(sources, channels, length, dtype=stems.dtype, device=stems.device)
    out.index_add_(1, order.to(stems.device), flat)
    counts = torch.bincount(order, minlength=channels).to(stems.device, stems.dtype)
    return out / counts[None, :, None]
