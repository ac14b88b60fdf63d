"""Resumable training of any registered estimator on multitrack songs.

The loop (`Trainer`) composes pieces with one job each: `Checkpoints` (save, load and resume the work folder
atomically), `WeightAverage` (the moving average of the weights), `Validator` (whole validation songs through the
real separator) and `ProcessGroup` (what the processes of a torchrun job agree on).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from stemdesk.core.cancel import CancelToken
from stemdesk.core.device import resolve_device
from stemdesk.core.errors import Cancelled, StemDeskError
from stemdesk.core.estimators import Estimator, WaveformEstimator, build_estimator
from stemdesk.core.estimators.layers import InputScaler
from stemdesk.core.masks import normalise_masks, ratio_masks
from stemdesk.core.postprocess import PostProcessing
from stemdesk.core.resample import resample
from stemdesk.core.stft import STFT, STFTConfig, interpolate_bins
from stemdesk.io.atomic import atomic_write_bytes
from stemdesk.io.model_store import save_model
from stemdesk.io.process import limit_threads, tune_allocator

from .augment import Augmentation
from .averaging import WeightAverage
from .checkpoints import Checkpoint, Checkpoints
from .data import Sampler, Song, regroup, source_map, source_of
from .model_card import render
from .stemsets import GATE_FRAME_SECONDS, UNSPLIT_RMS
from .validation import Validator

LOSS_BLOCK = 5  # steps per point of Trainer.loss_curve


def loss_trend(curve: list[list[float]], decay_step: int | None = None) -> dict[str, Any] | None:
    """How much the training loss still fell at the end of a run: the mean of the curve's last quarter against
    the quarter before it, as a percentage (near 0: the loss had flattened; strongly negative: still falling when
    the budget ran out). None with fewer than eight points (40 steps). ``decay_step``: the step where the learning
    rate began its final decay (`TrainConfig.decay_minutes`); the trend is then the one before it (the decay lowers
    the loss whether or not it had flattened), and ``decay_change_percent`` says what the decay did: the mean loss
    of its steps against the last quarter before it."""
    if decay_step is not None:
        stable = [p for p in curve if p[0] <= decay_step]
        trend = loss_trend(stable)
        decayed = [p[1] for p in curve if p[0] > decay_step]
        if trend is not None and decayed and trend["last_quarter_loss"]:
            mean = sum(decayed) / len(decayed)
            change = 100 * (mean - trend["last_quarter_loss"]) / abs(trend["last_quarter_loss"])
            trend.update(decay_from_step=decay_step, decay_loss=round(mean, 6), decay_change_percent=round(change, 1))
        return trend
    if len(curve) < 8:
        return None
    quarter = len(curve) // 4
    before = sum(p[1] for p in curve[-2 * quarter : -quarter]) / quarter
    last = sum(p[1] for p in curve[-quarter:]) / quarter
    return {
        "first_block_loss": curve[0][1],
        "last_quarter_loss": round(last, 6),
        "last_quarter_change_percent": round(100 * (last - before) / abs(before), 1) if before else None,
        "steps_per_point": LOSS_BLOCK,
    }


@dataclass
class TrainConfig:
    estimator: str
    config: dict[str, Any]
    excerpt_seconds: float = 6.0
    batch: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-5
    objective: str | None = None  # None: the estimator's own (see stemdesk.core.estimators.OBJECTIVES)
    data_sources: tuple[str, ...] = ("vocals", "drums", "bass", "other")
    remix: float = 0.5  # probability that an example's sources come from different songs
    # gain, channel swap, polarity, pitch and tempo (pitch/tempo through pedalboard: costly on a CPU)
    augmentation: Augmentation = field(default_factory=Augmentation)
    # what separation does after the estimator (a research model's card asks for it): validation applies it too
    postprocessing: PostProcessing = field(default_factory=PostProcessing)
    validate_every: int = 200
    minutes: float = 30.0  # wall-clock budget for this run (resumes add more)
    max_steps: int = 10**9
    seed: int = 0
    threads: int = 1
    lr_decay_patience: int = 4  # validations without improvement before the learning rate halves
    freeze: tuple[str, ...] = ()  # parameter-name prefixes kept fixed (e.g. "fc1", "trunk" for the encoder)
    adapters: int = 0  # > 0: train rank-r low-rank adapters on the dense layers only (stemdesk/training/lora.py)
    beat_start: bool = False  # fine-tuning: export only what beats the starting weights on validation
    # fine-tuning (with beat_start): a round whose median validation uSDR of any stem fell more than this many dB
    # below the starting weights' is never exported, however much the others gained (None: the mean alone decides)
    stem_floor_db: float | None = None
    device: str = "cpu"  # cpu, cuda, mps or auto
    early_stop: int = 0  # stop after this many validations without a new best (0: never)
    ema: float = 0.0  # > 0: validate and export an exponential moving average of the weights (e.g. 0.999)
    warmup: int = 0  # steps over which the learning rate rises linearly from 0 (a fresh optimizer's first steps
    # on trained weights are as large as the rate itself: without it a continued model first loses what it knew)
    checkpoint_minutes: float = 0.0  # > 0: also checkpoint this often between validations (a kill loses less)
    # > 0: the learning rate falls linearly to 0 over the budget's last minutes (warmup, a stable rate, then this
    # decay): the weights settle instead of ending wherever the last steps at the full rate left them, and a run
    # stopped before its decay can carry on to a longer budget (lab/benchmarks/reproduction.py)
    decay_minutes: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def keeps_stems(start: dict | None, medians: dict[str, float], floor_db: float | None) -> bool:
    """Whether a validation round's per-stem medians stay within ``floor_db`` of the starting weights' (``start``,
    as `Trainer.start`) on every stem: a fine-tune that costs a stem more than that is not one to export."""
    if floor_db is None or start is None:
        return True
    base = start["valid_usdr"]
    return all(medians[s] >= base[s] - floor_db for s in base if s in medians)


# A source quieter than this (mean square, -60 dBFS) in an example has no SDR worth a target: a silent target's
# SDR measures only how little leaks into it, at any scale, and the log would give those few samples the gradient.
SILENT_TARGET = 1e-6
# usdr_silent: the most a silent source's term gives, in dB below the mixture (Wisdom et al. use 30).
SILENT_CAP_DB = 30.0


def usdr_loss_terms(
    estimates: Tensor,
    sources: Tensor,
    eps: float = 1e-8,
    silent: bool = False,
    capped: bool = False,
    mixture: Tensor | None = None,
) -> Tensor:
    """The mean uSDR in dB (global SDR per example and source, as `stemdesk.core.metrics.usdr` scores a song:
    10·log10((Σ s² + eps) / (Σ (s − ŝ)² + eps)) over channels and samples) of ``estimates`` against ``sources``
    (batch, sources, channels, length), over the example-source pairs whose source is not silent (`SILENT_TARGET`);
    0 when all are.

    With ``silent`` a silent source counts too, by how far below its example's mixture x the estimate stays,
    10·log10((Σ x² + eps) / (Σ ŝ² + τ·Σ x² + eps)) with τ = 10^(−`SILENT_CAP_DB`/10) (the thresholded SNR of
    Wisdom et al. 2020 for a reference that is silent), and the mean is over every pair: a song's uSDR counts what
    a stem lets through where it is silent, which an example that leaves the source out never sees.

    With ``capped`` (and ``silent``) a heard source's term is thresholded too, 10·log10((Σ s² + eps) / (Σ (s − ŝ)²
    + τ·Σ s² + eps)), at most `SILENT_CAP_DB`: a split model's examples often hold one child alone, whose mask
    can grow its uSDR without end, and the mean would follow those instead of the examples where children overlap.

    ``mixture`` (batch, channels, length): the examples' mixture when it is not the sum of ``sources`` (block
    targets, `merge_blocks`, repeat a block for each of its sources)."""
    signal = sources.square().sum(dim=(-2, -1))
    error = (sources - estimates).square().sum(dim=(-2, -1))
    floor = 10 ** (-SILENT_CAP_DB / 10) * signal if capped else 0.0
    sdr = 10 * torch.log10((signal + eps) / (error + floor + eps))
    heard = signal / (sources.shape[-2] * sources.shape[-1]) > SILENT_TARGET
    if not silent:
        return (sdr * heard).sum() / heard.sum().clamp_min(1)
    mix = (sources.sum(dim=1) if mixture is None else mixture).square().sum(dim=(-2, -1)).unsqueeze(1)
    leak = estimates.square().sum(dim=(-2, -1))
    quiet = 10 * torch.log10((mix + eps) / (leak + 10 ** (-SILENT_CAP_DB / 10) * mix + eps))
    return torch.where(heard, sdr, quiet).mean()


def group_sounds(groups: Tensor, rate: int) -> Tensor:
    """groups (batch, kinds, channels, length) → (batch, kinds) bool: whether each group track sounds in the
    example, by the rule that leaves an unsplit track's seconds out (a `GATE_FRAME_SECONDS` frame above
    `UNSPLIT_RMS`), so a group's faint tail does not merge its children's targets."""
    hop = max(1, int(GATE_FRAME_SECONDS * rate))
    frames = groups.shape[-1] // hop
    if frames == 0:
        return groups.square().mean(dim=(-2, -1)) > UNSPLIT_RMS**2
    power = groups[..., : frames * hop].reshape(*groups.shape[:-1], frames, hop).square().mean(dim=(-3, -1))
    return (power > UNSPLIT_RMS**2).any(dim=-1)


def merge_blocks(
    estimates: Tensor, exact: Tensor, groups: Tensor, kinds: Sequence[Sequence[int]], sounding: Tensor
) -> tuple[Tensor, Tensor]:
    """The targets where group tracks sound: the sources are cut into blocks, each source its own block, merged
    by every group kind that sounds in the example (a kick-and-snare loop puts kick and snare in one block; two
    sounding groups that share a source make one block of all their sources). A block's estimate is the sum of its
    sources' estimates; its target, the sum of its sources' own tracks and of its sounding groups' tracks. So the
    sources outside every sounding group keep their own targets (silence where they have none), and the targets
    add up to the mixture.

    estimates, exact: (batch, sources, channels, length); groups: (batch, kinds, channels, length); ``kinds``: the
    source indices each kind holds; sounding: (batch, kinds) bool. Returns (block estimates, block targets), each
    (batch, sources, channels, length): source i's row holds the block it belongs to, so a loss averaged over the
    rows weights a block by its number of sources."""
    batch, sources = exact.shape[:2]
    holds = torch.zeros(len(kinds), sources, dtype=torch.bool, device=exact.device)
    for k, members in enumerate(kinds):
        holds[k, list(members)] = True
    # together[b, i, j]: sources i and j share a sounding group in example b; closed transitively below
    link = (sounding.unsqueeze(-1) & holds).float()  # (batch, kinds, sources)
    together = torch.eye(sources, device=exact.device).expand(batch, -1, -1) + link.transpose(1, 2) @ link > 0
    for _ in range(max(0, sources - 2).bit_length()):
        together = together.float() @ together.float() > 0
    block = together.to(exact.dtype)  # (batch, sources, sources)
    first = torch.tensor([members[0] for members in kinds], device=exact.device, dtype=torch.long)
    # a sounding group's track goes to the block of its sources (all of them are in one block)
    takes = (together[:, :, first] & sounding.unsqueeze(1)).to(exact.dtype)  # (batch, sources, kinds)
    merged_estimates = torch.einsum("bij,bjcl->bicl", block, estimates)
    targets = torch.einsum("bij,bjcl->bicl", block, exact) + torch.einsum("bik,bkcl->bicl", takes, groups)
    return merged_estimates, targets


def objective_loss(
    estimator: Estimator,
    stft: STFT,
    stems: Tensor,
    objective: str | None = None,
    forward: Callable[..., Tensor] | None = None,
    groups: Sequence[Sequence[int]] = (),
) -> Tensor:
    """The training loss an estimator declares (``estimator.objective``), on stems (batch, sources, channels, length).

    The mixture is the sum of the stems; its STFT is the sum of theirs (the STFT is linear), so one transform serves
    both. Objectives: see `stemdesk.core.estimators.OBJECTIVES`. ``forward`` runs the network (a
    DistributedDataParallel wrapper of ``estimator`` under torchrun); by default the estimator itself.

    ``groups`` (a split model's group kinds, each the estimator's source indices it holds): ``stems`` then has a
    row per kind after the sources, the group tracks, which are part of the mixture; where one sounds, the loss
    scores blocks of sources (`merge_blocks`). Only the uSDR objectives take groups.
    """
    if isinstance(estimator, WaveformEstimator):
        return waveform_loss(estimator, stft.config.sample_rate, stems, objective, forward)
    objective = objective or estimator.objective
    if groups and objective not in ("usdr", "usdr_silent", "usdr_capped"):
        raise ValueError(
            f"group tracks train with a uSDR objective (usdr, usdr_silent, usdr_capped), not {objective!r}"
        )
    # As at inference (see Separator): the STFT runs at the data's rate with the estimator's window and hop in
    # seconds, and magnitudes are interpolated onto the estimator's bins (the identity when the rates agree).
    native, model = stft.config.bin_frequencies(), estimator.stft_config.bin_frequencies()
    spec = stft(stems)  # complex (batch, sources, channels, bins, frames)
    mix_spec = spec.sum(dim=1)
    mix_mag = interpolate_bins(mix_spec.abs(), native, model)  # (batch, channels, model_bins, frames)
    heard = interpolate_bins(estimator.heard(mix_spec), native, model)  # the network's input (mid/side...)
    target = interpolate_bins(spec.abs(), native, model)
    run = forward or estimator
    if objective in ("ibm_bce", "ibm_bce_windows"):
        # Ideal binary mask of the first source against everything else; optional soft targets (Lin: 0.02/0.98).
        low, high = estimator.hyper.get("targets", (0.0, 1.0))
        ibm = target[:, 0] > interpolate_bins((mix_spec - spec[:, 0]).abs(), native, model)
        goal = torch.where(ibm, torch.full_like(mix_mag, high), torch.full_like(mix_mag, low))
        if objective == "ibm_bce_windows":
            return window_bce(run(heard, windows=True), goal)
        return F.binary_cross_entropy(run(heard)[:, 0].clamp(1e-6, 1 - 1e-6), goal)
    raw = run(heard)
    if objective in ("magnitude_l1", "magnitude_mse", "dual", "usdr", "usdr_silent", "usdr_capped"):
        masks = normalise_masks(raw, estimator.mask, estimator.residual)

        def masked_stems() -> Tensor:  # as the separator writes them: the masks on the mixture, through the iSTFT
            return stft.inverse(interpolate_bins(masks, model, native) * mix_spec.unsqueeze(1), stems.shape[-1])

        if objective in ("usdr", "usdr_silent", "usdr_capped"):
            capped = objective == "usdr_capped"
            silent = capped or objective == "usdr_silent"
            if not groups:
                return -usdr_loss_terms(masked_stems(), stems, silent=silent, capped=capped)
            count = len(estimator.sources)
            estimates, targets = merge_blocks(
                masked_stems(),
                stems[:, :count],
                stems[:, count:],
                groups,
                group_sounds(stems[:, count:], stft.config.sample_rate),
            )
            return -usdr_loss_terms(estimates, targets, silent=silent, capped=capped, mixture=stems.sum(dim=1))
        estimate = masks * mix_mag.unsqueeze(1)
        if objective == "magnitude_l1":
            return (estimate - target).abs().mean()
        magnitude = (estimate - target).pow(2).mean()
        if objective == "magnitude_mse":
            return magnitude
        # George et al.'s dual loss: 0.9 · magnitude MSE + 0.1 · time-domain MSE of the masked mixture.
        return 0.9 * magnitude + 0.1 * (masked_stems() - stems).pow(2).mean()
    if objective == "irm_mse":
        masks = normalise_masks(raw, estimator.mask, estimator.residual)
        return (masks - ratio_masks(target)).pow(2).mean()
    if objective == "argmax_nll":
        probs = normalise_masks(raw, estimator.mask, estimator.residual)
        return F.nll_loss(torch.log(probs.clamp_min(1e-7)), target.argmax(dim=1))
    raise ValueError(f"unknown objective {objective!r}")


# A waveform network's objectives: L1 on the waveform of every stem (what Demucs trains on) or the uSDR loss.
WAVEFORM_OBJECTIVES = ("waveform_l1", "usdr", "usdr_silent")


def waveform_loss(
    estimator: WaveformEstimator,
    rate: int,
    stems: Tensor,
    objective: str | None = None,
    forward: Callable[..., Tensor] | None = None,
) -> Tensor:
    """The loss of a waveform estimator (HTDemucs) on stems (batch, sources, channels, length) at ``rate``: the
    network's stems for their sum against the true stems, at the network's own rate (resampled as `Separator` does
    when the data's differs). ``waveform_l1`` (the default): the mean absolute error, as Demucs is trained;
    ``usdr``/``usdr_silent``: `usdr_loss_terms`, the negated mean uSDR."""
    objective = objective or "waveform_l1"
    if objective not in WAVEFORM_OBJECTIVES:
        raise ValueError(f"a waveform estimator trains on one of {WAVEFORM_OBJECTIVES}, not {objective!r}")
    if rate != estimator.sample_rate:
        stems = resample(stems, rate, estimator.sample_rate)
    run = forward or estimator
    estimates = run(stems.sum(dim=1))
    if objective == "waveform_l1":
        return (estimates - stems).abs().mean()
    return -usdr_loss_terms(estimates, stems, silent=objective == "usdr_silent")


def window_bce(probs: Tensor, goal: Tensor) -> Tensor:
    """Binary cross-entropy of every sliding excerpt's own prediction against the mask over the frames it covers
    (Simpson et al. train each excerpt on its own; the average over excerpts is for inference).

    probs (batch·channels, frames + width − 1, bins, width): excerpt s covers frames s − (width − 1) … s;
    goal (batch, channels, bins, frames). The zero-padded frames beyond the excerpt's ends have no target."""
    batch, channels, bins, frames = goal.shape
    width = probs.shape[-1]

    def windows(x: Tensor) -> Tensor:  # (b·c, bins, frames) → (b·c, frames + width − 1, bins, width)
        return F.pad(x, (width - 1, width - 1)).unfold(-1, width, 1).transpose(1, 2)

    targets = windows(goal.reshape(batch * channels, bins, frames))
    inside = windows(torch.ones_like(goal[:, :, :1]).reshape(batch * channels, 1, frames))
    losses = F.binary_cross_entropy(probs.clamp(1e-6, 1 - 1e-6), targets, reduction="none")
    return (losses * inside).sum() / (inside.sum() * bins)


class ProcessGroup:
    """This process's place in a torchrun job, and the collective steps the loop needs; for a plain single process
    (rank 0 of 1) each step is the identity."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = 0
        if self.world > 1:
            if not dist.is_initialized():
                dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
            self.rank, self.world = dist.get_rank(), dist.get_world_size()

    def agree(self, flag: bool) -> bool:
        """True on every process if it is true on any (so all processes stop, or skip, together)."""
        if self.world == 1:
            return flag
        value = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def mean(self, value: float) -> float:
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world

    def gather(self, tensor: Tensor) -> list[Tensor]:
        if self.world == 1:
            return [tensor]
        parts = [torch.empty_like(tensor) for _ in range(self.world)]
        dist.all_gather(parts, tensor)
        return parts

    def share(self, values: list) -> list:
        """Rank 0's ``values`` on every process."""
        if self.world == 1:
            return values
        dist.broadcast_object_list(values, src=0)
        return values

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """``model`` as the loop runs it: under torchrun every process starts from rank 0's weights and a
        DistributedDataParallel wrapper averages the gradients at each backward."""
        if self.world == 1:
            return model
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, 0)
        return torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )


