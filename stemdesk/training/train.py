"""Resumable training of any registered estimator on multitrack songs.

Checkpoints hold the model, the optimiser, the sampler's random state and the log; they are written as safetensors
plus JSON (no pickle) through a temporary file and a rename, so a kill at any moment leaves the last good one.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor

from stemdesk.core.cancel import CancelToken
from stemdesk.core.chunker import DEFAULT_SEGMENT_SECONDS, Chunker
from stemdesk.core.errors import Cancelled
from stemdesk.core.device import resolve_device
from stemdesk.core.estimators import Estimator, build_estimator
from stemdesk.core.masks import normalise_masks, ratio_masks
from stemdesk.core.metrics import usdr_sums
from stemdesk.core.separator import Separator
from stemdesk.core.estimators.layers import InputScaler
from stemdesk.core.stft import STFT, interpolate_bins
from stemdesk.io.atomic import atomic_write_bytes
from stemdesk.io.model_store import save_model
from stemdesk.io.process import limit_threads, tune_allocator

from .data import Sampler, Song
from .model_card import render


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
    remix: float = 0.5
    pitch_time: float = 0.0      # probability of a pitch/tempo augmentation per example (costly on a CPU)
    validate_every: int = 200
    minutes: float = 30.0        # wall-clock budget for this run (resumes add more)
    max_steps: int = 10 ** 9
    seed: int = 0
    threads: int = 1
    lr_decay_patience: int = 4   # validations without improvement before the learning rate halves
    freeze: tuple[str, ...] = ()  # parameter-name prefixes kept fixed (e.g. "fc1", "trunk" for the encoder)
    adapters: int = 0             # > 0: train rank-r low-rank adapters on the dense layers only (stemdesk/training/lora.py)
    beat_start: bool = False      # fine-tuning: export only what beats the starting weights on validation
    device: str = "cpu"          # cpu, cuda, mps or auto
    early_stop: int = 0          # stop after this many validations without a new best (0: never)
    ema: float = 0.0             # > 0: validate and export an exponential moving average of the weights (e.g. 0.999)
    extra: dict[str, Any] = field(default_factory=dict)


def objective_loss(estimator: Estimator, stft: STFT, stems: Tensor, objective: str | None = None,
                   forward: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """The training loss an estimator declares (``estimator.objective``), on stems (batch, sources, channels, length).

    The mixture is the sum of the stems; its STFT is the sum of theirs (the STFT is linear), so one transform serves
    both. Objectives: see `stemdesk.core.estimators.OBJECTIVES`. ``forward`` runs the network (a
    DistributedDataParallel wrapper of ``estimator`` under torchrun); by default the estimator itself.
    """
    objective = objective or estimator.objective
    # As at inference (see Separator): the STFT runs at the data's rate with the estimator's window and hop in
    # seconds, and magnitudes are interpolated onto the estimator's bins (the identity when the rates agree).
    native, model = stft.config.bin_frequencies(), estimator.stft_config.bin_frequencies()
    spec = stft(stems)                                         # complex (batch, sources, channels, bins, frames)
    mix_spec = spec.sum(dim=1)
    mix_mag = interpolate_bins(mix_spec.abs(), native, model)  # (batch, channels, model_bins, frames)
    target = interpolate_bins(spec.abs(), native, model)
    raw = (forward or estimator)(mix_mag)
    if objective in ("magnitude_l1", "magnitude_mse", "dual"):
        masks = normalise_masks(raw, estimator.mask, estimator.residual)
        estimate = masks * mix_mag.unsqueeze(1)
        if objective == "magnitude_l1":
            return (estimate - target).abs().mean()
        magnitude = (estimate - target).pow(2).mean()
        if objective == "magnitude_mse":
            return magnitude
        # George et al.'s dual loss: 0.9 · magnitude MSE + 0.1 · time-domain MSE of the masked mixture.
        waves = stft.inverse(interpolate_bins(masks, model, native) * mix_spec.unsqueeze(1), stems.shape[-1])
        return 0.9 * magnitude + 0.1 * (waves - stems).pow(2).mean()
    if objective == "ibm_bce":
        # Ideal binary mask of the first source against everything else; optional soft targets (Lin: 0.02/0.98).
        low, high = estimator.hyper.get("targets", (0.0, 1.0))
        ibm = target[:, 0] > interpolate_bins((mix_spec - spec[:, 0]).abs(), native, model)
        goal = torch.where(ibm, torch.full_like(mix_mag, high), torch.full_like(mix_mag, low))
        return F.binary_cross_entropy(raw[:, 0].clamp(1e-6, 1 - 1e-6), goal)
    if objective == "irm_mse":
        masks = normalise_masks(raw, estimator.mask, estimator.residual)
        return (masks - ratio_masks(target)).pow(2).mean()
    if objective == "argmax_nll":
        probs = normalise_masks(raw, estimator.mask, estimator.residual)
        return F.nll_loss(torch.log(probs.clamp_min(1e-7)), target.argmax(dim=1))
    raise ValueError(f"unknown objective {objective!r}")


def source_map(estimator_sources: Sequence[str], data_sources: Sequence[str]) -> list[list[int]]:
    """For each source the estimator separates, the data stems that add up to it. "accompaniment" (or any name
    missing from the data when the estimator's first source is) is everything but the estimator's other sources."""
    mapping = []
    for name in estimator_sources:
        if name in data_sources:
            mapping.append([data_sources.index(name)])
        elif name == "accompaniment":
            others = {data_sources.index(s) for s in estimator_sources if s in data_sources}
            mapping.append([i for i in range(len(data_sources)) if i not in others])
        else:
            raise ValueError(f"the training data has no stem for {name!r} (it has {', '.join(data_sources)})")
    return mapping


def regroup(stems: Tensor, mapping: list[list[int]]) -> Tensor:
    """stems (..., data_sources, channels, length) → (..., estimator_sources, channels, length)."""
    return torch.stack([stems[..., idx, :, :].sum(dim=-3) for idx in mapping], dim=-3)


def separate_song(separator: Separator, mix: Tensor, rate: int,
                  segment_seconds: float = DEFAULT_SEGMENT_SECONDS) -> Tensor:
    """A whole song (channels, length) through the real separator in overlapping segments, as at inference."""
    return Chunker(lambda x: separator(x, rate).stems, **separator.chunking(rate, segment_seconds, 1.0)).run(mix)


def evaluate(estimator: Estimator, songs: Sequence[Song], data_sources: Sequence[str],
             segment_seconds: float = DEFAULT_SEGMENT_SECONDS) -> dict[str, Any]:
    """uSDR per song and source on whole songs through the real separator and chunker."""
    device = next(estimator.parameters(), torch.empty(0)).device   # validate where the model trains
    separator = Separator(estimator, device)
    mapping = source_map(estimator.sources, data_sources)
    scores: dict[str, dict[str, float]] = {}
    for song in songs:
        audio = regroup(song.audio(), mapping)                 # (sources, channels, length)
        mix = audio.sum(0)
        rate = song.sample_rate
        # streamed: each finished block of stems is scored and dropped, so a long song's estimate is never whole
        chunker = Chunker(lambda x: separator(x, rate).stems, **separator.chunking(rate, segment_seconds, 1.0))
        num = den = 0.0
        at = 0
        for block in chunker.stream([mix], total=mix.shape[-1]):
            n = block.shape[-1]
            block_num, block_den = usdr_sums(audio[..., at:at + n], block)
            num, den, at = num + block_num, den + block_den, at + n
        values = 10 * torch.log10((num + 1e-8) / (den + 1e-8))
        usable = [all(song.usable[i] for i in idx) for idx in mapping]
        scores[song.name] = {s: float(v) for s, v, ok in zip(estimator.sources, values, usable) if ok}
    summary = {}
    for source in estimator.sources:
        vals = sorted(v[source] for v in scores.values() if source in v)
        if vals:
            summary[source] = vals[len(vals) // 2] if len(vals) % 2 else 0.5 * (vals[len(vals) // 2 - 1] + vals[len(vals) // 2])
    return {"median": summary, "songs": scores}


def _flatten_optimizer(state: dict) -> tuple[dict[str, Tensor], dict]:
    tensors, meta = {}, {"param_groups": state["param_groups"], "keys": {}}
    for index, values in state["state"].items():
        for name, value in values.items():
            key = f"opt.{index}.{name}"
            tensors[key] = value if isinstance(value, Tensor) else torch.tensor(value)
    return tensors, meta


def _unflatten_optimizer(tensors: dict[str, Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def distributed_context() -> tuple[int, int]:
    """(rank, world size) under torchrun, initialising the process group once (gloo on CPU, nccl on CUDA);
    (0, 1) for a plain single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


class Trainer:
    """Trains ``config.estimator`` on ``train`` songs and validates on ``valid`` songs (split by song).

    ``workdir`` holds ``checkpoint.safetensors`` + ``checkpoint.json`` (the latest validation) and ``log.jsonl``;
    the best state so far goes to the ``export`` callback of `run`. Calling `run` again resumes from the
    checkpoint. ``init_state`` starts from a model's weights (fine-tuning); parameters whose names start with one
    of ``config.freeze`` are not trained.
    """

    def __init__(self, config: TrainConfig, train: Sequence[Song], valid: Sequence[Song], workdir: Path,
                 progress: Callable[[dict], None] | None = None, init_state: dict[str, Tensor] | None = None):
        self.config = config
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.valid = list(valid)
        self.progress = progress
        torch.manual_seed(config.seed)
        self.rank, self.world = distributed_context()
        if config.batch % self.world:
            raise ValueError(f"the global batch ({config.batch}) must divide by the number of processes ({self.world})")
        self.device = resolve_device(config.device)
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        self.estimator = build_estimator(config.estimator, config.config)
        rate = train[0].sample_rate
        self.stft = STFT(self.estimator.stft_config.at_rate(rate)).to(self.device)
        # Each process draws its own share of the global batch from its own random stream.
        self.sampler = Sampler(train, int(config.excerpt_seconds * rate), config.remix, config.seed + 1000 * self.rank,
                               pitch_time=config.pitch_time, names=config.data_sources)
        self.mapping = source_map(self.estimator.sources, list(config.data_sources))
        self.fresh = init_state is None
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
        # The moving average (Polyak averaging) of the trainable weights: what validation scores and export writes.
        self.averaged = {name: p.detach().clone() for name, p in self.estimator.named_parameters()
                         if p.requires_grad} if config.ema > 0 else None
        self.model: torch.nn.Module = self.estimator
        if self.world > 1:
            # Every process starts from rank 0's weights; DDP averages the gradients at each backward.
            for tensor in self.estimator.state_dict().values():
                dist.broadcast(tensor, 0)
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.estimator, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.step = 0
        self.best = -math.inf
        self.bad_validations = 0
        self.history: list[dict] = []

    # Checkpoints ---------------------------------------------------------------------------------------------
    def _save(self, stem: str) -> None:
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.estimator.state_dict().items()}
        opt_tensors, opt_meta = _flatten_optimizer(self.optimizer.state_dict())
        opt_tensors = {k: v.cpu().contiguous() for k, v in opt_tensors.items()}
        tensors.update(opt_tensors)
        for name, value in (self.averaged or {}).items():
            tensors[f"ema.{name}"] = value.detach().cpu().contiguous()
        for rank, state in enumerate(self._gather(self.sampler.state())):
            tensors[f"rng.sampler.{rank}"] = state
        tensors["rng.torch"] = torch.get_rng_state()
        if self.rank != 0:
            return
        meta = {"step": self.step, "best": self.best, "bad_validations": self.bad_validations,
                "optimizer": opt_meta, "config": asdict(self.config)}
        weights, info = self.workdir / f"{stem}.safetensors", self.workdir / f"{stem}.json"
        save_file(tensors, str(weights) + ".part")
        info.with_suffix(".json.part").write_text(json.dumps(meta))
        # The JSON names the step; both are renamed only when both are complete.
        os.replace(str(weights) + ".part", weights)
        os.replace(info.with_suffix(".json.part"), info)

    def resume(self) -> bool:
        weights, info = self.workdir / "checkpoint.safetensors", self.workdir / "checkpoint.json"
        if not (weights.is_file() and info.is_file()):
            return False
        tensors = load_file(str(weights))
        meta = json.loads(info.read_text())
        self.estimator.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        self.optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
        if self.averaged is not None:
            for name, value in self.averaged.items():
                # A checkpoint from a run without averaging starts the average at its weights.
                saved = tensors.get(f"ema.{name}", tensors[f"model.{name}"])
                value.copy_(saved.to(value.device))
        self.sampler.set_state(tensors.get(f"rng.sampler.{self.rank}", tensors.get("rng.sampler")))
        torch.set_rng_state(tensors["rng.torch"])
        self.step, self.best, self.bad_validations = meta["step"], meta["best"], meta["bad_validations"]
        log = self.workdir / "log.jsonl"
        if log.is_file():
            self.history = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
            self.history = [h for h in self.history if h["step"] <= self.step]
            log.write_text("".join(json.dumps(h) + "\n" for h in self.history))
        return True

    def init_input_scaling(self, batches: int = 8) -> None:
        """Input normalisation from data: the mean and inverse std of the training mixtures' log-magnitudes,
        per bin (InputScaler) or per channel and bin (Open-Unmix's input_mean/input_scale)."""
        est = self.estimator
        scaler = getattr(est, "scaler", None)
        if not isinstance(scaler, InputScaler) and not hasattr(est, "input_mean"):
            return
        native, model = self.stft.config.bin_frequencies(), est.stft_config.bin_frequencies()
        with torch.no_grad():
            state = self.sampler.state()
            mags = [interpolate_bins(self.stft(self.sampler.batch(4).sum(1).to(self.device)).abs(), native, model)
                    for _ in range(batches)]
            self.sampler.set_state(state)
            logm = torch.log(torch.cat(mags) + 1e-4)                   # (n, channels, bins, frames)
            if isinstance(scaler, InputScaler):
                per_bin = logm.transpose(0, 2).reshape(logm.shape[2], -1)
                scaler.mean.copy_(per_bin.mean(1, keepdim=True))
                scaler.scale.copy_(1.0 / per_bin.std(1, keepdim=True).clamp_min(1e-3))
            if hasattr(est, "input_mean"):
                x = logm[:, :, : est.max_bin].permute(0, 3, 1, 2).reshape(-1, est.input_mean.numel())
                est.input_mean.copy_(x.mean(0))
                est.input_scale.copy_(1.0 / x.std(0).clamp_min(1e-3))

    # Loop --------------------------------------------------------------------------------------------------
    def validate(self) -> dict[str, Any]:
        self.estimator.eval()
        result = evaluate(self.estimator, self.valid, list(self.config.data_sources))
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

    def run(self, export: Callable[[Estimator, dict], None] | None = None,
            cancel: CancelToken | None = None, export_start: bool = False, finish_by: float | None = None,
            validations_after: float = 0.0) -> dict[str, Any]:
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
        resumed = self.resume()
        if not resumed and self.fresh:
            self.init_input_scaling()
        self.validation_seconds = 0.0
        if not resumed and config.beat_start and self.rank == 0:
            # the bar is the model we start from: a fine-tune that never beats it exports nothing
            validating = time.monotonic()
            result = self.validate()
            self.validation_seconds = time.monotonic() - validating
            medians = result["median"]
            self.best = sum(medians.values()) / max(1, len(medians))
            if self.progress is not None:
                self.progress({"stage": "start", "step": 0, "valid": medians, "valid_mean": self.best,
                               "lr": self.config.lr, "freeze": list(self.config.freeze)})
            if export_start and export is not None:
                self._export(export, {"step": 0, "valid_usdr": medians, "songs": result["songs"], "seconds": 0.0})
        self.train_mode()
        deadline = time.monotonic() + config.minutes * 60
        if finish_by is not None:
            deadline = min(deadline, finish_by - (1 + validations_after) * self.validation_seconds)
        self._deadline = deadline
        losses: list[float] = []
        started = time.monotonic()
        rollbacks = 0
        while not self._agree(time.monotonic() >= deadline or self.step >= config.max_steps
                              or (cancel is not None and cancel.cancelled)):
            # The sampler draws each source only from songs where it is usable, so every target counts.
            stems = regroup(self.sampler.batch(config.batch // self.world), self.mapping).to(self.device)
            loss = self.train_step(stems)
            if loss is None:
                # Divergence (a NaN or infinite loss or gradient): back to the last good checkpoint, half the rate.
                rollbacks += 1
                if not self.resume() or rollbacks > 5:
                    raise FloatingPointError(f"training diverged at step {self.step} and cannot recover "
                                             "from a checkpoint; lower the learning rate")
                for group in self.optimizer.param_groups:
                    group["lr"] *= 0.5
                continue
            self.step += 1
            losses.append(loss)
            if self.step % config.validate_every == 0:
                self._validation_round(losses, started, export)
                losses = []
                if self._early_stop():
                    break
        if losses:
            self._validation_round(losses, started, export)
        if cancel is not None and cancel.cancelled:
            raise Cancelled("Training cancelled; the last checkpoint is kept, run again to resume.")
        return {"step": self.step, "best": self.best, "history": self.history}

    def train_step(self, stems: Tensor) -> float | None:
        """One optimiser step on this process's share of the batch; the loss averaged over processes, or None
        (and no step taken) when the loss or the gradients are not finite on any process."""
        loss = objective_loss(self.estimator, self.stft, stems, self.config.objective, forward=self.model)
        self.optimizer.zero_grad(set_to_none=True)
        if not self._agree(not bool(torch.isfinite(loss))):
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(self.estimator.parameters(), 5.0)
            if not self._agree(not bool(torch.isfinite(norm))):
                self.optimizer.step()
                self._update_average()
                return self._mean(loss.item())
        self.optimizer.zero_grad(set_to_none=True)
        return None

    def _update_average(self) -> None:
        """Move the averaged weights towards the new ones. The decay ramps up as (1 + t) / (10 + t) towards
        ``config.ema``, so the first steps do not leave the average stuck at the starting weights."""
        if self.averaged is None:
            return
        decay = min(self.config.ema, (1 + self.step) / (10 + self.step))
        current = dict(self.estimator.named_parameters())
        with torch.no_grad():
            names = list(self.averaged)
            torch._foreach_lerp_([self.averaged[n] for n in names], [current[n].detach() for n in names], 1 - decay)

    @contextmanager
    def averaged_weights(self) -> Iterator[None]:
        """The estimator holds the averaged weights inside the block (its own ones outside it); without
        averaging, a no-op."""
        if self.averaged is None:
            yield
            return
        current = dict(self.estimator.named_parameters())
        with torch.no_grad():
            own = {n: current[n].detach().clone() for n in self.averaged}
            for name, value in self.averaged.items():
                current[name].copy_(value)
        try:
            yield
        finally:
            with torch.no_grad():
                for name, value in own.items():
                    current[name].copy_(value)

    def _agree(self, flag: bool) -> bool:
        """True on every process if it is true on any (so all processes stop, or skip, together)."""
        if self.world == 1:
            return flag
        value = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def _mean(self, value: float) -> float:
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world

    def _gather(self, tensor: Tensor) -> list[Tensor]:
        if self.world == 1:
            return [tensor]
        parts = [torch.empty_like(tensor) for _ in range(self.world)]
        dist.all_gather(parts, tensor)
        return parts

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
            self._save("checkpoint")                       # contributes its sampler state to rank 0's file
            self._follow_rank0()
            return
        with self.averaged_weights():                     # validation scores, and export writes, the average
            result = self.validate()
            medians = result["median"]
            score = sum(medians.values()) / max(1, len(medians))
            entry = {"step": self.step, "loss": sum(losses) / len(losses), "valid_usdr": medians,
                     "valid_mean": score, "lr": self.optimizer.param_groups[0]["lr"],
                     "seconds": round(time.monotonic() - started, 1), "songs": result["songs"]}
            improved = score > self.best
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
        with open(self.workdir / "log.jsonl", "a") as handle:
            handle.write(json.dumps(entry) + "\n")
        self._save("checkpoint")
        self._follow_rank0()
        if self.progress is not None:
            left_by_steps = (self.config.max_steps - self.step) * entry["seconds"] / max(1, len(self.history))
            left_by_time = getattr(self, "_deadline", time.monotonic()) - time.monotonic()
            self.progress({"stage": "train", "step": self.step, "loss": entry["loss"], "valid": medians,
                           "improved": improved, "eta_seconds": max(0.0, min(left_by_time, left_by_steps))})

    def _follow_rank0(self) -> None:
        """Share rank 0's validation outcome (best score, learning rate, history) with the other processes."""
        if self.world == 1:
            return
        state = [self.best, self.bad_validations, self.optimizer.param_groups[0]["lr"], self.history]
        dist.broadcast_object_list(state, src=0)
        self.best, self.bad_validations, lr, self.history = state
        for group in self.optimizer.param_groups:
            group["lr"] = lr


def export_model(folder: Path, model_id: str, card: dict[str, Any],
                 half: bool = False) -> Callable[[Estimator, dict], None]:
    """An export callback that writes the best estimator as a model with its validation scores in the card
    (``half``: float16 parameters, see `stemdesk.io.model_store.weights_bytes`)."""

    def export(estimator: Estimator, entry: dict) -> None:
        facts = dict(card)
        facts["metrics"] = {"validation_usdr_median_db": {k: round(v, 2) for k, v in entry["valid_usdr"].items()},
                            "validation_usdr_per_song_db": {s: {k: round(v, 2) for k, v in d.items()}
                                                            for s, d in entry["songs"].items()},
                            "step": entry["step"], "training_seconds": entry.get("seconds", 0.0)}
        card_written = save_model(folder, model_id, estimator, facts, half=half)
        atomic_write_bytes(folder / "README.md", render(card_written.raw).encode("utf-8"))

    return export