class Trainer:
    """Trains ``config.estimator`` on ``train`` songs and validates on ``valid`` songs (split by song).

    ``workdir`` holds the latest checkpoint and the log (see `Checkpoints`); the best state so far goes to the
    ``export`` callback of `run`. Calling `run` again resumes from the checkpoint. ``init_state`` starts from a
    model's weights (fine-tuning); parameters whose names start with one of ``config.freeze`` are not trained.
    ``groups``: a split model's group kinds (`StemSet.group_kinds`), each the data sources one kind of group track
    holds; the songs' group tracks (`Song.groups`) then join the mixture and teach their sum (`merge_blocks`,
    a uSDR objective), and validation scores each group on its seconds.
    """

    def __init__(
        self,
        config: TrainConfig,
        train: Sequence[Song],
        valid: Sequence[Song],
        workdir: Path,
        progress: Callable[[dict], None] | None = None,
        init_state: dict[str, Tensor] | None = None,
        groups: Sequence[Sequence[str]] = (),
    ):
        self.config = config
        self.checkpoints = Checkpoints(workdir)
        self.workdir = self.checkpoints.workdir
        data_groups = [[list(config.data_sources).index(name) for name in kind] for kind in groups]
        self.validator = Validator(valid, config.data_sources, config.postprocessing, groups=data_groups)
        self.progress = progress
        torch.manual_seed(config.seed)
        self.processes = ProcessGroup()
        self.rank, self.world = self.processes.rank, self.processes.world
        if config.batch % self.world:
            raise ValueError(f"the global batch ({config.batch}) must divide by the number of processes ({self.world})")
        self.device = resolve_device(config.device)
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        self.estimator = build_estimator(config.estimator, config.config)
        rate = train[0].sample_rate
        # A waveform network has no STFT of its own: the STFT here only carries the data's rate to its loss.
        self.waveform = isinstance(self.estimator, WaveformEstimator)
        stft_config = STFTConfig(n_fft=4096, hop=1024, sample_rate=rate) if self.waveform else None
        self.stft = STFT(stft_config or self.estimator.stft_config.at_rate(rate)).to(self.device)
        # Each process draws its own share of the global batch from its own random stream.
        self.sampler = Sampler(
            train,
            int(config.excerpt_seconds * rate),
            config.remix,
            config.seed + 1000 * self.rank,
            augmentation=config.augmentation,
            names=config.data_sources,
            groups=data_groups,
        )
        self.mapping = source_map(self.estimator.sources, list(config.data_sources))
        # the group kinds by the estimator's sources (a split model's sources are the data's, in its order)
        self.groups = [[source_of(self.mapping, i) for i in kind] for kind in data_groups]
        self.fresh = init_state is None
        self.scaled = False  # the input scaling is set from data (once, before any training)
        if init_state is not None:
            self.estimator.load_state_dict(init_state)
        for name, parameter in self.estimator.named_parameters():
            if any(name.startswith(prefix) for prefix in config.freeze):
                parameter.requires_grad_(False)
        if config.adapters:
            from .lora import add_adapters

            add_adapters(self.estimator, config.adapters)
        self.estimator.to(self.device)
        trainable = [p for p in self.estimator.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError(f"freezing {list(config.freeze)} leaves nothing to train")
        self.optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
        self.average = WeightAverage(self.estimator, config.ema) if config.ema > 0 else None
        self.model = self.processes.wrap(self.estimator, self.device)
        self.step = 0
        self.best = -math.inf
        self.start: dict[str, Any] | None = None  # the starting weights' validation (fine-tuning), when measured
        self.bad_validations = 0
        self.history: list[dict] = []
        # The training loss as [step, mean over the LOSS_BLOCK steps up to it]: how far from converged a run
        # stopped, even with one validation round (kept in checkpoints, so a resumed run keeps its curve).
        self.loss_curve: list[list[float]] = []
        self.decay_step: int | None = None  # the step where the final decay of the learning rate began
        self._loss_block: list[float] = []
        self.validation_seconds = 0.0
        # Wall-clock and CPU seconds spent in the training loop, over every run up to the last checkpoint.
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self._deadline = time.monotonic()

    @property
    def averaged(self) -> dict[str, Tensor] | None:
        """The averaged trainable weights by name, or None when the run keeps no average."""
        return None if self.average is None else self.average.values

    def averaged_weights(self) -> AbstractContextManager[None]:
        """A context in which the estimator holds the averaged weights (its own ones outside it); without
        averaging, a no-op."""
        return nullcontext() if self.average is None else self.average.swapped_in()

    # Checkpoints ---------------------------------------------------------------------------------------------
    def save(self) -> None:
        """Write a checkpoint (rank 0); every process contributes its sampler's random state."""
        rng = {f"sampler.{rank}": state for rank, state in enumerate(self.processes.gather(self.sampler.state()))}
        if self.rank != 0:
            return
        rng["torch"] = torch.get_rng_state()
        self.checkpoints.save(
            Checkpoint(
                model=self.estimator.state_dict(),
                optimizer=self.optimizer.state_dict(),
                averaged=self.averaged or {},
                rng=rng,
                meta={
                    "step": self.step,
                    "best": self.best,
                    "bad_validations": self.bad_validations,
                    "start": self.start,
                    "seconds": self.seconds,
                    "cpu_seconds": self.cpu_seconds,
                    "loss_curve": self.loss_curve,
                    "decay_step": self.decay_step,
                    "validation_seconds": self.validation_seconds,
                    "config": asdict(self.config),
                },
            )
        )

    def resume(self) -> bool:
        """Back to the latest checkpoint, if there is one: weights, optimiser, average, random states, counters
        and the log up to its step."""
        saved = self.checkpoints.load()
        if saved is None:
            return False
        try:
            self.estimator.load_state_dict(saved.model)
        except RuntimeError as error:  # missing, unexpected or differently shaped weights
            first = str(error).split("\n\t")[1] if "\n\t" in str(error) else str(error)
            raise StemDeskError(
                f"The checkpoint in {self.workdir} belongs to another model than this run builds ({first.strip()}). "
                "Run with the options that started it (such as --refine or --cut), or give another --workdir."
            ) from None
        self.optimizer.load_state_dict(saved.optimizer)
        if self.average is not None:
            self.average.load(saved.averaged, fallback=saved.model)
        self.sampler.set_state(saved.rng.get(f"sampler.{self.rank}", saved.rng.get("sampler")))
        torch.set_rng_state(saved.rng["torch"])
        self.step, self.best, self.bad_validations = (
            saved.meta["step"],
            saved.meta["best"],
            saved.meta["bad_validations"],
        )
        self.start = saved.meta.get("start", self.start)
        self.seconds, self.cpu_seconds = saved.meta.get("seconds", 0.0), saved.meta.get("cpu_seconds", 0.0)
        self.history = self.checkpoints.history(self.step)
        self.loss_curve = [point for point in saved.meta.get("loss_curve", []) if point[0] <= self.step]
        self.decay_step = saved.meta.get("decay_step")
        # how long a validation round took, so a resumed run still leaves room for its last rounds
        self.validation_seconds = saved.meta.get("validation_seconds", self.validation_seconds)
        self._loss_block = []
        return True

    def init_input_scaling(self, batches: int = 8) -> None:
        """Input normalisation from data: the mean and inverse std of the training mixtures' log-magnitudes,
        per bin (InputScaler) or per channel and bin (Open-Unmix's input_mean/input_scale), as the part of the
        estimator that normalises its input hears them (`Estimator.scaled_input`: a cascade's second stage hears
        the rest)."""
        if self.waveform:  # a waveform network normalises its input itself
            self.scaled = True
            return
        est, hears = self.estimator.scaled_input()
        scaler = getattr(est, "scaler", None)
        self.scaled = True
        if not isinstance(scaler, InputScaler) and not hasattr(est, "input_mean"):
            return
        modes = {module: module.training for module in self.estimator.modules()}
        self.estimator.eval()  # what is heard through another part (a cascade's first stage) leaves it unchanged
        with torch.no_grad():
            state = self.sampler.state()
            mags = [hears(self.mixture_magnitudes(4)) for _ in range(batches)]
            self.sampler.set_state(state)
            for module, training in modes.items():
                module.train(training)
            logm = torch.log(torch.cat(mags) + 1e-4)  # (n, channels, bins, frames)
            if isinstance(scaler, InputScaler):
                per_bin = logm.transpose(0, 2).reshape(logm.shape[2], -1)
                scaler.mean.copy_(per_bin.mean(1, keepdim=True))
                scaler.scale.copy_(1.0 / per_bin.std(1, keepdim=True).clamp_min(1e-3))
            if hasattr(est, "input_mean"):
                x = logm[:, :, : est.max_bin].permute(0, 3, 1, 2).reshape(-1, est.input_mean.numel())
                est.input_mean.copy_(x.mean(0))
                est.input_scale.copy_(1.0 / x.std(0).clamp_min(1e-3))

    def mixture_magnitudes(self, size: int) -> Tensor:
        """The magnitudes of ``size`` training mixtures drawn by the sampler, on the estimator's bins, as the
        estimator sees them: (size, channels, bins, frames)."""
        native, model = self.stft.config.bin_frequencies(), self.estimator.stft_config.bin_frequencies()
        mixtures = self.sampler.batch(size).sum(1).to(self.device)
        est = self.estimator
        spec = self.stft(mixtures)
        return interpolate_bins(est.heard(spec) if isinstance(est, Estimator) else spec.abs(), native, model)

    # Loop --------------------------------------------------------------------------------------------------
    def validate(self) -> dict[str, Any]:
        self.estimator.eval()
        result = self.validator.score(self.estimator)
        self.train_mode()
        return result

    def train_mode(self) -> None:
        """Training mode, except for submodules that are wholly frozen (their dropout stays off, so a frozen
        part computes exactly what it did) and, when fine-tuning, batch norm: it keeps the statistics the model
        was trained with. A small fine-tuning set's batches would otherwise replace them; with Spleeter's
        U-Net, three steps at learning rate 0 cost 6 dB of vocals on the validation songs."""
        self.estimator.train()
        for module in self.estimator.modules():
            parameters = list(module.parameters())
            frozen = parameters and not any(p.requires_grad for p in parameters)
            if frozen or (not self.fresh and isinstance(module, torch.nn.modules.batchnorm._BatchNorm)):
                module.eval()

    def run(
        self,
        export: Callable[[Estimator, dict], None] | None = None,
        cancel: CancelToken | None = None,
        export_start: bool = False,
        finish_by: float | None = None,
        validations_after: float = 0.0,
    ) -> dict[str, Any]:
        """Train until the time budget, ``max_steps``, early stopping or a cancel; resumes from a checkpoint.
        Under torchrun every process calls this; only rank 0 validates, writes checkpoints and exports.
        ``export_start`` (with ``config.beat_start``): the starting weights are a model in their own right, so they
        are exported at step 0 from the validation that sets the bar, and fine-tuning only replaces them with
        something better. ``finish_by`` (a time.monotonic() value): stop training early enough that the final
        validation round and ``validations_after`` more (what the caller does next), each as long as the first
        one, end by then: a wall-clock budget for the whole job."""
        config = self.config
        limit_threads(config.threads)
        tune_allocator()
        self.validation_seconds = 0.0
        resumed = self.resume()
        if not resumed and self.fresh and not self.scaled:
            self.init_input_scaling()
        if not resumed and config.beat_start and self.rank == 0:
            self._set_the_bar(export if export_start else None)
        self.train_mode()
        started = time.monotonic()  # the budget and the seconds counted start at the same instant
        deadline = started + config.minutes * 60
        if finish_by is not None:
            deadline = min(deadline, finish_by - (1 + validations_after) * self.validation_seconds)
        self._deadline = deadline
        losses: list[float] = []
        clock = (started, time.process_time())
        saved = started
        rollbacks = 0
        while not self.processes.agree(
            time.monotonic() >= deadline or self.step >= config.max_steps or (cancel is not None and cancel.cancelled)
        ):
            clock = self._count(clock)
            if config.checkpoint_minutes > 0 and self.processes.agree(
                clock[0] - saved >= config.checkpoint_minutes * 60
            ):
                self.save()
                saved = clock[0]
            if self.step < config.warmup:
                for group in self.optimizer.param_groups:
                    group["lr"] = config.lr * (self.step + 1) / config.warmup
            elif config.decay_minutes > 0:
                left = max(0.0, deadline - time.monotonic())
                if left < config.decay_minutes * 60:
                    if self.decay_step is None:
                        self.decay_step = self.step
                    for group in self.optimizer.param_groups:
                        group["lr"] = config.lr * left / (config.decay_minutes * 60)
            # The sampler draws each source only from songs where it is usable, so every target counts.
            stems = self.targets(self.sampler.batch(config.batch // self.world)).to(self.device)
            loss = self.train_step(stems)
            if loss is None:
                # Divergence (a NaN or infinite loss or gradient): back to the last good checkpoint, half the rate.
                rollbacks += 1
                if not self.resume() or rollbacks > 5:
                    raise FloatingPointError(
                        f"training diverged at step {self.step} and cannot recover "
                        "from a checkpoint; lower the learning rate"
                    )
                for group in self.optimizer.param_groups:
                    group["lr"] *= 0.5
                continue
            self.step += 1
            losses.append(loss)
            self._loss_block.append(loss)
            if len(self._loss_block) == LOSS_BLOCK:
                self.loss_curve.append([self.step, round(sum(self._loss_block) / LOSS_BLOCK, 6)])
                self._loss_block = []
            if self.step % config.validate_every == 0:
                clock = self._count(clock)
                self._validation_round(losses, started, export)
                losses, saved = [], time.monotonic()
                if self._early_stop():
                    break
        self._count(clock)
        if losses:
            self._validation_round(losses, started, export)
        if cancel is not None and cancel.cancelled:
            raise Cancelled("Training cancelled; the last checkpoint is kept, run again to resume.")
        return {"step": self.step, "best": self.best, "history": self.history}

    def export_checkpoint(self, export: Callable[[Estimator, dict], None]) -> dict[str, Any]:
        """Export the latest checkpoint's weights (their moving average, with one) whatever they score, validated
        for the card: a stopping point fixed before the run (``max_steps``) instead of the best validation, which
        would pick the weights by the songs that then score them. Returns the exported entry."""
        if not self.resume():
            raise StemDeskError(f"There is no checkpoint in {self.workdir} to export: train there first.")
        with self.averaged_weights():
            result = self.validate()
            entry = {
                "step": self.step,
                "valid_usdr": result["median"],
                "songs": result["songs"],
                "seconds": round(self.seconds, 1),
            }
            self._export(export, entry)
        return entry

    def _count(self, clock: tuple[float, float]) -> tuple[float, float]:
        """Add the wall-clock and CPU time since ``clock`` (time.monotonic(), time.process_time()) to the run's
        totals; returns the clock now."""
        now = (time.monotonic(), time.process_time())
        self.seconds += now[0] - clock[0]
        self.cpu_seconds += now[1] - clock[1]
        return now

    def targets(self, batch: Tensor) -> Tensor:
        """A sampler's batch (batch, data sources + group kinds, channels, length) as the loss takes it: the
        estimator's sources (`regroup`), then the group rows."""
        count = len(self.config.data_sources)
        stems = regroup(batch[:, :count], self.mapping)
        return torch.cat([stems, batch[:, count:]], dim=1) if self.groups else stems

    def train_step(self, stems: Tensor) -> float | None:
        """One optimiser step on this process's share of the batch; the loss averaged over processes, or None
        (and no step taken) when the loss or the gradients are not finite on any process."""
        loss = objective_loss(
            self.estimator, self.stft, stems, self.config.objective, forward=self.model, groups=self.groups
        )
        self.optimizer.zero_grad(set_to_none=True)
        if not self.processes.agree(not bool(torch.isfinite(loss))):
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(self.estimator.parameters(), 5.0)
            if not self.processes.agree(not bool(torch.isfinite(norm))):
                self.optimizer.step()
                if self.average is not None:
                    self.average.update(self.step)
                return self.processes.mean(loss.item())
        self.optimizer.zero_grad(set_to_none=True)
        return None

    def _set_the_bar(self, export: Callable[[Estimator, dict], None] | None) -> None:
        """Validate the starting weights: the score a fine-tune must beat to export anything (and, with
        ``export``, the model exported at step 0). Its duration is what `run` budgets a validation round at."""
        validating = time.monotonic()
        result = self.validate()
        self.validation_seconds = time.monotonic() - validating
        medians = result["median"]
        self.best = sum(medians.values()) / max(1, len(medians))
        self.start = {"valid_mean": self.best, "valid_usdr": medians, "songs": result["songs"]}
        if self.progress is not None:
            self.progress(
                {
                    "stage": "start",
                    "step": 0,
                    "valid": medians,
                    "valid_mean": self.best,
                    "lr": self.config.lr,
                    "freeze": list(self.config.freeze),
                }
            )
        if export is not None:
            self._export(export, {"step": 0, "valid_usdr": medians, "songs": result["songs"], "seconds": 0.0})

    def _early_stop(self) -> bool:
        patience = self.config.early_stop
        if not patience or len(self.history) <= patience:
            return False
        best_recent = max(h["valid_mean"] for h in self.history[-patience:])
        return best_recent < self.best

    def _export(self, export: Callable[[Estimator, dict], None], entry: dict) -> None:
        """Hand the current weights to ``export``: a plain estimator, with low-rank adapters merged in."""
        if self.config.adapters:
            from .lora import merged_copy

            export(merged_copy(self.estimator), entry)
        else:
            export(self.estimator, entry)

    def _validation_round(self, losses: list[float], started: float, export) -> None:
        if self.rank != 0:
            self.save()  # contributes its sampler state to rank 0's file
            self._follow_rank0()
            return
        with self.averaged_weights():  # validation scores, and export writes, the average
            result = self.validate()
            medians = result["median"]
            score = sum(medians.values()) / max(1, len(medians))
            entry = {
                "step": self.step,
                "loss": sum(losses) / len(losses),
                "valid_usdr": medians,
                "valid_mean": score,
                "lr": self.optimizer.param_groups[0]["lr"],
                "seconds": round(time.monotonic() - started, 1),
                "songs": result["songs"],
            }
            if "groups" in result:  # each group's block sum on its seconds: reported, not what picks the round
                entry["valid_groups"] = result["groups"]["median"]
            entry["keeps_stems"] = keeps_stems(self.start, medians, self.config.stem_floor_db)
            improved = score > self.best and entry["keeps_stems"]
            if improved and export is not None:
                self._export(export, entry)
        if improved:
            self.best = score
            self.bad_validations = 0
        else:
            self.bad_validations += 1
            if self.bad_validations >= self.config.lr_decay_patience:
                for group in self.optimizer.param_groups:
                    group["lr"] *= 0.5
                self.bad_validations = 0
        self.history.append(entry)
        self.checkpoints.append_log(entry)
        self.save()
        self._follow_rank0()
        if self.progress is not None:
            left_by_steps = (self.config.max_steps - self.step) * entry["seconds"] / max(1, len(self.history))
            left_by_time = self._deadline - time.monotonic()
            self.progress(
                {
                    "stage": "train",
                    "step": self.step,
                    "loss": entry["loss"],
                    "valid": medians,
                    "valid_groups": entry.get("valid_groups", {}),
                    "improved": improved,
                    "eta_seconds": max(0.0, min(left_by_time, left_by_steps)),
                }
            )

    def _follow_rank0(self) -> None:
        """Share rank 0's validation outcome (best score, learning rate, history) with the other processes."""
        state = self.processes.share(
            [self.best, self.bad_validations, self.optimizer.param_groups[0]["lr"], self.history]
        )
        self.best, self.bad_validations, lr, self.history = state
        for group in self.optimizer.param_groups:
            group["lr"] = lr


def export_model(
    folder: Path, model_id: str, card: dict[str, Any], half: bool = False, int8_from: int | None = None
) -> Callable[[Estimator, dict], None]:
    """An export callback that writes the best estimator as a model with its validation scores in the card
    (``half``: float16 parameters, ``int8_from``: the largest as int8; see
    `stemdesk.io.model_store.weights_bytes`)."""

    def export(estimator: Estimator, entry: dict) -> None:
        facts = dict(card)
        facts["metrics"] = {
            "validation_usdr_median_db": {k: round(v, 2) for k, v in entry["valid_usdr"].items()},
            "validation_usdr_per_song_db": {
                s: {k: round(v, 2) for k, v in d.items()} for s, d in entry["songs"].items()
            },
            "step": entry["step"],
            "training_seconds": entry.get("seconds", 0.0),
        }
        if entry.get("valid_groups"):
            facts["metrics"]["validation_group_usdr_median_db"] = {
                k: round(v, 2) for k, v in entry["valid_groups"].items()
            }
        card_written = save_model(folder, model_id, estimator, facts, half=half, int8_from=int8_from)
        atomic_write_bytes(folder / "README.md", render(card_written.raw).encode("utf-8"))

    return export
